//! The emulator's data thread: the shim side of every ring.

use std::collections::HashMap;
use std::os::fd::AsFd;
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use dp_core::packet::MAX_BURST;

use super::{Shared, ShimRing, link_up};
use crate::bad_input::BadInput;
use crate::codec::Builder;
use crate::contract::*;
use crate::ring::{Consumer, InjectDesc, Producer, PuntDesc, index_from_bytes};
use crate::sys::{PacketSocket, poll_readable};

/// Empty polls before the thread goes to sleep.
const IDLE_SPINS: u32 = 200;
/// Longest sleep, so link changes and stop are noticed.
const SLEEP_MS: i32 = 10;
const LINK_CHECK: Duration = Duration::from_millis(100);

/// The shim's side of one ring set.
struct DataRing {
    ring: Arc<ShimRing>,
    fill: Consumer,
    punt: Producer,
    inject: Consumer,
    completion: Producer,
    /// Frames taken from the fill ring but not used (nothing arrived).
    spare: Vec<u32>,
    /// Reused per call: frames of one inject burst grouped by port.
    out: Vec<(u32, usize, usize)>,
}

impl DataRing {
    fn new(ring: Arc<ShimRing>) -> DataRing {
        let r = &ring.region;
        let l = &ring.layout;
        DataRing {
            fill: Consumer::new(l.fill, r),
            punt: Producer::new(l.punt, r),
            inject: Consumer::new(l.inject, r),
            completion: Producer::new(l.completion, r),
            spare: Vec::with_capacity(MAX_BURST),
            out: Vec::with_capacity(4 * MAX_BURST),
            ring,
        }
    }
}

struct DataPort {
    port_no: u32,
    ifname: Option<String>,
    io: Option<Arc<PacketSocket>>,
    upcall_pid: u32,
    link_up: bool,
}

#[derive(Default)]
struct Snapshot {
    generation: u64,
    ports: Vec<DataPort>,
    /// By ring id, kept across rebuilds (our private indices live here).
    rings: HashMap<u64, DataRing>,
}

impl Snapshot {
    fn refresh(&mut self, shared: &Shared) {
        let generation = shared.generation.load(Ordering::Acquire);
        if generation == self.generation {
            return;
        }
        self.generation = generation;
        let t = shared.tables();
        self.ports = t
            .all_ports()
            .map(|p| DataPort {
                port_no: p.info.port_no,
                ifname: p.ifname.clone(),
                io: p.io.clone(),
                upcall_pid: p.upcall_pid,
                link_up: p.info.link_up,
            })
            .collect();
        self.rings.retain(|id, _| t.rings.contains_key(id));
        for (id, ring) in &t.rings {
            self.rings
                .entry(*id)
                .or_insert_with(|| DataRing::new(Arc::clone(ring)));
        }
    }
}

pub(super) fn run(shared: Arc<Shared>, kick: UnixDatagram) {
    let mut snap = Snapshot::default();
    let mut idle = 0u32;
    let mut last_link_check = Instant::now();
    let mut scratch = vec![0u8; 65_536];
    while !shared.stop.load(Ordering::Acquire) {
        snap.refresh(&shared);
        let mut work = 0;
        for port in &snap.ports {
            let Some(io) = &port.io else { continue };
            let ring = snap
                .rings
                .values_mut()
                .find(|r| r.ring.port_no == port.port_no && r.ring.queue == 0);
            work += match ring {
                Some(ring) => punt(&shared, ring, io, port.port_no),
                None => queue_on_socket(&shared, io, port, &mut scratch),
            };
        }
        for ring in snap.rings.values_mut() {
            work += inject(&shared, ring, &snap.ports);
        }
        if last_link_check.elapsed() >= LINK_CHECK {
            last_link_check = Instant::now();
            check_links(&shared, &mut snap.ports);
        }
        if work > 0 {
            idle = 0;
            continue;
        }
        idle += 1;
        if idle < IDLE_SPINS {
            std::hint::spin_loop();
            continue;
        }
        sleep(&shared, &snap, &kick);
        idle = 0;
    }
}

