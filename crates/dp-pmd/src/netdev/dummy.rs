//! `dummy` and `dummy-pmd`: in-memory ports.
//!
//! Receive is fed through [`DummyNetdev::receive`] (the operation behind
//! OVS's `netdev-dummy/receive`): the frame is copied into a buffer from
//! the port's pool and queued on the chosen rx queue, where the polling
//! thread picks it up. Transmit is captured: every sent frame is kept (up
//! to a bound, oldest dropped first) for [`DummyNetdev::take_sent`], and
//! optionally appended to a pcap file.
//!
//! `dummy-pmd` ports are polled by PMD threads, `dummy` ports by the
//! non-PMD thread, as in OVS. Both are test devices: the capture path
//! copies frames into owned vectors, which the real drivers never do.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use dp_core::netdev::{
    Capabilities, LinkState, Netdev, NetdevError, NetdevInfo, NetdevStats, RxQueue, TxOutcome,
    TxQueue, check_qid,
};
use dp_core::packet::{DEFAULT_HEADROOM, MAX_BURST, Packet, PacketBatch, PacketPool, PoolConfig};

use super::{AtomicStats, wall_clock_ns};

/// Frames waiting on one rx queue before injection starts dropping.
pub const RX_QUEUE_DEPTH: usize = 4096;
/// Sent frames kept for [`DummyNetdev::take_sent`] (oldest dropped first).
pub const TX_CAPTURE_LIMIT: usize = 65_536;

/// How to build a dummy port.
#[derive(Clone, Debug)]
pub struct DummyConfig {
    pub n_rxq: usize,
    pub n_txq: usize,
    pub mac: [u8; 6],
    pub mtu: u16,
    /// `true` for `dummy-pmd` (PMD-polled), `false` for `dummy`.
    pub pmd: bool,
    /// Buffers for injected packets.
    pub pool_capacity: usize,
}

impl Default for DummyConfig {
    fn default() -> Self {
        DummyConfig {
            n_rxq: 1,
            n_txq: 1,
            mac: [0xaa, 0x55, 0xaa, 0x55, 0x00, 0x01],
            mtu: 1500,
            pmd: true,
            pool_capacity: RX_QUEUE_DEPTH + 2 * MAX_BURST,
        }
    }
}

#[derive(Debug)]
struct Capture {
    frames: VecDeque<Vec<u8>>,
    pcap: Option<BufWriter<File>>,
}

#[derive(Debug)]
struct Shared {
    stats: AtomicStats,
    capture: Mutex<Capture>,
}

/// The longest frame a port with `mtu` receives: the MTU plus an
/// Ethernet header, FCS room and two VLAN tags.
fn max_frame_len(mtu: u16) -> usize {
    usize::from(mtu) + 18 + 8
}

/// An in-memory port.
#[derive(Debug)]
pub struct DummyNetdev {
    name: String,
    config: DummyConfig,
    pool: PacketPool,
    rx_senders: Vec<Sender<Packet>>,
    rx_receivers: Vec<Receiver<Packet>>,
    rx_taken: Vec<AtomicBool>,
    shared: Arc<Shared>,
}

impl DummyNetdev {
    /// Creates a port named `name`.
    pub fn new(name: &str, config: DummyConfig) -> DummyNetdev {
        let n_rxq = config.n_rxq.max(1);
        let (rx_senders, rx_receivers) = (0..n_rxq).map(|_| bounded(RX_QUEUE_DEPTH)).unzip();
        DummyNetdev {
            name: name.to_string(),
            pool: PacketPool::new(
                format!("dummy:{name}"),
                PoolConfig {
                    // Room for the largest frame the MTU admits: a jumbo
                    // port with 2 KiB buffers would refuse its own frames.
                    buffer_size: PoolConfig::heap(0)
                        .buffer_size
                        .max(DEFAULT_HEADROOM + max_frame_len(config.mtu)),
                    ..PoolConfig::heap(config.pool_capacity)
                },
            ),
            rx_senders,
            rx_receivers,
            rx_taken: (0..n_rxq).map(|_| AtomicBool::new(false)).collect(),
            config: DummyConfig {
                n_rxq,
                n_txq: config.n_txq.max(1),
                ..config
            },
            shared: Arc::new(Shared {
                stats: AtomicStats::default(),
                capture: Mutex::new(Capture {
                    frames: VecDeque::new(),
                    pcap: None,
                }),
            }),
        }
    }

