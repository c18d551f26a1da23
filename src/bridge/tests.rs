//! The daemon's upcall handler: the UFID it hands the PMD is the table's,
//! rules are credited through the sharded credit maps, and a credit pass
//! forgets exactly the megaflows that are gone.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use dp_core::flow::FlowKey;
use dp_core::flow::key::{ETH_TYPE_IPV4, IPPROTO_UDP};
use dp_core::flow_table::{FlowStats, ufid_from_match};
use dp_core::packet::{PacketPool, PoolConfig};
use dp_pmd::netdev::dummy::DummyNetdev;
use dp_pmd::pmd::{FlowDump, Pmd, PmdConfig, PmdMsg};
use dp_pmd::stats::PmdIdentity;
use dp_pmd::upcall::{Translation, UpcallHandler};
use ofproto::{Ofproto, PortConfig};

use super::{Bridges, CREDIT_SHARDS, credit_shard};

fn bridges() -> (Bridges, Arc<Ofproto>) {
    let br = Ofproto::new("br0");
    br.add_port(PortConfig::new("p1", 1).with_ofport(1))
        .expect("p1");
    br.add_port(PortConfig::new("p2", 2).with_ofport(2))
        .expect("p2");
    // The first rule makes every lookup examine the UDP source port, so
    // each flow below is its own megaflow; all but one hit the second.
    br.add_flows(
        "priority=10,in_port=p1,udp,tp_src=1000,actions=output:p2\n\
         priority=0,in_port=p1,actions=output:p2\n",
        0,
    )
    .expect("rules");
    let br = Arc::new(br);
    let b = Bridges::new();
    b.attach_port(1, Arc::clone(&br));
    b.attach_port(2, Arc::clone(&br));
    b.add_bridge(Arc::clone(&br));
    (b, br)
}

fn key(i: u32) -> FlowKey {
    let mut k = FlowKey::ZERO;
    k.in_port = 1;
    k.dl_type = ETH_TYPE_IPV4;
    k.nw_src = [10, 0, (i >> 8) as u8, i as u8];
    k.nw_dst = [10, 255, 0, 1];
    k.nw_proto = IPPROTO_UDP;
    k.nw_ttl = 64;
    k.tp_src = 1000 + i as u16;
    k.tp_dst = 53;
    k
}

/// Each upcall's UFID is the one the flow table computes for the
/// megaflow it installs (`key & mask` under the mask with an exact
/// `in_port`), and the rules of every megaflow, whichever credit shard
/// its UFID falls in, are credited with the packets the datapath later
/// reports for it.
#[test]
fn upcall_ufids_are_the_tables_and_every_shard_credits_its_rules() {
    let (b, br) = bridges();
    let pool = PacketPool::new("bridge-test", PoolConfig::heap(1));
    let packet = pool.alloc_from(&[0u8; 60]).expect("packet");
    let len = packet.len() as u64;
    let mut dumps = Vec::new();
    let mut shards = [false; CREDIT_SHARDS];
    const FLOWS: u32 = 200;
    for i in 0..FLOWS {
        let k = key(i);
        let mut mask = FlowKey::ZERO;
        let up = b
            .translate_upcall(&k, &packet, 0, PmdIdentity::Main, &mut mask)
            .expect("translates");
        assert!(up.install, "flow {i}: a megaflow expected");
        let actions = up.actions;
        // As the revalidator asks (no packet): the same megaflow.
        assert_eq!(
            b.translate(&k, None, 0).expect("translates"),
            Translation::Megaflow {
                mask,
                actions: Arc::clone(&actions),
            },
            "flow {i}"
        );
        let mut exact = mask;
        exact.in_port = u32::MAX;
        let ufid = up.ufid.expect("an upcall names its UFID");
        assert_eq!(ufid, ufid_from_match(&k.masked(&exact), &exact), "flow {i}");
        shards[credit_shard(ufid)] = true;
        dumps.push(FlowDump {
            ufid,
            key: k.masked(&exact),
            mask: exact,
            actions,
            stats: FlowStats::default(),
            created_ms: 0,
            pmd: PmdIdentity::Main,
        });
    }
    assert!(shards.iter().filter(|&&s| s).count() > CREDIT_SHARDS / 2);
    let rules = br.rules().rules();
    let n_packets = || rules.iter().map(|r| r.n_packets()).sum::<u64>();
    let n_bytes = || rules.iter().map(|r| r.n_bytes()).sum::<u64>();
    // The upcalled packets themselves.
    assert_eq!(n_packets(), u64::from(FLOWS));
    // The datapath reports 1 packet per flow (the upcalled one, already
    // credited), then 1 + i: only the i more are credited.
    for d in &mut dumps {
        d.stats.packets = 1;
        d.stats.bytes = len;
    }
    b.credit_flow_stats(b.begin_credit_pass(), &dumps, 1);
    assert_eq!(n_packets(), u64::from(FLOWS));
    for (i, d) in dumps.iter_mut().enumerate() {
        d.stats.packets = 1 + i as u64;
        d.stats.bytes = len * (1 + i as u64);
    }
    b.credit_flow_stats(b.begin_credit_pass(), &dumps, 2);
    let more: u64 = (0..u64::from(FLOWS)).sum();
    assert_eq!(n_packets(), u64::from(FLOWS) + more);
    assert_eq!(n_bytes(), len * (u64::from(FLOWS) + more));
    // A flow gone from the datapath is forgotten: reported again later,
    // it credits nothing.
    let last = dumps.pop().expect("a flow");
    b.credit_flow_stats(b.begin_credit_pass(), &dumps, 3);
    let mut back = last;
    back.stats.packets += 10;
    b.credit_flow_stats(b.begin_credit_pass(), &[back], 4);
    assert_eq!(n_packets(), u64::from(FLOWS) + more);
}

