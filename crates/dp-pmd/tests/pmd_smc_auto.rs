//! The SMC's default mode, `auto`, in a stepped PMD: with traffic spread
//! over eight megaflow masks the PMD turns its SMC on at the next subtable
//! re-sort, serves packets from it with the same answers, and reports the
//! state in its stats and in `pmd-stats-show`'s line; with one mask it
//! never does.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use dp_core::action::Action;
use dp_core::cascade::{CascadeConfig, EmcMode, SmcMode};
use dp_core::flow::FlowKey;
use dp_core::packet::Packet;
use dp_pmd::datapath::format_cache_state;
use dp_pmd::netdev::dummy::DummyNetdev;
use dp_pmd::pmd::{Pmd, PmdConfig};
use dp_pmd::upcall::{FlowActions, Translation, UpcallError, UpcallHandler};
use testbed::datapath::udp4_frame;

/// Port 1 → port 2. With `masks` > 1, a packet to 10.0.0.`d` gets mask
/// `d % masks`: the destination plus the top `d % masks + 1` bits of the
/// UDP source port, so each of the `masks` destinations has its own
/// subtable.
#[derive(Debug)]
struct Masks(u8);

impl UpcallHandler for Masks {
    fn translate(
        &self,
        key: &FlowKey,
        _packet: Option<&Packet>,
        _now_ms: u64,
    ) -> Result<Translation, UpcallError> {
        let mut mask = FlowKey::ZERO;
        mask.in_port = u32::MAX;
        mask.dl_type = u16::MAX;
        mask.nw_dst = [255; 4];
        mask.tp_src = !(u16::MAX >> (key.nw_dst[3] % self.0 + 1));
        let actions: FlowActions = Arc::from(vec![Action::Output(2)]);
        Ok(Translation::Megaflow { mask, actions })
    }

    fn version(&self) -> u64 {
        0
    }
}

const MS: u64 = 1_000_000;

/// Runs `polls` batches of 32 packets spread over `masks` destinations
/// (each packet its own UDP destination port, so its own hash) at time
/// `now_ns`; checks every packet went out of port 2.
fn traffic(pmd: &mut Pmd, p1: &DummyNetdev, p2: &DummyNetdev, masks: u8, polls: u16, now_ns: u64) {
    for poll in 0..polls {
        for i in 0..32u16 {
            let dst = (i % u16::from(masks)) as u8;
            let dport = poll.wrapping_mul(32).wrapping_add(i);
            p1.receive(0, &udp4_frame([10, 0, 0, 1], [10, 0, 0, dst], 7, dport))
                .expect("inject");
        }
        assert_eq!(pmd.poll_once(now_ns), 32);
        assert_eq!(p2.take_sent().len(), 32, "poll {poll}");
    }
}

fn rig(masks: u8) -> (Pmd, Arc<DummyNetdev>, Arc<DummyNetdev>) {
    let config = PmdConfig {
        cascade: CascadeConfig {
            // Off, so every established packet is a megaflow hit (or,
            // once it is on, an SMC hit).
            emc_insert_inv_prob: 0,
            smc_entries: 4096,
            ..CascadeConfig::default()
        },
        ..PmdConfig::default()
    };
    let mut pmd = Pmd::new(
        config,
        Arc::new(Masks(masks)),
        Arc::new(AtomicUsize::new(1000)),
    );
    let (p1, p2) = testbed::datapath::two_dummy_ports(&mut pmd);
    (pmd, p1, p2)
}

#[test]
fn auto_smc_turns_on_over_many_masks_and_serves_the_same_answers() {
    let (mut pmd, p1, p2) = rig(8);
    traffic(&mut pmd, &p1, &p2, 8, 64, 0);
    let s = pmd.stats();
    assert!(!s.lookup.smc_active);
    assert_eq!(s.lookup.smc_hits, 0);
    assert!(
        s.lookup.avg_subtable_lookups_per_megaflow_hit() >= 4.0,
        "{:?}",
        s.lookup
    );
    let mut text = String::new();
    format_cache_state(&mut text, &s, EmcMode::Auto, SmcMode::Auto);
    assert_eq!(
        text,
        "  emc: inactive (emc-enable=auto)\n  smc: inactive (smc-enable=auto)\n"
    );

    // The next re-sort (1 s on) decides; the packets seen since come from
    // the SMC.
    traffic(&mut pmd, &p1, &p2, 8, 1, 1000 * MS);
    assert!(pmd.stats().lookup.smc_active);
    traffic(&mut pmd, &p1, &p2, 8, 1, 1000 * MS);
    let s = pmd.stats();
    assert_eq!(s.lookup.smc_hits, 32, "{:?}", s.lookup);
    let mut text = String::new();
    format_cache_state(&mut text, &s, EmcMode::Auto, SmcMode::Auto);
    assert_eq!(
        text,
        "  emc: inactive (emc-enable=auto)\n  smc: active (smc-enable=auto)\n"
    );
    drop(pmd);
    assert_eq!(p1.pool().in_use(), 0);
}

#[test]
fn auto_smc_stays_off_with_one_mask() {
    let (mut pmd, p1, p2) = rig(1);
    for second in 0..3 {
        traffic(&mut pmd, &p1, &p2, 8, 64, second * 1000 * MS);
        assert!(!pmd.stats().lookup.smc_active, "at {second} s");
    }
    assert_eq!(pmd.stats().lookup.smc_hits, 0);
}
