//! The control-message codec: netlink + genl + oxvs header + typed
//! attributes (see [`crate::contract`]).
//!
//! Decoding is zero-copy and validates a message completely before handing
//! it out: header lengths, every attribute's bounds, and (for requests and
//! replies the caller checks with [`check_command`]) the family and
//! command. After that, attribute lookups cannot read out of bounds; a
//! missing or mis-sized attribute is a [`BadInput`], not a panic.

use crate::bad_input::BadInput;
use crate::contract::*;

/// The netlink header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub len: u32,
    pub msg_type: u16,
    pub flags: u16,
    pub seq: u32,
    pub pid: u32,
}

/// One decoded message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    Genl(Message<'a>),
    /// `NLMSG_ERROR`: `errno` 0 is an ack.
    Error {
        header: Header,
        errno: i32,
    },
    /// `NLMSG_DONE`: the end of a dump.
    Done {
        header: Header,
    },
}

/// A generic-netlink message whose attributes have been bounds-checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    pub header: Header,
    pub cmd: u8,
    pub version: u8,
    pub dp_ifindex: u32,
    attrs: &'a [u8],
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Decodes the first message of `buf`; returns it and the bytes after it.
pub fn decode(buf: &[u8]) -> Result<(Decoded<'_>, &[u8]), BadInput> {
    if buf.len() < NLMSG_HDRLEN {
        return Err(BadInput::TruncatedHeader);
    }
    let header = Header {
        len: le32(buf, 0),
        msg_type: le16(buf, 4),
        flags: le16(buf, 6),
        seq: le32(buf, 8),
        pid: le32(buf, 12),
    };
    let len = header.len as usize;
    if len < NLMSG_HDRLEN || len > buf.len() || len > MAX_MSG_LEN {
        return Err(BadInput::BadMessageLength);
    }
    let body = &buf[NLMSG_HDRLEN..len];
    let rest = &buf[align4(len).min(buf.len())..];
    let decoded = match header.msg_type {
        NLMSG_ERROR => {
            if body.len() < 4 {
                return Err(BadInput::TruncatedHeader);
            }
            Decoded::Error {
                header,
                // Untrusted: i32::MIN has no positive counterpart.
                errno: (le32(body, 0) as i32).wrapping_neg(),
            }
        }
        NLMSG_DONE => Decoded::Done { header },
        _ => {
            if body.len() < GENL_HDRLEN + OVS_HDRLEN {
                return Err(BadInput::TruncatedHeader);
            }
            let attrs = &body[GENL_HDRLEN + OVS_HDRLEN..];
            validate_attrs(attrs)?;
            Decoded::Genl(Message {
                header,
                cmd: body[0],
                version: body[1],
                dp_ifindex: le32(body, GENL_HDRLEN),
                attrs,
            })
        }
    };
    Ok((decoded, rest))
}

/// Decodes every message of `buf`, stopping at the first bad one.
pub fn decode_all(mut buf: &[u8]) -> Result<Vec<Decoded<'_>>, BadInput> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let (msg, rest) = decode(buf)?;
        out.push(msg);
        buf = rest;
    }
    Ok(out)
}

fn validate_attrs(mut attrs: &[u8]) -> Result<(), BadInput> {
    while !attrs.is_empty() {
        if attrs.len() < NLA_HDRLEN {
            return Err(BadInput::AttrPastEnd);
        }
        let len = le16(attrs, 0) as usize;
        if len < NLA_HDRLEN || len > attrs.len() {
            return Err(BadInput::AttrPastEnd);
        }
        attrs = &attrs[align4(len).min(attrs.len())..];
    }
    Ok(())
}