/// A PMD the test steps, upcalling into `b`.
fn stepped_pmd(b: &Arc<Bridges>, identity: PmdIdentity) -> Pmd {
    Pmd::new(
        PmdConfig {
            identity,
            upcall_share_pct: 0,
            ..PmdConfig::default()
        },
        b.clone(),
        Arc::new(AtomicUsize::new(1000)),
    )
}

/// The packets credited to all of `br`'s rules.
fn rule_packets(br: &Ofproto) -> u64 {
    br.rules().rules().iter().map(|r| r.n_packets()).sum()
}

/// A datapath with one PMD thread upcalling into `b`, and its two dummy
/// ports p1 and p2 (port numbers 1 and 2).
fn threaded_datapath(
    b: &Arc<Bridges>,
) -> (
    dp_pmd::datapath::Datapath,
    Arc<DummyNetdev>,
    Arc<DummyNetdev>,
) {
    use dp_pmd::netdev::dummy::DummyConfig;
    let mut dp = testbed::datapath::one_pmd_datapath(false, b.clone());
    let p1 = Arc::new(DummyNetdev::new("p1", DummyConfig::default()));
    let p2 = Arc::new(DummyNetdev::new("p2", DummyConfig::default()));
    dp.add_port(p1.clone(), testbed::datapath::port_no(1))
        .expect("p1");
    dp.add_port(p2.clone(), testbed::datapath::port_no(2))
        .expect("p2");
    (dp, p1, p2)
}

/// This PMD's flows, as the datapath's dump asks them.
fn dump(pmd: &mut Pmd) -> Vec<FlowDump> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    pmd.handle(PmdMsg::DumpFlows { reply: tx }, 0);
    rx.recv().expect("a dump")
}

