//! Live capture, the daemon's side: the `capture/*` commands and the
//! writer thread that turns the PMDs' capture rings into a pcap file.
//!
//! # How it works
//! `capture/start PORT FILE [--rx|--tx|--both] [--count N] [--filter
//! MATCH] [--snaplen N] [--ring N]` checks the port, the filter (an ODP
//! flow match, as `dpctl/dump-flows filter=`) and the path, then asks the
//! datapath for one ring per thread ([`dp_pmd::capture`]) and starts a
//! writer thread (not a PMD). The writer waits on every ring, writes each
//! record to the file (classic pcap, Ethernet, microsecond timestamps:
//! what tcpdump, tshark and Wireshark read), and hands the record back to
//! its ring. With `--count N` it stops after N packets and closes the
//! rings, which makes the PMDs let go of them. `capture/stop` ends a
//! capture early; `capture/status` reports packets written and copies
//! dropped because a ring was full (the forwarded packets are never
//! affected).
//!
//! One capture runs at a time. The file must be an absolute path whose
//! directory exists; an existing file must be a FIFO (for a live
//! `tshark -i FIFO`) or a regular file that is empty or already a capture
//! (pcap or pcapng magic: it is replaced), never a symlink — so a capture
//! request can not overwrite an arbitrary file the daemon may write. The
//! regular file is opened with `O_NOFOLLOW` and checked through the opened
//! descriptor, so a symlink or a different file swapped in after the
//! check is refused too. A new file is created with mode 0600: it holds
//! traffic.
//!
//! A FIFO is opened and written without blocking: the writer waits for a
//! reader to open it (checking its stop flag every [`WRITER_TICK`]) and,
//! while the reader does not read, waits for room the same way. So a
//! capture to a FIFO nobody opens or nobody drains still ends when it is
//! stopped: `capture/stop` lets the writer drain for [`FINISH_WAIT`], then
//! tells it to give up, and its thread always exits.
//!
//! # Thread story
//! The control thread owns [`Captures`]; the writer thread shares only an
//! [`Arc`] of counters and flags with it, and the rings with the PMDs.
#![forbid(unsafe_code)]

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossbeam_channel::Select;
use dp_core::odp;
use dp_pmd::capture::{
    CaptureRecord, CaptureRing, CaptureSpec, DEFAULT_RING_SLOTS, Direction, MAX_RING_BYTES,
    MAX_SNAPLEN, ring_bytes,
};

use crate::daemon::Daemon;

/// How long the writer waits on the rings before checking its stop flag
/// and flushing what it wrote (so a live reader sees packets promptly).
const WRITER_TICK: Duration = Duration::from_millis(50);
/// Longest `capture/stop` waits for the writer to drain and flush.
const FINISH_WAIT: Duration = Duration::from_secs(2);
/// Largest ring accepted from `--ring`.
const MAX_RING_SLOTS: usize = 65_536;

/// What the writer thread reports.
#[derive(Debug, Default)]
struct Shared {
    stop: AtomicBool,
    /// Set when the writer did not finish within [`FINISH_WAIT`] of the
    /// stop: it gives up waiting on a FIFO's reader.
    abandon: AtomicBool,
    finished: AtomicBool,
    written: AtomicU64,
    error: Mutex<Option<String>>,
}

#[derive(Debug)]
struct Session {
    id: u64,
    port: String,
    port_no: u32,
    direction: Direction,
    path: PathBuf,
    count: Option<u64>,
    rings: Vec<Arc<CaptureRing>>,
    shared: Arc<Shared>,
    writer: Option<JoinHandle<()>>,
}

impl Session {
    fn status(&self) -> String {
        let state = if self.shared.finished.load(Ordering::Acquire) {
            match &*self.shared.error.lock().unwrap_or_else(|e| e.into_inner()) {
                Some(e) => format!("failed: {e}"),
                None => "done".into(),
            }
        } else {
            "running".into()
        };
        let dir = match self.direction {
            Direction::Rx => "rx",
            Direction::Tx => "tx",
            Direction::Both => "both",
        };
        format!(
            "capture {}: port {} {dir}, file {}, packets written: {}{}, ring full drops: {}, {state}\n",
            self.id,
            self.port,
            self.path.display(),
            self.shared.written.load(Ordering::Relaxed),
            self.count.map(|c| format!("/{c}")).unwrap_or_default(),
            self.ring_full_drops(),
        )
    }

