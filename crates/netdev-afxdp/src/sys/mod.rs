//! The choke point for every system call this crate makes (as aya's
//! `sys/mod.rs`): sockets, socket options, `mmap`, ioctls, the `bpf(2)`
//! commands, rtnetlink and the network-namespace switch. Everything above
//! this module is safe code working on [`OwnedFd`]s, [`Mmap`]s and plain
//! values; the only other unsafe code in the crate is the ring and UMEM
//! memory access in `afxdp::ring` and `afxdp::umem`.
//!
//! Errors are `std::io::Error` from `errno`; callers add the interface name
//! and what they were doing.

mod bpf;
mod netlink;

pub use bpf::{
    BpfInsn, XdpLinkMode, bpf_link_create_tcx_ingress, bpf_link_create_xdp, bpf_link_detach,
    bpf_map_create_u64_array, bpf_map_create_xskmap, bpf_map_lookup_u64, bpf_map_update_u32,
    bpf_prog_get_fd_by_id, bpf_prog_load_tc, bpf_prog_load_xdp, bpf_prog_name,
    bpf_prog_test_run_xdp_live, op,
};
pub use netlink::{XdpAttachment, xdp_query, xdp_set_fd_legacy};

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;

/// `-1` → the current `errno` as an error, anything else → `Ok`.
fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn check_ssize(ret: libc::ssize_t) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

/// Takes ownership of a descriptor a successful syscall returned.
fn owned(fd: libc::c_int) -> io::Result<OwnedFd> {
    let fd = check(fd)?;
    // SAFETY: `fd` was just returned by the kernel and is owned by no one
    // else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

// ---------------------------------------------------------------- sockets

/// `socket(domain, type | SOCK_CLOEXEC, protocol)`.
pub fn socket(domain: libc::c_int, ty: libc::c_int, protocol: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments.
    owned(unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, protocol) })
}

/// `setsockopt` with a value of type `T` (a plain `repr(C)` struct or
/// integer).
pub fn setsockopt<T: Copy>(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: `value` is a valid `T` for reads of `size_of::<T>()` bytes.
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// `getsockopt` into a zeroed `T`; returns it with the length the kernel
/// wrote.
pub fn getsockopt<T: Copy>(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<(T, usize)> {
    // SAFETY: callers only use plain-old-data `repr(C)` types (integers and
    // structs of integers), for which all-zero is a valid value.
    let mut value: T = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `value` is writable for `len` bytes and `len` is a valid
    // in/out length.
    check(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&mut value as *mut T).cast(),
            &mut len,
        )
    })?;
    Ok((value, len as usize))
}

/// `bind` to an AF_XDP address.
pub fn bind_xdp(fd: &OwnedFd, addr: &libc::sockaddr_xdp) -> io::Result<()> {
    // SAFETY: `addr` is a valid sockaddr_xdp of the length passed.
    check(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (addr as *const libc::sockaddr_xdp).cast(),
            std::mem::size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// `bind` to an AF_PACKET address.
pub fn bind_packet(fd: &OwnedFd, addr: &libc::sockaddr_ll) -> io::Result<()> {
    // SAFETY: `addr` is a valid sockaddr_ll of the length passed.
    check(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (addr as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// The AF_XDP transmit kick: `sendto(fd, NULL, 0, MSG_DONTWAIT)`.
pub fn xsk_kick_tx(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: a zero-length send with no buffer and no address.
    check_ssize(unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            std::ptr::null(),
            0,
            libc::MSG_DONTWAIT,
            std::ptr::null(),
            0,
        )
    })
    .map(drop)
}

/// The AF_XDP fill-ring kick: `recvfrom(fd, NULL, 0, MSG_DONTWAIT)`.
pub fn xsk_kick_rx(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: a zero-length receive with no buffer and no address.
    check_ssize(unsafe {
        libc::recvfrom(
            fd.as_raw_fd(),
            std::ptr::null_mut(),
            0,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    })
    .map(drop)
}

/// Non-blocking `read` of one frame into `buf`.
pub fn read(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is writable for its length.
    check_ssize(unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) })
}

/// `write` of one frame.
pub fn write(fd: &OwnedFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is readable for its length.
    check_ssize(unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) })
}

/// What one received datagram was.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecvInfo {
    /// Full length (more than the buffer when it was truncated).
    pub len: usize,
    /// The VLAN tag the kernel took off the frame (`(tpid, tci)`), from
    /// `PACKET_AUXDATA`.
    pub vlan: Option<(u16, u16)>,
    /// The L4 checksum is partial (`TP_STATUS_CSUMNOTREADY`).
    pub csum_partial: bool,
}

