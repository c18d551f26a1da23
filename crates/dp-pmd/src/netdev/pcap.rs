//! `pcap`: a port whose receive side replays a capture file and whose
//! transmit side writes one (or discards), for demos and benchmarks that
//! need neither privileges nor hardware.
//!
//! The whole rx file is loaded into memory when the port is created; each
//! `recv` copies the next frames into buffers from the port's pool, so the
//! replay runs at full speed with no file I/O on the fast path. With
//! `infinite` the replay wraps around forever; otherwise the queue reports
//! "nothing ready" once the file is exhausted. A single rx queue and a
//! single tx queue (the tx file is one stream).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use dp_core::netdev::{
    Capabilities, LinkState, Netdev, NetdevError, NetdevInfo, NetdevStats, RxQueue, TxOutcome,
    TxQueue, check_qid,
};
use dp_core::packet::{MAX_BURST, PacketBatch, PacketPool, PoolConfig};

use super::{AtomicStats, wall_clock_ns};

/// How to build a pcap port.
#[derive(Clone, Debug, Default)]
pub struct PcapConfig {
    /// File to replay on rx; `None` receives nothing.
    pub rx_file: Option<PathBuf>,
    /// File to write sent frames to; `None` discards them (and counts
    /// them as sent).
    pub tx_file: Option<PathBuf>,
    /// Replay the rx file forever.
    pub infinite: bool,
    /// Buffers for received packets (0 = a default sized for a few bursts
    /// in flight per PMD).
    pub pool_capacity: usize,
}

/// A pcap-backed port.
#[derive(Debug)]
pub struct PcapNetdev {
    name: String,
    frames: Arc<Vec<Vec<u8>>>,
    infinite: bool,
    pool: PacketPool,
    rx_taken: AtomicBool,
    tx: Arc<Mutex<Option<BufWriter<File>>>>,
    stats: Arc<AtomicStats>,
}

fn device_error(port: &str, what: &str, path: &Path, err: impl std::fmt::Display) -> NetdevError {
    NetdevError::Device {
        port: port.to_string(),
        reason: format!("{what} {}: {err}", path.display()),
    }
}

impl PcapNetdev {
    /// Opens the files named in `config`.
    pub fn new(name: &str, config: &PcapConfig) -> Result<PcapNetdev, NetdevError> {
        let frames = match &config.rx_file {
            Some(path) => {
                let bytes =
                    std::fs::read(path).map_err(|e| device_error(name, "rx_pcap", path, e))?;
                let records = dp_core::pcap::parse(&bytes)
                    .map_err(|e| device_error(name, "rx_pcap", path, e))?;
                records.into_iter().map(|r| r.data).collect()
            }
            None => Vec::new(),
        };
        let tx = match &config.tx_file {
            Some(path) => {
                let mut file = BufWriter::new(
                    File::create(path).map_err(|e| device_error(name, "tx_pcap", path, e))?,
                );
                let mut header = Vec::new();
                dp_core::pcap::write_header(&mut header);
                file.write_all(&header)
                    .map_err(|e| device_error(name, "tx_pcap", path, e))?;
                Some(file)
            }
            None => None,
        };
        let capacity = if config.pool_capacity == 0 {
            16 * MAX_BURST
        } else {
            config.pool_capacity
        };
        Ok(PcapNetdev {
            name: name.to_string(),
            frames: Arc::new(frames),
            infinite: config.infinite,
            pool: PacketPool::new(format!("pcap:{name}"), PoolConfig::heap(capacity)),
            rx_taken: AtomicBool::new(false),
            tx: Arc::new(Mutex::new(tx)),
            stats: Arc::new(AtomicStats::default()),
        })
    }

    /// The pool received packets come from.
    pub fn pool(&self) -> &PacketPool {
        &self.pool
    }

    /// Number of frames in the rx file.
    pub fn rx_frame_count(&self) -> usize {
        self.frames.len()
    }

