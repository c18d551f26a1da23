//! The userspace end of the control channel: hello (version check), PID,
//! port lookup by friendly name, caller-driven dumps, events, the socket
//! packet queue and ring attach. One `Client` is one socket (one device
//! handle); it is used by one thread at a time (the netdev keeps it under
//! a mutex, off the fast path).

use std::fmt;
use std::io;
use std::sync::Arc;

use crate::bad_input::{BadInput, BadInputCounters};
use crate::codec::{Builder, Decoded, Message, RingGrant, VportInfo, check_command, decode_all};
use crate::contract::*;
use crate::device::Device;
use crate::ring::Region;

/// What a control call can fail with.
#[derive(Debug)]
pub enum ClientError {
    Io(io::Error),
    /// The shim sent something malformed (counted).
    Bad(BadInput),
    /// The shim refused the request with this errno.
    Errno(i32),
    /// Incompatible contract versions (`(major << 16) | minor`).
    Version {
        ours: u32,
        theirs: u32,
    },
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Io(e) => write!(f, "device I/O: {e}"),
            ClientError::Bad(b) => write!(f, "malformed reply from the shim: {b}"),
            ClientError::Errno(e) => write!(f, "the shim refused the request (errno {e})"),
            ClientError::Version { ours, theirs } => write!(
                f,
                "shim contract version {}.{} is incompatible with ours {}.{}",
                theirs >> 16,
                theirs & 0xffff,
                ours >> 16,
                ours & 0xffff
            ),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        ClientError::Io(e)
    }
}

/// A port or link event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    PortAdded(VportInfo),
    PortDeleted(VportInfo),
    /// The port's link changed (`link_up` says which way).
    Link(VportInfo),
}

/// One control socket.
#[derive(Debug)]
pub struct Client {
    device: Box<dyn Device>,
    pid: u32,
    seq: u32,
    shim_version: u32,
    bad: Arc<BadInputCounters>,
    reply: Vec<u8>,
}

impl Client {
    /// Says hello (refusing an incompatible shim) and gets our PID.
    pub fn connect(
        device: Box<dyn Device>,
        bad: Arc<BadInputCounters>,
    ) -> Result<Client, ClientError> {
        let mut client = Client {
            device,
            pid: 0,
            seq: 0,
            shim_version: 0,
            bad,
            reply: Vec::new(),
        };
        let hello = client.request(FAMILY_CTRL, CTRL_CMD_HELLO, 0, |b| {
            b.u32(ATTR_CTRL_VERSION, VERSION)
        });
        let theirs = match hello {
            Ok(replies) => {
                let m = replies
                    .first()
                    .ok_or(ClientError::Bad(BadInput::MissingAttr))?;
                m.version
            }
            Err(e) => return Err(e),
        };
        client.shim_version = theirs;
        if theirs >> 16 != VERSION >> 16 {
            return Err(ClientError::Version {
                ours: VERSION,
                theirs,
            });
        }
        let pid = client.request(FAMILY_CTRL, CTRL_CMD_GET_PID, 0, |b| b)?;
        client.pid = pid.first().map_or(0, |m| m.pid);
        if client.pid == 0 {
            return Err(client.bad(BadInput::MissingAttr));
        }
        Ok(client)
    }

    /// The PID the shim gave this socket.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The shim's contract version.
    pub fn shim_version(&self) -> u32 {
        self.shim_version
    }

    pub fn bad_input(&self) -> &Arc<BadInputCounters> {
        &self.bad
    }

    fn bad(&self, reason: BadInput) -> ClientError {
        self.bad.count(reason);
        ClientError::Bad(reason)
    }

