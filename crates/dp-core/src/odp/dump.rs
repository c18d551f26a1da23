//! One `dpctl/dump-flows` line, in OVS's shape:
//!
//! ```text
//! recirc_id(0),in_port(1),...,ipv4(frag=no), packets:3, bytes:294, used:0.512s, flags:S., actions:2
//! ufid:5b1c..., recirc_id(0),dp_hash(0/0),...,ipv4(...), packets:3, bytes:294, used:0.512s, flags:S., dp:ovs, actions:2
//! ```
//!
//! The second (verbose, `-m`) form adds the UFID, prints wildcarded
//! attributes and fields too, and names the datapath layer. The flow
//! table lives elsewhere; this module only formats the pieces it is
//! handed, with the caller's `now` (no clock is read here).

use super::PortNames;
use super::attr::KeyAttr;
use super::scan::{Cursor, OdpError, Result};
use super::{actions, flow, key};
use crate::action::Action;
use crate::flow::FlowKey;
use std::fmt::Write;

/// Flow statistics as dump-flows prints them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowStats {
    pub packets: u64,
    pub bytes: u64,
    /// When the flow last matched, in the caller's millisecond clock;
    /// `None` prints `used:never`.
    pub used_ms: Option<u64>,
    /// TCP flags seen (OR of all packets); 0 prints nothing.
    pub tcp_flags: u16,
}

/// What one line shows.
#[derive(Clone, Copy, Debug)]
pub struct DumpFlow<'a> {
    /// The flow's unique id (OVS prints it only in verbose mode).
    pub ufid: Option<u128>,
    pub key: &'a [KeyAttr],
    pub mask: Option<&'a [KeyAttr]>,
    pub stats: FlowStats,
    pub actions: &'a [Action],
    /// Datapath layer for verbose output (`ovs` for the userspace
    /// datapath).
    pub dp_layer: Option<&'a str>,
    /// Free-form extra info for verbose output (OVS prints e.g.
    /// `miniflow_bits(4,1)`).
    pub dp_extra_info: Option<&'a str>,
}

