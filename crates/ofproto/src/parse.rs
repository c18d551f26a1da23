//! `ovs-ofctl` flow syntax: the text of `add-flow`, `mod-flows` and
//! `del-flows` into a [`FlowMod`], and a rule back into text.
//!
//! # Syntax
//! `[table=N,][priority=N,][cookie=V[/M],][idle_timeout=N,][hard_timeout=N,]
//! [out_port=P,][send_flow_rem,][check_overlap,][reset_counts,]
//! MATCH... actions=ACTIONS`, fields separated by commas or blanks,
//! `key=value` or `key:value`. The statistics fields that `dump-flows`
//! prints (`duration`, `n_packets`, `n_bytes`, `idle_age`, `hard_age`) are
//! accepted and ignored so its output can be fed back, as OVS does.
//!
//! # Errors
//! Every error is a [`ParseError`] whose `field` is the key, action or
//! field name that was wrong, and whose message says why.

use crate::actions::{OfAction, parse_actions};
use crate::field::Field;
use crate::r#match::{DEFAULT_PRIORITY, Match};
use crate::ports::{OFPP_NONE, PortNamer, parse_port};
use std::fmt;

/// A rejected piece of ofctl text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// The key, field or action that was wrong.
    pub field: String,
    pub message: String,
}

impl ParseError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> ParseError {
        ParseError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Parses a decimal or `0x` hexadecimal unsigned integer.
pub fn parse_uint(s: &str) -> Option<u128> {
    let s = s.trim();
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        if h.is_empty() || h.len() > 32 {
            return None;
        }
        u128::from_str_radix(h, 16).ok()
    } else if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse::<u128>().ok()
    } else {
        None
    }
}

/// What a flow mod does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowModCommand {
    /// `add-flow`: insert, replacing a rule with the same match and
    /// priority in the same table.
    Add,
    /// `mod-flows`: change the actions of matching rules; `strict` means
    /// same match and priority, else every rule the match covers.
    Modify { strict: bool },
    /// `del-flows`, strict or covering, as for modify.
    Delete { strict: bool },
}

/// Flags of a flow mod.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowModFlags {
    pub send_flow_rem: bool,
    /// Refuse an add that overlaps a rule of the same priority.
    pub check_overlap: bool,
    /// Zero the counters of a replaced or modified rule.
    pub reset_counts: bool,
}

/// A parsed flow mod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowMod {
    pub command: FlowModCommand,
    /// `None`: table 0 for add, every table for modify and delete.
    pub table_id: Option<u8>,
    pub priority: u16,
    pub cookie: u64,
    /// Which cookie bits select rules (modify and delete only).
    pub cookie_mask: u64,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    /// Delete/modify only rules that output to this port.
    pub out_port: Option<u32>,
    pub r#match: Match,
    pub actions: Vec<OfAction>,
    pub flags: FlowModFlags,
}

/// Finds where the actions start (`actions=` or `action=`), outside of
/// any parenthesis.
fn split_actions(text: &str) -> Option<(&str, &str)> {
    for key in ["actions=", "actions:", "action="] {
        let mut from = 0;
        while let Some(p) = text[from..].find(key) {
            let at = from + p;
            let before_ok = at == 0 || matches!(text.as_bytes()[at - 1], b',' | b' ' | b'\t');
            if before_ok {
                return Some((&text[..at], &text[at + key.len()..]));
            }
            from = at + key.len();
        }
    }
    None
}

fn int<T: TryFrom<u128>>(key: &str, v: &str) -> Result<T, ParseError> {
    parse_uint(v)
        .and_then(|x| T::try_from(x).ok())
        .ok_or_else(|| ParseError::new(key, format!("{v}: expected an integer in range")))
}