/// Checks that `family`/`cmd` is a pair the contract defines.
pub fn check_command(family: u16, cmd: u8) -> Result<(), BadInput> {
    let known: &[u8] = match family {
        FAMILY_CTRL => &[CTRL_CMD_GET_PID, CTRL_CMD_HELLO, CTRL_CMD_MC_SUBSCRIBE],
        FAMILY_DATAPATH => &[DP_CMD_GET],
        FAMILY_VPORT => &[
            VPORT_CMD_NEW,
            VPORT_CMD_DEL,
            VPORT_CMD_GET,
            VPORT_CMD_SET,
            VPORT_CMD_LINK,
        ],
        FAMILY_PACKET => &[
            PACKET_CMD_RING_ATTACH,
            PACKET_CMD_RING_DETACH,
            PACKET_CMD_EXECUTE,
            PACKET_CMD_MISS,
        ],
        _ => return Err(BadInput::UnknownFamily),
    };
    if known.contains(&cmd) {
        Ok(())
    } else {
        Err(BadInput::UnknownCommand)
    }
}

/// One attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attr<'a> {
    /// The type without the nested/byte-order flags.
    pub ty: u16,
    pub payload: &'a [u8],
}

/// The attributes of a validated message.
#[derive(Clone, Debug)]
pub struct AttrIter<'a>(&'a [u8]);

impl<'a> Iterator for AttrIter<'a> {
    type Item = Attr<'a>;

    fn next(&mut self) -> Option<Attr<'a>> {
        // Validated by `decode`: every header and length is in bounds; the
        // `get`s keep that true even if this is ever reached otherwise.
        let b = self.0;
        let len = usize::from(u16::from_le_bytes([*b.first()?, *b.get(1)?]));
        let ty = u16::from_le_bytes([*b.get(2)?, *b.get(3)?]) & 0x3fff;
        let payload = b.get(NLA_HDRLEN..len)?;
        self.0 = b.get(align4(len)..).unwrap_or(&[]);
        Some(Attr { ty, payload })
    }
}

impl<'a> Message<'a> {
    /// The family id.
    pub fn family(&self) -> u16 {
        self.header.msg_type
    }

    pub fn attrs(&self) -> AttrIter<'a> {
        AttrIter(self.attrs)
    }

    /// The first attribute of type `ty`.
    pub fn attr(&self, ty: u16) -> Option<&'a [u8]> {
        self.attrs().find(|a| a.ty == ty).map(|a| a.payload)
    }

    fn required(&self, ty: u16) -> Result<&'a [u8], BadInput> {
        self.attr(ty).ok_or(BadInput::MissingAttr)
    }

    pub fn u8(&self, ty: u16) -> Result<u8, BadInput> {
        match self.required(ty)? {
            [v] => Ok(*v),
            _ => Err(BadInput::BadAttr),
        }
    }

    pub fn u32(&self, ty: u16) -> Result<u32, BadInput> {
        let p = self.required(ty)?;
        p.try_into()
            .map(u32::from_le_bytes)
            .map_err(|_| BadInput::BadAttr)
    }

    pub fn u64(&self, ty: u16) -> Result<u64, BadInput> {
        let p = self.required(ty)?;
        p.try_into()
            .map(u64::from_le_bytes)
            .map_err(|_| BadInput::BadAttr)
    }

    /// An optional u32: absent is `None`, mis-sized is an error.
    pub fn opt_u32(&self, ty: u16) -> Result<Option<u32>, BadInput> {
        match self.attr(ty) {
            None => Ok(None),
            Some(_) => self.u32(ty).map(Some),
        }
    }

    /// A NUL-terminated UTF-8 string.
    pub fn str(&self, ty: u16) -> Result<&'a str, BadInput> {
        let p = self.required(ty)?;
        let Some((0, text)) = p.split_last() else {
            return Err(BadInput::BadAttr);
        };
        if text.contains(&0) {
            return Err(BadInput::BadAttr);
        }
        std::str::from_utf8(text).map_err(|_| BadInput::BadAttr)
    }

    pub fn mac(&self, ty: u16) -> Result<[u8; 6], BadInput> {
        self.required(ty)?.try_into().map_err(|_| BadInput::BadAttr)
    }

    /// A list of u32 (a port list).
    pub fn u32_list(&self, ty: u16) -> Result<Vec<u32>, BadInput> {
        let p = self.required(ty)?;
        if p.len() % 4 != 0 {
            return Err(BadInput::BadAttr);
        }
        Ok(p.chunks_exact(4).map(|c| le32(c, 0)).collect())
    }
}