/// OVS `odp_format_ufid`: `ufid:` and the UUID text.
pub fn format_ufid(out: &mut String, ufid: u128) {
    let h = format!("{ufid:032x}");
    let _ = write!(
        out,
        "ufid:{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    );
}

/// Parses `ufid:<uuid>` (as `dpctl/del-flow` accepts it).
pub fn parse_ufid(s: &str) -> Result<u128> {
    let mut c = Cursor::new(s.trim());
    c.expect("ufid:", "ufid")?;
    let hex: String = c
        .rest()
        .iter()
        .take(36)
        .enumerate()
        .filter(|(i, _)| !matches!(i, 8 | 13 | 18 | 23))
        .map(|(_, b)| *b as char)
        .collect();
    let dashes = [8, 13, 18, 23]
        .iter()
        .all(|i| c.rest().get(*i) == Some(&b'-'));
    if hex.len() != 32 || !dashes || !hex.chars().all(|ch| ch.is_ascii_hexdigit()) {
        return Err(OdpError::Syntax(
            "ufid: expected 8-4-4-4-12 hex digits".into(),
        ));
    }
    u128::from_str_radix(&hex, 16).map_err(|_| OdpError::Syntax("ufid: bad hex".into()))
}

/// OVS `packet_format_tcp_flags`: `S`, `F`, `P`, `R`, `U`, `.` (ACK), ...
pub fn format_tcp_flags(out: &mut String, flags: u16) {
    if flags == 0 {
        out.push_str("none");
        return;
    }
    for (bit, s) in [
        (0x002, "S"),
        (0x001, "F"),
        (0x008, "P"),
        (0x004, "R"),
        (0x020, "U"),
        (0x010, "."),
        (0x040, "E"),
        (0x080, "C"),
        (0x100, "N"),
        (0x200, "[200]"),
        (0x400, "[400]"),
        (0x800, "[800]"),
    ] {
        if flags & bit != 0 {
            out.push_str(s);
        }
    }
}

/// OVS `dpif_flow_stats_format`.
pub fn format_stats(out: &mut String, s: &FlowStats, now_ms: u64) {
    let _ = write!(out, "packets:{}, bytes:{}, used:", s.packets, s.bytes);
    match s.used_ms {
        Some(used) if used != 0 => {
            let secs = now_ms.saturating_sub(used) as f64 / 1000.0;
            let _ = write!(out, "{secs:.3}s");
        }
        _ => out.push_str("never"),
    }
    if s.tcp_flags != 0 {
        out.push_str(", flags:");
        format_tcp_flags(out, s.tcp_flags);
    }
}

/// One dump-flows line (`verbose` is `-m`).
pub fn format_line(f: &DumpFlow, now_ms: u64, names: Option<&PortNames>, verbose: bool) -> String {
    let mut out = String::new();
    if verbose && let Some(ufid) = f.ufid {
        format_ufid(&mut out, ufid);
        out.push_str(", ");
    }
    out.push_str(&key::format_masked(f.key, f.mask, names, verbose));
    out.push_str(", ");
    format_stats(&mut out, &f.stats, now_ms);
    if verbose && let Some(dp) = f.dp_layer {
        let _ = write!(out, ", dp:{dp}");
    }
    out.push_str(", actions:");
    out.push_str(&actions::format(f.actions, names));
    if verbose && let Some(x) = f.dp_extra_info {
        let _ = write!(out, ", dp-extra-info:{x}");
    }
    out
}

/// A dump-flows line for an installed megaflow (`flow` masked by `mask`),
/// printing the key attributes OVS derives from the flow.
#[allow(
    clippy::too_many_arguments,
    reason = "mirrors the pieces a dump line shows"
)]
pub fn format_megaflow(
    ufid: Option<u128>,
    flow_key: &FlowKey,
    mask: &FlowKey,
    stats: FlowStats,
    acts: &[Action],
    now_ms: u64,
    names: Option<&PortNames>,
    verbose: bool,
) -> String {
    let (k, m) = flow::flow_to_masked_key(flow_key, mask);
    let f = DumpFlow {
        ufid,
        key: &k,
        mask: Some(&m),
        stats,
        actions: acts,
        dp_layer: Some("ovs"),
        dp_extra_info: None,
    };
    format_line(&f, now_ms, names, verbose)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "recirc_id(0),in_port(1),eth(src=00:01:02:03:04:05,dst=10:11:12:13:14:15),eth_type(0x0800),ipv4(frag=no)";

    fn megaflow() -> (FlowKey, FlowKey) {
        let m = key::parse_masked(KEY, None).unwrap();
        flow::masked_key_to_flow(&m.key, &m.mask).unwrap()
    }

    #[test]
    fn test_emit_terse_line() {
        let (f, m) = megaflow();
        let stats = FlowStats {
            packets: 3,
            bytes: 294,
            used_ms: Some(9_488),
            tcp_flags: 0x12,
        };
        let acts = actions::parse("2", None).unwrap();
        assert_eq!(
            format_megaflow(Some(1), &f, &m, stats, &acts, 10_000, None, false),
            "recirc_id(0),in_port(1),packet_type(ns=0,id=0),eth(src=00:01:02:03:04:05,dst=10:11:12:13:14:15),eth_type(0x0800),ipv4(frag=no), packets:3, bytes:294, used:0.512s, flags:S., actions:2"
        );
    }

    #[test]
    fn test_emit_verbose_line_and_ufid() {
        let (f, m) = megaflow();
        let ufid = 0x5b1c2d3e_4f50_6172_8394_a5b6c7d8e9f0u128;
        let mut names = PortNames::new();
        names.insert(1, "p1");
        let line = format_megaflow(
            Some(ufid),
            &f,
            &m,
            FlowStats::default(),
            &[],
            0,
            Some(&names),
            true,
        );
        assert!(
            line.starts_with(
                "ufid:5b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0, recirc_id(0),dp_hash(0/0),"
            ),
            "{line}"
        );
        assert!(line.contains(",in_port(p1),"), "{line}");
        assert!(
            line.ends_with(", packets:0, bytes:0, used:never, dp:ovs, actions:drop"),
            "{line}"
        );
        assert_eq!(
            parse_ufid("ufid:5b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0").unwrap(),
            ufid
        );
        assert!(parse_ufid("ufid:5b1c").is_err());
    }

    #[test]
    fn test_dump_line_key_parses_back() {
        let (f, m) = megaflow();
        let line = format_megaflow(None, &f, &m, FlowStats::default(), &[], 0, None, false);
        let key_text = line.split(", packets:").next().unwrap();
        let back = key::parse_masked(key_text, None).unwrap();
        let (f2, m2) = flow::masked_key_to_flow(&back.key, &back.mask).unwrap();
        assert_eq!((f2, m2), (f, m));
    }
}