/// Sets NEED_WAKEUP, re-checks (a producer may have published just
/// before seeing the flag), sleeps in poll, clears the flag.
fn sleep(shared: &Shared, snap: &Snapshot, kick: &UnixDatagram) {
    let mut pending = false;
    for r in snap.rings.values() {
        r.inject.set_flag(&r.ring.region, RING_NEED_WAKEUP, true);
        pending |= r.inject.available(&r.ring.region).is_ok_and(|n| n > 0);
    }
    if !pending {
        let mut fds = vec![kick.as_fd()];
        fds.extend(
            snap.ports
                .iter()
                .filter_map(|p| p.io.as_ref().map(|io| io.as_fd())),
        );
        let _ = poll_readable(&fds, SLEEP_MS);
        let mut buf = [0u8; 64];
        while kick.recv(&mut buf).is_ok() {
            shared.stats.wakeups.fetch_add(1, Ordering::Relaxed);
        }
    }
    for r in snap.rings.values() {
        r.inject.set_flag(&r.ring.region, RING_NEED_WAKEUP, false);
    }
}

/// Moves up to a burst from the interface into fill-ring frames (one
/// `recvmmsg`) and publishes them on the punt ring.
fn punt(shared: &Shared, r: &mut DataRing, io: &PacketSocket, port_no: u32) -> usize {
    let region = &r.ring.region;
    let layout = r.ring.layout;
    let (fill_ready, punt_free) = match (r.fill.available(region), r.punt.free(region)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            shared.stats.bad.count(e);
            return 0;
        }
    };
    let budget = (punt_free as usize).min(MAX_BURST);
    let mut taken = 0u32;
    while r.spare.len() < budget && taken < fill_ready {
        let f = index_from_bytes(r.fill.get(region, taken));
        taken += 1;
        if f < layout.n_frames {
            r.spare.push(f);
        } else {
            shared.stats.bad.count(BadInput::FrameOutOfRange);
        }
    }
    if taken > 0 {
        r.fill.release(region, taken);
    }
    let n_try = r.spare.len().min(budget);
    if n_try == 0 {
        return 0;
    }
    let mut offsets = [0usize; MAX_BURST];
    for (o, f) in offsets.iter_mut().zip(&r.spare[..n_try]) {
        *o = layout.frame_offset(*f);
    }
    let cap = layout.frame_size as usize;
    let mut lens = [0usize; MAX_BURST];
    let got = io
        .recv_batch_into(region, &offsets[..n_try], cap, &mut lens)
        .unwrap_or(0);
    let mut n = 0u32;
    let mut dropped = 0;
    for (i, len) in lens.iter().enumerate().take(got) {
        if *len > cap {
            // Longer than a frame (GRO, jumbo): dropped, counted; the
            // frame goes back to the spares below.
            dropped += 1;
            continue;
        }
        let desc = PuntDesc {
            frame: r.spare[i],
            offset: 0,
            len: *len as u16,
            src_port: port_no,
            meta: 0,
        };
        r.punt.put(region, n, &desc.to_bytes());
        n += 1;
    }
    // Keep the unused and the truncated frames as spares.
    let mut i = 0;
    r.spare.retain(|_| {
        let used = i < got && lens[i] <= cap;
        i += 1;
        !used
    });
    if dropped > 0 {
        shared.stats.dropped.fetch_add(dropped, Ordering::Relaxed);
    }
    if n > 0 {
        r.punt.submit(region, n);
        shared
            .stats
            .punted
            .fetch_add(u64::from(n), Ordering::Relaxed);
    }
    got
}

