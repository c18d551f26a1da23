//! Action execution cost per packet (issue #5), on batches of 32 packets
//! of one flow.
//!
//! Run: `cargo bench --bench actions -- --warm-up-time 1 --measurement-time 2`.
//!
//! Every case runs the same loop: refill the 32 packets from a template
//! (a 60-byte copy each, offsets and RSS hash as extraction and the NIC
//! would leave them), run the flow's actions, and take the output batch
//! back from the sink for the next round. `move_only` is that loop with
//! the executor replaced by handing the batch straight to the sink: the
//! cost of the move. A case's cost over the move is its figure minus
//! `move_only`'s (figures are per packet; criterion's times are per batch
//! of 32).
//!
//! On a shared machine, criterion's wall-clock figures mostly measure the
//! neighbours. So each case first prints a preemption-robust figure (the
//! loop in `benches/common`, shared with `benches/classifier.rs`):
//! `figure actions/<case>: min .. median .. ns/pkt`, the minimum and
//! median over ~300 short repetitions (each well under a scheduler
//! quantum, so the minimum is the case's own cost), then criterion's run unless `OXVS_BENCH_QUICK` is set. `OXVS_BENCH_ONLY=<s>`
//! runs only the cases whose name contains `s`; `OXVS_BENCH_ITERS=N` runs
//! each case exactly N times untimed (for callgrind).

use std::hint::black_box;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use dp_core::action::{Action, TnlPush, Userspace, vport_type};
use dp_core::execute::{ActionSink, Executor};
use dp_core::flow::{FlowKey, extract};
use dp_core::odp::attr::{Ipv4Key, KeyAttr};
use dp_core::packet::{HeaderOffsets, MAX_BURST, Packet, PacketBatch, PacketPool, PoolConfig};

mod common;

use common::udp4_60;

fn vxlan_header() -> Vec<u8> {
    let mut h = vec![
        0xf8, 0xbc, 0x12, 0x44, 0x34, 0xb6, 0xaa, 0x55, 0xaa, 0x55, 0, 0,
    ];
    h.extend_from_slice(&[0x08, 0x00]);
    h.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0]);
    h.extend_from_slice(&[192, 168, 1, 1, 192, 168, 1, 2]);
    h.extend_from_slice(&[0, 0, 0x12, 0xb5, 0, 0, 0, 0]);
    h.extend_from_slice(&[0x08, 0, 0, 0, 0, 0, 0x7b, 0]);
    h
}

/// The PMD's tx buffer stand-in: keeps what it is given for the next
/// round.
struct BackSink {
    back: PacketBatch,
}

impl ActionSink for BackSink {
    #[inline]
    fn output(&mut self, _port: u32, batch: &mut PacketBatch) {
        for packet in batch.drain() {
            let _ = self.back.push(packet);
        }
    }

    fn userspace(&mut self, _packet: Packet, _action: &Userspace) -> Result<(), Packet> {
        Ok(())
    }

    fn recirculate(&mut self, _batch: &mut PacketBatch) {}
}

struct Rig {
    template: Vec<u8>,
    offsets: HeaderOffsets,
    batch: PacketBatch,
    sink: BackSink,
    exec: Executor,
    _pool: PacketPool,
}

impl Rig {
    fn new() -> Rig {
        let pool = PacketPool::new("bench", PoolConfig::heap(2 * MAX_BURST));
        let clones = PacketPool::new("clones", PoolConfig::heap(2 * MAX_BURST));
        let template = udp4_60();
        let mut batch = PacketBatch::new();
        let mut key = FlowKey::ZERO;
        let mut offsets = HeaderOffsets::NONE;
        for _ in 0..MAX_BURST {
            let mut p = pool.alloc_from(&template).expect("pool has room");
            extract(&mut p, &mut key);
            offsets = p.meta().offsets;
            batch.push(p).expect("batch has room");
        }
        Rig {
            template,
            offsets,
            batch,
            sink: BackSink {
                back: PacketBatch::new(),
            },
            exec: Executor::new(clones, 1),
            _pool: pool,
        }
    }

    /// Puts the packets back in their received state.
    #[inline]
    fn refill(&mut self) {
        for (i, p) in self.batch.iter_mut().enumerate() {
            p.set_data(&self.template);
            let meta = p.meta_mut();
            meta.offsets = self.offsets;
            meta.rss_hash = 0x9e37_79b9u32.wrapping_mul(i as u32 + 1);
            meta.rss_hash_valid = true;
        }
    }

    #[inline]
    fn take_back(&mut self) {
        std::mem::swap(&mut self.batch, &mut self.sink.back);
        debug_assert_eq!(self.batch.len(), MAX_BURST);
    }
}

/// The preemption-robust figure for `f` (one batch per call), then
/// criterion's run: [`common::run_case`].
fn run_case(group: &mut BenchmarkGroup<'_, WallTime>, id: &str, f: impl FnMut()) {
    common::run_case(&format!("actions/{id}"), "pkt", MAX_BURST as u64, f, |f| {
        group.bench_function(id, |b| b.iter(&mut *f));
    });
}

fn bench_actions(c: &mut Criterion) {
    let mut group = c.benchmark_group("actions");
    group.throughput(Throughput::Elements(MAX_BURST as u64));

    let mut rig = Rig::new();
    run_case(&mut group, "move_only", || {
        rig.refill();
        rig.sink.output(1, black_box(&mut rig.batch));
        rig.take_back();
    });

    let cases: Vec<(&str, Vec<Action>)> = vec![
        ("output", vec![Action::Output(1)]),
        (
            "push_vlan+output",
            vec![
                Action::PushVlan {
                    tpid: 0x8100,
                    tci: 0x1064,
                },
                Action::Output(1),
            ],
        ),
        (
            "set_ipv4_dst+output",
            vec![
                Action::SetMasked {
                    key: KeyAttr::Ipv4(Ipv4Key {
                        dst: [192, 168, 0, 9],
                        ..Default::default()
                    }),
                    mask: KeyAttr::Ipv4(Ipv4Key {
                        dst: [0xff; 4],
                        ..Default::default()
                    }),
                },
                Action::Output(1),
            ],
        ),
        (
            "vxlan_push+output",
            vec![
                Action::TnlPush(TnlPush {
                    tnl_port: 4789,
                    out_port: 1,
                    tnl_type: vport_type::VXLAN,
                    header: vxlan_header(),
                }),
                Action::Output(1),
            ],
        ),
    ];
    for (name, actions) in &cases {
        let mut rig = Rig::new();
        run_case(&mut group, name, || {
            rig.refill();
            rig.exec
                .execute(black_box(actions), &mut rig.batch, &mut rig.sink, 0);
            rig.take_back();
        });
        assert_eq!(
            rig.exec.drops().total(),
            0,
            "{name}: {:?}",
            rig.exec.drops()
        );
    }
    group.finish();
}

criterion_group!(benches, bench_actions);
criterion_main!(benches);
