//! The uniform-batch shortcut (`pmd/uniform.rs`) against the general
//! path, on one PMD stepped over dummy ports: a batch whose packets all
//! hit one flow, and batches that mix flows or misses, must forward the
//! same packets, each flow's in the order received, and credit each flow
//! the same packets, bytes and TCP flags.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use dp_core::action::Action;
use dp_core::cascade::CascadeConfig;
use dp_core::flow::FlowKey;
use dp_core::netdev::Netdev;
use dp_core::packet::Packet;
use dp_pmd::netdev::dummy::{DummyConfig, DummyNetdev};
use dp_pmd::pmd::{FlowDump, Pmd, PmdConfig, PmdMsg, PolledRxq};
use dp_pmd::upcall::{Translation, UpcallError, UpcallHandler};

/// One megaflow per IPv4 destination, all to port 2.
#[derive(Debug)]
struct PerDestination;

impl UpcallHandler for PerDestination {
    fn translate(
        &self,
        _: &FlowKey,
        _: Option<&Packet>,
        _: u64,
    ) -> Result<Translation, UpcallError> {
        let mut mask = FlowKey::ZERO;
        mask.in_port = u32::MAX;
        mask.dl_type = u16::MAX;
        mask.nw_dst = [255; 4];
        Ok(Translation::Megaflow {
            mask,
            actions: Arc::from(vec![Action::Output(2)]),
        })
    }
    fn version(&self) -> u64 {
        0
    }
}