/// No ring on this port: frames go to the socket named by its upcall PID
/// (copied into a `PACKET_CMD_MISS` message), or are dropped.
fn queue_on_socket(
    shared: &Shared,
    io: &PacketSocket,
    port: &DataPort,
    scratch: &mut [u8],
) -> usize {
    let mut n = 0;
    while n < MAX_BURST {
        let Ok(Some(len)) = io.recv(scratch) else {
            break;
        };
        n += 1;
        let socket = (port.upcall_pid != 0)
            .then(|| shared.tables().sockets.get(&port.upcall_pid).cloned())
            .flatten();
        let Some(socket) = socket.filter(|_| len <= scratch.len()) else {
            shared.stats.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let msg = Builder::new(FAMILY_PACKET, PACKET_CMD_MISS, 0, 0, port.upcall_pid)
            .u32(ATTR_PACKET_PORT_NO, port.port_no)
            .bytes(ATTR_PACKET_DATA, &scratch[..len])
            .finish();
        let mut q = socket
            .packets
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if q.len() < SOCKET_QUEUE_DEPTH {
            q.push_back(msg);
            shared.stats.queued.fetch_add(1, Ordering::Relaxed);
        } else {
            shared.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
    n
}

/// Sends what userspace published on the inject ring out of the
/// destination interfaces (one `sendmmsg` per port and burst) and
/// completes the frames.
fn inject(shared: &Shared, r: &mut DataRing, ports: &[DataPort]) -> usize {
    let region = &r.ring.region;
    let layout = r.ring.layout;
    let (ready, room) = match (r.inject.available(region), r.completion.free(region)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            shared.stats.bad.count(e);
            return 0;
        }
    };
    let n = ready.min(room).min(2 * MAX_BURST as u32);
    let mut done = 0;
    r.out.clear();
    for i in 0..n {
        let desc = InjectDesc::from_bytes(r.inject.get(region, i));
        if desc.frame >= layout.n_frames {
            // Not a frame we can complete: dropped, counted.
            shared.stats.bad.count(BadInput::FrameOutOfRange);
            continue;
        }
        let checked = layout
            .check_frame(desc.frame, desc.offset, desc.len)
            .and_then(|off| desc.port_list().map(|list| (off, list)));
        match checked {
            Ok((off, list)) => {
                for dst in list {
                    r.out.push((*dst, off, usize::from(desc.len)));
                }
            }
            Err(b) => shared.stats.bad.count(b),
        }
        r.completion.put(region, done, &desc.frame.to_le_bytes());
        done += 1;
    }
    // Stable by port: each port's frames leave in ring order.
    r.out.sort_by_key(|(dst, _, _)| *dst);
    let mut batch = [(0usize, 0usize); MAX_BURST];
    for chunk in r.out.chunk_by(|a, b| a.0 == b.0) {
        let io = ports
            .iter()
            .find(|p| p.port_no == chunk[0].0)
            .and_then(|p| p.io.as_ref());
        for part in chunk.chunks(MAX_BURST) {
            for (slot, (_, off, len)) in batch.iter_mut().zip(part) {
                *slot = (*off, *len);
            }
            let sent = io
                .and_then(|io| io.send_batch_from(region, &batch[..part.len()]).ok())
                .unwrap_or(0);
            shared
                .stats
                .injected
                .fetch_add(sent as u64, Ordering::Relaxed);
            shared
                .stats
                .dropped
                .fetch_add((part.len() - sent) as u64, Ordering::Relaxed);
        }
    }
    if n > 0 {
        r.inject.release(region, n);
    }
    if done > 0 {
        r.completion.submit(region, done);
    }
    n as usize
}

/// Follows each backing interface's operstate; a change updates the port
/// and is sent to subscribers.
fn check_links(shared: &Shared, ports: &mut [DataPort]) {
    for p in ports.iter_mut() {
        let Some(ifname) = &p.ifname else { continue };
        let up = link_up(ifname);
        if up == p.link_up {
            continue;
        }
        p.link_up = up;
        let mut t = shared.tables();
        if let Some(port) = t.port_mut(p.port_no) {
            port.info.link_up = up;
            let info = port.info.clone();
            t.notify(VPORT_CMD_LINK, &info);
        }
    }
}