/// A megaflow set up after a pass's flow dump but before the pass credits
/// (the daemon's periodic pass, `ofctl dump-flows`) keeps its entry, and
/// its rule is credited the packets it forwards later; a deleted megaflow
/// is still forgotten, so the entries come back to the live flows. With
/// every entry absent from the dump pruned, the second megaflow's rule
/// stayed at its upcalled packet forever.
#[test]
fn a_flow_set_up_during_a_credit_pass_is_credited_and_a_deleted_one_forgotten() {
    let (b, br) = bridges();
    let b = Arc::new(b);
    let mut pmd = stepped_pmd(&b, PmdIdentity::Main);
    let (p1, p2) = testbed::datapath::two_dummy_ports(&mut pmd);
    // UDP source port 1000 hits the priority-10 rule, 2000 the default.
    let frame = |sport| testbed::datapath::udp4_frame([10, 0, 0, 1], [10, 0, 0, 2], sport, 53);
    let rule = |priority: u16| {
        br.rules()
            .rules()
            .into_iter()
            .find(|r| r.priority == priority)
            .expect("rule")
    };
    p1.receive(0, &frame(1000)).expect("rx");
    assert_eq!(pmd.poll_once(0), 1);
    b.credit_flow_stats(b.begin_credit_pass(), &dump(&mut pmd), 1);

    // A pass begins and dumps; then the second megaflow is set up; then
    // the pass credits from its dump, which lacks it.
    let pass = b.begin_credit_pass();
    let flows = dump(&mut pmd);
    assert_eq!(flows.len(), 1);
    p1.receive(0, &frame(2000)).expect("rx");
    assert_eq!(pmd.poll_once(1_000_000), 1);
    b.credit_flow_stats(pass, &flows, 2);
    assert_eq!(rule(0).n_packets(), 1, "the upcalled packet");

    // Four more packets on it, then a pass that sees it.
    for _ in 0..4 {
        p1.receive(0, &frame(2000)).expect("rx");
    }
    assert_eq!(pmd.poll_once(2_000_000), 4);
    let pass = b.begin_credit_pass();
    let flows = dump(&mut pmd);
    assert_eq!(flows.len(), 2);
    b.credit_flow_stats(pass, &flows, 3);
    assert_eq!(rule(0).n_packets(), 5, "the megaflow's later packets");
    assert_eq!(rule(10).n_packets(), 1);
    assert_eq!(b.credit_entries(), 2);
    assert_eq!(p2.take_sent().len(), 6);

    // Deleted from the datapath, a megaflow's entry goes at the next pass.
    let gone = flows
        .iter()
        .find(|f| f.key.tp_src == 2000)
        .expect("the second megaflow")
        .ufid;
    pmd.handle(
        PmdMsg::FlowDel {
            ufid: gone,
            reply: None,
        },
        0,
    );
    let pass = b.begin_credit_pass();
    let flows = dump(&mut pmd);
    assert_eq!(flows.len(), 1);
    b.credit_flow_stats(pass, &flows, 4);
    assert_eq!(b.credit_entries(), 1);
}

/// Two PMDs each install their copy of one megaflow (same UFID) and
/// count their own packets; the rule is credited exactly the packets both
/// forwarded. With one credit entry per UFID, the second PMD's upcall
/// reset it while the dump summed both copies: the first copy's packets
/// were credited again (15 for 10 here).
#[test]
fn a_megaflow_on_two_pmds_is_credited_each_packet_once() {
    let (b, br) = bridges();
    let b = Arc::new(b);
    let mut pmds = [
        stepped_pmd(
            &b,
            PmdIdentity::Pmd {
                numa_id: 0,
                core_id: 1,
            },
        ),
        stepped_pmd(
            &b,
            PmdIdentity::Pmd {
                numa_id: 0,
                core_id: 2,
            },
        ),
    ];
    let ports: Vec<_> = pmds
        .iter_mut()
        .map(testbed::datapath::two_dummy_ports)
        .collect();
    let frame = testbed::datapath::udp4_frame([10, 0, 0, 1], [10, 0, 0, 2], 2000, 53);
    let send = |pmd: &mut Pmd, rx: &DummyNetdev, n: usize| {
        for _ in 0..n {
            rx.receive(0, &frame).expect("rx");
        }
        assert_eq!(pmd.poll_once(0), n);
    };
    let pass = |pmds: &mut [Pmd]| {
        let pass = b.begin_credit_pass();
        let flows: Vec<FlowDump> = pmds.iter_mut().flat_map(dump).collect();
        b.credit_flow_stats(pass, &flows, 1);
        flows
    };
    let n_packets = || rule_packets(&br);
    // PMD 1 sets the megaflow up and forwards 5; a pass credits them.
    send(&mut pmds[0], &ports[0].0, 5);
    pass(&mut pmds);
    assert_eq!(n_packets(), 5);
    // PMD 2 sets up its copy and forwards 3; PMD 1 forwards 2 more.
    send(&mut pmds[1], &ports[1].0, 3);
    send(&mut pmds[0], &ports[0].0, 2);
    let flows = pass(&mut pmds);
    assert_eq!(flows.len(), 2);
    assert_eq!(flows[0].ufid, flows[1].ufid, "one megaflow, two copies");
    assert_eq!(n_packets(), 10);
    assert_eq!(b.credit_entries(), 2);
    // Deleting one copy forgets only its entry; the other still counts.
    pmds[1].handle(
        PmdMsg::FlowDel {
            ufid: flows[1].ufid,
            reply: None,
        },
        0,
    );
    send(&mut pmds[0], &ports[0].0, 4);
    pass(&mut pmds);
    assert_eq!(n_packets(), 14);
    assert_eq!(b.credit_entries(), 1);
}

