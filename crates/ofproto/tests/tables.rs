//! Flow-mod semantics (add/replace, strict and loose modify and delete,
//! cookies, out_port, overlap), timeouts with an injected clock, stats,
//! dump-flows, and version publication.

use dp_core::flow::FlowKey;
use dp_core::flow::key::*;
use ofproto::{FlowModError, Ofproto, OfprotoError, PortConfig};

fn bridge() -> Ofproto {
    let o = Ofproto::new("br0");
    for i in 1..=3u32 {
        o.add_port(PortConfig::new(format!("p{i}"), 10 + i).with_ofport(i))
            .unwrap();
    }
    o
}

fn ip_to(dst: [u8; 4]) -> FlowKey {
    let mut k = FlowKey::ZERO;
    k.in_port = 11;
    k.dl_type = ETH_TYPE_IPV4;
    k.nw_dst = dst;
    k
}

fn flows(o: &Ofproto) -> Vec<String> {
    o.dump_flows(0)
        .lines()
        .map(|l| {
            l.split_once("n_bytes=0, ")
                .map(|(_, r)| r.to_string())
                .unwrap_or(l.to_string())
        })
        .collect()
}

#[test]
fn add_replaces_same_match_and_priority() {
    let o = bridge();
    let v0 = o.version();
    o.add_flow("priority=5,ip,actions=output:2", 0).unwrap();
    o.add_flow("priority=5,ip,actions=output:3", 0).unwrap();
    o.add_flow("priority=6,ip,actions=output:1", 0).unwrap();
    assert_eq!(
        flows(&o),
        [
            "priority=6,ip actions=output:1",
            "priority=5,ip actions=output:3"
        ]
    );
    assert_eq!(o.version(), v0 + 3);
}

#[test]
fn modify_loose_and_strict() {
    let o = bridge();
    o.add_flows(
        "priority=5,ip,nw_dst=10.0.0.0/8,actions=output:2\n\
         priority=6,tcp,nw_dst=10.1.0.0/16,actions=output:2\n\
         priority=7,arp,actions=output:2\n",
        0,
    )
    .unwrap();
    o.mod_flows("ip,actions=output:3", false, 0).unwrap();
    assert_eq!(
        flows(&o),
        [
            "priority=7,arp actions=output:2",
            "priority=6,tcp,nw_dst=10.1.0.0/16 actions=output:3",
            "priority=5,ip,nw_dst=10.0.0.0/8 actions=output:3",
        ]
    );
    o.mod_flows("priority=5,ip,nw_dst=10.0.0.0/8,actions=drop", true, 0)
        .unwrap();
    assert_eq!(flows(&o)[2], "priority=5,ip,nw_dst=10.0.0.0/8 actions=drop");
    // Strict modify of something absent adds it (OpenFlow 1.0).
    o.mod_flows("priority=9,udp,actions=output:1", true, 0)
        .unwrap();
    assert_eq!(flows(&o)[0], "priority=9,udp actions=output:1");
}

#[test]
fn delete_loose_strict_cookie_and_out_port() {
    let o = bridge();
    o.add_flows(
        "cookie=0x1,priority=5,ip,nw_dst=10.0.0.0/8,actions=output:2\n\
         cookie=0x2,priority=6,tcp,nw_dst=10.1.0.0/16,actions=output:3\n\
         cookie=0x2,priority=7,arp,actions=output:2\n\
         table=1,priority=7,arp,actions=output:2\n",
        0,
    )
    .unwrap();
    // Strict needs the exact priority.
    assert!(
        o.del_flows("priority=6,ip,nw_dst=10.0.0.0/8", true, 0)
            .unwrap()
            .is_empty()
    );
    // Loose, filtered by out_port: only the tcp rule goes.
    let gone = o.del_flows("ip,out_port=3", false, 0).unwrap();
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].priority, 6);
    // Cookie mask selects across tables when no table is given.
    let gone = o.del_flows("cookie=0x2/0xff", false, 0).unwrap();
    assert_eq!(gone.len(), 1);
    let gone = o.del_flows("table=1", false, 0).unwrap();
    assert_eq!(gone.len(), 1);
    assert_eq!(o.del_flows("", false, 0).unwrap().len(), 1);
    assert_eq!(o.rules().n_rules(), 0);
}

#[test]
fn check_overlap_refuses_overlapping_same_priority() {
    let o = bridge();
    o.add_flow("priority=5,ip,nw_dst=10.0.0.0/8,actions=drop", 0)
        .unwrap();
    let e = o
        .add_flow(
            "check_overlap,priority=5,ip,nw_dst=10.1.0.0/16,actions=drop",
            0,
        )
        .unwrap_err();
    assert_eq!(
        e,
        OfprotoError::FlowMod(FlowModError::Overlap { table_id: 0 })
    );
    assert!(e.to_string().starts_with("check_overlap: "));
    o.add_flow(
        "check_overlap,priority=5,ip,nw_dst=11.0.0.0/8,actions=drop",
        0,
    )
    .unwrap();
    o.add_flow(
        "check_overlap,priority=4,ip,nw_dst=10.1.0.0/16,actions=drop",
        0,
    )
    .unwrap();
}