/// Builds one genl message; attributes are appended in order.
#[derive(Debug)]
pub struct Builder {
    buf: Vec<u8>,
}

impl Builder {
    /// A message of `family` with command `cmd`.
    pub fn new(family: u16, cmd: u8, flags: u16, seq: u32, pid: u32) -> Builder {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&0u32.to_le_bytes());
        buf.extend_from_slice(&family.to_le_bytes());
        buf.extend_from_slice(&flags.to_le_bytes());
        buf.extend_from_slice(&seq.to_le_bytes());
        buf.extend_from_slice(&pid.to_le_bytes());
        buf.extend_from_slice(&[cmd, GENL_VERSION, 0, 0]);
        buf.extend_from_slice(&0u32.to_le_bytes());
        Builder { buf }
    }

    /// Sets the genl version (tests of version mismatch).
    pub fn version(mut self, version: u8) -> Builder {
        self.buf[NLMSG_HDRLEN + 1] = version;
        self
    }

    pub fn bytes(mut self, ty: u16, payload: &[u8]) -> Builder {
        let len = NLA_HDRLEN + payload.len();
        assert!(len <= usize::from(u16::MAX), "attribute too long");
        self.buf.extend_from_slice(&(len as u16).to_le_bytes());
        self.buf.extend_from_slice(&ty.to_le_bytes());
        self.buf.extend_from_slice(payload);
        self.buf.resize(align4(self.buf.len()), 0);
        self
    }

    pub fn u8(self, ty: u16, v: u8) -> Builder {
        self.bytes(ty, &[v])
    }

    pub fn u32(self, ty: u16, v: u32) -> Builder {
        self.bytes(ty, &v.to_le_bytes())
    }

    pub fn u64(self, ty: u16, v: u64) -> Builder {
        self.bytes(ty, &v.to_le_bytes())
    }

    pub fn str(self, ty: u16, s: &str) -> Builder {
        let mut b = Vec::with_capacity(s.len() + 1);
        b.extend_from_slice(s.as_bytes());
        b.push(0);
        self.bytes(ty, &b)
    }

    pub fn u32_list(self, ty: u16, list: &[u32]) -> Builder {
        let b: Vec<u8> = list.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.bytes(ty, &b)
    }

    /// The finished message.
    pub fn finish(mut self) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[..4].copy_from_slice(&len.to_le_bytes());
        self.buf
    }
}

fn control_msg(msg_type: u16, flags: u16, seq: u32, pid: u32, errno: i32) -> Vec<u8> {
    let mut buf = Vec::with_capacity(NLMSG_HDRLEN + 4);
    buf.extend_from_slice(&((NLMSG_HDRLEN + 4) as u32).to_le_bytes());
    buf.extend_from_slice(&msg_type.to_le_bytes());
    buf.extend_from_slice(&flags.to_le_bytes());
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.extend_from_slice(&pid.to_le_bytes());
    buf.extend_from_slice(&(-errno).to_le_bytes());
    buf
}

/// An `NLMSG_ERROR` reply (`errno` 0 is an ack).
pub fn error_msg(seq: u32, pid: u32, errno: i32) -> Vec<u8> {
    control_msg(NLMSG_ERROR, 0, seq, pid, errno)
}

/// The `NLMSG_DONE` that ends a dump.
pub fn done_msg(seq: u32, pid: u32) -> Vec<u8> {
    control_msg(NLMSG_DONE, NLM_F_MULTI, seq, pid, 0)
}

/// A port as the shim reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VportInfo {
    pub port_no: u32,
    pub kind: PortKind,
    pub origin: PortOrigin,
    /// The Hyper-V friendly name (`OVS-<oxvs port name>`).
    pub name: String,
    pub mac: [u8; 6],
    pub mtu: u32,
    pub link_up: bool,
    pub n_queues: u32,
}

