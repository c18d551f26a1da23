//! Link state of `dpdk` ports: changes are logged and counted
//! (`link_resets`, as OVS's interface column) whether DPDK reports them as
//! link-state-change events (devices with LSC interrupts: `net_vhost` when
//! a guest connects or leaves, `net_tap`, most NICs) or they are seen when
//! the state is read (port status, stats), for devices without events.
//!
//! State is kept per ethdev port id in statics, so DPDK's interrupt thread
//! can update it without reaching into a port that may be closing.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use dpdk_sys as sys;

use crate::ffi;

const N: usize = sys::RTE_MAX_ETHPORTS as usize;
const UNKNOWN: u8 = 0;
const DOWN: u8 = 1;
const UP: u8 = 2;

static STATE: [AtomicU8; N] = [const { AtomicU8::new(UNKNOWN) }; N];
static RESETS: [AtomicU64; N] = [const { AtomicU64::new(0) }; N];

/// Who noticed the change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// DPDK's link-state-change event.
    Event,
    /// A read of the link state.
    Read,
}

/// A port starts: its state is what the device says now, not a change.
pub(crate) fn reset(port_id: u16) {
    let (up, _) = ffi::link(port_id);
    if let (Some(s), Some(r)) = (
        STATE.get(usize::from(port_id)),
        RESETS.get(usize::from(port_id)),
    ) {
        s.store(if up { UP } else { DOWN }, Ordering::Relaxed);
        r.store(0, Ordering::Relaxed);
    }
}

/// Reads `port_id`'s link and records a change from the last known
/// state; returns `(up, speed in Mbps)`.
pub(crate) fn changed(port_id: u16, source: Source) -> (bool, u32) {
    let (up, speed) = ffi::link(port_id);
    let Some(state) = STATE.get(usize::from(port_id)) else {
        return (up, speed);
    };
    let new = if up { UP } else { DOWN };
    let old = state.swap(new, Ordering::Relaxed);
    if old != new && old != UNKNOWN {
        RESETS[usize::from(port_id)].fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            port_id,
            link = if up { "up" } else { "down" },
            speed_mbps = speed,
            seen_by = ?source,
            "dpdk link state changed"
        );
    }
    (up, speed)
}

/// Link changes seen on `port_id` since it started.
pub(crate) fn resets(port_id: u16) -> u64 {
    RESETS
        .get(usize::from(port_id))
        .map_or(0, |r| r.load(Ordering::Relaxed))
}