    fn ring_full_drops(&self) -> u64 {
        self.rings.iter().map(|r| r.ring_full_drops()).sum()
    }

    /// Stops the writer and waits for it: it drains and flushes first,
    /// for at most [`FINISH_WAIT`]; a writer still waiting on a FIFO's
    /// reader then gives up (see the module docs) and is joined. Only a
    /// write to a regular file stuck in the kernel (a hung NFS server)
    /// could outlast that; such a writer is left to exit by itself.
    fn finish(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        for r in &self.rings {
            r.close();
        }
        let wait = |limit: Duration| {
            let deadline = std::time::Instant::now() + limit;
            while !self.shared.finished.load(Ordering::Acquire)
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            self.shared.finished.load(Ordering::Acquire)
        };
        if !wait(FINISH_WAIT) {
            self.shared.abandon.store(true, Ordering::Release);
            wait(WRITER_TICK * 4);
        }
        if let Some(w) = self.writer.take() {
            if self.shared.finished.load(Ordering::Acquire) {
                let _ = w.join();
            } else {
                tracing::warn!(
                    capture = self.id,
                    "capture writer is blocked on its output; detached"
                );
            }
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The daemon's captures: the running one, or the last one.
#[derive(Debug, Default)]
pub struct Captures {
    current: Option<Session>,
    next_id: u64,
}

impl Captures {
    /// Releases the PMDs' side of a capture whose writer finished by
    /// itself (`--count` reached, file error), and ends a capture whose
    /// port was removed (its number could be given to another port).
    /// Called by housekeeping, `capture/status` and port removal.
    pub fn reap(&mut self, datapath: &dp_pmd::datapath::Datapath) {
        let Some(s) = &mut self.current else {
            return;
        };
        if s.writer.is_none() {
            return;
        }
        if datapath.port_no(&s.port) != Some(s.port_no) {
            *s.shared.error.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(format!("port {} was removed", s.port));
        } else if !s.shared.finished.load(Ordering::Acquire) {
            return;
        }
        datapath.capture_stop(s.id);
        s.finish();
    }

    /// Counters for the metrics page: `(name, kind, help, samples)`.
    fn metrics(&self) -> Vec<MetricFamily> {
        let Some(s) = &self.current else {
            return Vec::new();
        };
        let labels = vec![("capture", s.id.to_string()), ("port", s.port.clone())];
        vec![
            (
                "oxvs_capture_packets_written_total",
                "counter",
                "Packets the current (or last) capture wrote to its file.",
                vec![(labels.clone(), s.shared.written.load(Ordering::Relaxed))],
            ),
            (
                "oxvs_capture_ring_full_drops_total",
                "counter",
                "Copies the capture dropped because its ring was full (the packets were forwarded).",
                vec![(labels, s.ring_full_drops())],
            ),
        ]
    }
}

/// `(labels, value)` samples of one metrics family.
pub type MetricSamples = Vec<(Vec<(&'static str, String)>, u64)>;
/// One metrics family: name, type, help, samples.
pub type MetricFamily = (&'static str, &'static str, &'static str, MetricSamples);

/// Emits the capture families for [`crate::metrics::render`].
pub fn render_metrics(d: &Daemon, emit: &mut dyn FnMut(&str, &str, &str, MetricSamples)) {
    for (name, kind, help, samples) in d.captures.metrics() {
        emit(name, kind, help, samples);
    }
}

/// Checks the output path (see the module docs).
fn check_path(text: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(text);
    if !path.is_absolute() {
        return Err(format!("{text}: the capture file must be an absolute path"));
    }
    let parent = path.parent().unwrap_or(Path::new("/"));
    if !parent.is_dir() {
        return Err(format!(
            "{text}: directory {} does not exist",
            parent.display()
        ));
    }
    match std::fs::symlink_metadata(&path) {
        Err(_) => Ok(path),
        Ok(m) if m.file_type().is_file() => Ok(path),
        Ok(m) if std::os::unix::fs::FileTypeExt::is_fifo(&m.file_type()) => Ok(path),
        Ok(m) if m.file_type().is_symlink() => {
            Err(format!("{text}: is a symlink; give the real path"))
        }
        Ok(_) => Err(format!(
            "{text}: exists and is not a regular file or a FIFO"
        )),
    }
}

fn parse_count(flag: &str, v: Option<&String>, max: u64) -> Result<u64, String> {
    let v = v.ok_or_else(|| format!("{flag} needs a number"))?;
    match v.parse::<u64>() {
        Ok(n) if n >= 1 && n <= max => Ok(n),
        _ => Err(format!("{flag} {v}: expected a number from 1 to {max}")),
    }
}

/// `capture/start PORT FILE [options]`.
pub fn start(d: &mut Daemon, args: &[String]) -> Result<String, String> {
    let (Some(port), Some(file)) = (args.first(), args.get(1)) else {
        return Err("usage: capture/start PORT FILE [--rx|--tx|--both] [--count N] [--filter MATCH] [--snaplen N] [--ring N]".into());
    };
    d.captures.reap(&d.datapath);
    if let Some(s) = &d.captures.current
        && s.writer.is_some()
    {
        return Err(format!(
            "capture {} is already running on port {} (capture/stop {} first)",
            s.id, s.port, s.id
        ));
    }
    let port_no = d
        .ports
        .get(port)
        .map(|p| p.port_no)
        .ok_or_else(|| format!("no such port: {port}"))?;
    let path = check_path(file)?;
    let mut direction = Direction::Both;
    let mut count = None;
    let mut filter = None;
    let mut snaplen = MAX_SNAPLEN;
    let mut ring_slots = DEFAULT_RING_SLOTS;
    let mut i = 2;
    while i < args.len() {
        let value = args.get(i + 1);
        match args[i].as_str() {
            "--rx" => direction = Direction::Rx,
            "--tx" => direction = Direction::Tx,
            "--both" => direction = Direction::Both,
            "--count" => {
                count = Some(parse_count("--count", value, u64::MAX)?);
                i += 1;
            }
            "--snaplen" => {
                snaplen = parse_count("--snaplen", value, MAX_SNAPLEN as u64)? as usize;
                i += 1;
            }
            "--ring" => {
                ring_slots = parse_count("--ring", value, MAX_RING_SLOTS as u64)? as usize;
                i += 1;
            }
            "--filter" => {
                let text = value.ok_or("--filter needs a flow match")?;
                let mut names = odp::PortNames::new();
                for (name, p) in &d.ports {
                    names.insert(p.port_no, name.clone());
                }
                let mk = odp::key::parse_masked(text, Some(&names))
                    .map_err(|e| format!("--filter: {e}"))?;
                let (k, mut m) = odp::flow::masked_key_to_flow(&mk.key, &mk.mask)
                    .map_err(|e| format!("--filter: {e}"))?;
                // ODP text without eth() means an L3 packet type; a
                // capture filter like `ipv4(proto=6)` means "any frame with
                // these fields", so the packet type is left free.
                if !text.contains("eth(") && !text.contains("packet_type(") {
                    m.packet_type = 0;
                }
                filter = Some((k.masked(&m), m));
                i += 1;
            }
            other => return Err(format!("capture/start: unknown argument \"{other}\"")),
        }
        i += 1;
    }
    // Every thread gets a ring that may fill with `--ring` records of
    // `--snaplen` bytes: bounded, or a big ring of jumbo frames on many
    // PMDs takes gigabytes.
    if ring_bytes(ring_slots, snaplen) > MAX_RING_BYTES {
        return Err(format!(
            "--ring {ring_slots} with --snaplen {snaplen}: each thread's ring could hold {} MiB \
             (at most {} MiB); lower --ring or --snaplen",
            ring_bytes(ring_slots, snaplen) >> 20,
            MAX_RING_BYTES >> 20
        ));
    }
    // A regular file is opened here, so a permission error is the
    // command's answer; a FIFO is opened by the writer (that blocks until
    // a reader opens the other end).
    let is_fifo = std::fs::metadata(&path)
        .map(|m| std::os::unix::fs::FileTypeExt::is_fifo(&m.file_type()))
        .unwrap_or(false);
    let file = if is_fifo {
        None
    } else {
        Some(open_regular(&path)?)
    };

    d.captures.next_id += 1;
    let id = d.captures.next_id;
    let spec = CaptureSpec {
        id,
        port_no,
        direction,
        filter,
        snaplen,
        ring_slots,
    };
    let rings = d.datapath.capture_start(&spec).map_err(|e| e.to_string())?;
    let shared = Arc::new(Shared::default());
    let writer = {
        let (rings, shared, path) = (rings.clone(), Arc::clone(&shared), path.clone());
        std::thread::Builder::new()
            .name(format!("capture-{id}"))
            .spawn(move || {
                let result = write_capture(&rings, &shared, &path, file, count);
                if let Err(e) = result {
                    // The first reason stays: a capture ended because its
                    // port was removed says so, not what the stop caused.
                    shared
                        .error
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get_or_insert(e);
                }
                for r in &rings {
                    r.close();
                }
                shared.finished.store(true, Ordering::Release);
            })
    };
    let writer = match writer {
        Ok(w) => w,
        Err(e) => {
            d.datapath.capture_stop(id);
            return Err(format!("capture writer thread: {e}"));
        }
    };
    d.captures.current = Some(Session {
        id,
        port: port.clone(),
        port_no,
        direction,
        path: path.clone(),
        count,
        rings,
        shared,
        writer: Some(writer),
    });
    Ok(format!(
        "capture {id} started on port {port}, writing {}\n",
        path.display()
    ))
}

/// `capture/status [ID]`.
pub fn status(d: &mut Daemon, args: &[String]) -> Result<String, String> {
    d.captures.reap(&d.datapath);
    let s = d.captures.current.as_ref().ok_or("no capture has run")?;
    if let Some(id) = args.first()
        && *id != s.id.to_string()
    {
        return Err(format!("no such capture: {id} (the latest is {})", s.id));
    }
    Ok(s.status())
}

/// `capture/stop [ID]`.
pub fn stop(d: &mut Daemon, args: &[String]) -> Result<String, String> {
    let datapath = &d.datapath;
    let s = d.captures.current.as_mut().ok_or("no capture has run")?;
    if let Some(id) = args.first()
        && *id != s.id.to_string()
    {
        return Err(format!("no such capture: {id} (the latest is {})", s.id));
    }
    datapath.capture_stop(s.id);
    s.finish();
    Ok(s.status())
}

/// First bytes of the files a capture may replace: pcap (both byte orders,
/// micro- and nanosecond) and pcapng.
const CAPTURE_MAGICS: [[u8; 4]; 5] = [
    [0xd4, 0xc3, 0xb2, 0xa1],
    [0xa1, 0xb2, 0xc3, 0xd4],
    [0x4d, 0x3c, 0xb2, 0xa1],
    [0xa1, 0xb2, 0x3c, 0x4d],
    [0x0a, 0x0d, 0x0d, 0x0a],
];

/// Opens (creating, mode 0600) the regular capture file and empties it;
/// refuses a symlink and an existing file that is neither empty nor a
/// capture (see the module docs).
fn open_regular(path: &Path) -> Result<File, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let shown = path.display();
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
                format!("{shown}: is a symlink; give the real path")
            } else {
                format!("{shown}: {e}")
            }
        })?;
    let meta = file.metadata().map_err(|e| format!("{shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!(
            "{shown}: exists and is not a regular file or a FIFO"
        ));
    }
    if meta.len() > 0 {
        let mut magic = [0u8; 4];
        let is_capture = file.read_exact(&mut magic).is_ok() && CAPTURE_MAGICS.contains(&magic);
        if !is_capture {
            return Err(format!(
                "{shown}: exists and is not a capture file (pcap/pcapng); remove it or choose another name"
            ));
        }
    }
    // Empty it and write from the start (the magic check moved the offset).
    file.set_len(0).map_err(|e| format!("{shown}: {e}"))?;
    std::io::Seek::rewind(&mut file).map_err(|e| format!("{shown}: {e}"))?;
    Ok(file)
}

/// Opens a FIFO for writing without blocking the thread for good: until a
/// reader has it open, retries every [`WRITER_TICK`] while the capture is
/// not stopped. The file stays non-blocking (see [`Output`]).
fn open_fifo(path: &Path, shared: &Shared) -> Result<File, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let nonblock = rustix::fs::OFlags::NONBLOCK.bits() as i32;
    loop {
        match std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(nonblock)
            .open(path)
        {
            Ok(f) => return Ok(f),
            // ENXIO: no reader has the FIFO open yet.
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NXIO.raw_os_error()) => {
                if shared.stop.load(Ordering::Acquire) {
                    return Err(format!(
                        "{}: no reader opened the FIFO before the capture stopped",
                        path.display()
                    ));
                }
                std::thread::sleep(WRITER_TICK);
            }
            Err(e) => return Err(format!("{}: {e}", path.display())),
        }
    }
}

