//! The transport choke point: everything the control client and the
//! netdev need from the device is behind [`Device`] and [`Doorbell`], so
//! the driver logic runs the same over the Windows device handle, the
//! emulator's Unix socket, or a fake in tests.

use std::fmt;
use std::io;

use crate::codec::RingGrant;
use crate::ring::Region;

/// One open device handle: one netlink socket.
pub trait Device: Send + fmt::Debug {
    /// One IOCTL: `input` in, the reply written to `output` (cleared
    /// first). An empty reply is valid (nothing queued).
    fn ioctl(&mut self, code: u32, input: &[u8], output: &mut Vec<u8>) -> io::Result<()>;
    /// Maps the region the shim granted.
    fn map_region(&mut self, grant: &RingGrant) -> io::Result<Region>;
    /// A doorbell that wakes the shim's injector for ring `ring_id`.
    fn doorbell(&mut self, ring_id: u64) -> io::Result<Box<dyn Doorbell>>;
}

/// Wakes the shim after producing on an inject ring that asked for it.
pub trait Doorbell: Send + Sync + fmt::Debug {
    fn ring(&self) -> io::Result<()>;
}

/// Opens the device at `path`: the Win32 device path on Windows, the
/// emulator's control socket elsewhere.
pub fn open(path: &str) -> io::Result<Box<dyn Device>> {
    crate::sys::open_device(path)
}

/// The default device path: [`crate::contract::DEVICE_NAME_USER`] on
/// Windows; `$OXVS_WINSHIM_SOCKET` or the emulator's default elsewhere.
pub fn default_path() -> String {
    if cfg!(windows) {
        crate::contract::DEVICE_NAME_USER.to_string()
    } else {
        std::env::var(crate::contract::EMULATOR_SOCKET_ENV)
            .unwrap_or_else(|_| crate::contract::EMULATOR_DEFAULT_SOCKET.to_string())
    }
}