    /// The pool injected packets come from (for buffer accounting).
    pub fn pool(&self) -> &PacketPool {
        &self.pool
    }

    /// Queues a copy of `frame` on rx queue `qid`, as if it had arrived
    /// from the wire. A full queue or an exhausted pool drops the frame and
    /// counts it in `rx_dropped`.
    pub fn receive(&self, qid: usize, frame: &[u8]) -> Result<(), NetdevError> {
        check_qid(&self.name, qid, self.rx_senders.len())?;
        if frame.len() > max_frame_len(self.config.mtu).max(self.pool.buffer_size()) {
            return Err(NetdevError::Device {
                port: self.name.clone(),
                reason: format!("frame of {} bytes exceeds the port's MTU", frame.len()),
            });
        }
        let Some(packet) = self.pool.alloc_from(frame) else {
            self.shared.stats.add_rx_dropped(1);
            return Err(NetdevError::Device {
                port: self.name.clone(),
                reason: "no free packet buffer".into(),
            });
        };
        match self.rx_senders[qid].try_send(packet) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                self.shared.stats.add_rx_dropped(1);
                Err(NetdevError::Device {
                    port: self.name.clone(),
                    reason: format!("rx queue {qid} is full"),
                })
            }
            Err(TrySendError::Disconnected(_)) => Err(NetdevError::Disconnected {
                port: self.name.clone(),
            }),
        }
    }

    /// Starts appending every sent frame to a new pcap file at `path`.
    pub fn capture_to_pcap(&self, path: &Path) -> std::io::Result<()> {
        let mut file = BufWriter::new(File::create(path)?);
        let mut header = Vec::new();
        dp_core::pcap::write_header(&mut header);
        file.write_all(&header)?;
        file.flush()?;
        self.shared.capture.lock().expect("capture lock").pcap = Some(file);
        Ok(())
    }

    /// Takes the frames sent so far, oldest first.
    pub fn take_sent(&self) -> Vec<Vec<u8>> {
        let mut capture = self.shared.capture.lock().expect("capture lock");
        capture.frames.drain(..).collect()
    }
}

impl Netdev for DummyNetdev {
    fn name(&self) -> &str {
        &self.name
    }

    fn type_name(&self) -> &'static str {
        if self.config.pmd {
            "dummy-pmd"
        } else {
            "dummy"
        }
    }

    fn info(&self) -> NetdevInfo {
        NetdevInfo {
            n_rxq: self.config.n_rxq,
            n_txq: self.config.n_txq,
            mac: self.config.mac,
            mtu: self.config.mtu,
            capabilities: Capabilities::default(),
        }
    }

    fn link_state(&self) -> LinkState {
        LinkState::Up
    }

    fn is_pmd(&self) -> bool {
        self.config.pmd
    }

    fn stats(&self) -> NetdevStats {
        self.shared.stats.snapshot()
    }

    fn open_rxq(&self, qid: usize) -> Result<Box<dyn RxQueue>, NetdevError> {
        check_qid(&self.name, qid, self.config.n_rxq)?;
        if self.rx_taken[qid].swap(true, Ordering::AcqRel) {
            return Err(NetdevError::QueueTaken {
                port: self.name.clone(),
                qid,
            });
        }
        Ok(Box::new(DummyRxq {
            receiver: self.rx_receivers[qid].clone(),
            shared: Arc::clone(&self.shared),
        }))
    }

    fn open_txq(&self, qid: usize) -> Result<Box<dyn TxQueue>, NetdevError> {
        check_qid(&self.name, qid, self.config.n_txq)?;
        Ok(Box::new(DummyTxq {
            shared: Arc::clone(&self.shared),
        }))
    }
}

#[derive(Debug)]
struct DummyRxq {
    receiver: Receiver<Packet>,
    shared: Arc<Shared>,
}

impl RxQueue for DummyRxq {
    fn recv(&mut self, batch: &mut PacketBatch) -> Result<usize, NetdevError> {
        let (mut n, mut bytes) = (0, 0);
        while !batch.is_full() {
            let Ok(packet) = self.receiver.try_recv() else {
                break;
            };
            bytes += packet.len();
            n += 1;
            // Cannot fail: the batch has room.
            let _ = batch.push(packet);
        }
        if n > 0 {
            self.shared.stats.add_rx(n, bytes);
        }
        Ok(n)
    }
}

#[derive(Debug)]
struct DummyTxq {
    shared: Arc<Shared>,
}

