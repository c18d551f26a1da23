//! The general path's execution (`pmd/general.rs`) against a model of its
//! contract, on one PMD stepped over dummy ports: packets are executed
//! per flow group, groups in the order of their first packet, packets in
//! arrival order within a group, each flow credited with exactly its
//! packets; a batch whose groups all run one action list is executed as
//! received, in arrival order. Consecutive groups with equal action lists
//! run as one execution; that may not change what each port sends, in
//! which order, or any flow's counters. The batches mix flows whose
//! action lists are the same `Arc`, equal lists in different `Arc`s (what
//! ofproto-lite installs), different lists, multi-output lists and failed
//! translations (drops), in shuffled order and in runs.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use dp_core::action::Action;
use dp_core::flow::FlowKey;
use dp_core::netdev::Netdev;
use dp_core::packet::Packet;
use dp_pmd::netdev::dummy::{DummyConfig, DummyNetdev};
use dp_pmd::pmd::{FlowDump, Pmd, PmdConfig, PmdMsg, PolledRxq};
use dp_pmd::upcall::{Translation, UpcallError, UpcallHandler};
use testbed::datapath::udp4_frame;

/// Destinations 10.0.0.0 .. 10.0.0.11 (`DESTS`), one megaflow each.
const DESTS: u8 = 12;

/// What packets to 10.0.0.`dst` run: `None` when translation fails (the
/// packet is dropped, nothing installed).
fn ports_of(dst: u8) -> Option<Vec<u32>> {
    match dst % 6 {
        0 | 1 => Some(vec![2]),
        2 => Some(vec![3]),
        3 => Some(vec![3, 2]),
        4 => None,
        _ => Some(vec![2]),
    }
}

/// One megaflow per IPv4 destination, its actions from [`ports_of`].
/// Destinations `% 6 == 0` share one `Arc`; the others with `output:2`
/// get a fresh `Arc` per translation (equal lists, different pointers).
#[derive(Debug)]
struct PerDestination {
    shared: Arc<[Action]>,
}

impl UpcallHandler for PerDestination {
    fn translate(
        &self,
        key: &FlowKey,
        _: Option<&Packet>,
        _: u64,
    ) -> Result<Translation, UpcallError> {
        let dst = key.nw_dst[3];
        let Some(ports) = ports_of(dst) else {
            return Err(UpcallError(format!("no rule for 10.0.0.{dst}")));
        };
        let actions: Arc<[Action]> = if dst.is_multiple_of(6) {
            Arc::clone(&self.shared)
        } else {
            ports.into_iter().map(Action::Output).collect()
        };
        let mut mask = FlowKey::ZERO;
        mask.in_port = u32::MAX;
        mask.dl_type = u16::MAX;
        mask.nw_dst = [255; 4];
        Ok(Translation::Megaflow { mask, actions })
    }
    fn version(&self) -> u64 {
        0
    }
}

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn frame(dst: u8, id: u16) -> Vec<u8> {
    udp4_frame([10, 0, 0, 1], [10, 0, 0, dst], id, 53)
}

/// (destination, packet id) of a sent frame.
fn ident(frame: &[u8]) -> (u8, u16) {
    (frame[33], u16::from_be_bytes([frame[34], frame[35]]))
}

/// Destinations whose packets run `output:2` (equal lists, some the same
/// `Arc`).
const OUTPUT_2: [u8; 6] = [0, 1, 5, 6, 7, 11];

/// What the contract says ports 2 and 3 send for one batch of
/// (destination, id), in order.
fn model(batch: &[(u8, u16)]) -> HashMap<u32, Vec<(u8, u16)>> {
    let lists: Vec<Option<Vec<u32>>> = batch.iter().map(|p| ports_of(p.0)).collect();
    if let Some(Some(list)) = lists.first()
        && lists.iter().all(|l| l.as_ref() == Some(list))
    {
        // One action list for every packet: the batch as received.
        return list.iter().map(|&port| (port, batch.to_vec())).collect();
    }
    let mut order: Vec<u8> = Vec::new();
    for &(dst, _) in batch {
        if !order.contains(&dst) {
            order.push(dst);
        }
    }
    let mut sent: HashMap<u32, Vec<(u8, u16)>> = HashMap::new();
    for dst in order {
        let group: Vec<(u8, u16)> = batch.iter().copied().filter(|p| p.0 == dst).collect();
        for port in ports_of(dst).unwrap_or_default() {
            sent.entry(port).or_default().extend(&group);
        }
    }
    sent
}

