//! The kernel/user contract of the oxvs Hyper-V shim: a short spec a driver
//! author can implement. Every number here is part of the wire format.
//!
//! # Roles
//! The *shim* is a Hyper-V extensible-switch forwarding extension (an NDIS
//! filter driver). It attaches to one switch, reports the switch's ports,
//! hands every ingress packet to userspace and injects what userspace
//! sends back. It keeps no flows. *Userspace* is oxvs: it runs the whole
//! datapath and polls the shim's rings from PMD threads.
//!
//! # Control channel (netlink over a device handle)
//! Userspace opens the device ([`DEVICE_NAME_USER`]) once per *socket*;
//! each handle is an independent socket. All control traffic is netlink
//! messages: a 16-byte `nlmsghdr` (len, type, flags, seq, pid), a 4-byte
//! generic-netlink header (cmd, version, reserved) and a 4-byte oxvs header
//! (`dp_ifindex`), then 4-byte-aligned typed attributes (`nlattr`: u16 len
//! including its 4-byte header, u16 type). Integers are little-endian (the
//! host order of every Windows target), as netlink's host order.
//!
//! - **Families have fixed ids** ([`FAMILY_CTRL`], [`FAMILY_DATAPATH`],
//!   [`FAMILY_PACKET`], [`FAMILY_VPORT`]) carried in `nlmsg_type`; there is
//!   no family resolution round trip. Unknown families and commands get an
//!   `NLMSG_ERROR` reply with `EOPNOTSUPP`.
//! - **PID assignment**: the shim gives each handle a non-zero PID, returned
//!   by `CTRL_CMD_GET_PID`; replies and events carry it in `nlmsg_pid`.
//! - **Versioning**: the first request on a handle is `CTRL_CMD_HELLO` with
//!   [`ATTR_CTRL_VERSION`] = `(major << 16) | minor`. The shim replies with
//!   its own version and ring layout version, whatever the caller sent, so
//!   the caller can name what it met; after a hello with a different major
//!   (or none) the shim answers every other request on that handle with
//!   `EPROTO`. Both sides therefore detect a mismatch on the first
//!   message. Each genl header also carries the family's version
//!   ([`GENL_VERSION`]); another value is refused with `EPROTO`.
//! - **Transactions**: [`IOCTL_TRANSACT`] takes one request in the input
//!   buffer and returns its reply in the output buffer, in one call.
//! - **Dumps are caller-driven**: a dump request (`NLM_F_DUMP`) carries a
//!   cursor attribute ([`ATTR_VPORT_DUMP_CURSOR`], the last port number
//!   seen, 0 to start). The reply holds up to [`DUMP_BATCH`] entries
//!   (`NLM_F_MULTI`) followed by `NLMSG_DONE` only when nothing is left; the
//!   caller repeats with the last port number it got. The shim keeps no dump
//!   state, so an abandoned dump costs it nothing.
//! - **Per-socket packet queue**: frames of a port with no ring attached go
//!   to the socket named by the port's upcall PID ([`ATTR_VPORT_UPCALL_PID`],
//!   set with `VPORT_CMD_SET`), bounded at [`SOCKET_QUEUE_DEPTH`] (overflow
//!   counted and dropped); [`IOCTL_READ_PACKET`] pops one `PACKET_CMD_MISS`.
//! - **Events**: `CTRL_CMD_MC_SUBSCRIBE` joins or leaves a multicast group
//!   ([`MCGRP_VPORT`]); port add/delete and link up/down are then queued on
//!   the socket as `VPORT` messages with an event command
//!   ([`VPORT_CMD_NEW`], [`VPORT_CMD_DEL`], [`VPORT_CMD_LINK`]).
//!   [`IOCTL_READ_EVENT`] pops one; on Windows it is issued overlapped and
//!   pends until an event is queued (the emulator takes a wait bound in ms
//!   as its 4-byte input).
//!
//! # Port identity
//! Hyper-V names ports by GUID; oxvs matches them by *friendly name*: the
//! administrator names a port `OVS-port-name` and the `type = "windows"`
//! oxvs port `port-name` finds it with `VPORT_CMD_GET` +
//! [`ATTR_VPORT_NAME`]. Port kinds ([`PortKind`]) are external (the
//! physical NIC), internal (the host vNIC) and VM NIC. The shim keeps two
//! tables: switch-created ports (numbered from 1) and userspace-created
//! ports (`VPORT_CMD_NEW`, numbered from [`USER_PORT_BASE`]); only the
//! latter can be deleted from userspace.
//!
//! # Data channel (shared-memory rings, one set per port queue)
//! `PACKET_CMD_RING_ATTACH` (port, queue, ring size, frame count, frame
//! size) makes the shim allocate one zeroed region, write its header, map
//! it into the caller (on Windows: a locked MDL mapped into the process,
//! address in [`ATTR_RING_USER_ADDR`]; in the emulator: a file under
//! `/dev/shm`, path in [`ATTR_RING_SHM_PATH`]) and start using it. One
//! ring set per (port, queue); a second attach is `EEXIST`.
//! `PACKET_CMD_RING_DETACH` (or closing the handle) makes the shim stop
//! touching the region; on Windows the mapping itself stays until the
//! handle that attached it closes, because packets may still point into
//! it. Punted frames are lent to packets without a copy; injected frames
//! are copied into free frames by userspace (a frame from another region
//! cannot be named by a descriptor). The region, laid out
//! by [`crate::ring::Layout`], holds four single-producer/single-consumer
//! rings over one frame area, as an AF_XDP UMEM:
//!
//! | ring | producer → consumer | descriptor |
//! |---|---|---|
//! | fill | user → shim | frame index (u32): free frames for punts |
//! | punt | shim → user | frame, offset, len, source port, metadata |
//! | inject | user → shim | frame, offset, len, destination port list |
//! | completion | shim → user | frame index: injected frames done |
//!
//! Each ring has a producer index, a consumer index (free-running u32,
//! each on its own cache line, written only by its side) and a flags word.
//! The consumer reads `producer` with acquire, the descriptors, then stores
//! `consumer` with release; the producer mirrors it. No per-packet IOCTL.
//!
//! **Wakeup**: when the shim goes idle it sets [`RING_NEED_WAKEUP`] in the
//! inject ring's flags; userspace, after producing, rings the doorbell (one
//! `SetEvent` on the event handle it gave at attach; a datagram in the
//! emulator). When a userspace thread sleeps it sets [`RING_USER_WAITING`]
//! on the punt ring, and the shim signals that event after producing.
//!
//! # Untrusted input
//! Userspace validates everything the shim writes: message lengths,
//! attribute bounds, families and commands, ring indices (`prod - cons` no
//! more than the ring size), frame indices, `offset + len` within one frame,
//! and that a frame is returned only while the shim holds it. Each failure
//! is a counted [`crate::BadInput`], never a panic or an out-of-bounds read.

