//! Unix side: the emulator transport (a Unix stream socket per device
//! handle, a datagram doorbell, `/dev/shm` regions mapped with `mmap`) and
//! what the emulator needs to back Hyper-V ports with Linux interfaces
//! (AF_PACKET sockets, `poll`).
#![allow(unsafe_code, reason = "libc calls: mmap, AF_PACKET sockets, poll")]

use std::ffi::CString;
use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::time::Duration;

use crate::codec::{RegionLocation, RingGrant};
use crate::device::{Device, Doorbell};
use crate::ring::{Mapping, Region};

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// The doorbell socket of an emulator listening on `socket`.
pub(crate) fn kick_path(socket: &Path) -> PathBuf {
    let mut p = socket.as_os_str().to_owned();
    p.push(".kick");
    PathBuf::from(p)
}

/// Writes one framed IOCTL request or reply: `[u32 code][u32 len][bytes]`.
pub(crate) fn write_frame(w: &mut impl Write, code: u32, bytes: &[u8]) -> io::Result<()> {
    let mut buf = Vec::with_capacity(8 + bytes.len());
    buf.extend_from_slice(&code.to_le_bytes());
    buf.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    buf.extend_from_slice(bytes);
    w.write_all(&buf)
}

/// Reads one frame; `max` bounds the length the peer may claim.
pub(crate) fn read_frame(r: &mut impl Read, max: usize, out: &mut Vec<u8>) -> io::Result<u32> {
    let mut head = [0u8; 8];
    r.read_exact(&mut head)?;
    let code = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes"),
        ));
    }
    out.clear();
    out.resize(len, 0);
    r.read_exact(out)?;
    Ok(code)
}

/// A device handle to the emulator.
#[derive(Debug)]
pub(crate) struct UnixDevice {
    stream: UnixStream,
    socket: PathBuf,
}

pub(crate) fn open_device(path: &str) -> io::Result<Box<dyn Device>> {
    let stream = UnixStream::connect(path)?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    Ok(Box::new(UnixDevice {
        stream,
        socket: PathBuf::from(path),
    }))
}

impl Device for UnixDevice {
    fn ioctl(&mut self, code: u32, input: &[u8], output: &mut Vec<u8>) -> io::Result<()> {
        let wait = if code == crate::contract::IOCTL_READ_EVENT && input.len() == 4 {
            u64::from(u32::from_le_bytes([input[0], input[1], input[2], input[3]]))
        } else {
            0
        };
        self.stream
            .set_read_timeout(Some(Duration::from_millis(5000 + wait)))?;
        write_frame(&mut self.stream, code, input)?;
        let status = read_frame(&mut self.stream, crate::contract::MAX_MSG_LEN * 4, output)?;
        if status != 0 {
            output.clear();
            return Err(io::Error::from_raw_os_error(status as i32));
        }
        Ok(())
    }

    fn map_region(&mut self, grant: &RingGrant) -> io::Result<Region> {
        let RegionLocation::ShmPath(path) = &grant.location else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the emulator grants shared-memory files only",
            ));
        };
        map_shm(Path::new(path), grant.region_size as usize, false)
    }

    fn doorbell(&mut self, ring_id: u64) -> io::Result<Box<dyn Doorbell>> {
        let sock = UnixDatagram::unbound()?;
        sock.set_nonblocking(true)?;
        sock.connect(kick_path(&self.socket))?;
        Ok(Box::new(DatagramDoorbell { sock, ring_id }))
    }
}

#[derive(Debug)]
struct DatagramDoorbell {
    sock: UnixDatagram,
    ring_id: u64,
}

impl Doorbell for DatagramDoorbell {
    fn ring(&self) -> io::Result<()> {
        match self.sock.send(&self.ring_id.to_le_bytes()) {
            // A full doorbell queue already wakes the shim.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            r => r.map(drop),
        }
    }
}

/// An `mmap`ed shared file.
#[derive(Debug)]
struct ShmMapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: a plain mapping address; unmapped once, in drop.
unsafe impl Send for ShmMapping {}
// SAFETY: never accessed through `&ShmMapping`.
unsafe impl Sync for ShmMapping {}
impl Mapping for ShmMapping {}

impl Drop for ShmMapping {
    fn drop(&mut self) {
        // SAFETY: mapped by `map_shm` with this length; the region that
        // used it is gone (it owns this mapping).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Maps `len` bytes of the file at `path` shared; `create` makes a new,
/// zeroed file of that size (the shim side).
pub(crate) fn map_shm(path: &Path, len: usize, create: bool) -> io::Result<Region> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(create)
        .mode(0o600)
        .open(path)?;
    if create {
        file.set_len(len as u64)?;
    } else if file.metadata()?.len() < len as u64 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "shared-memory file shorter than the granted region",
        ));
    }
    if len == 0 {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: a fresh shared mapping of an open file; the kernel picks the
    // address; the result is checked.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_POPULATE,
            file.as_raw_fd(),
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(io::Error::last_os_error)?;
    // SAFETY: `len` bytes at `ptr` are mapped read/write (page aligned, so
    // 64-byte aligned) until the mapping is dropped; we create no other
    // references to them.
    Ok(unsafe { Region::new(ptr, len, Box::new(ShmMapping { ptr, len })) })
}

