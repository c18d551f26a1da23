//! Every way the device side can send us garbage, declared once: each
//! reason has a counter and a printed name (VPP's `foreach_*_error`).
//!
//! Counters are atomics because the rx thread, the tx thread and the
//! control thread of one port all count into the same table; they are
//! touched only on the error path.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! bad_inputs {
    ($($variant:ident => $name:literal,)*) => {
        /// A rejected piece of device input.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum BadInput { $($variant,)* }

        impl BadInput {
            /// Every reason, in counter order.
            pub const ALL: &'static [BadInput] = &[$(BadInput::$variant,)*];

            /// The printed name.
            pub fn name(self) -> &'static str {
                match self { $(BadInput::$variant => $name,)* }
            }
        }
    };
}

bad_inputs! {
    TruncatedHeader => "truncated-header",
    BadMessageLength => "bad-message-length",
    AttrPastEnd => "attr-past-end",
    BadAttr => "bad-attr",
    MissingAttr => "missing-attr",
    UnknownFamily => "unknown-family",
    UnknownCommand => "unknown-command",
    BadVersion => "bad-version",
    RingIndexOutOfRange => "ring-index-out-of-range",
    FrameOutOfRange => "frame-out-of-range",
    FramePastSlot => "frame-past-slot",
    FrameNotLent => "frame-not-lent",
    WrongSourcePort => "wrong-source-port",
    BadPortList => "bad-port-list",
    BadRegion => "bad-region",
}

impl fmt::Display for BadInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::error::Error for BadInput {}

/// One counter per [`BadInput`] reason.
#[derive(Debug)]
pub struct BadInputCounters([AtomicU64; BadInput::ALL.len()]);

impl Default for BadInputCounters {
    fn default() -> Self {
        BadInputCounters(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

impl BadInputCounters {
    /// Counts one `reason`.
    pub fn count(&self, reason: BadInput) {
        self.0[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The count of `reason`.
    pub fn get(&self, reason: BadInput) -> u64 {
        self.0[reason as usize].load(Ordering::Relaxed)
    }

    /// Sum of every reason.
    pub fn total(&self) -> u64 {
        self.0.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// `(name, count)` of the non-zero counters.
    pub fn nonzero(&self) -> Vec<(&'static str, u64)> {
        BadInput::ALL
            .iter()
            .map(|r| (r.name(), self.get(*r)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}