/// The daemon's pattern on real threads: a PMD thread sets up megaflow
/// after megaflow while another thread runs credit passes back to back
/// (begin, dump, credit), so upcalls keep landing between a pass's dump
/// and its prune. Every forwarded packet is credited exactly once (the
/// first of a megaflow at its upcall, the others it serves through the
/// passes), and the entries end as the live flows. Forgetting every entry
/// absent from the dump lost the later packets of the megaflows set up in
/// that window (~700 of 3000 credited).
#[test]
fn credit_passes_racing_a_setup_burst_credit_every_packet_once() {
    use std::sync::atomic::{AtomicBool, Ordering};

    const FLOWS: u16 = 3000;
    let (b, br) = bridges();
    let b = Arc::new(b);
    let (mut dp, p1, p2) = threaded_datapath(&b);
    let n_packets = || rule_packets(&br);
    let stop = AtomicBool::new(false);
    let mut forwarded = 0usize;
    let passes = std::thread::scope(|s| {
        let passer = s.spawn(|| {
            let mut passes = 0u64;
            loop {
                let pass = b.begin_credit_pass();
                let flows = dp.dump_flows().expect("dump");
                b.credit_flow_stats(pass, &flows, 1);
                passes += 1;
                if stop.load(Ordering::Relaxed) {
                    return passes;
                }
            }
        });
        // Stops the passes however this thread leaves the scope (a failed
        // wait included), so the scope's join cannot hang.
        struct StopOnDrop<'a>(&'a AtomicBool);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let stopper = StopOnDrop(&stop);
        // New UDP source ports, which the priority-10 rule examines: a
        // stream of new megaflows, sent in bursts the queue holds.
        for burst in (2000..2000 + FLOWS).collect::<Vec<_>>().chunks(16) {
            for &sport in burst {
                let frame = testbed::datapath::udp4_frame([10, 0, 0, 1], [10, 0, 0, 2], sport, 53);
                testbed::traffic::wait_for("room in p1's queue", 20, || {
                    p1.receive(0, &frame).is_ok()
                });
            }
            forwarded += p2.take_sent().len();
        }
        testbed::traffic::wait_for("every packet forwarded", 20, || {
            forwarded += p2.take_sent().len();
            forwarded == usize::from(FLOWS)
        });
        drop(stopper);
        passer.join().expect("pass thread")
    });
    let pass = b.begin_credit_pass();
    let flows = dp.dump_flows().expect("dump");
    b.credit_flow_stats(pass, &flows, 2);
    assert_eq!(n_packets(), u64::from(FLOWS), "after {passes} passes");
    assert_eq!(b.credit_entries(), flows.len());
    dp.shutdown();
}

