//! OVS datapath flow text ("ODP format"): flow keys, masks and actions as
//! `ovs-appctl dpctl/dump-flows` prints them and `dpctl/add-flow` reads
//! them.
//!
//! # Map
//! - [`attr`]: typed key attributes (the list OVS sends as netlink).
//! - [`key`]: key/mask text ↔ attribute lists.
//! - [`actions`]: action text ↔ [`crate::action::Action`] lists, with
//!   [`ct`] (conntrack and NAT) and [`tnl_push`] (tunnel header bytes).
//! - [`flow`]: attribute lists ↔ [`crate::flow::FlowKey`] (+ mask).
//! - [`dump`]: one dump-flows line from its pieces.
//! - [`packet`]: a frame from a key, like `netdev-dummy/receive`.
//! - [`scan`], [`fmt`]: the C-compatible scanning and printing primitives.
//! - [`normalize_key`], [`normalize_masked_key`], [`normalize_actions`]:
//!   the `ovstest test-odp` round trips, used by `oxvsctl odp` and the
//!   conformance tests.
//!
//! # How it works
//! Text maps to the typed attribute lists of [`attr`] (and to action
//! lists) one to one, in both directions, following OVS's
//! `lib/odp-util.c` rules so the output is byte-identical: attribute order
//! is kept, a mask attribute that is missing or all zero is not printed, a
//! partially masked field prints `value/mask`. Separately, [`flow`]
//! converts attribute lists to and from the datapath's FlowKey: what
//! add-flow installs, and what dump-flows prints for an installed megaflow
//! (the attributes OVS derives from the key, in OVS's order).
//!
//! # Invariants
//! - Parsers never panic and never recurse deeper than [`MAX_NESTING`];
//!   every error names the attribute or field that was wrong.
//! - A family oxvs does not implement (NSH keys and actions, ERSPAN tunnel
//!   headers) is an [`OdpError::Unsupported`], never a
//!   silently different round trip. Geneve options and ERSPAN metadata
//!   round-trip as text but are rejected when converted to a FlowKey.
//!
//! Everything here is pure data transformation: no threads, no I/O.

pub mod actions;
pub mod attr;
pub mod ct;
pub mod dump;
pub mod flow;
pub mod fmt;
pub mod key;
pub mod packet;
pub mod scan;
pub mod tnl_push;

pub use scan::{OdpError, Result};

use std::collections::HashMap;

/// Deepest nesting of `encap()`, `clone()`, `sample()` and
/// `check_pkt_len()` the parsers accept (OVS's `MAX_ODP_NESTED`).
pub const MAX_NESTING: usize = 32;

/// Port number ↔ name map, for `in_port(name)` and name-printing output
/// (OVS's `-names`).
#[derive(Clone, Debug, Default)]
pub struct PortNames {
    by_name: HashMap<String, u32>,
    by_number: HashMap<u32, String>,
}

impl PortNames {
    pub fn new() -> PortNames {
        PortNames::default()
    }

    /// Adds or replaces the name of datapath port `number`.
    pub fn insert(&mut self, number: u32, name: impl Into<String>) {
        let name = name.into();
        self.by_name.insert(name.clone(), number);
        self.by_number.insert(number, name);
    }

    pub fn number(&self, name: &str) -> Option<u32> {
        self.by_name.get(name).copied()
    }

    pub fn name(&self, number: u32) -> Option<&str> {
        self.by_number.get(&number).map(String::as_str)
    }
}

/// Writes `port` as its name when `names` knows it, else as a number.
pub(crate) fn format_port(out: &mut String, names: Option<&PortNames>, port: u32) {
    match names.and_then(|n| n.name(port)) {
        Some(name) => out.push_str(name),
        None => out.push_str(&port.to_string()),
    }
}

/// `ovstest test-odp parse-wc-keys`: parses a masked key and prints it the
/// way dump-flows would.
pub fn normalize_masked_key(s: &str) -> Result<String> {
    normalize_masked_key_with(s, None)
}

/// [`normalize_masked_key`] with port names for `in_port(name)`.
pub fn normalize_masked_key_with(s: &str, names: Option<&PortNames>) -> Result<String> {
    let m = key::parse_masked(s, names)?;
    Ok(key::format_masked(&m.key, Some(&m.mask), names, false))
}

/// `ovstest test-odp parse-keys`: parses an exact key, converts it to a
/// flow and back, and prints it the way OVS prints a key (with the
/// metadata it always includes; a fitness other than perfect is
/// prefixed, e.g. `ODP_FIT_TOO_LITTLE: `).
pub fn normalize_key(s: &str) -> Result<String> {
    normalize_key_with(s, None)
}

/// [`normalize_key`] with port names for `in_port(name)`.
pub fn normalize_key_with(s: &str, names: Option<&PortNames>) -> Result<String> {
    let attrs = key::parse(s, names)?;
    let (flow, extras, fit) = flow::key_to_flow_ext(&attrs)?;
    let prefix = match fit {
        flow::Fitness::Perfect => "",
        flow::Fitness::TooLittle => "ODP_FIT_TOO_LITTLE: ",
        flow::Fitness::TooMuch => "ODP_FIT_TOO_MUCH: ",
    };
    let out = key::format(&flow::flow_to_key_ext(&flow, &extras), names);
    Ok(format!("{prefix}{out}"))
}

/// `ovstest test-odp parse-actions`: parses an action list and prints it
/// back the way OVS prints it.
pub fn normalize_actions(s: &str) -> Result<String> {
    normalize_actions_with(s, None)
}

/// [`normalize_actions`] with port names for outputs and ports.
pub fn normalize_actions_with(s: &str, names: Option<&PortNames>) -> Result<String> {
    Ok(actions::format(&actions::parse(s, names)?, names))
}

impl std::str::FromStr for PortNames {
    type Err = OdpError;

    /// `1=p1,2=p2`: datapath port numbers and their names.
    fn from_str(s: &str) -> Result<PortNames> {
        let mut names = PortNames::new();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (num, name) = item.split_once('=').ok_or_else(|| {
                OdpError::Syntax(format!("port names: expected N=NAME, got '{item}'"))
            })?;
            let num: u32 = num.trim().parse().map_err(|_| {
                OdpError::Syntax(format!("port names: '{num}' is not a port number"))
            })?;
            let name = name.trim();
            if name.is_empty() || name.bytes().any(|b| b"(),= \t".contains(&b)) {
                return Err(OdpError::Invalid(format!("port names: bad name '{name}'")));
            }
            names.insert(num, name);
        }
        Ok(names)
    }
}