/// The Win32 path userspace opens.
pub const DEVICE_NAME_USER: &str = r"\\.\OxvsShimDevice";
/// Environment variable naming the emulator's control socket (Linux).
pub const EMULATOR_SOCKET_ENV: &str = "OXVS_WINSHIM_SOCKET";
/// The emulator's default control socket.
pub const EMULATOR_DEFAULT_SOCKET: &str = "/run/oxvs/winshim.sock";

/// Contract version: bump the major for incompatible changes.
pub const VERSION_MAJOR: u16 = 1;
pub const VERSION_MINOR: u16 = 0;
/// `(major << 16) | minor`, as carried in [`ATTR_CTRL_VERSION`].
pub const VERSION: u32 = ((VERSION_MAJOR as u32) << 16) | VERSION_MINOR as u32;
/// Version of the ring region layout (in the region header too).
pub const RING_LAYOUT_VERSION: u32 = 1;
/// Version carried in every genl header.
pub const GENL_VERSION: u8 = 1;

// ---- IOCTLs: CTL_CODE(device type, function, method, access) ----
const fn ctl_code(function: u32, method: u32, access: u32) -> u32 {
    (DEVICE_TYPE << 16) | (access << 14) | (function << 2) | method
}
/// Our own device type (a vendor value above 32767, as Windows requires).
pub const DEVICE_TYPE: u32 = 45_100;
const METHOD_BUFFERED: u32 = 0;
const METHOD_OUT_DIRECT: u32 = 2;
const FILE_READ_ACCESS: u32 = 1;
const FILE_WRITE_ACCESS: u32 = 2;
/// One request in, its reply out.
pub const IOCTL_TRANSACT: u32 = ctl_code(
    0x900,
    METHOD_OUT_DIRECT,
    FILE_READ_ACCESS | FILE_WRITE_ACCESS,
);
/// Pops one queued event (pends on Windows while the queue is empty).
pub const IOCTL_READ_EVENT: u32 = ctl_code(0x901, METHOD_OUT_DIRECT, FILE_READ_ACCESS);
/// Pops one frame from the socket's packet queue.
pub const IOCTL_READ_PACKET: u32 = ctl_code(0x902, METHOD_OUT_DIRECT, FILE_READ_ACCESS);
/// Doorbell: input is the 8-byte ring id; wakes the shim's injector.
pub const IOCTL_KICK: u32 = ctl_code(0x903, METHOD_BUFFERED, FILE_WRITE_ACCESS);