/// Room for one `PACKET_AUXDATA` control message.
const AUX_SPACE: usize = 64;

/// Receives up to 32 datagrams in one `recvmmsg(MSG_DONTWAIT | MSG_TRUNC)`
/// on an AF_PACKET socket with `PACKET_AUXDATA` on; `info[i]` describes
/// datagram `i`. Returns how many arrived.
pub fn recvmmsg(fd: &OwnedFd, bufs: &mut [&mut [u8]], info: &mut [RecvInfo]) -> io::Result<usize> {
    const MAX: usize = dp_core::packet::MAX_BURST;
    let n = bufs.len().min(MAX).min(info.len());
    // SAFETY: all-zero iovec/mmsghdr values are valid (null pointers,
    // zero lengths).
    let mut iov: [libc::iovec; MAX] = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut msgs: [libc::mmsghdr; MAX] = unsafe { std::mem::zeroed() };
    // u64 elements keep each control buffer aligned for cmsghdr.
    let mut control = [[0u64; AUX_SPACE / 8]; MAX];
    for i in 0..n {
        iov[i].iov_base = bufs[i].as_mut_ptr().cast();
        iov[i].iov_len = bufs[i].len();
        msgs[i].msg_hdr.msg_iov = &mut iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_control = control[i].as_mut_ptr().cast();
        msgs[i].msg_hdr.msg_controllen = AUX_SPACE;
    }
    // SAFETY: `msgs[..n]` point at `iov[..n]` (the caller's writable
    // buffers) and at `control[..n]`; all live across the call.
    let got = check(unsafe {
        libc::recvmmsg(
            fd.as_raw_fd(),
            msgs.as_mut_ptr(),
            n as libc::c_uint,
            libc::MSG_DONTWAIT | libc::MSG_TRUNC,
            std::ptr::null_mut(),
        )
    })? as usize;
    for i in 0..got {
        info[i] = RecvInfo {
            len: msgs[i].msg_len as usize,
            vlan: None,
            csum_partial: false,
        };
        let hdr = &msgs[i].msg_hdr;
        // SAFETY: the kernel filled `msg_control`/`msg_controllen` of this
        // header; CMSG_FIRSTHDR/NXTHDR stay inside that buffer.
        let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(hdr) };
        while !cmsg.is_null() {
            // SAFETY: `cmsg` is a header inside the control buffer.
            let c = unsafe { &*cmsg };
            if c.cmsg_level == libc::SOL_PACKET && c.cmsg_type == libc::PACKET_AUXDATA {
                // SAFETY: PACKET_AUXDATA carries a tpacket_auxdata; the
                // data may be unaligned, hence read_unaligned.
                let aux: libc::tpacket_auxdata = unsafe {
                    libc::CMSG_DATA(cmsg)
                        .cast::<libc::tpacket_auxdata>()
                        .read_unaligned()
                };
                info[i].csum_partial = aux.tp_status & libc::TP_STATUS_CSUMNOTREADY != 0;
                if aux.tp_status & libc::TP_STATUS_VLAN_VALID != 0 {
                    let tpid = if aux.tp_status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                        aux.tp_vlan_tpid
                    } else {
                        0x8100
                    };
                    info[i].vlan = Some((tpid, aux.tp_vlan_tci));
                }
            }
            // SAFETY: as for CMSG_FIRSTHDR.
            cmsg = unsafe { libc::CMSG_NXTHDR(hdr, cmsg) };
        }
    }
    Ok(got)
}