/// Parses the text of one flow for `command`.
pub fn parse_flow_mod(
    text: &str,
    command: FlowModCommand,
    names: &dyn PortNamer,
) -> Result<FlowMod, ParseError> {
    let (match_text, actions_text) = match split_actions(text) {
        Some((m, a)) => (m, Some(a)),
        None => (text, None),
    };
    let mut fm = FlowMod {
        command,
        table_id: None,
        priority: DEFAULT_PRIORITY,
        cookie: 0,
        cookie_mask: 0,
        idle_timeout: 0,
        hard_timeout: 0,
        out_port: None,
        r#match: Match::catchall(),
        actions: Vec::new(),
        flags: FlowModFlags::default(),
    };
    let mut fields_set: Vec<(String, Field)> = Vec::new();
    for tok in match_text.split([',', ' ', '\t', '\n', '\r']) {
        if tok.is_empty() {
            continue;
        }
        let (key, value) = match tok.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => match tok.split_once(':') {
                Some((k, v)) => (k, Some(v)),
                None => (tok, None),
            },
        };
        let need = || {
            value
                .filter(|v| !v.is_empty())
                .ok_or_else(|| ParseError::new(key, "needs a value"))
        };
        match key {
            "table" => {
                let t: u8 = int(key, need()?)?;
                if t == 255 {
                    if command == FlowModCommand::Add {
                        return Err(ParseError::new(key, "add-flow needs a table 0..254"));
                    }
                } else {
                    fm.table_id = Some(t);
                }
            }
            "priority" => fm.priority = int(key, need()?)?,
            "cookie" => {
                let v = need()?;
                let (c, m) = match v.split_once('/') {
                    Some((c, m)) => (c, Some(m)),
                    None => (v, None),
                };
                fm.cookie = int(key, c)?;
                match m {
                    Some(m) => {
                        if command == FlowModCommand::Add {
                            return Err(ParseError::new(
                                key,
                                "a cookie mask is only for mod-flows and del-flows",
                            ));
                        }
                        fm.cookie_mask = int(key, m)?;
                    }
                    None => {
                        fm.cookie_mask = if command == FlowModCommand::Add {
                            0
                        } else {
                            u64::MAX
                        };
                    }
                }
            }
            "idle_timeout" => fm.idle_timeout = int(key, need()?)?,
            "hard_timeout" => fm.hard_timeout = int(key, need()?)?,
            "importance" => {
                let _: u16 = int(key, need()?)?;
            }
            "out_port" => {
                let p = parse_port(need()?, names).map_err(|e| ParseError::new(key, e))?;
                fm.out_port = (p != OFPP_NONE).then_some(p);
            }
            "send_flow_rem" => fm.flags.send_flow_rem = true,
            "check_overlap" => fm.flags.check_overlap = true,
            "reset_counts" => fm.flags.reset_counts = true,
            "no_packet_counts" | "no_byte_counts" => {}
            "duration" | "n_packets" | "n_bytes" | "idle_age" | "hard_age" => {}
            _ => match value {
                None => {
                    if !fm.r#match.set_protocol(key) {
                        return Err(ParseError::new(key, "unknown field or protocol"));
                    }
                }
                Some(v) => {
                    if v.is_empty() {
                        return Err(ParseError::new(key, "needs a value"));
                    }
                    match fm.r#match.parse_field(key, v, names)? {
                        Some(f) => fields_set.push((key.to_string(), f)),
                        None => return Err(ParseError::new(key, "unknown field")),
                    }
                }
            },
        }
    }
    fm.r#match.check_prereqs(&fields_set)?;
    match (command, actions_text) {
        (FlowModCommand::Delete { .. }, Some(_)) => {
            return Err(ParseError::new(
                "actions",
                "del-flows does not take actions",
            ));
        }
        (FlowModCommand::Delete { .. }, None) => {}
        (_, None) => return Err(ParseError::new("actions", "must specify an action")),
        (_, Some(a)) => fm.actions = parse_actions(a, &fm.r#match, names)?,
    }
    if let Some(t) = fm.table_id {
        for a in &fm.actions {
            if let OfAction::GotoTable(g) = a
                && *g <= t
            {
                return Err(ParseError::new(
                    "goto_table",
                    format!("table {g} is not after table {t}"),
                ));
            }
        }
    }
    Ok(fm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::NoNames;

    #[test]
    fn parses_a_typical_add() {
        let fm = parse_flow_mod(
            "table=1, priority=100,ip,nw_dst=10.0.0.0/24 actions=output:2",
            FlowModCommand::Add,
            &NoNames,
        )
        .unwrap();
        assert_eq!(fm.table_id, Some(1));
        assert_eq!(fm.priority, 100);
        assert_eq!(fm.r#match.format(None, None), "ip,nw_dst=10.0.0.0/24");
        assert_eq!(fm.actions, vec![OfAction::Output { port: 2 }]);
    }

    #[test]
    fn dump_flows_output_parses_back() {
        let line = " cookie=0x5, duration=1.234s, table=0, n_packets=3, n_bytes=180, idle_timeout=10, priority=7,tcp,tp_dst=80 actions=drop";
        let fm = parse_flow_mod(line, FlowModCommand::Add, &NoNames).unwrap();
        assert_eq!((fm.cookie, fm.idle_timeout, fm.priority), (5, 10, 7));
        assert!(fm.actions.is_empty());
    }

    #[test]
    fn errors_name_the_key() {
        for (s, cmd, field) in [
            (
                "priority=70000,actions=drop",
                FlowModCommand::Add,
                "priority",
            ),
            ("ip", FlowModCommand::Add, "actions"),
            (
                "ip,actions=drop",
                FlowModCommand::Delete { strict: false },
                "actions",
            ),
            ("bogus=1,actions=drop", FlowModCommand::Add, "bogus"),
            ("frob,actions=drop", FlowModCommand::Add, "frob"),
            ("cookie=1/1,actions=drop", FlowModCommand::Add, "cookie"),
            ("table=300,actions=drop", FlowModCommand::Add, "table"),
            (
                "table=3,actions=goto_table:2",
                FlowModCommand::Add,
                "goto_table",
            ),
            ("in_port=,actions=drop", FlowModCommand::Add, "in_port"),
        ] {
            let e = parse_flow_mod(s, cmd, &NoNames).unwrap_err();
            assert_eq!(e.field, field, "{s}: {e}");
        }
    }

    #[test]
    fn uints() {
        assert_eq!(parse_uint("0x1f"), Some(31));
        assert_eq!(parse_uint("17"), Some(17));
        assert_eq!(parse_uint("-1"), None);
        assert_eq!(parse_uint("0x"), None);
        assert_eq!(parse_uint(""), None);
    }
}
