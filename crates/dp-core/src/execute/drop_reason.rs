//! Why the datapath dropped a packet: every reason is declared once, in
//! [`drop_reasons!`], and yields an enum variant, a counter slot and the
//! printed name (VPP's `foreach_*_error`, OVS's `datapath_drop_*`
//! coverage counters).
//!
//! Counters are plain `u64`s in a fixed array owned by one PMD thread's
//! executor: no atomics. Whoever shows stats reads them between
//! iterations (or sums the per-PMD copies).

macro_rules! drop_reasons {
    ($($(#[doc = $doc:literal])* $variant:ident => $name:literal,)*) => {
        /// A reason for dropping a packet.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum DropReason {
            $($(#[doc = $doc])* $variant,)*
        }

        impl DropReason {
            /// Every reason, in declaration (and counter) order.
            pub const ALL: &'static [DropReason] = &[$(DropReason::$variant,)*];
            /// Number of reasons.
            pub const COUNT: usize = DropReason::ALL.len();

            /// The counter name, as `ovs-appctl coverage/show` would print it.
            pub const fn name(self) -> &'static str {
                match self {
                    $(DropReason::$variant => $name,)*
                }
            }
        }
    };
}

drop_reasons! {
    /// The packet matched no flow and the upcall did not install one.
    NoFlow => "datapath_drop_no_flow",
    /// The packet matched no flow and its PMD refused the upcall: upcalls
    /// had used their share of a PMD that also forwards established
    /// traffic (dp-pmd's upcall admission control).
    UpcallLimit => "datapath_drop_upcall_limit",
    /// Recirculation (`recirc`, `tnl_pop`) beyond [`super::MAX_RECIRC_DEPTH`].
    RecircDepth => "datapath_drop_recirc_depth",
    /// The caller's recirculation queue refused the packet.
    RecircQueueFull => "datapath_drop_recirc_queue_full",
    /// A meter band's token bucket was empty.
    Meter => "datapath_drop_meter",
    /// The packet does not have the headers an action needs (a VLAN push
    /// on a runt, no headroom for a tag).
    InvalidPacket => "datapath_drop_invalid_packet",
    /// `tnl_push` could not prepend its header (bad header in the action,
    /// no headroom).
    TunnelPushError => "datapath_drop_tunnel_push_error",
    /// `tnl_pop` found a malformed or unexpected outer header.
    TunnelPopError => "datapath_drop_tunnel_pop_error",
    /// `tnl_pop` found an IP fragment where a tunnel packet should be:
    /// tunnel packets are never reassembled.
    TunnelFragment => "datapath_drop_tunnel_fragmented",
    /// `tnl_pop` on a port with a fixed key found another VNI/key.
    TunnelWrongVni => "datapath_drop_tunnel_wrong_vni",
    /// `tnl_pop` found a UDP checksum that does not verify (or none, on a
    /// port with `csum` on).
    TunnelBadChecksum => "datapath_drop_tunnel_bad_udp_csum",
    /// `tnl_pop` found a Geneve option with the critical bit set that the
    /// port's bridge does not map (`tnl/tlv-map/add`).
    TunnelGeneveCritical => "datapath_drop_tunnel_geneve_critical_opt",
    /// `tnl_pop` on a port whose bridge maps Geneve options found more
    /// option bytes than the flow key holds (`GENEVE_KEY_OPTS`).
    TunnelGeneveOptsTooLong => "datapath_drop_tunnel_geneve_opts_too_long",
    /// `tnl_pop` names a port that is not a configured tunnel port.
    InvalidTunnelPort => "datapath_drop_invalid_tnl_port",
    /// The output sink did not take the packet (tx queue full, port gone).
    TxError => "datapath_drop_tx_error",
    /// The slow-path (userspace) queue was full.
    UserspaceQueueFull => "datapath_drop_userspace_queue_full",
    /// No buffer left in the clone pool for a copy (multiple outputs,
    /// `clone`, `sample`, non-final `userspace`/`recirc`).
    NoCloneBuffer => "datapath_drop_clone_no_buffer",
    /// The flow's actions say drop: an empty list or an explicit `drop`.
    Explicit => "datapath_drop_action",
    /// The action list ended without the packet being sent anywhere.
    EndOfActions => "datapath_drop_end_of_actions",
    /// `ct(...)`: connection tracking does not exist in this datapath yet.
    CtUnavailable => "datapath_drop_ct_unavailable",
    /// An action (or `set` attribute) this executor does not implement.
    Unsupported => "datapath_drop_unsupported_action",
}

/// One counter per [`DropReason`].
#[derive(Clone, Default, PartialEq, Eq)]
pub struct DropCounters {
    counts: [u64; DropReason::COUNT],
}

impl std::fmt::Debug for DropCounters {
    /// The non-zero counters, by name.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.iter().filter(|(_, n)| *n > 0))
            .finish()
    }
}

impl DropCounters {
    /// All counters at zero.
    pub fn new() -> DropCounters {
        DropCounters::default()
    }

    /// Adds `n` drops for `reason`.
    #[inline]
    pub fn add(&mut self, reason: DropReason, n: u64) {
        self.counts[reason as usize] += n;
    }

    /// Drops counted for `reason`.
    #[inline]
    pub fn get(&self, reason: DropReason) -> u64 {
        self.counts[reason as usize]
    }

    /// Sum over every reason.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// `(name, count)` for every reason, zeros included, in declaration
    /// order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        DropReason::ALL
            .iter()
            .map(move |r| (r.name(), self.counts[*r as usize]))
    }

    /// Forgets every count.
    pub fn clear(&mut self) {
        self.counts = [0; DropReason::COUNT];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_prefixed() {
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        assert!(names.iter().all(|n| n.starts_with("datapath_drop_")));
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
    }

    #[test]
    fn counters_add_per_reason() {
        let mut c = DropCounters::new();
        c.add(DropReason::Meter, 3);
        c.add(DropReason::TxError, 1);
        c.add(DropReason::Meter, 2);
        assert_eq!(c.get(DropReason::Meter), 5);
        assert_eq!(c.get(DropReason::NoFlow), 0);
        assert_eq!(c.total(), 6);
        let shown: Vec<_> = c.iter().filter(|(_, n)| *n > 0).collect();
        assert_eq!(
            shown,
            vec![("datapath_drop_meter", 5), ("datapath_drop_tx_error", 1)]
        );
        assert_eq!(
            format!("{c:?}"),
            r#"{"datapath_drop_meter": 5, "datapath_drop_tx_error": 1}"#
        );
    }
}
