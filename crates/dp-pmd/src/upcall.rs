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
use dp_core::flow_table::FlowStats;
use dp_core::packet::Packet;

use crate::stats::PmdIdentity;

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

impl Translation {
    /// The [`Upcalled`] form of this translation, its mask (if any)
    /// written into `mask`; no UFID.
    #[inline]
    pub fn into_upcalled(self, mask: &mut FlowKey) -> Upcalled {
        match self {
            Translation::Megaflow { mask: m, actions } => {
                *mask = m;
                Upcalled {
                    actions,
                    install: true,
                    ufid: None,
                }
            }
            Translation::ExecuteOnly { actions } => Upcalled {
                actions,
                install: false,
                ufid: None,
            },
        }
    }
}

/// What [`UpcallHandler::translate_upcall`] decided, beside the mask it
/// wrote: [`Translation`] for the PMD's upcall, with the mask left in the
/// PMD's buffer.
#[derive(Clone, Debug, PartialEq)]
pub struct Upcalled {
    /// The actions, for the megaflow or for this packet only.
    pub actions: FlowActions,
    /// Install the megaflow `key & mask` (a [`Translation::Megaflow`]);
    /// false: execute on this packet only ([`Translation::ExecuteOnly`]).
    pub install: bool,
    /// The megaflow's UFID, when the handler computed it.
    pub ufid: Option<u128>,
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

    /// [`UpcallHandler::translate`] for an upcall, the PMD's entry point:
    /// for a megaflow the handler writes its mask into `mask` (the PMD's
    /// buffer) and returns the actions with `install` set; for a one-off
    /// `install` is false and `mask` is not read. On entry `mask` holds
    /// unspecified contents (the PMD reuses one buffer, never cleared: the
    /// previous upcall's mask), so a handler writes it whole, never field
    /// by field. The translation thus
    /// reaches the PMD without moving the ~330-byte mask through a
    /// `Translation` and two `Result`s (three copies, ~130 instructions a
    /// flow setup).
    ///
    /// `pmd` is the upcalling thread: each PMD installs its own copy of a
    /// megaflow under the same UFID, and the flow dump tells them apart
    /// by it ([`FlowDump::pmd`](crate::pmd::FlowDump)). The PMD installs
    /// the megaflow with the `now_ms` it upcalls with, so the dump's
    /// `created_ms` of the copy is that `now_ms` (a handler may tell the
    /// copies of one UFID on one PMD apart by it).
    ///
    /// A handler that has already computed the megaflow's UFID gives it
    /// in [`Upcalled::ufid`]: it must then be
    /// [`ufid_from_match`](dp_core::flow_table::ufid_from_match)`(key &
    /// mask, mask)` of the mask written, which the PMD installs under
    /// without hashing the match again. The default calls `translate` and
    /// computes none.
    fn translate_upcall(
        &self,
        key: &FlowKey,
        packet: &Packet,
        now_ms: u64,
        _pmd: PmdIdentity,
        mask: &mut FlowKey,
    ) -> Result<Upcalled, UpcallError> {
        Ok(self
            .translate(key, Some(packet), now_ms)?
            .into_upcalled(mask))
    }

    /// A megaflow copy has left the datapath (deleted by the revalidator
    /// or `dpctl/del-flow`, flushed, or its input port removed), having
    /// counted `stats` in all: a handler that credits rules with their
    /// megaflows' packets credits here what the copy forwarded since it
    /// last looked, as OVS pushes a deleted flow's final statistics.
    /// `pmd` held the copy and `created_ms` is when it installed it (as
    /// [`FlowDump::pmd`](crate::pmd::FlowDump) and `created_ms` report
    /// them). Called on that PMD's thread, between two iterations, right
    /// after the delete: it must not block for long. The default does
    /// nothing.
    fn flow_removed(&self, _ufid: u128, _pmd: PmdIdentity, _created_ms: u64, _stats: &FlowStats) {}

    /// A megaflow copy's statistics were just zeroed (`dpctl/mod-flow
    /// --clear`), having counted `stats` until then: a handler that
    /// credits rules credits what the copy forwarded since it last
    /// looked and counts the copy from zero again. Same arguments and
    /// thread as [`UpcallHandler::flow_removed`]; the default does
    /// nothing.
    fn flow_stats_cleared(
        &self,
        _ufid: u128,
        _pmd: PmdIdentity,
        _created_ms: u64,
        _stats: &FlowStats,
    ) {
    }

    /// The version of the rules translations are made against. When it
    /// changes, the revalidator re-translates installed megaflows.
    fn version(&self) -> u64;
}