/// An AF_PACKET socket bound to one interface: what backs an emulated
/// Hyper-V port.
#[derive(Debug)]
pub(crate) struct PacketSocket {
    fd: OwnedFd,
}

impl PacketSocket {
    pub(crate) fn open(ifname: &str) -> io::Result<PacketSocket> {
        let name = CString::new(ifname).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: `name` is NUL-terminated.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            return Err(io::Error::last_os_error());
        }
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket creation; the result is checked.
        let fd = check(unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                i32::from(proto),
            )
        })?;
        // SAFETY: `fd` is a new descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let one: libc::c_int = 1;
        // SAFETY: `one` is a valid c_int for reads of its size. Our own
        // sends must not come back as receives.
        check(unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_IGNORE_OUTGOING,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        })?;
        let bufsize: libc::c_int = 4 << 20;
        for opt in [libc::SO_RCVBUFFORCE, libc::SO_SNDBUFFORCE] {
            // SAFETY: as above; failure (no CAP_NET_ADMIN) is harmless.
            unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    opt,
                    (&bufsize as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
        }
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = proto;
        addr.sll_ifindex = ifindex as i32;
        // SAFETY: `addr` is a valid sockaddr_ll of the given size.
        check(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        })?;
        Ok(PacketSocket { fd })
    }

    /// Receives up to `offsets.len()` (at most 32) frames in one call,
    /// frame `i` into `cap` bytes of `region` at `offsets[i]`; `lens[i]`
    /// gets its full length (above `cap`: truncated). Returns how many.
    pub(crate) fn recv_batch_into(
        &self,
        region: &Region,
        offsets: &[usize],
        cap: usize,
        lens: &mut [usize],
    ) -> io::Result<usize> {
        const MAX: usize = 32;
        let n = offsets.len().min(lens.len()).min(MAX);
        if n == 0 {
            return Ok(0);
        }
        // SAFETY: iovec and mmsghdr are plain data; all-zero is valid.
        let mut iov: [libc::iovec; MAX] = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut msgs: [libc::mmsghdr; MAX] = unsafe { std::mem::zeroed() };
        for i in 0..n {
            iov[i].iov_base = region.frame_ptr(offsets[i], cap).as_ptr().cast();
            iov[i].iov_len = cap;
            msgs[i].msg_hdr.msg_iov = &mut iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: each iovec points at `cap` bytes inside the mapping
        // (checked by `frame_ptr`) in a frame the ring protocol gave us;
        // `msgs` and `iov` outlive the call.
        let got = unsafe {
            libc::recvmmsg(
                self.fd.as_raw_fd(),
                msgs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                std::ptr::null_mut(),
            )
        };
        match self.result(got as isize)? {
            None => Ok(0),
            Some(got) => {
                for i in 0..got {
                    lens[i] = msgs[i].msg_len as usize;
                }
                Ok(got)
            }
        }
    }

    /// Sends `frames` (offset, length in `region`; at most 32) in one
    /// call; returns how many the kernel took.
    pub(crate) fn send_batch_from(
        &self,
        region: &Region,
        frames: &[(usize, usize)],
    ) -> io::Result<usize> {
        const MAX: usize = 32;
        let n = frames.len().min(MAX);
        if n == 0 {
            return Ok(0);
        }
        // SAFETY: plain data; all-zero is valid.
        let mut iov: [libc::iovec; MAX] = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut msgs: [libc::mmsghdr; MAX] = unsafe { std::mem::zeroed() };
        for (i, (off, len)) in frames.iter().take(n).enumerate() {
            iov[i].iov_base = region.frame_ptr(*off, *len).as_ptr().cast();
            iov[i].iov_len = *len;
            msgs[i].msg_hdr.msg_iov = &mut iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: each iovec points at bytes inside the mapping (checked
        // by `frame_ptr`); the kernel only reads them; the arrays outlive
        // the call.
        let sent = unsafe {
            libc::sendmmsg(
                self.fd.as_raw_fd(),
                msgs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        Ok(self.result(sent as isize)?.unwrap_or(0))
    }

    /// Receives one frame into `buf`.
    pub(crate) fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        // SAFETY: `buf` is valid for writes of its length.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_TRUNC,
            )
        };
        self.result(n)
    }

    fn result(&self, n: isize) -> io::Result<Option<usize>> {
        if n >= 0 {
            return Ok(Some(n as usize));
        }
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted {
            Ok(None)
        } else {
            Err(e)
        }
    }

    /// Sends `bytes` as one frame.
    pub(crate) fn send(&self, bytes: &[u8]) -> io::Result<()> {
        // SAFETY: `bytes` is valid for reads of its length.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), 0) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}

impl AsFd for PacketSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Waits until one of `fds` is readable or `timeout_ms` passes.
pub(crate) fn poll_readable(fds: &[BorrowedFd<'_>], timeout_ms: i32) -> io::Result<()> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: `pfds` is a valid array of `pfds.len()` pollfd.
    let rc = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout_ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(())
}
