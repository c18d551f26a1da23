//! Datapath actions as ODP text (`Datapath actions:` in a trace).
//!
//! This is a thin adapter: dp-core's `odp` module formats keys and masks
//! (used here for `set(...)`), but has no action formatter yet. It covers
//! exactly the actions translation emits, in OVS `format_odp_actions`
//! syntax; anything else falls back to a debug form rather than failing.
//! Replace it with dp-core's formatter once that lands.

use dp_core::action::{Action, TnlPush, Userdata, vport_type};
use dp_core::odp::fmt as odpfmt;
use dp_core::odp::key;
use std::fmt::Write;

/// Formats a datapath action list (`drop` when empty).
pub fn format_odp_actions(acts: &[Action]) -> String {
    if acts.is_empty() {
        return "drop".to_string();
    }
    let mut s = String::new();
    for (i, a) in acts.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        format_one(&mut s, a);
    }
    s
}

fn format_one(s: &mut String, a: &Action) {
    match a {
        Action::Output(p) => {
            let _ = write!(s, "{p}");
        }
        Action::Set(attr) => {
            s.push_str("set(");
            s.push_str(&key::format(std::slice::from_ref(attr), None));
            s.push(')');
        }
        Action::SetMasked { key: k, mask } => {
            s.push_str("set(");
            s.push_str(&key::format_masked(
                std::slice::from_ref(k),
                Some(std::slice::from_ref(mask)),
                None,
                false,
            ));
            s.push(')');
        }
        Action::PushVlan { tpid, tci } => {
            s.push_str("push_vlan(");
            if *tpid != 0x8100 {
                let _ = write!(s, "tpid=0x{tpid:04x},");
            }
            let _ = write!(s, "vid={},pcp={}", tci & 0x0fff, tci >> 13);
            if tci & 0x1000 == 0 {
                s.push_str(",cfi=0");
            }
            s.push(')');
        }
        Action::PopVlan => s.push_str("pop_vlan"),
        Action::Meter(m) => {
            let _ = write!(s, "meter({m})");
        }
        Action::Userspace(u) => {
            let _ = write!(s, "userspace(pid={}", u.pid);
            if let Some(Userdata::Controller {
                reason,
                dont_send,
                continuation,
                recirc_id,
                rule_cookie,
                controller_id,
                max_len,
            }) = &u.userdata
            {
                let _ = write!(
                    s,
                    ",controller(reason={reason},dont_send={},continuation={},recirc_id={recirc_id},rule_cookie={},controller_id={controller_id},max_len={max_len})",
                    u8::from(*dont_send),
                    u8::from(*continuation),
                    odpfmt::hexp(u128::from(*rule_cookie)),
                );
            }
            s.push(')');
        }
        Action::TnlPush(t) => format_tnl_push(s, t),
        Action::Drop => s.push_str("drop"),
        other => {
            let _ = write!(s, "{other:?}");
        }
    }
}

fn format_tnl_push(s: &mut String, t: &TnlPush) {
    let h = &t.header;
    let _ = write!(
        s,
        "tnl_push(tnl_port({}),header(size={},type={},",
        t.tnl_port,
        h.len(),
        t.tnl_type
    );
    if h.len() >= 50 {
        let mac = |o: usize| -> [u8; 6] {
            let mut m = [0u8; 6];
            m.copy_from_slice(&h[o..o + 6]);
            m
        };
        let be16 = |o: usize| u16::from_be_bytes([h[o], h[o + 1]]);
        s.push_str("eth(dst=");
        odpfmt::mac(s, &mac(0));
        s.push_str(",src=");
        odpfmt::mac(s, &mac(6));
        let _ = write!(s, ",dl_type=0x{:04x}),", be16(12));
        let ip = 14;
        let addr = |o: usize| [h[o], h[o + 1], h[o + 2], h[o + 3]];
        s.push_str("ipv4(src=");
        odpfmt::ipv4(s, &addr(ip + 12));
        s.push_str(",dst=");
        odpfmt::ipv4(s, &addr(ip + 16));
        let _ = write!(
            s,
            ",proto={},tos={},ttl={},frag=0x{:x}),",
            h[ip + 9],
            odpfmt::hexp(u128::from(h[ip + 1])),
            h[ip + 8],
            be16(ip + 6)
        );
        let udp = ip + 20;
        let _ = write!(
            s,
            "udp(src={},dst={},csum=0x{:x}),",
            be16(udp),
            be16(udp + 2),
            be16(udp + 6)
        );
        let t_ofs = udp + 8;
        let w = |o: usize| u32::from_be_bytes([h[o], h[o + 1], h[o + 2], h[o + 3]]);
        if t.tnl_type == vport_type::VXLAN {
            let _ = write!(
                s,
                "vxlan(flags=0x{:x},vni=0x{:x})",
                w(t_ofs),
                w(t_ofs + 4) >> 8
            );
        } else if t.tnl_type == vport_type::GENEVE {
            let _ = write!(s, "geneve(vni=0x{:x})", w(t_ofs + 4) >> 8);
        }
    }
    let _ = write!(s, "),out_port({}))", t.out_port);
}

#[cfg(test)]
mod tests {
    use super::*;
    use dp_core::odp::attr::{EthKey, Ipv4Key, KeyAttr};

    #[test]
    fn formats_like_ovs() {
        let acts = vec![
            Action::PopVlan,
            Action::Output(2),
            Action::PushVlan {
                tpid: 0x8100,
                tci: 0x1000 | 10,
            },
            Action::Output(3),
            Action::SetMasked {
                key: KeyAttr::Ipv4(Ipv4Key {
                    ttl: 63,
                    ..Default::default()
                }),
                mask: KeyAttr::Ipv4(Ipv4Key {
                    ttl: 0xff,
                    ..Default::default()
                }),
            },
            Action::Set(KeyAttr::Ethernet(EthKey {
                src: [0, 1, 2, 3, 4, 5],
                dst: [0xa; 6],
            })),
        ];
        assert_eq!(
            format_odp_actions(&acts),
            "pop_vlan,2,push_vlan(vid=10,pcp=0),3,set(ipv4(ttl=63)),set(eth(src=00:01:02:03:04:05,dst=0a:0a:0a:0a:0a:0a))"
        );
        assert_eq!(format_odp_actions(&[]), "drop");
    }
}