/// A megaflow copy deleted after a pass's dump and set up again on the
/// same PMD (same UFID) before the pass credits: the pass's dump shows
/// the old copy, whose packets were credited against the old entry, so
/// it must credit nothing against the new one. Keyed by UFID and PMD
/// alone, the pass credited the old copy's packets again (its total less
/// the new copy's one upcalled packet).
#[test]
fn a_copy_replaced_between_a_pass_dump_and_its_credit_is_not_credited_again() {
    let (b, br) = bridges();
    let b = Arc::new(b);
    let mut pmd = stepped_pmd(&b, PmdIdentity::Main);
    let (p1, p2) = testbed::datapath::two_dummy_ports(&mut pmd);
    let frame = testbed::datapath::udp4_frame([10, 0, 0, 1], [10, 0, 0, 2], 2000, 53);
    let n_packets = || rule_packets(&br);
    let send = |pmd: &mut Pmd, n: usize, now_ns: u64| {
        for _ in 0..n {
            p1.receive(0, &frame).expect("rx");
        }
        assert_eq!(pmd.poll_once(now_ns), n);
    };
    // The first copy forwards 8; a pass credits them all.
    send(&mut pmd, 8, 0);
    b.credit_flow_stats(b.begin_credit_pass(), &dump(&mut pmd), 1);
    assert_eq!(n_packets(), 8);
    // A pass begins and dumps the first copy.
    let pass = b.begin_credit_pass();
    let flows = dump(&mut pmd);
    assert_eq!(flows.len(), 1);
    assert_eq!(flows[0].stats.packets, 8);
    // The copy is deleted (revalidator, dpctl/del-flow) and the megaflow
    // upcalled again, a millisecond later, on the same PMD.
    pmd.handle(
        PmdMsg::FlowDel {
            ufid: flows[0].ufid,
            reply: None,
        },
        0,
    );
    send(&mut pmd, 1, 1_000_000);
    let again = dump(&mut pmd);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].ufid, flows[0].ufid, "the same megaflow");
    assert_ne!(again[0].created_ms, flows[0].created_ms, "a new copy");
    // The pass credits from its dump of the old copy: only the new
    // copy's upcalled packet is new.
    b.credit_flow_stats(pass, &flows, 2);
    assert_eq!(n_packets(), 9);
    // The new copy's later packets are credited against its own baseline.
    send(&mut pmd, 3, 2_000_000);
    b.credit_flow_stats(b.begin_credit_pass(), &dump(&mut pmd), 3);
    assert_eq!(n_packets(), 12);
    assert_eq!(b.credit_entries(), 1);
    assert_eq!(p2.take_sent().len(), 12);
}

/// A deleted megaflow copy's last packets (those since the last credit
/// pass) are credited to its rules at the delete, as OVS pushes a
/// deleted flow's final statistics, and its entry goes with it: whether
/// a pass ever saw the copy or not, and with a pass between the dump and
/// the delete. Credited from dumps alone, a copy deleted between two
/// passes lost what it forwarded since the last one.
#[test]
fn a_deleted_copy_credits_its_last_packets() {
    let (b, br) = bridges();
    let b = Arc::new(b);
    let mut pmd = stepped_pmd(&b, PmdIdentity::Main);
    let (p1, p2) = testbed::datapath::two_dummy_ports(&mut pmd);
    let frame = |sport| testbed::datapath::udp4_frame([10, 0, 0, 1], [10, 0, 0, 2], sport, 53);
    let n_packets = || rule_packets(&br);
    let send = |pmd: &mut Pmd, sport, n: usize| {
        for _ in 0..n {
            p1.receive(0, &frame(sport)).expect("rx");
        }
        assert_eq!(pmd.poll_once(0), n);
    };
    let del = |pmd: &mut Pmd, ufid| {
        let (tx, rx) = crossbeam_channel::bounded(1);
        pmd.handle(
            PmdMsg::FlowDel {
                ufid,
                reply: Some(tx),
            },
            0,
        );
        rx.recv().expect("a reply").expect("the flow")
    };
    // Never seen by a pass: 7 packets, the first credited at its upcall.
    send(&mut pmd, 1000, 7);
    assert_eq!(n_packets(), 1);
    let ufid = dump(&mut pmd)[0].ufid;
    assert_eq!(del(&mut pmd, ufid).stats.packets, 7);
    assert_eq!(n_packets(), 7, "every packet of the deleted copy");
    assert_eq!(b.credit_entries(), 0);
    // Credited by a pass, then 4 more, then a pass that begins and dumps
    // before the delete and credits after it: 5 + 4, once each.
    send(&mut pmd, 2000, 5);
    b.credit_flow_stats(b.begin_credit_pass(), &dump(&mut pmd), 1);
    assert_eq!(n_packets(), 12);
    send(&mut pmd, 2000, 3);
    let pass = b.begin_credit_pass();
    let flows = dump(&mut pmd);
    send(&mut pmd, 2000, 1);
    assert_eq!(del(&mut pmd, flows[0].ufid).stats.packets, 9);
    assert_eq!(n_packets(), 16);
    b.credit_flow_stats(pass, &flows, 2);
    assert_eq!(n_packets(), 16, "the pass after the delete credits nothing");
    assert_eq!(b.credit_entries(), 0);
    assert_eq!(p2.take_sent().len(), 16);
    // A flush and a port's removal delete too.
    send(&mut pmd, 3000, 2);
    send(&mut pmd, 4000, 2);
    b.credit_flow_stats(b.begin_credit_pass(), &dump(&mut pmd), 3);
    send(&mut pmd, 3000, 3);
    pmd.handle(PmdMsg::FlowFlush, 0);
    assert_eq!(n_packets(), 23);
    send(&mut pmd, 4000, 2);
    pmd.remove_port(1, 0);
    assert_eq!(n_packets(), 25);
    assert_eq!(b.credit_entries(), 0);
}