impl TxQueue for DummyTxq {
    fn send(&mut self, batch: &mut PacketBatch) -> TxOutcome {
        let (mut sent, mut bytes) = (0, 0);
        let now = wall_clock_ns();
        let mut capture = self.shared.capture.lock().expect("capture lock");
        for packet in batch.drain() {
            let frame = packet.data();
            if let Some(pcap) = capture.pcap.as_mut() {
                let mut record = Vec::with_capacity(frame.len() + 16);
                dp_core::pcap::write_record(&mut record, now, frame);
                // A failing capture file must not stop forwarding: stop
                // writing to it instead.
                if pcap.write_all(&record).and_then(|()| pcap.flush()).is_err() {
                    capture.pcap = None;
                }
            }
            if capture.frames.len() == TX_CAPTURE_LIMIT {
                capture.frames.pop_front();
            }
            capture.frames.push_back(frame.to_vec());
            sent += 1;
            bytes += frame.len();
        }
        drop(capture);
        self.shared.stats.add_tx(sent, bytes, 0);
        TxOutcome { sent, dropped: 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn injected_frames_come_out_of_the_rx_queue_and_sent_frames_are_captured() {
        let port = DummyNetdev::new(
            "p0",
            DummyConfig {
                n_rxq: 2,
                ..DummyConfig::default()
            },
        );
        let mut rxq0 = port.open_rxq(0).unwrap();
        assert!(matches!(
            port.open_rxq(0),
            Err(NetdevError::QueueTaken { .. })
        ));
        assert!(matches!(
            port.open_rxq(2),
            Err(NetdevError::NoSuchQueue { .. })
        ));
        for i in 0..40u8 {
            port.receive(0, &[i; 60]).unwrap();
        }
        port.receive(1, &[0xff; 60]).unwrap();
        let mut batch = PacketBatch::new();
        assert_eq!(rxq0.recv(&mut batch).unwrap(), MAX_BURST);
        assert_eq!(batch.get(0).unwrap().data()[0], 0);
        let mut txq = port.open_txq(0).unwrap();
        let outcome = txq.send(&mut batch);
        assert_eq!(
            outcome,
            TxOutcome {
                sent: 32,
                dropped: 0
            }
        );
        assert!(batch.is_empty());
        assert_eq!(rxq0.recv(&mut batch).unwrap(), 8);
        drop(batch);
        let sent = port.take_sent();
        assert_eq!(sent.len(), 32);
        assert_eq!(sent[31], vec![31; 60]);
        let stats = port.stats();
        assert_eq!(
            (stats.rx_packets, stats.tx_packets, stats.tx_bytes),
            (40, 32, 32 * 60)
        );
        // The packet still queued on rxq 1 is the only buffer out.
        assert_eq!(port.pool().in_use(), 1);
    }

    #[test]
    fn full_rx_queue_drops_and_counts() {
        let port = DummyNetdev::new(
            "p1",
            DummyConfig {
                pool_capacity: 8,
                ..DummyConfig::default()
            },
        );
        for _ in 0..8 {
            port.receive(0, &[1; 64]).unwrap();
        }
        assert!(port.receive(0, &[1; 64]).is_err());
        assert_eq!(port.stats().rx_dropped, 1);
        assert!(port.receive(0, &[0; 9000]).is_err(), "over MTU");
        // A jumbo port's buffers hold its largest frame (they were 2 KiB,
        // so every jumbo frame was refused as "no free packet buffer").
        let jumbo = DummyNetdev::new(
            "p1j",
            DummyConfig {
                mtu: 9000,
                pool_capacity: 2,
                ..DummyConfig::default()
            },
        );
        jumbo.receive(0, &[0; 9026]).unwrap();
        assert_eq!(jumbo.stats().rx_dropped, 0);
        assert!(port.receive(3, &[0; 60]).is_err(), "no such queue");
    }

    #[test]
    fn capture_file_is_a_readable_pcap() {
        let dir = std::env::temp_dir().join(format!("oxvs-dummy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tx.pcap");
        let port = DummyNetdev::new("p2", DummyConfig::default());
        port.capture_to_pcap(&path).unwrap();
        let mut batch = PacketBatch::new();
        batch
            .push(port.pool().alloc_from(&[7; 64]).unwrap())
            .unwrap();
        port.open_txq(0).unwrap().send(&mut batch);
        let records = dp_core::pcap::parse(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].data, vec![7; 64]);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(port.pool().in_use(), 0);
    }
}
