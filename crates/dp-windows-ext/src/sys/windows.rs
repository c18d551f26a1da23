//! Windows side: the shim's device through `windows-sys`. One handle per
//! socket, opened for overlapped I/O; every IOCTL is issued overlapped and
//! waited on with its own event (so `IOCTL_READ_EVENT` can pend with a
//! bound and be cancelled); ring regions are mapped into this process by
//! the shim, which returns their address, and stay mapped until the handle
//! that attached them closes (the mapping object keeps the handle open).
#![allow(
    unsafe_code,
    reason = "Win32 FFI: CreateFileW, DeviceIoControl, events"
)]

use std::io;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::ptr::NonNull;
use std::sync::Arc;

use windows_sys::Win32::Foundation::{
    ERROR_IO_PENDING, GENERIC_READ, GENERIC_WRITE, GetLastError, HANDLE, INVALID_HANDLE_VALUE,
    WAIT_OBJECT_0,
};
use windows_sys::Win32::Storage::FileSystem::{
    CreateFileW, FILE_FLAG_OVERLAPPED, FILE_SHARE_READ, FILE_SHARE_WRITE, OPEN_EXISTING,
};
use windows_sys::Win32::System::IO::{
    CancelIoEx, DeviceIoControl, GetOverlappedResult, OVERLAPPED,
};
use windows_sys::Win32::System::Threading::{CreateEventW, WaitForSingleObject};

use crate::codec::{RegionLocation, RingGrant};
use crate::contract::{IOCTL_KICK, IOCTL_READ_EVENT, MAX_MSG_LEN};
use crate::device::{Device, Doorbell};
use crate::ring::{Mapping, Region};

const INFINITE: u32 = u32::MAX;

fn handle(raw: HANDLE) -> io::Result<OwnedHandle> {
    if raw.is_null() || raw == INVALID_HANDLE_VALUE {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a valid handle just returned to us, owned by nobody else.
    Ok(unsafe { OwnedHandle::from_raw_handle(raw) })
}

fn new_event() -> io::Result<OwnedHandle> {
    // SAFETY: an anonymous manual-reset event; null attributes and name
    // are allowed.
    handle(unsafe { CreateEventW(std::ptr::null(), 1, 0, std::ptr::null()) })
}

/// One overlapped DeviceIoControl on `dev`, waiting up to `wait_ms`
/// (`None`: until done). A timed-out request is cancelled and reads as an
/// empty reply.
fn ioctl(
    dev: &OwnedHandle,
    event: &OwnedHandle,
    code: u32,
    input: &[u8],
    output: &mut [u8],
    wait_ms: Option<u32>,
) -> io::Result<usize> {
    let mut ov = OVERLAPPED {
        hEvent: event.as_raw_handle(),
        ..OVERLAPPED::default()
    };
    let mut bytes = 0u32;
    // SAFETY: the buffers are valid for their lengths and, with `ov`,
    // outlive the request: we wait for completion (or cancel and wait)
    // before returning.
    let ok = unsafe {
        DeviceIoControl(
            dev.as_raw_handle(),
            code,
            input.as_ptr().cast(),
            input.len() as u32,
            output.as_mut_ptr().cast(),
            output.len() as u32,
            &mut bytes,
            &mut ov,
        )
    };
    if ok == 0 {
        // SAFETY: reads the calling thread's last error.
        let err = unsafe { GetLastError() };
        if err != ERROR_IO_PENDING {
            return Err(io::Error::from_raw_os_error(err as i32));
        }
        // SAFETY: the event is ours and valid.
        let waited =
            unsafe { WaitForSingleObject(event.as_raw_handle(), wait_ms.unwrap_or(INFINITE)) };
        if waited != WAIT_OBJECT_0 {
            // SAFETY: cancels only our request; we then wait for it to
            // finish so the buffers are no longer used.
            unsafe { CancelIoEx(dev.as_raw_handle(), &ov) };
        }
        // SAFETY: `ov` is the request issued above; waiting (bWait = 1)
        // returns once the driver is done with the buffers.
        let ok = unsafe { GetOverlappedResult(dev.as_raw_handle(), &ov, &mut bytes, 1) };
        if ok == 0 {
            return if waited != WAIT_OBJECT_0 {
                Ok(0)
            } else {
                Err(io::Error::last_os_error())
            };
        }
    }
    Ok((bytes as usize).min(output.len()))
}

/// A device handle to the shim.
#[derive(Debug)]
pub(crate) struct WinDevice {
    dev: Arc<OwnedHandle>,
    event: OwnedHandle,
}

pub(crate) fn open_device(path: &str) -> io::Result<Box<dyn Device>> {
    let wide: Vec<u16> = path.encode_utf16().chain(std::iter::once(0)).collect();
    // SAFETY: `wide` is NUL-terminated; null security attributes and
    // template are allowed.
    let raw = unsafe {
        CreateFileW(
            wide.as_ptr(),
            GENERIC_READ | GENERIC_WRITE,
            FILE_SHARE_READ | FILE_SHARE_WRITE,
            std::ptr::null(),
            OPEN_EXISTING,
            FILE_FLAG_OVERLAPPED,
            std::ptr::null_mut(),
        )
    };
    Ok(Box::new(WinDevice {
        dev: Arc::new(handle(raw)?),
        event: new_event()?,
    }))
}

impl Device for WinDevice {
    fn ioctl(&mut self, code: u32, input: &[u8], output: &mut Vec<u8>) -> io::Result<()> {
        let wait = (code == IOCTL_READ_EVENT && input.len() == 4)
            .then(|| u32::from_le_bytes([input[0], input[1], input[2], input[3]]));
        output.clear();
        output.resize(MAX_MSG_LEN, 0);
        let n = ioctl(&self.dev, &self.event, code, input, output, wait)?;
        output.truncate(n);
        Ok(())
    }

    fn map_region(&mut self, grant: &RingGrant) -> io::Result<Region> {
        let RegionLocation::UserAddr(addr) = grant.location else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the Windows shim grants mapped addresses only",
            ));
        };
        let ptr = NonNull::new(addr as usize as *mut u8).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "the shim granted a null region")
        })?;
        if addr % 4096 != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the shim granted an unaligned region",
            ));
        }
        let mapping = ShimMapping {
            _dev: Arc::clone(&self.dev),
        };
        // SAFETY: by the contract, the shim mapped `region_size` bytes at
        // `addr` read/write into this process and keeps them mapped until
        // the handle that attached them closes; `mapping` keeps that
        // handle open for as long as the region lives. The address is
        // page aligned (checked).
        Ok(unsafe { Region::new(ptr, grant.region_size as usize, Box::new(mapping)) })
    }

    fn doorbell(&mut self, ring_id: u64) -> io::Result<Box<dyn Doorbell>> {
        Ok(Box::new(WinDoorbell {
            dev: Arc::clone(&self.dev),
            event: new_event()?,
            ring_id,
        }))
    }
}

/// Keeps the attaching handle open while the region is in use.
#[derive(Debug)]
struct ShimMapping {
    _dev: Arc<OwnedHandle>,
}

impl Mapping for ShimMapping {}

#[derive(Debug)]
struct WinDoorbell {
    dev: Arc<OwnedHandle>,
    event: OwnedHandle,
    ring_id: u64,
}

impl Doorbell for WinDoorbell {
    fn ring(&self) -> io::Result<()> {
        ioctl(
            &self.dev,
            &self.event,
            IOCTL_KICK,
            &self.ring_id.to_le_bytes(),
            &mut [],
            None,
        )
        .map(drop)
    }
}