/// The capture file: a regular file, or a non-blocking FIFO whose full
/// pipe is waited on here (backing off from 50 µs to 5 ms) until the
/// reader makes room or the capture is abandoned.
struct Output<'a> {
    file: File,
    /// The capture's flags, for a FIFO.
    fifo: Option<&'a Shared>,
}

impl Write for Output<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // Short waits while a live reader drains the pipe, longer ones
        // while it does not (no poll(2) without rustix's `event` feature).
        let mut wait = Duration::from_micros(50);
        loop {
            match self.file.write(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if self.fifo.is_none_or(|s| s.abandon.load(Ordering::Acquire)) {
                        return Err(std::io::Error::other(
                            "the FIFO's reader stopped reading; capture abandoned",
                        ));
                    }
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_millis(5));
                }
                other => return other,
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// The writer thread's work; returns when the count is reached, on stop,
/// or on a write error.
fn write_capture(
    rings: &[Arc<CaptureRing>],
    shared: &Shared,
    path: &Path,
    file: Option<File>,
    count: Option<u64>,
) -> Result<(), String> {
    let file = match file {
        Some(f) => Output {
            file: f,
            fifo: None,
        },
        None => Output {
            file: open_fifo(path, shared)?,
            fifo: Some(shared),
        },
    };
    let mut out = BufWriter::new(file);
    let io = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut header = Vec::new();
    dp_core::pcap::write_header(&mut header);
    out.write_all(&header).map_err(io)?;
    out.flush().map_err(io)?;
    // Datapath clock (process monotonic) to Unix time.
    let epoch_offset_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        .saturating_sub(dp_pmd::cycles::monotonic_ns());
    let limit = count.unwrap_or(u64::MAX);
    let mut written = 0u64;
    let mut scratch = Vec::with_capacity(16);
    let mut write = |record: &CaptureRecord, out: &mut BufWriter<Output>| {
        scratch.clear();
        let ts = epoch_offset_ns + record.at_ns;
        scratch.extend_from_slice(&((ts / 1_000_000_000) as u32).to_le_bytes());
        scratch.extend_from_slice(&(((ts % 1_000_000_000) / 1000) as u32).to_le_bytes());
        scratch.extend_from_slice(&(record.data.len() as u32).to_le_bytes());
        scratch.extend_from_slice(&record.orig_len.to_le_bytes());
        out.write_all(&scratch)?;
        out.write_all(&record.data)
    };
    loop {
        let stopping = shared.stop.load(Ordering::Acquire);
        let mut got = false;
        for ring in rings {
            while written < limit {
                let Ok(record) = ring.filled().try_recv() else {
                    break;
                };
                got = true;
                let r = write(&record, &mut out);
                ring.recycle(record);
                r.map_err(io)?;
                written += 1;
                shared.written.store(written, Ordering::Relaxed);
            }
        }
        if written >= limit || stopping {
            break;
        }
        if !got {
            out.flush().map_err(io)?;
            let mut sel = Select::new();
            for ring in rings {
                sel.recv(ring.filled());
            }
            let _ = sel.ready_timeout(WRITER_TICK);
        }
    }
    out.flush().map_err(io)
}
