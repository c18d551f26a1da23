//! Readers translate against whole snapshots while a writer changes the
//! rules: every translation sees one version or the other, never a mix,
//! and nothing blocks or panics.

use dp_core::action::Action;
use dp_core::flow::FlowKey;
use dp_core::flow::key::*;
use ofproto::{FlowModCommand, Ofproto, PortConfig, Revalidation, parse_flow_mod};
use std::sync::atomic::{AtomicBool, Ordering};

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn ofproto_is_shareable() {
    assert_send_sync::<Ofproto>();
    assert_send_sync::<ofproto::Translation>();
}

#[test]
fn translations_see_whole_versions() {
    let o = Ofproto::new("br0");
    for i in 1..=3u32 {
        o.add_port(PortConfig::new(format!("p{i}"), 10 + i).with_ofport(i))
            .unwrap();
    }
    // Two rules that always change together: table 0 sends to table 1,
    // and the version is told by where table 1 outputs.
    let a = "table=0,priority=1,actions=load:0x1->NXM_NX_REG0[],resubmit(,1)\ntable=1,priority=1,reg0=1,actions=output:2\n";
    let b = "table=0,priority=1,actions=load:0x2->NXM_NX_REG0[],resubmit(,1)\ntable=1,priority=1,reg0=2,actions=output:3\n";
    o.add_flows(a, 0).unwrap();
    let stop = AtomicBool::new(false);
    let mut k = FlowKey::ZERO;
    k.in_port = 11;
    k.dl_type = ETH_TYPE_IPV4;
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) || n < 100 {
                    let t = o.translate(&k, 0);
                    // A mix of a's table 0 and b's table 1 would drop.
                    assert!(
                        t.actions[..] == [Action::Output(12)]
                            || t.actions[..] == [Action::Output(13)],
                        "mixed versions: {:?}",
                        t.actions
                    );
                    n += 1;
                }
            });
        }
        // Stop the readers even if the writer panics.
        struct Stop<'a>(&'a AtomicBool);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let _stop = Stop(&stop);
        let ports = o.ports();
        let batch = |text: &str| {
            let mut mods = vec![
                parse_flow_mod("", FlowModCommand::Delete { strict: false }, &*ports).unwrap(),
            ];
            for line in text.lines() {
                mods.push(parse_flow_mod(line, FlowModCommand::Add, &*ports).unwrap());
            }
            mods
        };
        let (to_a, to_b) = (batch(a), batch(b));
        for i in 0..300 {
            o.apply_flow_mods(if i % 2 == 0 { &to_b } else { &to_a }, 0)
                .unwrap();
        }
    });
}

#[test]
fn revalidation_keeps_modifies_or_deletes() {
    let o = Ofproto::new("br0");
    for i in 1..=3u32 {
        o.add_port(PortConfig::new(format!("p{i}"), 10 + i).with_ofport(i))
            .unwrap();
    }
    o.add_flow("priority=5,ip,actions=output:2", 0).unwrap();
    let mut k = FlowKey::ZERO;
    k.in_port = 11;
    k.dl_type = ETH_TYPE_IPV4;
    k.nw_dst = [10, 0, 0, 1];
    let t = o.translate(&k, 0);
    assert!(matches!(o.revalidate(&k, &t, 0), Revalidation::Unchanged));
    o.add_flow("priority=1,arp,actions=drop", 0).unwrap();
    let Revalidation::Keep(t) = o.revalidate(&k, &t, 0) else {
        panic!("unrelated rule changes nothing")
    };
    o.mod_flows("ip,actions=output:3", false, 0).unwrap();
    let Revalidation::Modify(t) = o.revalidate(&k, &t, 0) else {
        panic!("actions changed")
    };
    assert_eq!(t.actions[..], [Action::Output(13)]);
    o.add_flow("priority=9,ip,nw_dst=10.0.0.0/8,actions=output:1", 0)
        .unwrap();
    assert!(matches!(o.revalidate(&k, &t, 0), Revalidation::Delete));
}
