//! The shim, played in userspace on Linux, so the whole Windows path runs
//! in CI: the same contract as the driver, over a Unix socket (one
//! connection = one device handle) and `/dev/shm` ring regions.
//!
//! Emulated Hyper-V ports are backed by real Linux interfaces (a veth end,
//! a tap) through AF_PACKET sockets: what arrives on the interface is
//! punted to the port's ring (or, with no ring, queued on the socket named
//! by the port's upcall PID), and what userspace injects is sent out of
//! the destination interfaces. Link state follows the interface's
//! `operstate`, and changes are sent as events.
//!
//! # Threads
//! - an accept thread, and one thread per connection running the control
//!   protocol (the tables are behind one mutex: control is not fast path);
//! - one data thread that owns the shim side of every ring (fill and
//!   inject consumer, punt and completion producer). It busy-polls while
//!   there is work and, when idle, sets `RING_NEED_WAKEUP` on the inject
//!   rings and sleeps in `poll` on the interfaces and the doorbell socket.
//!
//! The control threads publish changes (ports, rings) by bumping a
//! generation counter; the data thread rebuilds its snapshot when it
//! moves.

mod control;
mod dataplane;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io;
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;

use crate::bad_input::BadInputCounters;
use crate::codec::{Builder, VportInfo};
use crate::contract::*;
use crate::ring::{Layout, Region};
use crate::sys::PacketSocket;

/// An emulated Hyper-V port to create at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmuPortConfig {
    /// The friendly name (`OVS-<oxvs port>` to be found by a `windows`
    /// port of that name).
    pub friendly_name: String,
    /// The Linux interface backing it.
    pub ifname: String,
    pub kind: PortKind,
}

/// How to run the emulator.
#[derive(Clone, Debug)]
pub struct EmulatorConfig {
    /// The control socket to listen on (the "device").
    pub socket: PathBuf,
    /// Where ring regions are created.
    pub shm_dir: PathBuf,
    pub ports: Vec<EmuPortConfig>,
}

impl EmulatorConfig {
    pub fn new(socket: impl Into<PathBuf>) -> EmulatorConfig {
        EmulatorConfig {
            socket: socket.into(),
            shm_dir: PathBuf::from("/dev/shm"),
            ports: Vec::new(),
        }
    }
}

/// Counters of the emulated shim.
#[derive(Debug, Default)]
pub struct EmuStats {
    /// Frames punted to rings.
    pub punted: AtomicU64,
    /// Frames queued on a socket packet queue (no ring attached).
    pub queued: AtomicU64,
    /// Frames injected out of an interface (one per destination).
    pub injected: AtomicU64,
    /// Frames dropped: truncated, socket queue full, no destination.
    pub dropped: AtomicU64,
    /// Doorbells rung by userspace while the data thread slept.
    pub wakeups: AtomicU64,
    /// Malformed requests and descriptors from userspace.
    pub bad: BadInputCounters,
}

#[derive(Debug)]
pub(crate) struct EmuPort {
    pub info: VportInfo,
    pub ifname: Option<String>,
    pub io: Option<Arc<PacketSocket>>,
    pub upcall_pid: u32,
}

/// One socket's queues.
#[derive(Debug, Default)]
pub(crate) struct SocketState {
    pub events: Mutex<VecDeque<Vec<u8>>>,
    pub packets: Mutex<VecDeque<Vec<u8>>>,
    pub wake: Condvar,
    pub groups: Mutex<Vec<u32>>,
    pub hello_ok: AtomicBool,
}

/// A ring set as the control side knows it.
#[derive(Debug)]
pub(crate) struct ShimRing {
    pub port_no: u32,
    pub queue: u32,
    pub owner_pid: u32,
    pub layout: Layout,
    pub region: Region,
    pub path: PathBuf,
}