impl VportInfo {
    /// Appends this port's attributes.
    pub fn write(&self, b: Builder) -> Builder {
        b.u32(ATTR_VPORT_PORT_NO, self.port_no)
            .u32(ATTR_VPORT_KIND, self.kind.to_u32())
            .u8(
                ATTR_VPORT_ORIGIN,
                matches!(self.origin, PortOrigin::User) as u8,
            )
            .str(ATTR_VPORT_NAME, &self.name)
            .bytes(ATTR_VPORT_MAC, &self.mac)
            .u32(ATTR_VPORT_MTU, self.mtu)
            .u8(ATTR_VPORT_LINK_UP, self.link_up as u8)
            .u32(ATTR_VPORT_N_QUEUES, self.n_queues)
    }

    /// Reads a port from a `VPORT` message.
    pub fn read(msg: &Message<'_>) -> Result<VportInfo, BadInput> {
        let origin = match msg.u8(ATTR_VPORT_ORIGIN)? {
            0 => PortOrigin::Switch,
            1 => PortOrigin::User,
            _ => return Err(BadInput::BadAttr),
        };
        Ok(VportInfo {
            port_no: msg.u32(ATTR_VPORT_PORT_NO)?,
            kind: PortKind::from_u32(msg.u32(ATTR_VPORT_KIND)?),
            origin,
            name: msg.str(ATTR_VPORT_NAME)?.to_string(),
            mac: msg.mac(ATTR_VPORT_MAC)?,
            mtu: msg.u32(ATTR_VPORT_MTU)?,
            link_up: msg.u8(ATTR_VPORT_LINK_UP)? != 0,
            n_queues: msg.u32(ATTR_VPORT_N_QUEUES)?.max(1),
        })
    }
}

/// Where the shim mapped a ring region for us.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegionLocation {
    /// A shared-memory file (the emulator).
    ShmPath(String),
    /// An address in our process (the Windows shim maps it for us).
    UserAddr(u64),
}

/// The reply to `PACKET_CMD_RING_ATTACH`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingGrant {
    pub ring_id: u64,
    pub port_no: u32,
    pub queue: u32,
    pub n_desc: u32,
    pub n_frames: u32,
    pub frame_size: u32,
    pub region_size: u64,
    pub location: RegionLocation,
}

impl RingGrant {
    pub fn write(&self, b: Builder) -> Builder {
        let b = b
            .u64(ATTR_RING_ID, self.ring_id)
            .u32(ATTR_RING_PORT_NO, self.port_no)
            .u32(ATTR_RING_QUEUE, self.queue)
            .u32(ATTR_RING_N_DESC, self.n_desc)
            .u32(ATTR_RING_N_FRAMES, self.n_frames)
            .u32(ATTR_RING_FRAME_SIZE, self.frame_size)
            .u64(ATTR_RING_REGION_SIZE, self.region_size);
        match &self.location {
            RegionLocation::ShmPath(p) => b.str(ATTR_RING_SHM_PATH, p),
            RegionLocation::UserAddr(a) => b.u64(ATTR_RING_USER_ADDR, *a),
        }
    }

    pub fn read(msg: &Message<'_>) -> Result<RingGrant, BadInput> {
        let location = if msg.attr(ATTR_RING_SHM_PATH).is_some() {
            RegionLocation::ShmPath(msg.str(ATTR_RING_SHM_PATH)?.to_string())
        } else {
            RegionLocation::UserAddr(msg.u64(ATTR_RING_USER_ADDR)?)
        };
        Ok(RingGrant {
            ring_id: msg.u64(ATTR_RING_ID)?,
            port_no: msg.u32(ATTR_RING_PORT_NO)?,
            queue: msg.u32(ATTR_RING_QUEUE)?,
            n_desc: msg.u32(ATTR_RING_N_DESC)?,
            n_frames: msg.u32(ATTR_RING_N_FRAMES)?,
            frame_size: msg.u32(ATTR_RING_FRAME_SIZE)?,
            region_size: msg.u64(ATTR_RING_REGION_SIZE)?,
            location,
        })
    }
}

#[cfg(test)]
mod tests;