/// Sends up to 32 frames in one `sendmmsg(MSG_DONTWAIT)`; returns how many
/// the kernel took (the rest were not sent).
pub fn sendmmsg(fd: &OwnedFd, frames: &[&[u8]]) -> io::Result<usize> {
    const MAX: usize = dp_core::packet::MAX_BURST;
    let n = frames.len().min(MAX);
    if n == 0 {
        return Ok(0);
    }
    // SAFETY: all-zero iovec/mmsghdr values are valid.
    let mut iov: [libc::iovec; MAX] = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut msgs: [libc::mmsghdr; MAX] = unsafe { std::mem::zeroed() };
    for i in 0..n {
        iov[i].iov_base = frames[i].as_ptr() as *mut libc::c_void;
        iov[i].iov_len = frames[i].len();
        msgs[i].msg_hdr.msg_iov = &mut iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: the kernel only reads through `iov` (a send), and every
    // pointer stays valid across the call.
    check(unsafe {
        libc::sendmmsg(
            fd.as_raw_fd(),
            msgs.as_mut_ptr(),
            n as libc::c_uint,
            libc::MSG_DONTWAIT,
        )
    })
    .map(|sent| sent as usize)
}

// ------------------------------------------------------------------ mmap

/// A transparent huge page on x86_64 and arm64 with 4 KiB base pages.
pub const HUGE_PAGE: usize = 2 << 20;

/// A memory mapping, unmapped on drop.
#[derive(Debug)]
pub struct Mmap {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory; who may touch which bytes is the
// business of the owners (rings, UMEM), which document their own sharing.
unsafe impl Send for Mmap {}
// SAFETY: as above; `Mmap` itself only hands out its address.
unsafe impl Sync for Mmap {}

impl Mmap {
    /// An anonymous, private, pre-faulted mapping of `len` bytes (UMEM).
    pub fn anonymous(len: usize) -> io::Result<Mmap> {
        // SAFETY: a fresh anonymous mapping aliases nothing.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        Self::from_ret(ptr, len)
    }

    /// Like [`Mmap::anonymous`], but asks for transparent huge pages: the
    /// mapping starts on a [`HUGE_PAGE`] boundary and is advised
    /// `MADV_HUGEPAGE` before it is faulted in, so that with THP in
    /// `always` or `madvise` mode the kernel backs it with 2 MiB pages
    /// where it can (the UMEM's module docs say why). Where it cannot (THP
    /// `never`, no huge page free, less than 2 MiB) the mapping is the same
    /// zeroed memory in small pages: the advice is a hint.
    pub fn anonymous_huge(len: usize) -> io::Result<Mmap> {
        if len < HUGE_PAGE {
            return Self::anonymous(len);
        }
        // A huge page more than needed, then the unaligned head and the
        // tail given back, so that the mapping starts on a boundary.
        let span = len + HUGE_PAGE;
        // SAFETY: a fresh anonymous mapping aliases nothing.
        let raw = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                span,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if raw == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let start = raw as usize;
        let aligned = start.next_multiple_of(HUGE_PAGE);
        let head = aligned - start;
        let tail = span - head - len;
        // SAFETY: both ranges lie inside the mapping just made and nothing
        // refers to them; [aligned, aligned + len) stays mapped.
        unsafe {
            if head > 0 {
                libc::munmap(raw, head);
            }
            if tail > 0 {
                libc::munmap((aligned + len) as *mut libc::c_void, tail);
            }
        }
        let map = Self::from_ret(aligned as *mut libc::c_void, len)?;
        // SAFETY: advice on our own fresh mapping; neither call changes
        // what it holds (zeroes).
        unsafe {
            // A hint (THP compiled out: small pages), so the result is
            // not checked.
            libc::madvise(aligned as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
            // Fault it all in now, as MAP_POPULATE does for the small-page
            // mapping (which would fault before the advice): the PMD must
            // not take page faults. Before Linux 5.14 (no
            // MADV_POPULATE_WRITE) the UMEM registration's pinning faults
            // it in instead.
            libc::madvise(aligned as *mut libc::c_void, len, libc::MADV_POPULATE_WRITE);
        }
        Ok(map)
    }

    /// A shared mapping of `len` bytes of `fd` at `offset` (an AF_XDP
    /// ring).
    pub fn shared(fd: &OwnedFd, len: usize, offset: u64) -> io::Result<Mmap> {
        // SAFETY: maps kernel ring memory; nothing in this process aliases
        // a fresh mapping.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                offset as libc::off_t,
            )
        };
        Self::from_ret(ptr, len)
    }

    fn from_ret(ptr: *mut libc::c_void, len: usize) -> io::Result<Mmap> {
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Mmap { ptr, len })
    }

    /// The first byte.
    pub fn ptr(&self) -> NonNull<u8> {
        self.ptr
    }

    pub fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe a mapping this object created and
        // owns; its users (rings, UMEM frames) are gone by now (their
        // owners hold this `Mmap` alive).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

// ------------------------------------------------------------ interfaces

/// `if_nametoindex`; `ENODEV` when there is no such interface.
pub fn ifindex(name: &str) -> io::Result<u32> {
    let cname = CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `cname` is a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    if index == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(index)
    }
}

fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains('\0') {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: ifreq is plain data; all-zero is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    Ok(req)
}

/// Runs interface ioctl `request` on a throwaway datagram socket.
fn if_ioctl(name: &str, request: libc::Ioctl, req: &mut libc::ifreq) -> io::Result<()> {
    let _ = name;
    let sock = socket(libc::AF_INET, libc::SOCK_DGRAM, 0)?;
    // SAFETY: `req` is a valid ifreq for every interface request used here.
    check(unsafe { libc::ioctl(sock.as_raw_fd(), request, req as *mut libc::ifreq) }).map(drop)
}