fn dump(pmd: &mut Pmd) -> Vec<FlowDump> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    pmd.handle(PmdMsg::DumpFlows { reply: tx }, 0);
    rx.recv().unwrap()
}

#[test]
fn grouped_execution_keeps_each_ports_order_and_each_flows_counters() {
    let config = PmdConfig {
        upcall_share_pct: 0,
        ..PmdConfig::default()
    };
    let handler = Arc::new(PerDestination {
        shared: Arc::from(vec![Action::Output(2)]),
    });
    let mut pmd = Pmd::new(config, handler, Arc::new(AtomicUsize::new(1000)));
    let ports: Vec<Arc<DummyNetdev>> = (1..=3)
        .map(|i| Arc::new(DummyNetdev::new(&format!("p{i}"), DummyConfig::default())))
        .collect();
    pmd.add_rxq(PolledRxq::new(1, "p1", 0, ports[0].open_rxq(0).unwrap()));
    for (no, port) in [(2u32, &ports[1]), (3, &ports[2])] {
        pmd.add_txq(no, port.open_txq(0).unwrap());
    }

    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut id = 0u16;
    let mut expected_packets: HashMap<u8, u64> = HashMap::new();
    let mut expected_drops = 0u64;
    for round in 0..80 {
        // Shuffled batches of any size, batches of runs (each
        // destination's packets together, in arrival order: the in-place
        // case when their lists are equal), and shuffled batches whose
        // destinations all run `output:2` (in place, flows interleaved).
        let len = 1 + rng.below(32) as usize;
        let dsts: Vec<u8> = if round % 4 == 3 {
            (0..len)
                .map(|_| OUTPUT_2[rng.below(OUTPUT_2.len() as u64) as usize])
                .collect()
        } else if round % 3 == 2 {
            let mut runs = Vec::new();
            while runs.len() < len {
                let dst = rng.below(u64::from(DESTS)) as u8;
                let run = 1 + rng.below(4) as usize;
                runs.extend(std::iter::repeat_n(dst, run.min(len - runs.len())));
            }
            runs
        } else {
            (0..len)
                .map(|_| rng.below(u64::from(DESTS)) as u8)
                .collect()
        };
        let batch: Vec<(u8, u16)> = dsts
            .into_iter()
            .map(|dst| {
                id += 1;
                (dst, id)
            })
            .collect();
        for &(dst, id) in &batch {
            ports[0].receive(0, &frame(dst, id)).unwrap();
        }
        assert_eq!(pmd.poll_once(round * 1_000_000), batch.len());
        let want = model(&batch);
        for (no, port) in [(2u32, &ports[1]), (3, &ports[2])] {
            let sent: Vec<(u8, u16)> = port.take_sent().iter().map(|f| ident(f)).collect();
            assert_eq!(
                sent,
                want.get(&no).cloned().unwrap_or_default(),
                "round {round}: port {no} for batch {batch:?}"
            );
        }
        for &(dst, _) in &batch {
            match ports_of(dst) {
                Some(_) => *expected_packets.entry(dst).or_default() += 1,
                None => expected_drops += 1,
            }
        }
    }

    // Every flow credited with exactly its packets (the first packet of a
    // flow is the upcall's, which counts too: it ran the installed flow).
    let flows = dump(&mut pmd);
    let credited: HashMap<u8, u64> = flows
        .iter()
        .map(|f| (f.key.nw_dst[3], f.stats.packets))
        .collect();
    assert_eq!(credited, expected_packets);
    for f in &flows {
        assert_eq!(f.stats.bytes, f.stats.packets * frame(0, 0).len() as u64);
    }
    let no_flow = pmd
        .drop_counts()
        .into_iter()
        .find(|(name, _)| *name == "datapath_drop_no_flow")
        .map_or(0, |(_, n)| n);
    assert!(expected_drops > 0);
    assert_eq!(
        no_flow, expected_drops,
        "each failed translation's packet dropped once"
    );
    drop(pmd);
    assert_eq!(ports[0].pool().in_use(), 0, "no buffer leaked");
}