// ---- netlink framing ----
pub const NLMSG_HDRLEN: usize = 16;
pub const GENL_HDRLEN: usize = 4;
pub const OVS_HDRLEN: usize = 4;
/// Everything before the attributes of a genl message.
pub const MSG_HDRLEN: usize = NLMSG_HDRLEN + GENL_HDRLEN + OVS_HDRLEN;
pub const NLA_HDRLEN: usize = 4;
/// Largest message either side builds or accepts.
pub const MAX_MSG_LEN: usize = 64 * 1024;

pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const NLMSG_MIN_TYPE: u16 = 0x10;

pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_MULTI: u16 = 0x2;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_DUMP: u16 = 0x300;

/// Fixed family ids (no resolution round trip), as the historical Windows
/// datapath did.
pub const FAMILY_CTRL: u16 = NLMSG_MIN_TYPE + 1;
pub const FAMILY_DATAPATH: u16 = NLMSG_MIN_TYPE + 2;
pub const FAMILY_PACKET: u16 = NLMSG_MIN_TYPE + 3;
pub const FAMILY_VPORT: u16 = NLMSG_MIN_TYPE + 4;

pub const MCGRP_VPORT: u32 = 101;

// errno values carried in NLMSG_ERROR (Linux numbering on both sides).
pub const ENOENT: i32 = 2;
pub const EEXIST: i32 = 17;
pub const EINVAL: i32 = 22;
pub const ENOSPC: i32 = 28;
pub const EPROTO: i32 = 71;
pub const EOPNOTSUPP: i32 = 95;
pub const EPERM: i32 = 1;

// ---- commands ----
pub const CTRL_CMD_GET_PID: u8 = 1;
pub const CTRL_CMD_HELLO: u8 = 2;
pub const CTRL_CMD_MC_SUBSCRIBE: u8 = 3;

pub const DP_CMD_GET: u8 = 1;

pub const VPORT_CMD_NEW: u8 = 1;
pub const VPORT_CMD_DEL: u8 = 2;
pub const VPORT_CMD_GET: u8 = 3;
pub const VPORT_CMD_SET: u8 = 4;
/// An event: the port's link went up or down (`ATTR_VPORT_LINK_UP`).
pub const VPORT_CMD_LINK: u8 = 5;

pub const PACKET_CMD_RING_ATTACH: u8 = 1;
pub const PACKET_CMD_RING_DETACH: u8 = 2;
/// Slow-path inject of one frame (control plane only).
pub const PACKET_CMD_EXECUTE: u8 = 3;
/// A frame from the socket packet queue.
pub const PACKET_CMD_MISS: u8 = 4;

// ---- attributes ----
pub const ATTR_CTRL_PID: u16 = 1;
pub const ATTR_CTRL_VERSION: u16 = 2;
pub const ATTR_CTRL_RING_LAYOUT: u16 = 3;
pub const ATTR_CTRL_MCAST_GROUP: u16 = 4;
pub const ATTR_CTRL_MCAST_JOIN: u16 = 5;

pub const ATTR_DP_NAME: u16 = 1;
pub const ATTR_DP_N_PORTS: u16 = 2;

pub const ATTR_VPORT_PORT_NO: u16 = 1;
pub const ATTR_VPORT_KIND: u16 = 2;
/// Friendly name, NUL-terminated.
pub const ATTR_VPORT_NAME: u16 = 3;
pub const ATTR_VPORT_MAC: u16 = 4;
pub const ATTR_VPORT_MTU: u16 = 5;
pub const ATTR_VPORT_LINK_UP: u16 = 6;
/// 0 = switch-created, 1 = userspace-created.
pub const ATTR_VPORT_ORIGIN: u16 = 7;
pub const ATTR_VPORT_N_QUEUES: u16 = 8;
pub const ATTR_VPORT_UPCALL_PID: u16 = 9;
pub const ATTR_VPORT_DUMP_CURSOR: u16 = 10;