    /// Flushes the tx file to disk.
    pub fn flush(&self) -> std::io::Result<()> {
        match self.tx.lock().expect("tx lock").as_mut() {
            Some(file) => file.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for PcapNetdev {
    fn drop(&mut self) {
        // Best effort: the port is going away either way.
        let _ = self.flush();
    }
}

impl Netdev for PcapNetdev {
    fn name(&self) -> &str {
        &self.name
    }

    fn type_name(&self) -> &'static str {
        "pcap"
    }

    fn info(&self) -> NetdevInfo {
        NetdevInfo {
            n_rxq: 1,
            n_txq: 1,
            mac: [0; 6],
            mtu: 1500,
            capabilities: Capabilities::default(),
        }
    }

    fn link_state(&self) -> LinkState {
        LinkState::Up
    }

    fn stats(&self) -> NetdevStats {
        self.stats.snapshot()
    }

    fn open_rxq(&self, qid: usize) -> Result<Box<dyn RxQueue>, NetdevError> {
        check_qid(&self.name, qid, 1)?;
        if self.rx_taken.swap(true, Ordering::AcqRel) {
            return Err(NetdevError::QueueTaken {
                port: self.name.clone(),
                qid,
            });
        }
        Ok(Box::new(PcapRxq {
            frames: Arc::clone(&self.frames),
            next: 0,
            infinite: self.infinite,
            pool: self.pool.clone(),
            stats: Arc::clone(&self.stats),
        }))
    }

    fn open_txq(&self, qid: usize) -> Result<Box<dyn TxQueue>, NetdevError> {
        check_qid(&self.name, qid, 1)?;
        Ok(Box::new(PcapTxq {
            tx: Arc::clone(&self.tx),
            stats: Arc::clone(&self.stats),
        }))
    }
}

#[derive(Debug)]
struct PcapRxq {
    frames: Arc<Vec<Vec<u8>>>,
    next: usize,
    infinite: bool,
    pool: PacketPool,
    stats: Arc<AtomicStats>,
}

impl RxQueue for PcapRxq {
    fn recv(&mut self, batch: &mut PacketBatch) -> Result<usize, NetdevError> {
        let (mut n, mut bytes, mut dropped) = (0, 0, 0);
        while !batch.is_full() && !self.frames.is_empty() {
            if self.next == self.frames.len() {
                if !self.infinite {
                    break;
                }
                self.next = 0;
            }
            let frame = &self.frames[self.next];
            self.next += 1;
            match self.pool.alloc_from(frame) {
                Some(packet) => {
                    bytes += packet.len();
                    n += 1;
                    let _ = batch.push(packet);
                }
                // Out of buffers (or a frame larger than a buffer): the
                // device drops it, as a NIC with an empty ring would.
                None => {
                    dropped += 1;
                    if self.pool.in_use() == self.pool.stats().capacity {
                        break;
                    }
                }
            }
        }
        if n > 0 {
            self.stats.add_rx(n, bytes);
        }
        if dropped > 0 {
            self.stats.add_rx_dropped(dropped);
        }
        Ok(n)
    }
}

#[derive(Debug)]
struct PcapTxq {
    tx: Arc<Mutex<Option<BufWriter<File>>>>,
    stats: Arc<AtomicStats>,
}

impl TxQueue for PcapTxq {
    fn send(&mut self, batch: &mut PacketBatch) -> TxOutcome {
        let (mut sent, mut bytes, mut dropped) = (0, 0, 0);
        let mut tx = self.tx.lock().expect("tx lock");
        match tx.as_mut() {
            Some(file) => {
                let now = wall_clock_ns();
                let mut record = Vec::new();
                for packet in batch.drain() {
                    record.clear();
                    dp_core::pcap::write_record(&mut record, now, packet.data());
                    if file.write_all(&record).is_ok() {
                        sent += 1;
                        bytes += packet.len();
                    } else {
                        dropped += 1;
                    }
                }
            }
            None => {
                for packet in batch.drain() {
                    sent += 1;
                    bytes += packet.len();
                }
            }
        }
        drop(tx);
        self.stats.add_tx(sent, bytes, dropped);
        TxOutcome { sent, dropped }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("oxvs-pcap-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
        let mut bytes = Vec::new();
        dp_core::pcap::write_header(&mut bytes);
        for f in frames {
            dp_core::pcap::write_record(&mut bytes, 0, f);
        }
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn replays_once_then_reports_nothing_ready() {
        let dir = temp_dir("once");
        let rx = dir.join("rx.pcap");
        write_pcap(&rx, &[vec![1; 60], vec![2; 70], vec![3; 80]]);
        let port = PcapNetdev::new(
            "p",
            &PcapConfig {
                rx_file: Some(rx),
                ..Default::default()
            },
        )
        .unwrap();
        let mut rxq = port.open_rxq(0).unwrap();
        let mut batch = PacketBatch::new();
        assert_eq!(rxq.recv(&mut batch).unwrap(), 3);
        assert_eq!(batch.get(1).unwrap().len(), 70);
        assert_eq!(rxq.recv(&mut batch).unwrap(), 0);
        drop(batch);
        assert_eq!(port.pool().in_use(), 0);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn infinite_replay_fills_every_burst_and_tx_writes_a_pcap() {
        let dir = temp_dir("inf");
        let rx = dir.join("rx.pcap");
        let tx = dir.join("tx.pcap");
        write_pcap(&rx, &[vec![9; 64]]);
        let config = PcapConfig {
            rx_file: Some(rx),
            tx_file: Some(tx.clone()),
            infinite: true,
            pool_capacity: 0,
        };
        let port = PcapNetdev::new("p", &config).unwrap();
        let mut rxq = port.open_rxq(0).unwrap();
        let mut txq = port.open_txq(0).unwrap();
        let mut batch = PacketBatch::new();
        for _ in 0..3 {
            assert_eq!(rxq.recv(&mut batch).unwrap(), MAX_BURST);
            assert_eq!(
                txq.send(&mut batch),
                TxOutcome {
                    sent: MAX_BURST,
                    dropped: 0
                }
            );
        }
        port.flush().unwrap();
        let written = dp_core::pcap::parse(&std::fs::read(&tx).unwrap()).unwrap();
        assert_eq!(written.len(), 3 * MAX_BURST);
        let stats = port.stats();
        assert_eq!((stats.rx_packets, stats.tx_packets), (96, 96));
        assert_eq!(port.pool().in_use(), 0);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn missing_or_bad_file_names_the_port_and_the_file() {
        let err = PcapNetdev::new(
            "p9",
            &PcapConfig {
                rx_file: Some("/nonexistent/x.pcap".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("p9") && text.contains("/nonexistent/x.pcap"),
            "{text}"
        );
    }
}
