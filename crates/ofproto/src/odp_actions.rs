//! Datapath actions as ODP text (`Datapath actions:` in a trace), by
//! dp-core's ODP formatter; the tests pin the text of every kind of
//! action translation emits, so a formatter change that would alter
//! traces shows up here.

use dp_core::action::Action;

/// Formats a datapath action list as OVS does (`drop` when empty).
pub fn format_odp_actions(acts: &[Action]) -> String {
    dp_core::odp::actions::format(acts, None)
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