/// A TCP segment to 10.0.0.`dst` from source port `sport` with `flags`,
/// `pad` bytes longer than the minimum.
fn tcp_frame(dst: u8, sport: u16, flags: u8, pad: usize) -> Vec<u8> {
    let mut f = vec![0u8; 60 + pad];
    f[..6].copy_from_slice(&[0, 0, 0, 0, 0, 2]);
    f[6..12].copy_from_slice(&[0, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[16..18].copy_from_slice(&(46 + pad as u16).to_be_bytes());
    f[22] = 64;
    f[23] = 6;
    f[26..30].copy_from_slice(&[10, 0, 0, 1]);
    f[30..34].copy_from_slice(&[10, 0, 0, dst]);
    f[34..36].copy_from_slice(&sport.to_be_bytes());
    f[36..38].copy_from_slice(&80u16.to_be_bytes());
    f[46] = 0x50; // data offset 5
    f[47] = flags;
    f
}

fn dump(pmd: &mut Pmd) -> Vec<FlowDump> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    pmd.handle(PmdMsg::DumpFlows { reply: tx }, 0);
    let mut flows = rx.recv().unwrap();
    flows.sort_by_key(|f| f.key.nw_dst);
    flows
}

fn sport(frame: &[u8]) -> u16 {
    u16::from_be_bytes([frame[34], frame[35]])
}

#[test]
fn uniform_and_mixed_batches_forward_and_credit_alike() {
    for emc_insert_inv_prob in [0, 1] {
        let mut pmd = Pmd::new(
            PmdConfig {
                cascade: CascadeConfig {
                    emc_insert_inv_prob,
                    emc: dp_core::cascade::EmcMode::On,
                    ..CascadeConfig::default()
                },
                ..PmdConfig::default()
            },
            Arc::new(PerDestination),
            Arc::new(AtomicUsize::new(1000)),
        );
        let p1 = Arc::new(DummyNetdev::new("p1", DummyConfig::default()));
        let p2 = Arc::new(DummyNetdev::new("p2", DummyConfig::default()));
        pmd.add_rxq(PolledRxq::new(1, "p1", 0, p1.open_rxq(0).unwrap()));
        pmd.add_txq(2, p2.open_txq(0).unwrap());

        // Install the flows to .2 and .3 (one upcall each).
        p1.receive(0, &tcp_frame(2, 1, 0x02, 0)).unwrap();
        p1.receive(0, &tcp_frame(3, 1, 0x02, 0)).unwrap();
        pmd.poll_once(1_000_000);
        assert_eq!(pmd.stats().miss_upcall_ok, 2);

        // A full batch, all to .2: the shortcut. Flags differ per packet
        // (ACK, PSH|ACK, FIN|ACK), lengths too.
        let mut want = Vec::new();
        for i in 0..32u16 {
            let flags = [0x10, 0x18, 0x11][usize::from(i % 3)];
            let f = tcp_frame(2, 100 + i, flags, usize::from(i % 4));
            want.push(f.clone());
            p1.receive(0, &f).unwrap();
        }
        assert_eq!(pmd.poll_once(2_000_000), 32);
        // A mixed batch: .2, .3 and a miss (.4) interleaved.
        for i in 0..30u16 {
            let dst = [2, 3, 4][usize::from(i % 3)];
            let f = tcp_frame(dst, 200 + i, 0x10, 0);
            want.push(f.clone());
            p1.receive(0, &f).unwrap();
        }
        assert_eq!(pmd.poll_once(3_000_000), 30);

        let sent: Vec<Vec<u8>> = p2.take_sent();
        // Everything forwarded; the uniform batch in receive order. The
        // mixed batch's flows all run `output:2`, so what must hold is that
        // port 2 gets exactly its packets, each flow's in receive order
        // (the general path runs such a batch as received; see
        // pmd_general_exec.rs for the order of batches whose lists differ).
        assert_eq!(sent.len(), 2 + 62);
        assert_eq!(sent[2..34], want[..32], "uniform batch order");
        let mut mixed: Vec<Vec<u8>> = sent[34..].to_vec();
        for dst in [2u8, 3, 4] {
            let got: Vec<u16> = mixed
                .iter()
                .filter(|f| f[33] == dst)
                .map(|f| sport(f))
                .collect();
            let sent_in: Vec<u16> = want[32..]
                .iter()
                .filter(|f| f[33] == dst)
                .map(|f| sport(f))
                .collect();
            assert_eq!(got, sent_in, "flow to .{dst}: its packets, in order");
        }
        let mut expected: Vec<Vec<u8>> = want[32..].to_vec();
        mixed.sort();
        expected.sort();
        assert_eq!(mixed, expected, "mixed batch: the packets received");

        let flows = dump(&mut pmd);
        assert_eq!(flows.len(), 3);
        let uniform_bytes: u64 = want[..32].iter().map(|f| f.len() as u64).sum();
        // .2: the installing packet, the 32 of the uniform batch, 10 mixed.
        assert_eq!(flows[0].stats.packets, 1 + 32 + 10);
        assert_eq!(flows[0].stats.bytes, 60 + uniform_bytes + 10 * 60);
        assert_eq!(flows[0].stats.tcp_flags, 0x02 | 0x10 | 0x18 | 0x11);
        assert_eq!(flows[0].stats.used_ms, 3);
        assert_eq!(flows[1].stats.packets, 1 + 10);
        assert_eq!(flows[1].stats.tcp_flags, 0x02 | 0x10);
        // .4's flow was installed by the mixed batch's upcall: it counts
        // the packets after the first.
        assert_eq!(flows[2].stats.packets, 10);
        drop(pmd);
        assert_eq!(p1.pool().in_use(), 0);
    }
}

/// A batch that is one run (32 copies of one TCP segment: `flow::same`)
/// takes the whole-run path when the EMC serves its first packet: every
/// packet forwarded, the flow credited 32 packets, 32 lengths and the
/// segment's flags, the cascade 32 EMC hits; with the EMC off (its first
/// packet a megaflow hit) the usual path credits the same.
#[test]
fn a_batch_of_one_run_forwards_and_credits_every_packet() {
    for emc_insert_inv_prob in [1, 0] {
        let mut pmd = Pmd::new(
            PmdConfig {
                cascade: CascadeConfig {
                    emc_insert_inv_prob,
                    emc: dp_core::cascade::EmcMode::On,
                    ..CascadeConfig::default()
                },
                ..PmdConfig::default()
            },
            Arc::new(PerDestination),
            Arc::new(AtomicUsize::new(1000)),
        );
        let p1 = Arc::new(DummyNetdev::new("p1", DummyConfig::default()));
        let p2 = Arc::new(DummyNetdev::new("p2", DummyConfig::default()));
        pmd.add_rxq(PolledRxq::new(1, "p1", 0, p1.open_rxq(0).unwrap()));
        pmd.add_txq(2, p2.open_txq(0).unwrap());

        // Installs the flow to .2, then (a megaflow hit, at 1/1) the
        // segment's EMC entry (its key has the segment's TCP flags).
        let segment = tcp_frame(2, 7, 0x18, 5);
        p1.receive(0, &tcp_frame(2, 7, 0x02, 0)).unwrap();
        pmd.poll_once(1_000_000);
        p1.receive(0, &segment).unwrap();
        pmd.poll_once(1_500_000);
        let before = pmd.stats().lookup;

        for _ in 0..32 {
            p1.receive(0, &segment).unwrap();
        }
        assert_eq!(pmd.poll_once(2_000_000), 32);

        let sent = p2.take_sent();
        assert_eq!(sent.len(), 2 + 32);
        assert!(sent[2..].iter().all(|f| *f == segment), "the run forwarded");
        let lookup = pmd.stats().lookup;
        assert_eq!(lookup.packets - before.packets, 32);
        let (emc, megaflow) = (
            lookup.emc_hits - before.emc_hits,
            lookup.megaflow_hits - before.megaflow_hits,
        );
        if emc_insert_inv_prob == 1 {
            assert_eq!((emc, megaflow), (32, 0), "served by the EMC");
        } else {
            assert_eq!((emc, megaflow), (0, 32), "served by the classifier");
        }
        let flows = dump(&mut pmd);
        assert_eq!(flows.len(), 1);
        assert_eq!(flows[0].stats.packets, 2 + 32);
        assert_eq!(flows[0].stats.bytes, 60 + 33 * segment.len() as u64);
        assert_eq!(flows[0].stats.tcp_flags, 0x02 | 0x18);
        assert_eq!(flows[0].stats.used_ms, 2);
        drop(pmd);
        assert_eq!(p1.pool().in_use(), 0);
    }
}