impl Drop for ShimRing {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[derive(Debug, Default)]
pub(crate) struct Tables {
    /// Switch-created ports (from 1).
    pub switch_ports: BTreeMap<u32, EmuPort>,
    /// Userspace-created ports (from `USER_PORT_BASE`).
    pub user_ports: BTreeMap<u32, EmuPort>,
    pub sockets: HashMap<u32, Arc<SocketState>>,
    pub rings: HashMap<u64, Arc<ShimRing>>,
}

impl Tables {
    pub fn port(&self, port_no: u32) -> Option<&EmuPort> {
        self.switch_ports
            .get(&port_no)
            .or_else(|| self.user_ports.get(&port_no))
    }

    pub fn port_mut(&mut self, port_no: u32) -> Option<&mut EmuPort> {
        match self.switch_ports.get_mut(&port_no) {
            Some(p) => Some(p),
            None => self.user_ports.get_mut(&port_no),
        }
    }

    pub fn port_by_name(&self, name: &str) -> Option<&EmuPort> {
        self.all_ports().find(|p| p.info.name == name)
    }

    /// Both tables in port-number order (switch ports come first).
    pub fn all_ports(&self) -> impl Iterator<Item = &EmuPort> {
        self.switch_ports.values().chain(self.user_ports.values())
    }

