//! The upcall interface: how a PMD asks the translation layer what to do
//! with a packet that matched no megaflow, and how the revalidator asks
//! again when the rules change.
//!
//! dp-pmd does not know who translates; the daemon hands the datapath an
//! `Arc<dyn UpcallHandler>` (ofproto-lite in production, a scripted
//! handler in tests). The handler is called on PMD threads (upcalls, inline
//! as in OVS's userspace datapath) and on the revalidator thread, so it is
//! `Send + Sync` and must not block for long: it translates against an
//! immutable snapshot of its rules.

use std::fmt;
use std::sync::Arc;

use dp_core::action::Action;
use dp_core::flow::FlowKey;
use dp_core::packet::Packet;

/// A flow's action list, shared by every PMD that installed it.
pub type FlowActions = Arc<[Action]>;

/// What the translation layer decided for a flow.
#[derive(Clone, Debug, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "built once per upcall and consumed at once; a box would add an allocation"
)]
pub enum Translation {
    /// Install a megaflow matching `key & mask` with these actions, and
    /// execute them on the packet.
    Megaflow { mask: FlowKey, actions: FlowActions },
    /// Execute these actions on this packet only; install nothing (e.g.
    /// a rule that must see every packet).
    ExecuteOnly { actions: FlowActions },
}

/// Why a translation failed; the packet is dropped and counted as a
/// failed upcall.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpcallError(pub String);

impl fmt::Display for UpcallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "upcall failed: {}", self.0)
    }
}

impl std::error::Error for UpcallError {}

/// The translation layer, as the datapath sees it.
pub trait UpcallHandler: Send + Sync + fmt::Debug {
    /// Translates the flow `key` (for an upcall, `packet` is the packet
    /// that missed; for revalidation it is `None` and `key` is the
    /// installed megaflow's masked key). `now_ms` is the datapath's
    /// monotonic clock.
    fn translate(
        &self,
        key: &FlowKey,
        packet: Option<&Packet>,
        now_ms: u64,
    ) -> Result<Translation, UpcallError>;

    /// [`UpcallHandler::translate`] for an upcall, with the megaflow's
    /// UFID when the handler has already computed it: it must then be
    /// [`ufid_from_match`](dp_core::flow_table::ufid_from_match)`(key & mask,
    /// mask)` of the returned mask, which the PMD installs under without
    /// hashing the match again. The default computes none.
    fn translate_upcall(
        &self,
        key: &FlowKey,
        packet: &Packet,
        now_ms: u64,
    ) -> Result<(Translation, Option<u128>), UpcallError> {
        self.translate(key, Some(packet), now_ms).map(|t| (t, None))
    }

    /// The version of the rules translations are made against. When it
    /// changes, the revalidator re-translates installed megaflows.
    fn version(&self) -> u64;
}