pub const ATTR_RING_PORT_NO: u16 = 1;
pub const ATTR_RING_QUEUE: u16 = 2;
pub const ATTR_RING_N_DESC: u16 = 3;
pub const ATTR_RING_N_FRAMES: u16 = 4;
pub const ATTR_RING_FRAME_SIZE: u16 = 5;
pub const ATTR_RING_REGION_SIZE: u16 = 6;
pub const ATTR_RING_SHM_PATH: u16 = 7;
pub const ATTR_RING_USER_ADDR: u16 = 8;
/// u64 handle of the event the shim signals (Windows) / doorbell path.
pub const ATTR_RING_EVENT: u16 = 9;
pub const ATTR_RING_ID: u16 = 10;

pub const ATTR_PACKET_PORT_NO: u16 = 1;
pub const ATTR_PACKET_DATA: u16 = 2;
/// Destination ports of `PACKET_CMD_EXECUTE`, u32 each.
pub const ATTR_PACKET_OUT_PORTS: u16 = 3;

/// Entries per dump reply.
pub const DUMP_BATCH: usize = 16;
/// Frames a socket's packet queue holds.
pub const SOCKET_QUEUE_DEPTH: usize = 256;
/// First port number of the userspace-created table.
pub const USER_PORT_BASE: u32 = 0x8000;

// ---- ring flags ----
/// Inject/fill ring: the shim sleeps; ring the doorbell after producing.
pub const RING_NEED_WAKEUP: u32 = 1;
/// Punt ring: a userspace thread sleeps; the shim signals after producing.
pub const RING_USER_WAITING: u32 = 2;

/// Most destination ports one inject descriptor names.
pub const INJECT_MAX_PORTS: usize = 5;

/// A Hyper-V port's kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortKind {
    /// The physical NIC bound to the switch.
    External,
    /// The host's virtual NIC.
    Internal,
    /// A virtual machine's NIC.
    VmNic,
    /// A kind this side does not know (kept, not rejected).
    Unknown(u32),
}

impl PortKind {
    pub fn to_u32(self) -> u32 {
        match self {
            PortKind::External => 1,
            PortKind::Internal => 2,
            PortKind::VmNic => 3,
            PortKind::Unknown(v) => v,
        }
    }

    pub fn from_u32(v: u32) -> PortKind {
        match v {
            1 => PortKind::External,
            2 => PortKind::Internal,
            3 => PortKind::VmNic,
            v => PortKind::Unknown(v),
        }
    }

    /// The name used in configs and the emulator's command line.
    pub fn parse(s: &str) -> Option<PortKind> {
        match s {
            "external" => Some(PortKind::External),
            "internal" => Some(PortKind::Internal),
            "vmnic" | "vm-nic" => Some(PortKind::VmNic),
            _ => None,
        }
    }
}

/// Who created a port (the two tables of the shim).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortOrigin {
    Switch,
    User,
}

/// The Hyper-V friendly name that oxvs port `port` matches.
pub fn friendly_name(port: &str) -> String {
    format!("OVS-{port}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_codes_follow_ctl_code_and_differ() {
        assert_eq!(IOCTL_TRANSACT >> 16, DEVICE_TYPE);
        assert_eq!(IOCTL_TRANSACT & 3, 2);
        assert_eq!(IOCTL_KICK & 3, 0);
        let codes = [
            IOCTL_TRANSACT,
            IOCTL_READ_EVENT,
            IOCTL_READ_PACKET,
            IOCTL_KICK,
        ];
        for (i, a) in codes.iter().enumerate() {
            for b in &codes[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(FAMILY_VPORT, 0x14);
    }

    #[test]
    fn port_kinds_round_trip_and_keep_unknown() {
        for k in [
            PortKind::External,
            PortKind::Internal,
            PortKind::VmNic,
            PortKind::Unknown(9),
        ] {
            assert_eq!(PortKind::from_u32(k.to_u32()), k);
        }
        assert_eq!(friendly_name("vm1"), "OVS-vm1");
    }
}