    /// Queues a VPORT event (`cmd`) on every subscribed socket.
    pub fn notify(&self, cmd: u8, info: &VportInfo) {
        for (pid, sock) in &self.sockets {
            let subscribed = sock
                .groups
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(&MCGRP_VPORT);
            if !subscribed {
                continue;
            }
            let msg = info
                .write(Builder::new(FAMILY_VPORT, cmd, 0, 0, *pid))
                .finish();
            let mut q = sock.events.lock().unwrap_or_else(PoisonError::into_inner);
            if q.len() < SOCKET_QUEUE_DEPTH {
                q.push_back(msg);
            }
            sock.wake.notify_all();
        }
    }
}

/// State shared by the emulator's threads.
#[derive(Debug)]
pub(crate) struct Shared {
    pub tables: Mutex<Tables>,
    /// Bumped on every port or ring change.
    pub generation: AtomicU64,
    pub stop: AtomicBool,
    pub next_pid: AtomicU32,
    pub next_ring: AtomicU64,
    pub stats: EmuStats,
    pub shm_dir: PathBuf,
    pub tag: String,
}

impl Shared {
    pub fn tables(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn bump(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

/// A running emulated shim; stops and removes its files on drop.
#[derive(Debug)]
pub struct Emulator {
    shared: Arc<Shared>,
    socket: PathBuf,
    threads: Vec<JoinHandle<()>>,
}

/// What `/sys/class/net/<if>/<attr>` says, trimmed.
pub(crate) fn sysfs(ifname: &str, attr: &str) -> Option<String> {
    std::fs::read_to_string(format!("/sys/class/net/{ifname}/{attr}"))
        .ok()
        .map(|s| s.trim().to_string())
}

pub(crate) fn link_up(ifname: &str) -> bool {
    // veth and tap report "up" with carrier; "unknown" for some virtual
    // devices that have no carrier notion but are running.
    matches!(
        sysfs(ifname, "operstate").as_deref(),
        Some("up" | "unknown")
    )
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    Some(mac)
}

impl Emulator {
    /// Starts listening on `config.socket` with `config.ports`.
    pub fn start(config: EmulatorConfig) -> io::Result<Emulator> {
        let _ = std::fs::remove_file(&config.socket);
        let kick_path = crate::sys::kick_path(&config.socket);
        let _ = std::fs::remove_file(&kick_path);
        let listener = UnixListener::bind(&config.socket)?;
        listener.set_nonblocking(true)?;
        let kick = UnixDatagram::bind(&kick_path)?;
        kick.set_nonblocking(true)?;
        // Unique per process and emulator, so region files never collide.
        static NEXT_EMULATOR: AtomicU32 = AtomicU32::new(0);
        let tag = format!(
            "oxvs-winshim-{}-{}",
            std::process::id(),
            NEXT_EMULATOR.fetch_add(1, Ordering::Relaxed)
        );
        let shared = Arc::new(Shared {
            tables: Mutex::new(Tables::default()),
            generation: AtomicU64::new(1),
            stop: AtomicBool::new(false),
            next_pid: AtomicU32::new(1),
            next_ring: AtomicU64::new(1),
            stats: EmuStats::default(),
            shm_dir: config.shm_dir.clone(),
            tag,
        });
        let mut emulator = Emulator {
            shared: Arc::clone(&shared),
            socket: config.socket.clone(),
            threads: Vec::new(),
        };
        for port in &config.ports {
            emulator.add_port(port)?;
        }
        let s = Arc::clone(&shared);
        emulator.threads.push(
            std::thread::Builder::new()
                .name("winshim-accept".into())
                .spawn(move || control::accept_loop(s, listener))?,
        );
        let s = Arc::clone(&shared);
        emulator.threads.push(
            std::thread::Builder::new()
                .name("winshim-data".into())
                .spawn(move || dataplane::run(s, kick))?,
        );
        Ok(emulator)
    }

    /// The control socket path (what a `windows` port's `device` names).
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Adds a switch-created port backed by `port.ifname`; returns its
    /// number. Subscribers get a port-added event.
    pub fn add_port(&self, port: &EmuPortConfig) -> io::Result<u32> {
        let io = PacketSocket::open(&port.ifname)
            .map_err(|e| io::Error::new(e.kind(), format!("interface {}: {e}", port.ifname)))?;
        let mac = sysfs(&port.ifname, "address")
            .and_then(|m| parse_mac(&m))
            .unwrap_or([0; 6]);
        let mtu = sysfs(&port.ifname, "mtu")
            .and_then(|m| m.parse().ok())
            .unwrap_or(1500);
        let mut t = self.shared.tables();
        if t.port_by_name(&port.friendly_name).is_some() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("port {} exists", port.friendly_name),
            ));
        }
        let port_no = t.switch_ports.keys().next_back().map_or(1, |n| n + 1);
        let info = VportInfo {
            port_no,
            kind: port.kind,
            origin: PortOrigin::Switch,
            name: port.friendly_name.clone(),
            mac,
            mtu,
            link_up: link_up(&port.ifname),
            n_queues: 1,
        };
        t.notify(VPORT_CMD_NEW, &info);
        t.switch_ports.insert(
            port_no,
            EmuPort {
                info,
                ifname: Some(port.ifname.clone()),
                io: Some(Arc::new(io)),
                upcall_pid: 0,
            },
        );
        drop(t);
        self.shared.bump();
        Ok(port_no)
    }

    /// Removes a switch-created port (a VM NIC unplugged); its rings are
    /// detached. Subscribers get a port-deleted event.
    pub fn remove_port(&self, friendly_name: &str) -> bool {
        let mut t = self.shared.tables();
        let Some(port_no) = t
            .switch_ports
            .iter()
            .find(|(_, p)| p.info.name == friendly_name)
            .map(|(n, _)| *n)
        else {
            return false;
        };
        let port = t.switch_ports.remove(&port_no).expect("found above");
        t.rings.retain(|_, r| r.port_no != port_no);
        t.notify(VPORT_CMD_DEL, &port.info);
        drop(t);
        self.shared.bump();
        true
    }

    /// The shim's counters.
    pub fn stats(&self) -> &EmuStats {
        &self.shared.stats
    }

    /// Ring sets attached now.
    pub fn rings_attached(&self) -> usize {
        self.shared.tables().rings.len()
    }

    /// Sockets connected now.
    pub fn sockets(&self) -> usize {
        self.shared.tables().sockets.len()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        // Dropping the rings removes their files.
        self.shared.tables().rings.clear();
        let _ = std::fs::remove_file(&self.socket);
        let _ = std::fs::remove_file(crate::sys::kick_path(&self.socket));
    }
}
