//! rtnetlink for XDP: which program an interface has attached (to find a
//! stale one at start and to check that a removed port left none), and the
//! legacy `IFLA_XDP_FD` attach/detach for programs attached without a
//! bpf_link.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use super::{check_ssize, socket};

const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_SETLINK: u16 = 19;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const IFLA_XDP: u16 = 43;
const IFLA_XDP_FD: u16 = 1;
const IFLA_XDP_ATTACHED: u16 = 2;
const IFLA_XDP_FLAGS: u16 = 3;
const IFLA_XDP_PROG_ID: u16 = 4;
const NLA_F_NESTED: u16 = 1 << 15;
const NLA_TYPE_MASK: u16 = 0x3fff;
const NLMSG_HDRLEN: usize = 16;
const IFINFOMSG_LEN: usize = 16;

/// What an interface has attached, as `IFLA_XDP` reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpAttachment {
    /// `XDP_ATTACHED_*`: 0 none, 1 driver, 2 generic (skb), 3 hardware,
    /// 4 several.
    pub attached: u8,
    /// The program id (0 when none).
    pub prog_id: u32,
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn push_attr(msg: &mut Vec<u8>, ty: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    msg.extend_from_slice(&(len as u16).to_ne_bytes());
    msg.extend_from_slice(&ty.to_ne_bytes());
    msg.extend_from_slice(payload);
    msg.resize(align4(msg.len()), 0);
}

fn link_message(ty: u16, flags: u16, ifindex: u32) -> Vec<u8> {
    let mut msg = Vec::with_capacity(64);
    msg.extend_from_slice(&0u32.to_ne_bytes()); // length, patched in `send`
    msg.extend_from_slice(&ty.to_ne_bytes());
    msg.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    msg.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it
    // ifinfomsg: family, pad, type, index, flags, change.
    msg.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
    msg.extend_from_slice(&(ifindex as i32).to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg
}

/// Sends one request and returns the first reply message (header
/// included).
fn transact(mut msg: Vec<u8>) -> io::Result<Vec<u8>> {
    let len = msg.len() as u32;
    msg[..4].copy_from_slice(&len.to_ne_bytes());
    let sock: OwnedFd = socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE)?;
    // SAFETY: `msg` is readable for its length; no address (the kernel is
    // the default destination of a netlink socket).
    check_ssize(unsafe { libc::send(sock.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) })?;
    let mut buf = vec![0u8; 32 * 1024];
    // SAFETY: `buf` is writable for its length.
    let n = check_ssize(unsafe {
        libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0)
    })?;
    buf.truncate(n);
    if buf.len() < NLMSG_HDRLEN {
        return Err(io::Error::other("short netlink reply"));
    }
    let ty = u16::from_ne_bytes([buf[4], buf[5]]);
    if ty == NLMSG_ERROR {
        let code = i32::from_ne_bytes(buf[16..20].try_into().expect("4 bytes"));
        if code != 0 {
            return Err(io::Error::from_raw_os_error(-code));
        }
    }
    Ok(buf)
}

/// Iterates `(type, payload)` over the attributes in `bytes`.
fn attrs(bytes: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        if rest.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([rest[0], rest[1]]) as usize;
        let ty = u16::from_ne_bytes([rest[2], rest[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > rest.len() {
            return None;
        }
        let payload = &rest[4..len];
        rest = &rest[align4(len).min(rest.len())..];
        Some((ty, payload))
    })
}

/// The XDP program attached to interface `ifindex` (in this thread's
/// network namespace).
pub fn xdp_query(ifindex: u32) -> io::Result<XdpAttachment> {
    let reply = transact(link_message(RTM_GETLINK, 0, ifindex))?;
    let ty = u16::from_ne_bytes([reply[4], reply[5]]);
    if ty != RTM_NEWLINK {
        return Err(io::Error::other(format!(
            "unexpected netlink reply type {ty}"
        )));
    }
    let total =
        (u32::from_ne_bytes(reply[..4].try_into().expect("4 bytes")) as usize).min(reply.len());
    let mut out = XdpAttachment::default();
    let start = NLMSG_HDRLEN + IFINFOMSG_LEN;
    if total <= start {
        return Ok(out);
    }
    for (ty, payload) in attrs(&reply[start..total]) {
        if ty != IFLA_XDP {
            continue;
        }
        for (inner, value) in attrs(payload) {
            match inner {
                IFLA_XDP_ATTACHED if !value.is_empty() => out.attached = value[0],
                IFLA_XDP_PROG_ID if value.len() >= 4 => {
                    out.prog_id = u32::from_ne_bytes(value[..4].try_into().expect("4 bytes"))
                }
                _ => {}
            }
        }
    }
    Ok(out)
}

/// Attaches program `fd` to `ifindex` the legacy way (no bpf_link), or
/// detaches with `fd = -1`; `flags` selects the mode (`XDP_FLAGS_*`).
/// Fails with `EBUSY` when a bpf_link owns the attachment.
pub fn xdp_set_fd_legacy(ifindex: u32, fd: i32, flags: u32) -> io::Result<()> {
    let mut msg = link_message(RTM_SETLINK, NLM_F_ACK, ifindex);
    let mut nested = Vec::new();
    push_attr(&mut nested, IFLA_XDP_FD, &fd.to_ne_bytes());
    push_attr(&mut nested, IFLA_XDP_FLAGS, &flags.to_ne_bytes());
    push_attr(&mut msg, IFLA_XDP | NLA_F_NESTED, &nested);
    transact(msg).map(drop)
}
