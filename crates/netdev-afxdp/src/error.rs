//! Why a port could not be opened, naming the interface and the cause.

use std::fmt;
use std::io;

/// The cause of an [`OpenError`].
#[derive(Debug)]
pub enum OpenCause {
    /// No interface by that name (in this network namespace).
    NoSuchInterface,
    /// The kernel refused for lack of privilege during `op`.
    NoPermission { op: &'static str },
    /// The driver cannot run XDP or AF_XDP in the requested mode.
    NoXdpSupport { mode: &'static str, detail: String },
    /// The MTU does not fit the frame (AF_XDP frames are one page).
    MtuTooLarge { mtu: u32, max: u32 },
    /// More queues were requested than the device has.
    TooManyQueues { requested: usize, available: usize },
    /// Another (live or foreign) XDP program owns the interface.
    XdpBusy { program: String, id: u32 },
    /// A configuration value is out of range.
    BadConfig(String),
    /// Any other system error, with the operation that failed.
    Io { op: &'static str, err: io::Error },
}

/// A port failed to open.
#[derive(Debug)]
pub struct OpenError {
    pub port: String,
    pub cause: OpenCause,
}

impl OpenError {
    pub(crate) fn new(port: &str, cause: OpenCause) -> OpenError {
        OpenError {
            port: port.to_string(),
            cause,
        }
    }

    /// Classifies an `io::Error` from `op`: `ENODEV` → no such interface,
    /// `EPERM`/`EACCES` → no permission, the rest as is.
    pub(crate) fn io(port: &str, op: &'static str, err: io::Error) -> OpenError {
        let cause = match err.raw_os_error() {
            Some(libc::ENODEV) | Some(libc::ENXIO) => OpenCause::NoSuchInterface,
            Some(libc::EPERM) | Some(libc::EACCES) => OpenCause::NoPermission { op },
            _ => OpenCause::Io { op, err },
        };
        OpenError::new(port, cause)
    }
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let port = &self.port;
        match &self.cause {
            OpenCause::NoSuchInterface => write!(f, "port {port}: no such network interface"),
            OpenCause::NoPermission { op } => write!(
                f,
                "port {port}: permission denied ({op}): run as root or with \
                 CAP_NET_ADMIN, CAP_NET_RAW and CAP_BPF"
            ),
            OpenCause::NoXdpSupport { mode, detail } => {
                write!(
                    f,
                    "port {port}: xdp-mode {mode} is not supported here: {detail}"
                )
            }
            OpenCause::MtuTooLarge { mtu, max } => write!(
                f,
                "port {port}: MTU {mtu} is too large for AF_XDP frames of {} bytes \
                 (at most {max}: the frame less {} bytes of XDP headroom and the Ethernet \
                 and VLAN headers)",
                crate::afxdp::FRAME_SIZE,
                crate::afxdp::XDP_PACKET_HEADROOM
            ),
            OpenCause::TooManyQueues {
                requested,
                available,
            } => write!(
                f,
                "port {port}: {requested} rx queues requested but the device has {available}"
            ),
            OpenCause::XdpBusy { program, id } => write!(
                f,
                "port {port}: XDP program {program:?} (id {id}) is already attached \
                 and is not a stale oxvs program"
            ),
            OpenCause::BadConfig(what) => write!(f, "port {port}: {what}"),
            OpenCause::Io { op, err } => write!(f, "port {port}: {op}: {err}"),
        }
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.cause {
            OpenCause::Io { err, .. } => Some(err),
            _ => None,
        }
    }
}
