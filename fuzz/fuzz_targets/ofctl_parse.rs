//! ofctl flow syntax on arbitrary input, as a sequence of operations: each
//! line is `a TEXT` (add-flow), `m TEXT` / `M TEXT` (mod-flows loose /
//! strict), `d TEXT` / `D TEXT` (del-flows), or `t TEXT` (trace). Nothing
//! may panic; whatever add-flow accepts must print (dump-flows) to text
//! that parses back to the same rule; translating a few fixed packets
//! must not panic whatever the rules.
#![no_main]

use dp_core::flow::FlowKey;
use ofproto::{FlowModCommand, Ofproto, PortConfig, parse_flow_mod};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let o = Ofproto::new("br0");
    for i in 1..=3u32 {
        let _ = o.add_port(PortConfig::new(format!("p{i}"), 10 + i).with_ofport(i));
    }
    let ports = o.ports();
    for (n, line) in text.lines().take(32).enumerate() {
        let now = n as u64 * 1000;
        let (op, rest) = line.split_at(line.chars().next().map_or(0, char::len_utf8));
        let rest = rest.trim_start();
        match op {
            "a" => {
                if let Ok(fm) = parse_flow_mod(rest, FlowModCommand::Add, &*ports) {
                    let printed = format!(
                        "priority={},{},actions={}",
                        fm.priority,
                        fm.r#match.format(None, Some(&*ports)),
                        ofproto::actions::format_actions(&fm.actions, Some(&*ports))
                    );
                    let back = parse_flow_mod(&printed, FlowModCommand::Add, &*ports)
                        .unwrap_or_else(|e| panic!("{printed:?} does not parse: {e}"));
                    assert_eq!(back.r#match, fm.r#match, "{printed}");
                    assert_eq!(back.actions, fm.actions, "{printed}");
                    let _ = o.apply_flow_mods(&[fm], now);
                }
            }
            "m" | "M" => {
                let _ = o.mod_flows(rest, op == "M", now);
            }
            "d" | "D" => {
                let _ = o.del_flows(rest, op == "D", now);
            }
            "t" => {
                let _ = o.trace(rest, now);
            }
            _ => {}
        }
    }
    // dump-flows output is add-flow input.
    for line in o.dump_flows(0).lines() {
        parse_flow_mod(line, FlowModCommand::Add, &*ports)
            .unwrap_or_else(|e| panic!("dump line {line:?} does not parse: {e}"));
    }
    for in_port in [11u32, 12, 99] {
        let mut k = FlowKey::ZERO;
        k.in_port = in_port;
        k.dl_type = 0x0800;
        k.nw_proto = 6;
        k.nw_ttl = 1;
        let _ = o.translate(&k, 0);
        k.dl_type = 0x0806;
        let _ = o.translate(&k, 0);
    }
    let _ = o.run(1_000_000);
});
