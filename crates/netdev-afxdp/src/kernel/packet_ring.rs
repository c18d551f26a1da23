//! A PACKET_MMAP receive ring (TPACKET_V2) for `system` ports: the kernel
//! writes each received frame into the next slot of a ring shared with us
//! and flips the slot's status word to "user"; we copy the frame out and
//! flip it back. Receiving costs no system call at all.
//!
//! V2 rather than V3: V3 hands over whole blocks, on fill or on a
//! millisecond retire timer, which delays every packet at low rates; V2
//! hands over each frame at once.
//!
//! # Invariants
//! - Slots are taken in ring order; a slot whose status says "user" is ours
//!   until we store "kernel" back (release), after reading it.
//! - The mapping lives as long as the ring (it owns its `Mmap`).

use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::sys::{self, Mmap};

/// `TPACKET_V2` in `enum tpacket_versions`.
const TPACKET_V2: libc::c_int = 1;
const BLOCK_SIZE: u32 = 1 << 16;
const BLOCK_NR: u32 = 16;

/// One received frame, as the ring describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingFrame {
    /// The frame's length on the wire (more than `snap` when truncated).
    pub len: usize,
    pub vlan: Option<(u16, u16)>,
    /// The kernel dropped frames before this one (ring was full).
    pub losing: bool,
    /// The L4 checksum is partial (`TP_STATUS_CSUMNOTREADY`: the sender
    /// left it to checksum offload).
    pub csum_partial: bool,
}

/// The receive ring of one packet socket.
#[derive(Debug)]
pub struct RxRing {
    map: Mmap,
    frame_size: usize,
    frame_nr: usize,
    next: usize,
}

// SAFETY: the ring memory moves with its owner (one polling thread); the
// status words shared with the kernel are accessed atomically.
unsafe impl Send for RxRing {}

impl RxRing {
    /// Switches `fd` to TPACKET_V2 and maps a receive ring with slots big
    /// enough for `max_frame` bytes of frame.
    pub fn new(fd: &OwnedFd, max_frame: usize) -> io::Result<RxRing> {
        // Slot: header and sockaddr_ll (TPACKET2_HDRLEN), the kernel's
        // alignment padding and room for a VLAN tag, then the frame.
        let frame_size = (libc::TPACKET2_HDRLEN + 64 + max_frame).next_power_of_two() as u32;
        if frame_size > BLOCK_SIZE {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        sys::setsockopt(fd, libc::SOL_PACKET, libc::PACKET_VERSION, &TPACKET_V2)?;
        let req = libc::tpacket_req {
            tp_block_size: BLOCK_SIZE,
            tp_block_nr: BLOCK_NR,
            tp_frame_size: frame_size,
            tp_frame_nr: BLOCK_SIZE / frame_size * BLOCK_NR,
        };
        sys::setsockopt(fd, libc::SOL_PACKET, libc::PACKET_RX_RING, &req)?;
        let map = Mmap::shared(fd, (BLOCK_SIZE * BLOCK_NR) as usize, 0)?;
        Ok(RxRing {
            map,
            frame_size: frame_size as usize,
            frame_nr: req.tp_frame_nr as usize,
            next: 0,
        })
    }

    #[inline]
    fn slot(&self, index: usize) -> *mut u8 {
        debug_assert!(index < self.frame_nr);
        // SAFETY: `index < frame_nr` and frames tile the mapping (frames
        // never straddle blocks because frame_size divides BLOCK_SIZE).
        unsafe { self.map.ptr().as_ptr().add(index * self.frame_size) }
    }

    #[inline]
    fn status(&self, index: usize) -> &AtomicU32 {
        // SAFETY: every slot starts with a 4-byte aligned `tp_status` word
        // (slots are power-of-two sized inside a page-aligned mapping); the
        // kernel updates it concurrently, hence the atomic view.
        unsafe { &*self.slot(index).cast::<AtomicU32>() }
    }

    /// Takes the next frame if the kernel has filled it: calls `take` with
    /// its description and bytes (at most the snapped length), then gives
    /// the slot back. `None` when the ring is empty.
    #[inline]
    pub fn next_frame<R>(&mut self, take: impl FnOnce(RingFrame, &[u8]) -> R) -> Option<R> {
        let index = self.next;
        let status = self.status(index).load(Ordering::Acquire);
        if status & libc::TP_STATUS_USER == 0 {
            return None;
        }
        // SAFETY: the slot is ours (status "user", acquired above) until we
        // store "kernel" below; the header is a tpacket2_hdr at its start.
        let hdr = unsafe { self.slot(index).cast::<libc::tpacket2_hdr>().read() };
        let mac = hdr.tp_mac as usize;
        let snap = (hdr.tp_snaplen as usize).min(self.frame_size.saturating_sub(mac));
        // SAFETY: `mac + snap` stays inside the slot (clamped above).
        let bytes = unsafe { std::slice::from_raw_parts(self.slot(index).add(mac), snap) };
        let vlan = (status & libc::TP_STATUS_VLAN_VALID != 0).then(|| {
            let tpid = if status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                hdr.tp_vlan_tpid
            } else {
                0x8100
            };
            (tpid, hdr.tp_vlan_tci)
        });
        let out = take(
            RingFrame {
                len: hdr.tp_len as usize,
                vlan,
                losing: status & libc::TP_STATUS_LOSING != 0,
                csum_partial: status & libc::TP_STATUS_CSUMNOTREADY != 0,
            },
            bytes,
        );
        self.status(index)
            .store(libc::TP_STATUS_KERNEL, Ordering::Release);
        self.next = (index + 1) % self.frame_nr;
        Some(out)
    }
}