    /// One transaction; returns the genl replies (a dump's entries).
    fn request(
        &mut self,
        family: u16,
        cmd: u8,
        flags: u16,
        attrs: impl FnOnce(Builder) -> Builder,
    ) -> Result<Vec<Reply>, ClientError> {
        self.seq = self.seq.wrapping_add(1);
        let msg = attrs(Builder::new(
            family,
            cmd,
            NLM_F_REQUEST | flags,
            self.seq,
            self.pid,
        ))
        .finish();
        let mut reply = std::mem::take(&mut self.reply);
        let result = self.device.ioctl(IOCTL_TRANSACT, &msg, &mut reply);
        let parsed = result
            .map_err(ClientError::Io)
            .and_then(|()| self.parse_replies(&reply, family));
        self.reply = reply;
        parsed
    }

    fn parse_replies(&self, buf: &[u8], family: u16) -> Result<Vec<Reply>, ClientError> {
        let msgs = decode_all(buf).map_err(|b| self.bad(b))?;
        let mut out = Vec::new();
        for m in msgs {
            match m {
                Decoded::Error { errno: 0, .. } | Decoded::Done { .. } => {}
                Decoded::Error { errno, .. } => return Err(ClientError::Errno(errno)),
                Decoded::Genl(m) => {
                    if m.header.seq != self.seq {
                        return Err(self.bad(BadInput::BadAttr));
                    }
                    if m.family() != family {
                        return Err(self.bad(BadInput::UnknownFamily));
                    }
                    check_command(m.family(), m.cmd).map_err(|b| self.bad(b))?;
                    out.push(Reply::from_msg(&m, &self.bad)?);
                }
            }
        }
        Ok(out)
    }

