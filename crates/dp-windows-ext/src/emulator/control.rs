//! The emulator's control side: one thread per connection (socket),
//! answering IOCTLs as the driver would.

use std::io::{self, Read};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use super::{EmuPort, Shared, ShimRing, SocketState};
use crate::bad_input::BadInput;
use crate::codec::{
    Builder, Decoded, Message, RegionLocation, RingGrant, VportInfo, check_command, decode,
    done_msg, error_msg,
};
use crate::contract::*;
use crate::ring::Layout;
use crate::sys::{map_shm, write_frame};

pub(super) fn accept_loop(shared: Arc<Shared>, listener: UnixListener) {
    let mut conns = Vec::new();
    while !shared.stop.load(Ordering::Acquire) {
        match listener.accept() {
            Ok((stream, _)) => {
                let s = Arc::clone(&shared);
                if let Ok(t) = std::thread::Builder::new()
                    .name("winshim-ctl".into())
                    .spawn(move || serve(s, stream))
                {
                    conns.push(t);
                }
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
        conns.retain(|t| !t.is_finished());
    }
    for t in conns {
        let _ = t.join();
    }
}

/// Reads exactly `buf.len()` bytes, waiting through read timeouts until
/// the emulator stops. `Ok(false)` on a clean end of stream or stop.
fn read_full(shared: &Shared, stream: &mut UnixStream, buf: &mut [u8]) -> io::Result<bool> {
    let mut at = 0;
    while at < buf.len() {
        if shared.stop.load(Ordering::Acquire) {
            return Ok(false);
        }
        match stream.read(&mut buf[at..]) {
            Ok(0) => return Ok(false),
            Ok(n) => at += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

fn serve(shared: Arc<Shared>, mut stream: UnixStream) {
    let pid = shared.next_pid.fetch_add(1, Ordering::Relaxed);
    let socket = Arc::new(SocketState::default());
    shared.tables().sockets.insert(pid, Arc::clone(&socket));
    let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let mut conn = Conn {
        shared: &shared,
        socket: &socket,
        pid,
    };
    loop {
        let mut head = [0u8; 8];
        match read_full(&shared, &mut stream, &mut head) {
            Ok(true) => {}
            _ => break,
        }
        let code = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
        if len > MAX_MSG_LEN {
            shared.stats.bad.count(BadInput::BadMessageLength);
            break;
        }
        let mut input = vec![0u8; len];
        match read_full(&shared, &mut stream, &mut input) {
            Ok(true) => {}
            _ => break,
        }
        let (status, reply) = conn.ioctl(code, &input);
        if write_frame(&mut stream, status, &reply).is_err() {
            break;
        }
    }
    // The socket is gone: so are its rings and queues.
    let mut guard = shared.tables();
    let t = &mut *guard;
    t.sockets.remove(&pid);
    t.rings.retain(|_, r| r.owner_pid != pid);
    for p in t.switch_ports.values_mut().chain(t.user_ports.values_mut()) {
        if p.upcall_pid == pid {
            p.upcall_pid = 0;
        }
    }
    drop(guard);
    shared.bump();
}

struct Conn<'a> {
    shared: &'a Shared,
    socket: &'a SocketState,
    pid: u32,
}

type Reply = Result<Vec<u8>, i32>;

impl Conn<'_> {
    fn bad(&self, reason: BadInput) {
        self.shared.stats.bad.count(reason);
    }

    /// `(status, reply)`: status is 0 or an errno for the IOCTL itself.
    fn ioctl(&mut self, code: u32, input: &[u8]) -> (u32, Vec<u8>) {
        match code {
            IOCTL_TRANSACT => (0, self.transact(input)),
            IOCTL_READ_EVENT => {
                let wait_ms = input
                    .try_into()
                    .map(u32::from_le_bytes)
                    .unwrap_or(0)
                    .min(10_000);
                (0, self.pop_event(wait_ms))
            }
            IOCTL_READ_PACKET => {
                let mut q = self
                    .socket
                    .packets
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                (0, q.pop_front().unwrap_or_default())
            }
            // The datagram doorbell is the emulator's kick; the IOCTL is
            // accepted for symmetry with the driver.
            IOCTL_KICK => (0, Vec::new()),
            _ => (EINVAL as u32, Vec::new()),
        }
    }

    fn pop_event(&self, wait_ms: u32) -> Vec<u8> {
        let deadline = Instant::now() + Duration::from_millis(u64::from(wait_ms));
        let mut q = self
            .socket
            .events
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(e) = q.pop_front() {
                return e;
            }
            let now = Instant::now();
            if now >= deadline || self.shared.stop.load(Ordering::Acquire) {
                return Vec::new();
            }
            let wait = (deadline - now).min(Duration::from_millis(100));
            q = self
                .socket
                .wake
                .wait_timeout(q, wait)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn transact(&mut self, input: &[u8]) -> Vec<u8> {
        let msg = match decode(input) {
            Ok((Decoded::Genl(m), _)) => m,
            Ok(_) => {
                self.bad(BadInput::UnknownFamily);
                return error_msg(0, self.pid, EINVAL);
            }
            Err(b) => {
                self.bad(b);
                return error_msg(0, self.pid, EINVAL);
            }
        };
        let seq = msg.header.seq;
        if let Err(b) = check_command(msg.family(), msg.cmd) {
            self.bad(b);
            return error_msg(seq, self.pid, EOPNOTSUPP);
        }
        if msg.version != GENL_VERSION {
            self.bad(BadInput::BadVersion);
            return error_msg(seq, self.pid, EPROTO);
        }
        let hello = (msg.family(), msg.cmd) == (FAMILY_CTRL, CTRL_CMD_HELLO);
        if !hello && !self.socket.hello_ok.load(Ordering::Acquire) {
            return error_msg(seq, self.pid, EPROTO);
        }
        let result = match (msg.family(), msg.cmd) {
            (FAMILY_CTRL, CTRL_CMD_HELLO) => self.hello(&msg),
            (FAMILY_CTRL, CTRL_CMD_GET_PID) => {
                Ok(self.reply(&msg).u32(ATTR_CTRL_PID, self.pid).finish())
            }
            (FAMILY_CTRL, CTRL_CMD_MC_SUBSCRIBE) => self.subscribe(&msg),
            (FAMILY_DATAPATH, DP_CMD_GET) => {
                let t = self.shared.tables();
                let n = (t.switch_ports.len() + t.user_ports.len()) as u32;
                Ok(self
                    .reply(&msg)
                    .str(ATTR_DP_NAME, "hyperv-switch")
                    .u32(ATTR_DP_N_PORTS, n)
                    .finish())
            }
            (FAMILY_VPORT, VPORT_CMD_GET) if msg.header.flags & NLM_F_DUMP == NLM_F_DUMP => {
                self.dump(&msg)
            }
            (FAMILY_VPORT, VPORT_CMD_GET) => self.vport_get(&msg),
            (FAMILY_VPORT, VPORT_CMD_NEW) => self.vport_new(&msg),
            (FAMILY_VPORT, VPORT_CMD_DEL) => self.vport_del(&msg),
            (FAMILY_VPORT, VPORT_CMD_SET) => self.vport_set(&msg),
            (FAMILY_PACKET, PACKET_CMD_RING_ATTACH) => self.attach(&msg),
            (FAMILY_PACKET, PACKET_CMD_RING_DETACH) => self.detach(&msg),
            (FAMILY_PACKET, PACKET_CMD_EXECUTE) => self.execute(&msg),
            _ => Err(EOPNOTSUPP),
        };
        result.unwrap_or_else(|errno| error_msg(seq, self.pid, errno))
    }

    fn reply(&self, msg: &Message<'_>) -> Builder {
        Builder::new(msg.family(), msg.cmd, 0, msg.header.seq, self.pid)
    }

    fn attr_err(&self, b: BadInput) -> i32 {
        self.bad(b);
        EINVAL
    }

    fn hello(&self, msg: &Message<'_>) -> Reply {
        let theirs = msg.u32(ATTR_CTRL_VERSION).map_err(|b| self.attr_err(b))?;
        let compatible = theirs >> 16 == VERSION >> 16;
        if !compatible {
            self.bad(BadInput::BadVersion);
        }
        self.socket.hello_ok.store(compatible, Ordering::Release);
        // Our version goes back either way, so the caller can say what
        // it met; an incompatible socket is refused from here on.
        Ok(self
            .reply(msg)
            .u32(ATTR_CTRL_VERSION, VERSION)
            .u32(ATTR_CTRL_RING_LAYOUT, RING_LAYOUT_VERSION)
            .finish())
    }

    fn subscribe(&self, msg: &Message<'_>) -> Reply {
        let group = msg
            .u32(ATTR_CTRL_MCAST_GROUP)
            .map_err(|b| self.attr_err(b))?;
        let join = msg.u8(ATTR_CTRL_MCAST_JOIN).map_err(|b| self.attr_err(b))? != 0;
        if group != MCGRP_VPORT {
            return Err(ENOENT);
        }
        let mut groups = self
            .socket
            .groups
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        groups.retain(|g| *g != group);
        if join {
            groups.push(group);
        }
        Ok(error_msg(msg.header.seq, self.pid, 0))
    }

    fn vport_reply(&self, msg: &Message<'_>, info: &VportInfo) -> Vec<u8> {
        info.write(self.reply(msg)).finish()
    }

    fn vport_get(&self, msg: &Message<'_>) -> Reply {
        let t = self.shared.tables();
        let port = if msg.attr(ATTR_VPORT_NAME).is_some() {
            let name = msg.str(ATTR_VPORT_NAME).map_err(|b| self.attr_err(b))?;
            t.port_by_name(name)
        } else {
            let no = msg.u32(ATTR_VPORT_PORT_NO).map_err(|b| self.attr_err(b))?;
            t.port(no)
        };
        port.map(|p| self.vport_reply(msg, &p.info)).ok_or(ENOENT)
    }

    /// A caller-driven dump step: the entries after the cursor, at most
    /// `DUMP_BATCH`, and `NLMSG_DONE` when nothing is left.
    fn dump(&self, msg: &Message<'_>) -> Reply {
        let cursor = msg
            .opt_u32(ATTR_VPORT_DUMP_CURSOR)
            .map_err(|b| self.attr_err(b))?
            .unwrap_or(0);
        let t = self.shared.tables();
        let mut rest = t.all_ports().filter(|p| p.info.port_no > cursor);
        let mut out = Vec::new();
        for p in rest.by_ref().take(DUMP_BATCH) {
            let b = Builder::new(
                FAMILY_VPORT,
                VPORT_CMD_GET,
                NLM_F_MULTI,
                msg.header.seq,
                self.pid,
            );
            out.extend(p.info.write(b).finish());
        }
        if rest.next().is_none() {
            out.extend(done_msg(msg.header.seq, self.pid));
        }
        Ok(out)
    }

    fn vport_new(&self, msg: &Message<'_>) -> Reply {
        let name = msg.str(ATTR_VPORT_NAME).map_err(|b| self.attr_err(b))?;
        let kind = PortKind::from_u32(msg.u32(ATTR_VPORT_KIND).map_err(|b| self.attr_err(b))?);
        let mut t = self.shared.tables();
        if t.port_by_name(name).is_some() {
            return Err(EEXIST);
        }
        let port_no = t
            .user_ports
            .keys()
            .next_back()
            .map_or(USER_PORT_BASE, |n| n + 1);
        let info = VportInfo {
            port_no,
            kind,
            origin: PortOrigin::User,
            name: name.to_string(),
            mac: [0x02, 0, 0, 0, (port_no >> 8) as u8, port_no as u8],
            mtu: 1500,
            link_up: true,
            n_queues: 1,
        };
        t.notify(VPORT_CMD_NEW, &info);
        let reply = self.vport_reply(msg, &info);
        t.user_ports.insert(
            port_no,
            EmuPort {
                info,
                ifname: None,
                io: None,
                upcall_pid: 0,
            },
        );
        drop(t);
        self.shared.bump();
        Ok(reply)
    }

    fn vport_del(&self, msg: &Message<'_>) -> Reply {
        let no = msg.u32(ATTR_VPORT_PORT_NO).map_err(|b| self.attr_err(b))?;
        let mut t = self.shared.tables();
        if t.switch_ports.contains_key(&no) {
            // The Hyper-V switch owns those.
            return Err(EPERM);
        }
        let port = t.user_ports.remove(&no).ok_or(ENOENT)?;
        t.rings.retain(|_, r| r.port_no != no);
        t.notify(VPORT_CMD_DEL, &port.info);
        let reply = self.vport_reply(msg, &port.info);
        drop(t);
        self.shared.bump();
        Ok(reply)
    }

    fn vport_set(&self, msg: &Message<'_>) -> Reply {
        let no = msg.u32(ATTR_VPORT_PORT_NO).map_err(|b| self.attr_err(b))?;
        let pid = msg
            .opt_u32(ATTR_VPORT_UPCALL_PID)
            .map_err(|b| self.attr_err(b))?;
        let mut t = self.shared.tables();
        let port = t.port_mut(no).ok_or(ENOENT)?;
        if let Some(pid) = pid {
            port.upcall_pid = pid;
        }
        let reply = self.vport_reply(msg, &port.info);
        drop(t);
        self.shared.bump();
        Ok(reply)
    }

    fn attach(&self, msg: &Message<'_>) -> Reply {
        let get = |ty| msg.u32(ty).map_err(|b| self.attr_err(b));
        let (port_no, queue) = (get(ATTR_RING_PORT_NO)?, get(ATTR_RING_QUEUE)?);
        let layout = Layout::new(
            get(ATTR_RING_N_DESC)?,
            get(ATTR_RING_N_FRAMES)?,
            get(ATTR_RING_FRAME_SIZE)?,
        )
        .map_err(|b| self.attr_err(b))?;
        let mut t = self.shared.tables();
        let port = t.port(port_no).ok_or(ENOENT)?;
        if queue >= port.info.n_queues {
            return Err(EINVAL);
        }
        if t.rings
            .values()
            .any(|r| (r.port_no, r.queue) == (port_no, queue))
        {
            return Err(EEXIST);
        }
        let id = self.shared.next_ring.fetch_add(1, Ordering::Relaxed);
        let path = self
            .shared
            .shm_dir
            .join(format!("{}-{id}", self.shared.tag));
        let region = map_shm(&path, layout.size, true).map_err(|_| ENOSPC)?;
        layout.init_header(&region);
        let grant = RingGrant {
            ring_id: id,
            port_no,
            queue,
            n_desc: layout.n_desc,
            n_frames: layout.n_frames,
            frame_size: layout.frame_size,
            region_size: layout.size as u64,
            location: RegionLocation::ShmPath(path.to_string_lossy().into_owned()),
        };
        t.rings.insert(
            id,
            Arc::new(ShimRing {
                port_no,
                queue,
                owner_pid: self.pid,
                layout,
                region,
                path,
            }),
        );
        drop(t);
        self.shared.bump();
        Ok(grant.write(self.reply(msg)).finish())
    }

    fn detach(&self, msg: &Message<'_>) -> Reply {
        let id = msg.u64(ATTR_RING_ID).map_err(|b| self.attr_err(b))?;
        let mut t = self.shared.tables();
        match t.rings.get(&id) {
            Some(r) if r.owner_pid == self.pid => {}
            Some(_) => return Err(EPERM),
            None => return Err(ENOENT),
        }
        t.rings.remove(&id);
        drop(t);
        self.shared.bump();
        Ok(error_msg(msg.header.seq, self.pid, 0))
    }

    fn execute(&self, msg: &Message<'_>) -> Reply {
        let ports = msg
            .u32_list(ATTR_PACKET_OUT_PORTS)
            .map_err(|b| self.attr_err(b))?;
        let data = msg.attr(ATTR_PACKET_DATA).ok_or(EINVAL)?;
        let t = self.shared.tables();
        for no in ports {
            match t.port(no).and_then(|p| p.io.as_ref()) {
                Some(io) if io.send(data).is_ok() => {
                    self.shared.stats.injected.fetch_add(1, Ordering::Relaxed);
                }
                _ => {
                    self.shared.stats.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Ok(error_msg(msg.header.seq, self.pid, 0))
    }
}
