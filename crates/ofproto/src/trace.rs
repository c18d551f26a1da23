//! `ofproto/trace BRIDGE FLOW`: translate a flow without side effects and
//! explain it rule by rule, ending with the `Megaflow:` and `Datapath
//! actions:` lines in OVS's format.
//!
//! The flow is either ODP text (`in_port(1),eth(...),eth_type(0x0800),...`,
//! parsed by dp-core's ODP parser, ports by datapath number or name) or
//! ofctl text (`in_port=1,tcp,nw_dst=10.0.0.1,tp_dst=80`, ports by
//! OpenFlow number or name); ODP is recognised by its parentheses, as
//! OVS does. Unspecified fields are zero.

use crate::field::{Field, OfFlow};
use crate::r#match::{Match, relevant_mask};
use crate::parse::ParseError;
use crate::ports::PortTable;
use crate::xlate::{TraceEvent, Translation, megaflow_match};
use dp_core::flow::FlowKey;
use dp_core::flow::key::VLAN_CFI;
use std::fmt::Write;

/// Parses a trace flow into a datapath key (`in_port` = datapath port).
pub fn parse_trace_flow(text: &str, ports: &PortTable) -> Result<FlowKey, ParseError> {
    let text = text.trim();
    if text.contains('(') {
        let names = ports.odp_names();
        let attrs = dp_core::odp::key::parse(text, Some(&names))
            .map_err(|e| ParseError::new("flow", e.to_string()))?;
        let (key, _fit) = dp_core::odp::flow::key_to_flow(&attrs)
            .map_err(|e| ParseError::new("flow", e.to_string()))?;
        if key.in_port == dp_core::odp::flow::ODPP_NONE || ports.by_odp(key.in_port).is_none() {
            return Err(ParseError::new(
                "in_port",
                "the flow needs the datapath port of a bridge port",
            ));
        }
        return Ok(key);
    }
    let mut m = Match::catchall();
    let mut have_in_port = false;
    for tok in text.split([',', ' ']).filter(|t| !t.is_empty()) {
        match tok.split_once('=') {
            Some((k, v)) => match m.parse_field(k, v, ports)? {
                Some(Field::InPort) => have_in_port = true,
                Some(_) => {}
                None => return Err(ParseError::new(k, "unknown field")),
            },
            None => {
                if !m.set_protocol(tok) {
                    return Err(ParseError::new(tok, "unknown field or protocol"));
                }
            }
        }
    }
    if !have_in_port {
        return Err(ParseError::new("in_port", "the flow needs an in_port"));
    }
    let mut key = m.flow.key;
    let port = ports.get(key.in_port).ok_or_else(|| {
        ParseError::new("in_port", format!("no port {} on this bridge", key.in_port))
    })?;
    key.in_port = port.odp_port;
    Ok(key)
}

fn flow_line(flow: &OfFlow) -> String {
    let mut mask = relevant_mask(&flow.key);
    mask.metadata = if flow.metadata != 0 { u64::MAX } else { 0 };
    for i in 0..flow.regs.len() {
        mask.regs[i] = if flow.regs[i] != 0 { u32::MAX } else { 0 };
    }
    let m = Match {
        flow: flow.masked(&mask),
        mask,
    };
    m.format(None, None)
}

/// Renders a trace (see the module docs).
pub fn render(
    bridge: &str,
    key: &FlowKey,
    events: &[TraceEvent],
    t: &Translation,
    ports: &PortTable,
) -> String {
    let ofport = ports.by_odp(key.in_port).map(|p| p.ofport).unwrap_or(0);
    let mut initial = OfFlow::from_key(*key);
    initial.key.in_port = ofport;
    let mut s = String::new();
    let _ = writeln!(s, "Flow: {}\n", flow_line(&initial));
    let title = format!("bridge(\"{bridge}\")");
    let _ = writeln!(s, "{title}\n{}", "-".repeat(title.len()));
    for e in events {
        match e {
            TraceEvent::Lookup {
                depth,
                table_id,
                rule,
            } => {
                let pad = " ".repeat(*depth as usize * 4);
                let _ = write!(s, "{pad}{table_id:>2}. ");
                match rule {
                    None => s.push_str("No match.\n"),
                    Some(r) => {
                        let m = r.r#match.format(None, None);
                        if m.is_empty() {
                            let _ = write!(s, "priority {}", r.priority);
                        } else {
                            let _ = write!(s, "{m}, priority {}", r.priority);
                        }
                        if r.cookie != 0 {
                            let _ = write!(s, ", cookie {:#x}", r.cookie);
                        }
                        s.push('\n');
                    }
                }
            }
            TraceEvent::Action { depth, text } => {
                let pad = " ".repeat(*depth as usize * 4);
                let _ = writeln!(s, "{pad}{text}");
            }
            TraceEvent::Note { depth, text } => {
                let pad = " ".repeat(*depth as usize * 4 + 1);
                let _ = writeln!(s, "{pad}-> {text}");
            }
        }
    }
    s.push('\n');
    match t.final_flow.as_deref() {
        Some(f) if *f != initial => {
            let _ = writeln!(s, "Final flow: {}", flow_line(f));
        }
        _ => s.push_str("Final flow: unchanged\n"),
    }
    let mut mega = megaflow_match(key, ofport, &t.mask);
    // OVS's datapath key expresses "untagged" through the Ethernet type,
    // so its Megaflow line never shows the bare tag-presence bit; oxvs
    // matches it explicitly but prints the same text.
    let m0 = &mut mega.mask.key.vlans[0];
    if m0.tci == VLAN_CFI && mega.flow.key.vlans[0].tci == 0 {
        m0.tci = 0;
    }
    let _ = writeln!(s, "Megaflow: {}", mega.format(None, None));
    let _ = writeln!(
        s,
        "Datapath actions: {}",
        crate::odp_actions::format_odp_actions(&t.actions)
    );
    if let Some(e) = t.error {
        let _ = writeln!(s, "Translation failed ({e}), packet is dropped.");
    }
    s
}