    /// The port whose friendly name is `name`.
    pub fn vport_by_name(&mut self, name: &str) -> Result<Option<VportInfo>, ClientError> {
        match self.request(FAMILY_VPORT, VPORT_CMD_GET, 0, |b| {
            b.str(ATTR_VPORT_NAME, name)
        }) {
            Ok(r) => Ok(r.into_iter().find_map(|r| r.vport)),
            Err(ClientError::Errno(ENOENT)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The port numbered `port_no`.
    pub fn vport_by_number(&mut self, port_no: u32) -> Result<Option<VportInfo>, ClientError> {
        match self.request(FAMILY_VPORT, VPORT_CMD_GET, 0, |b| {
            b.u32(ATTR_VPORT_PORT_NO, port_no)
        }) {
            Ok(r) => Ok(r.into_iter().find_map(|r| r.vport)),
            Err(ClientError::Errno(ENOENT)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every port, both tables, by caller-driven dump requests.
    pub fn vport_dump(&mut self) -> Result<Vec<VportInfo>, ClientError> {
        let mut all = Vec::new();
        let mut cursor = 0u32;
        loop {
            let (flags_done, batch) = self.dump_once(cursor)?;
            for v in &batch {
                if v.port_no <= cursor {
                    // A shim that does not advance would loop forever.
                    return Err(self.bad(BadInput::BadAttr));
                }
                cursor = v.port_no;
            }
            all.extend(batch);
            if flags_done {
                return Ok(all);
            }
        }
    }

    fn dump_once(&mut self, cursor: u32) -> Result<(bool, Vec<VportInfo>), ClientError> {
        self.seq = self.seq.wrapping_add(1);
        let msg = Builder::new(
            FAMILY_VPORT,
            VPORT_CMD_GET,
            NLM_F_REQUEST | NLM_F_DUMP,
            self.seq,
            self.pid,
        )
        .u32(ATTR_VPORT_DUMP_CURSOR, cursor)
        .finish();
        let mut reply = std::mem::take(&mut self.reply);
        self.device.ioctl(IOCTL_TRANSACT, &msg, &mut reply)?;
        let done = decode_all(&reply)
            .map(|all| all.iter().any(|m| matches!(m, Decoded::Done { .. })))
            .unwrap_or(false);
        let parsed = self.parse_replies(&reply, FAMILY_VPORT);
        self.reply = reply;
        let ports = parsed?.into_iter().filter_map(|r| r.vport).collect();
        Ok((done, ports))
    }

    /// Creates a userspace port (the userspace-created table).
    pub fn vport_new(&mut self, name: &str, kind: PortKind) -> Result<VportInfo, ClientError> {
        let r = self.request(FAMILY_VPORT, VPORT_CMD_NEW, 0, |b| {
            b.str(ATTR_VPORT_NAME, name)
                .u32(ATTR_VPORT_KIND, kind.to_u32())
        })?;
        r.into_iter()
            .find_map(|r| r.vport)
            .ok_or_else(|| self.bad(BadInput::MissingAttr))
    }

    /// Deletes a userspace-created port.
    pub fn vport_del(&mut self, port_no: u32) -> Result<(), ClientError> {
        self.request(FAMILY_VPORT, VPORT_CMD_DEL, 0, |b| {
            b.u32(ATTR_VPORT_PORT_NO, port_no)
        })
        .map(drop)
    }

    /// Sends `port_no`'s frames (while no ring is attached) to socket `pid`.
    pub fn vport_set_upcall_pid(&mut self, port_no: u32, pid: u32) -> Result<(), ClientError> {
        self.request(FAMILY_VPORT, VPORT_CMD_SET, 0, |b| {
            b.u32(ATTR_VPORT_PORT_NO, port_no)
                .u32(ATTR_VPORT_UPCALL_PID, pid)
        })
        .map(drop)
    }

    /// Joins or leaves multicast group `group`.
    pub fn subscribe(&mut self, group: u32, join: bool) -> Result<(), ClientError> {
        self.request(FAMILY_CTRL, CTRL_CMD_MC_SUBSCRIBE, 0, |b| {
            b.u32(ATTR_CTRL_MCAST_GROUP, group)
                .u8(ATTR_CTRL_MCAST_JOIN, join as u8)
        })
        .map(drop)
    }

    /// Pops one event, waiting up to `wait_ms`; `None` when none came.
    pub fn read_event(&mut self, wait_ms: u32) -> Result<Option<Event>, ClientError> {
        let mut out = std::mem::take(&mut self.reply);
        let r = self
            .device
            .ioctl(IOCTL_READ_EVENT, &wait_ms.to_le_bytes(), &mut out);
        let event = r
            .map_err(ClientError::Io)
            .and_then(|()| self.parse_event(&out));
        self.reply = out;
        event
    }

    fn parse_event(&self, buf: &[u8]) -> Result<Option<Event>, ClientError> {
        if buf.is_empty() {
            return Ok(None);
        }
        let msgs = decode_all(buf).map_err(|b| self.bad(b))?;
        let Some(Decoded::Genl(m)) = msgs.first() else {
            return Err(self.bad(BadInput::UnknownFamily));
        };
        if m.family() != FAMILY_VPORT {
            return Err(self.bad(BadInput::UnknownFamily));
        }
        let port = VportInfo::read(m).map_err(|b| self.bad(b))?;
        match m.cmd {
            VPORT_CMD_NEW => Ok(Some(Event::PortAdded(port))),
            VPORT_CMD_DEL => Ok(Some(Event::PortDeleted(port))),
            VPORT_CMD_LINK => Ok(Some(Event::Link(port))),
            _ => Err(self.bad(BadInput::UnknownCommand)),
        }
    }

    /// Pops one frame of the socket's packet queue: `(source port, bytes)`.
    pub fn read_packet(&mut self) -> Result<Option<(u32, Vec<u8>)>, ClientError> {
        let mut out = std::mem::take(&mut self.reply);
        let r = self.device.ioctl(IOCTL_READ_PACKET, &[], &mut out);
        let parsed = r.map_err(ClientError::Io).and_then(|()| {
            if out.is_empty() {
                return Ok(None);
            }
            let msgs = decode_all(&out).map_err(|b| self.bad(b))?;
            let Some(Decoded::Genl(m)) = msgs.first() else {
                return Err(self.bad(BadInput::UnknownFamily));
            };
            if (m.family(), m.cmd) != (FAMILY_PACKET, PACKET_CMD_MISS) {
                return Err(self.bad(BadInput::UnknownCommand));
            }
            let port = m.u32(ATTR_PACKET_PORT_NO).map_err(|b| self.bad(b))?;
            let data = m
                .attr(ATTR_PACKET_DATA)
                .ok_or_else(|| self.bad(BadInput::MissingAttr))?;
            Ok(Some((port, data.to_vec())))
        });
        self.reply = out;
        parsed
    }

    /// Slow-path inject of one frame to `ports`.
    pub fn execute(&mut self, ports: &[u32], frame: &[u8]) -> Result<(), ClientError> {
        self.request(FAMILY_PACKET, PACKET_CMD_EXECUTE, 0, |b| {
            b.u32_list(ATTR_PACKET_OUT_PORTS, ports)
                .bytes(ATTR_PACKET_DATA, frame)
        })
        .map(drop)
    }

    /// Attaches a ring set to `port_no`'s queue `queue` and maps it.
    pub fn attach_ring(
        &mut self,
        port_no: u32,
        queue: u32,
        n_desc: u32,
        n_frames: u32,
        frame_size: u32,
    ) -> Result<(RingGrant, Region), ClientError> {
        let r = self.request(FAMILY_PACKET, PACKET_CMD_RING_ATTACH, 0, |b| {
            b.u32(ATTR_RING_PORT_NO, port_no)
                .u32(ATTR_RING_QUEUE, queue)
                .u32(ATTR_RING_N_DESC, n_desc)
                .u32(ATTR_RING_N_FRAMES, n_frames)
                .u32(ATTR_RING_FRAME_SIZE, frame_size)
        })?;
        let grant = r
            .into_iter()
            .find_map(|r| r.ring)
            .ok_or_else(|| self.bad(BadInput::MissingAttr))?;
        if (
            grant.port_no,
            grant.queue,
            grant.n_desc,
            grant.n_frames,
            grant.frame_size,
        ) != (port_no, queue, n_desc, n_frames, frame_size)
        {
            return Err(self.bad(BadInput::BadRegion));
        }
        let region = self.device.map_region(&grant)?;
        Ok((grant, region))
    }

    /// Detaches a ring set (the shim stops using it).
    pub fn detach_ring(&mut self, ring_id: u64) -> Result<(), ClientError> {
        self.request(FAMILY_PACKET, PACKET_CMD_RING_DETACH, 0, |b| {
            b.u64(ATTR_RING_ID, ring_id)
        })
        .map(drop)
    }

    /// A doorbell for ring `ring_id`.
    pub fn doorbell(&mut self, ring_id: u64) -> io::Result<Box<dyn crate::device::Doorbell>> {
        self.device.doorbell(ring_id)
    }
}

/// What one genl reply carried that we care about.
#[derive(Debug)]
struct Reply {
    version: u32,
    pid: u32,
    vport: Option<VportInfo>,
    ring: Option<RingGrant>,
}

impl Reply {
    fn from_msg(m: &Message<'_>, bad: &BadInputCounters) -> Result<Reply, ClientError> {
        let count = |b: BadInput| {
            bad.count(b);
            ClientError::Bad(b)
        };
        let mut reply = Reply {
            version: 0,
            pid: m.header.pid,
            vport: None,
            ring: None,
        };
        match (m.family(), m.cmd) {
            (FAMILY_CTRL, CTRL_CMD_HELLO) => {
                reply.version = m.u32(ATTR_CTRL_VERSION).map_err(count)?;
                let layout = m.u32(ATTR_CTRL_RING_LAYOUT).map_err(count)?;
                if layout != RING_LAYOUT_VERSION {
                    return Err(count(BadInput::BadVersion));
                }
            }
            (FAMILY_CTRL, CTRL_CMD_GET_PID) => {
                reply.pid = m.u32(ATTR_CTRL_PID).map_err(count)?;
            }
            (FAMILY_VPORT, _) => reply.vport = Some(VportInfo::read(m).map_err(count)?),
            (FAMILY_PACKET, PACKET_CMD_RING_ATTACH) => {
                reply.ring = Some(RingGrant::read(m).map_err(count)?)
            }
            _ => {}
        }
        Ok(reply)
    }
}