/// The interface's MTU.
pub fn if_mtu(name: &str) -> io::Result<u32> {
    let mut req = ifreq(name)?;
    if_ioctl(name, libc::SIOCGIFMTU, &mut req)?;
    // SAFETY: SIOCGIFMTU filled the `ifru_mtu` member.
    Ok(unsafe { req.ifr_ifru.ifru_mtu } as u32)
}

/// Sets the interface's MTU.
pub fn if_set_mtu(name: &str, mtu: u32) -> io::Result<()> {
    let mut req = ifreq(name)?;
    req.ifr_ifru.ifru_mtu =
        libc::c_int::try_from(mtu).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    if_ioctl(name, libc::SIOCSIFMTU, &mut req)
}

/// The interface's Ethernet address.
pub fn if_mac(name: &str) -> io::Result<[u8; 6]> {
    let mut req = ifreq(name)?;
    if_ioctl(name, libc::SIOCGIFHWADDR, &mut req)?;
    // SAFETY: SIOCGIFHWADDR filled the `ifru_hwaddr` member.
    let sa = unsafe { req.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; 6];
    for (dst, src) in mac.iter_mut().zip(sa.sa_data.iter()) {
        *dst = *src as u8;
    }
    Ok(mac)
}

/// The interface's flags (`IFF_UP`, `IFF_RUNNING`, ...).
pub fn if_flags(name: &str) -> io::Result<u32> {
    let mut req = ifreq(name)?;
    if_ioctl(name, libc::SIOCGIFFLAGS, &mut req)?;
    // SAFETY: SIOCGIFFLAGS filled the `ifru_flags` member.
    Ok(unsafe { req.ifr_ifru.ifru_flags } as u16 as u32)
}

/// Sets `IFF_UP` on the interface.
pub fn if_set_up(name: &str) -> io::Result<()> {
    let flags = if_flags(name)?;
    if flags & libc::IFF_UP as u32 != 0 {
        return Ok(());
    }
    let mut req = ifreq(name)?;
    req.ifr_ifru.ifru_flags = (flags | libc::IFF_UP as u32) as libc::c_short;
    if_ioctl(name, libc::SIOCSIFFLAGS, &mut req)
}

// ------------------------------------------------------------------ tun

/// Opens `/dev/net/tun` and attaches it to tap device `name` (created if
/// missing, `IFF_NO_PI`), non-blocking.
pub fn tap_open(name: &str) -> io::Result<OwnedFd> {
    // SAFETY: the path is a valid C string literal.
    let fd = owned(unsafe {
        libc::open(
            c"/dev/net/tun".as_ptr(),
            libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    })?;
    let mut req = ifreq(name)?;
    req.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
    // SAFETY: TUNSETIFF reads and writes an ifreq.
    check(unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TUNSETIFF,
            &mut req as *mut libc::ifreq,
        )
    })?;
    Ok(fd)
}

// ---------------------------------------------------------- namespaces

/// Moves the calling thread into network namespace `/run/netns/<name>`
/// (as `ip netns exec` does for a process). Only this thread changes.
pub fn enter_netns(name: &str) -> io::Result<()> {
    let path = CString::new(format!("/run/netns/{name}"))
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `path` is a valid NUL-terminated string.
    let fd = owned(unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) })?;
    // SAFETY: setns on a namespace descriptor we own; affects only the
    // calling thread's network namespace.
    check(unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) }).map(drop)
}

/// Sets a socket's receive buffer to `bytes`, above `rmem_max`
/// (`SO_RCVBUFFORCE`, needs CAP_NET_ADMIN).
pub fn set_rcvbuf_force(sock: BorrowedFd<'_>, bytes: u32) -> io::Result<()> {
    let value = bytes as libc::c_int;
    // SAFETY: `value` is a valid c_int for reads of its size.
    check(unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// Drops every capability of the calling thread (only; capabilities are
/// per thread in Linux), as an unprivileged caller would be.
pub fn drop_thread_capabilities() -> io::Result<()> {
    #[repr(C)]
    struct CapHeader {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct CapData {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [CapData {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: capset reads a version-3 header and two data words, which
    // both point at; pid 0 is the calling thread.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        )
    };
    check(ret as libc::c_int).map(drop)
}

/// The raw value of `fd` (for XSKMAP entries and `sxdp_shared_umem_fd`).
pub fn raw(fd: &OwnedFd) -> RawFd {
    fd.as_raw_fd()
}

/// True when the error means "try again later" (`EAGAIN`, `EINTR`).
pub fn would_block(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EINTR))
}
