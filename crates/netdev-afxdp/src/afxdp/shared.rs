//! UMEMs shared between AF_XDP sockets (`XDP_SHARED_UMEM`), so that a
//! packet received on one port and sent out of another goes onto the
//! second socket's tx ring as is, without a copy.
//!
//! # How it works
//! A [`UmemGroup`] keeps the UMEMs its ports' sockets use. A socket being
//! opened takes the first UMEM of the group that was bound in the same
//! way (copy or zero-copy, need_wakeup or not: the kernel gives a socket
//! that joins a UMEM the first socket's settings) and still has its
//! share of frames unreserved; else it gets a new UMEM, sized for
//! [`shared_queues`] sockets. The first socket registers the area
//! (`XDP_UMEM_REG`); every later one binds with `XDP_SHARED_UMEM` and the
//! descriptor of a live, bound socket of that UMEM, and brings its own
//! fill and completion rings (the kernel's rule for a socket on another
//! device or queue: `xp_assign_dev_shared` refuses one without them).
//!
//! # Invariants
//! - The group holds only weak references: a UMEM lives while a socket
//!   or a packet uses it (see [`super::umem`]), and a socket is never
//!   kept open by the group (its port's removal must release it).
//! - Opening a socket holds the group's lock from choosing the UMEM to
//!   recording the bound socket, so two ports opened at once cannot both
//!   make a "first" socket for one UMEM.
//!
//! # Why one group per process by default
//! The daemon runs one datapath; its `afxdp` ports join
//! [`UmemGroup::process`] unless a port says `shared-umem = false`. A
//! shared free list is a lock that every PMD polling one of the UMEM's
//! queues takes (one lock per burst); ports polled by different PMDs
//! still gain the copy, and pay for a contended lock instead.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};

use super::queue::{Xsk, XskSocket};
use super::umem::{SocketFrames, Umem};

/// Frames a shared UMEM aims at: it serves as many sockets as fit (at
/// least 2, at most 4), so the default ring sizes give 4 sockets a 64 MiB
/// UMEM of 4 KiB frames (the kernel pins all of it).
const SHARED_UMEM_FRAMES: u32 = 16384;

/// Sockets a shared UMEM is sized for, for sockets needing
/// `frames_per_socket` frames each.
pub fn shared_queues(frames_per_socket: u32) -> u32 {
    (SHARED_UMEM_FRAMES / frames_per_socket.max(1)).clamp(2, 4)
}

/// A set of UMEMs that AF_XDP ports opened with it share; see the module
/// docs. Clones are handles to the same set.
#[derive(Clone, Default)]
pub struct UmemGroup(Arc<Mutex<Vec<Member>>>);

struct Member {
    umem: Weak<Umem>,
    bind_flags: u16,
    need_wakeup: bool,
    sockets: Vec<Weak<XskSocket>>,
    /// Sockets the kernel refused to share through (no longer bound).
    unbound: Vec<Weak<XskSocket>>,
}

/// What failed in opening a socket, and why.
pub(crate) type OpenFailure = (&'static str, std::io::Error);

/// Where a socket being opened gets its frames.
pub(crate) struct Placement {
    /// Its claim on the UMEM (dropped last, after the socket: see
    /// [`super::umem`]).
    pub frames: SocketFrames,
    /// A bound socket of the UMEM to share it with (`XDP_SHARED_UMEM`);
    /// `None`: the new socket registers the UMEM.
    pub share_with: Option<Arc<XskSocket>>,
}

impl UmemGroup {
    /// A new, empty group.
    pub fn new() -> UmemGroup {
        UmemGroup::default()
    }

    /// The process's group, which the daemon's ports join.
    pub fn process() -> UmemGroup {
        static PROCESS: OnceLock<UmemGroup> = OnceLock::new();
        PROCESS.get_or_init(UmemGroup::new).clone()
    }

    /// UMEMs of the group that a socket uses now.
    pub fn umems(&self) -> usize {
        self.lock()
            .iter()
            .filter(|m| m.sockets.iter().any(|s| s.strong_count() > 0))
            .count()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Member>> {
        // Members are pushed whole and pruned with `retain`: a panic
        // elsewhere while the lock was held leaves nothing half done.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens a socket with `open` on a UMEM of the group (see the module
    /// docs), `frames` frames of `frame_size` reserved for it, and records
    /// it when it is bound.
    ///
    /// Joining goes through a bound socket of the UMEM; one that has lost
    /// its device (deleted under the port) is no longer bound, and the
    /// kernel answers `EBADF`: that socket is not offered again and the
    /// next one is tried. When joining fails otherwise, or no UMEM has
    /// room, the socket gets a new UMEM of the group.
    pub(crate) fn open_socket(
        &self,
        frames: u32,
        frame_size: u32,
        bind_flags: u16,
        need_wakeup: bool,
        mut open: impl FnMut(Placement) -> Result<Xsk, OpenFailure>,
    ) -> Result<Xsk, OpenFailure> {
        let mut members = self.lock();
        members.retain_mut(|m| {
            m.sockets.retain(|s| s.strong_count() > 0);
            m.unbound.retain(|s| s.strong_count() > 0);
            m.umem.strong_count() > 0 && !m.sockets.is_empty()
        });
        'members: for m in members.iter_mut() {
            if m.bind_flags != bind_flags || m.need_wakeup != need_wakeup {
                continue;
            }
            let Some(umem) = m.umem.upgrade() else {
                continue;
            };
            if umem.frame_size() != frame_size {
                continue;
            }
            let vias: Vec<Arc<XskSocket>> = m
                .sockets
                .iter()
                .filter(|s| !m.unbound.iter().any(|u| u.ptr_eq(s)))
                .filter_map(Weak::upgrade)
                .collect();
            for via in vias {
                if !umem.try_reserve(frames) {
                    continue 'members;
                }
                let placement = Placement {
                    frames: umem.new_socket(frames),
                    share_with: Some(Arc::clone(&via)),
                };
                // A failed attempt's reservation and frames went with it.
                match open(placement) {
                    Ok(xsk) => {
                        m.sockets.push(Arc::downgrade(&xsk.socket));
                        return Ok(xsk);
                    }
                    Err((_, e)) if e.raw_os_error() == Some(libc::EBADF) => {
                        tracing::debug!(
                            "AF_XDP socket {} of a shared UMEM is unbound (device gone?); \
                             not sharing through it",
                            via.id
                        );
                        m.unbound.push(Arc::downgrade(&via));
                    }
                    Err((op, e)) => {
                        tracing::debug!("joining a shared UMEM: {op}: {e}; trying a new UMEM");
                        break 'members;
                    }
                }
            }
        }
        let umem = Umem::new(frames * shared_queues(frames), frame_size)
            .map_err(|e| ("mapping the UMEM", e))?;
        let reserved = umem.try_reserve(frames);
        debug_assert!(reserved);
        let placement = Placement {
            frames: umem.new_socket(frames),
            share_with: None,
        };
        let xsk = open(placement)?;
        members.push(Member {
            umem: Arc::downgrade(&umem),
            bind_flags,
            need_wakeup,
            sockets: vec![Arc::downgrade(&xsk.socket)],
            unbound: Vec::new(),
        });
        Ok(xsk)
    }
}

impl PartialEq for UmemGroup {
    fn eq(&self, other: &UmemGroup) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for UmemGroup {}

impl std::fmt::Debug for UmemGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UmemGroup")
            .field("umems", &self.umems())
            .finish()
    }
}