/// `dpctl/mod-flow --clear` zeroes a copy's counters: its packets since
/// the last pass are credited then, and the next pass credits what it
/// counts from zero. With the old baseline kept, nothing was credited
/// until the copy passed its old total (10 would have read 5); with the
/// baseline zeroed alone, a pass that dumped before the clear credited
/// its 8 again.
#[test]
fn a_cleared_copy_is_credited_up_to_its_clear_and_from_zero_after() {
    let (b, br) = bridges();
    let b = Arc::new(b);
    let mut pmd = stepped_pmd(&b, PmdIdentity::Main);
    let (p1, p2) = testbed::datapath::two_dummy_ports(&mut pmd);
    let frame = testbed::datapath::udp4_frame([10, 0, 0, 1], [10, 0, 0, 2], 1000, 53);
    let n_packets = || rule_packets(&br);
    let send = |pmd: &mut Pmd, n: usize| {
        for _ in 0..n {
            p1.receive(0, &frame).expect("rx");
        }
        assert_eq!(pmd.poll_once(0), n);
    };
    send(&mut pmd, 5);
    b.credit_flow_stats(b.begin_credit_pass(), &dump(&mut pmd), 1);
    assert_eq!(n_packets(), 5);
    send(&mut pmd, 3);
    // A pass whose dump (8) comes before the clear and whose credit
    // comes after it: the clear credits those 3, the pass nothing.
    let early = b.begin_credit_pass();
    let early_dump = dump(&mut pmd);
    let flow = dump(&mut pmd).remove(0);
    let (tx, rx) = crossbeam_channel::bounded(1);
    pmd.handle(
        PmdMsg::FlowPut {
            key: flow.key,
            mask: flow.mask,
            ufid: Some(flow.ufid),
            actions: flow.actions.clone(),
            mode: dp_pmd::pmd::msg::PutMode::Modify { zero_stats: true },
            reply: tx,
        },
        0,
    );
    assert_eq!(rx.recv().expect("a reply"), Ok(flow.ufid));
    assert_eq!(dump(&mut pmd)[0].stats.packets, 0);
    assert_eq!(n_packets(), 8, "the 3 since the pass, at the clear");
    b.credit_flow_stats(early, &early_dump, 2);
    assert_eq!(
        n_packets(),
        8,
        "a dump from before the clear credits nothing"
    );
    send(&mut pmd, 2);
    b.credit_flow_stats(b.begin_credit_pass(), &dump(&mut pmd), 2);
    assert_eq!(n_packets(), 10);
    assert_eq!(p2.take_sent().len(), 10);
}

/// A PMD thread that stops (shutdown, a `pmd-cpu-mask` change) takes its
/// megaflow copies with it: their packets since the last pass are
/// credited as the thread exits (6 would have read 1, the upcalled
/// packet).
#[test]
fn a_stopped_pmds_copies_credit_their_last_packets() {
    let (b, br) = bridges();
    let b = Arc::new(b);
    let (mut dp, p1, p2) = threaded_datapath(&b);
    let frame = testbed::datapath::udp4_frame([10, 0, 0, 1], [10, 0, 0, 2], 1000, 53);
    let mut forwarded = 0;
    for _ in 0..6 {
        p1.receive(0, &frame).expect("rx");
        testbed::traffic::wait_for("the packet forwarded", 20, || {
            forwarded += p2.take_sent().len();
            forwarded > 0
        });
    }
    testbed::traffic::wait_for("every packet forwarded", 20, || {
        forwarded += p2.take_sent().len();
        forwarded == 6
    });
    let n_packets = || rule_packets(&br);
    assert_eq!(n_packets(), 1, "the upcalled packet; no pass yet");
    assert_eq!(b.credit_entries(), 1);
    dp.shutdown();
    assert_eq!(n_packets(), 6);
    assert_eq!(b.credit_entries(), 0);
}