#[test]
fn batch_is_atomic() {
    let o = bridge();
    let v = o.version();
    let e = o.add_flows(
        "priority=1,actions=drop\npriority=2,ip,nw_dst=1.2.3.4.5,actions=drop\n",
        0,
    );
    let OfprotoError::Parse(p) = e.unwrap_err() else {
        panic!()
    };
    assert_eq!(p.field, "nw_dst");
    assert!(p.message.ends_with("(line 2)"), "{}", p.message);
    assert_eq!(o.version(), v);
    assert_eq!(o.rules().n_rules(), 0);
}

#[test]
fn timeouts_expire_with_injected_clock_and_stats_count() {
    let o = bridge();
    o.add_flow("idle_timeout=10,priority=5,ip,actions=output:2", 1_000)
        .unwrap();
    o.add_flow("hard_timeout=30,priority=4,arp,actions=output:2", 1_000)
        .unwrap();
    // Traffic at 9 s keeps the idle rule alive until 19 s.
    let t = o.translate(&ip_to([1, 2, 3, 4]), 9_000);
    t.credit(3, 180, 9_000);
    assert!(o.run(18_999).expired_rules.is_empty());
    let r = o.run(19_000);
    assert_eq!(r.expired_rules.len(), 1);
    assert_eq!(r.expired_rules[0].1, ofproto::ExpireReason::Idle);
    assert_eq!(r.expired_rules[0].0.n_packets(), 3);
    assert_eq!(r.expired_rules[0].0.n_bytes(), 180);
    assert!(o.is_stale(&t));
    let r = o.run(31_000);
    assert_eq!(r.expired_rules[0].1, ofproto::ExpireReason::Hard);
    assert_eq!(o.rules().n_rules(), 0);
}

#[test]
fn modify_keeps_counters_unless_reset() {
    let o = bridge();
    o.add_flow("priority=5,ip,actions=output:2", 0).unwrap();
    o.translate(&ip_to([1, 1, 1, 1]), 0).credit(2, 100, 0);
    o.mod_flows("ip,actions=output:3", false, 0).unwrap();
    assert_eq!(o.rules().rules()[0].n_packets(), 2);
    o.mod_flows("reset_counts,ip,actions=output:3", false, 0)
        .unwrap();
    assert_eq!(o.rules().rules()[0].n_packets(), 0);
}

#[test]
fn dump_flows_format_and_names() {
    let o = bridge();
    o.add_flow(
        "cookie=0xa,table=2,idle_timeout=5,priority=7,tcp,in_port=p1,tp_dst=22,actions=p2",
        1_000,
    )
    .unwrap();
    o.translate(&ip_to([1, 1, 1, 1]), 0).credit(1, 60, 0);
    assert_eq!(
        o.dump_flows(3_500),
        " cookie=0xa, duration=2.500s, table=2, n_packets=0, n_bytes=0, idle_timeout=5, priority=7,tcp,in_port=1,tp_dst=22 actions=output:2\n"
    );
    // What dump-flows prints, add-flow reads back.
    let line = o.dump_flows(3_500);
    let o2 = bridge();
    o2.add_flow(&line, 0).unwrap();
    assert_eq!(
        o2.dump_flows(3_500),
        line.replace("duration=2.500s", "duration=3.500s")
    );
}

#[test]
fn readers_keep_their_snapshot() {
    let o = bridge();
    o.add_flow("priority=1,actions=output:2", 0).unwrap();
    let snap = o.rules();
    o.del_flows("", false, 0).unwrap();
    assert_eq!(snap.n_rules(), 1);
    assert_eq!(o.rules().n_rules(), 0);
    assert!(snap.version < o.version());
}

#[test]
fn dump_flows_filter_and_names() {
    let o = bridge();
    o.add_flows(
        "priority=5,ip,nw_dst=10.0.0.0/8,actions=output:2\n\
         priority=6,tcp,in_port=1,nw_dst=10.1.0.0/16,actions=output:3\n\
         table=4,priority=7,arp,actions=output:2\n",
        0,
    )
    .unwrap();
    let d = o.dump_flows_filtered("tcp", true, 0).unwrap();
    assert_eq!(
        d,
        " cookie=0x0, duration=0.000s, table=0, n_packets=0, n_bytes=0, priority=6,tcp,in_port=p1,nw_dst=10.1.0.0/16 actions=output:p3\n"
    );
    assert_eq!(
        o.dump_flows_filtered("out_port=2", false, 0)
            .unwrap()
            .lines()
            .count(),
        2
    );
    assert_eq!(
        o.dump_flows_filtered("table=4", false, 0)
            .unwrap()
            .lines()
            .count(),
        1
    );
    assert_eq!(
        o.dump_flows_filtered("tcp,tp_dst=80", false, 0).unwrap(),
        ""
    );
    assert_eq!(
        o.dump_flows_filtered("tp_dst=80", false, 0)
            .unwrap_err()
            .to_string()
            .split(':')
            .next(),
        Some("tp_dst")
    );
}
