//! OVS datapath flow text ("ODP format"): flow keys, masks and actions as
//! `ovs-appctl dpctl/dump-flows` prints them and `dpctl/add-flow` reads
//! them.
//!
//! # How it works
//! Text maps to the typed attribute lists of [`attr`] (and to
//! [`crate::action::Action`] lists) one to one, in both directions,
//! following OVS's `lib/odp-util.c` rules so the output is byte-identical:
//! attribute order is kept, a mask attribute that is missing or all zero
//! is not printed, a partially masked field prints `value/mask`.
//! Separately, [`flow`] converts attribute lists to and from the
//! datapath's [`crate::flow::FlowKey`] (what add-flow installs, what
//! dump-flows prints for an installed megaflow).
//!
//! # Invariants
//! - Parsers never panic and never recurse deeper than [`MAX_NESTING`];
//!   every error names the attribute or field that was wrong.
//! - A family oxvs does not implement (NSH, SRv6, ...) is an
//!   [`OdpError::Unsupported`], never a silently different round trip.
//!
//! Everything here is pure data transformation: no threads, no I/O.

pub mod attr;
