//! `tnl_pop` on arbitrary frames, for every tunnel kind and receive check
//! (fixed key, required checksum): must not panic, must never decapsulate
//! into less than an Ethernet header (UDP tunnels), must leave a refused
//! packet exactly as it was, and must return the buffer to its pool.
//!
//! Input: one selector byte (bits 0-1 kind, bit 2 fixed key, bits 3-6 the
//! key, bit 7 csum required), then the frame; the frame's last byte also
//! picks the Geneve options the port knows (mapped critical options must
//! pass, unknown ones never).
#![no_main]

use dp_core::execute::tunnel::GeneveKnown;
use dp_core::execute::{TunnelKind, TunnelPort, tnl_flags, tunnel};
use dp_core::packet::{PacketPool, PoolConfig};
use libfuzzer_sys::fuzz_target;

thread_local! {
    // Pools live for the process (their header is leaked on purpose), so
    // one serves every input.
    static POOL: PacketPool = PacketPool::new("fuzz", PoolConfig::heap(1));
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, frame)) = data.split_first() else {
        return;
    };
    // Which Geneve options the port knows comes from the frame's last
    // byte (usually padding or payload), so the seeds stay valid frames:
    // none, class 0x0102 or 0xffff with a critical type, or 64 of them.
    let known_sel = frame.last().copied().unwrap_or(0);
    let known = match known_sel & 3 {
        0 => Some(GeneveKnown::NONE),
        1 => GeneveKnown::new([(0x0102, 0x80 | (known_sel >> 2) & 7)]),
        2 => GeneveKnown::new([(0xffff, 0x80 | (known_sel >> 2) & 7), (0x0102, 0x81)]),
        _ => GeneveKnown::new((0..64u8).map(|t| (0x0102, t | 0x80))),
    }
    .expect("at most 64 options");
    let kind = match sel & 3 {
        0 => TunnelKind::Vxlan,
        1 => TunnelKind::Geneve,
        _ => TunnelKind::Gre,
    };
    let port = TunnelPort {
        kind,
        key: (sel & 4 != 0).then_some(u64::from((sel >> 3) & 0xf)),
        csum_required: sel & 0x80 != 0,
        geneve_known: known,
    };
    POOL.with(|pool| run(pool, kind, port, frame));
});

fn run(pool: &PacketPool, kind: TunnelKind, port: TunnelPort, frame: &[u8]) {
    let Some(mut packet) = pool.alloc_from(frame) else {
        return;
    };
    match tunnel::pop_port(&mut packet, &port) {
        Ok(()) => {
            assert!(packet.len() < frame.len(), "decapsulation removed nothing");
            let tun = &packet.meta().tunnel;
            if kind != TunnelKind::Gre {
                assert!(packet.len() >= 14, "inner frame shorter than Ethernet");
                assert!(tun.flags & tnl_flags::KEY != 0);
            }
            if let Some(key) = port.key {
                assert_eq!(tun.tun_id, key, "a fixed-key port took another key");
            }
            if port.csum_required {
                assert!(
                    tun.flags & tnl_flags::CSUM != 0,
                    "csum=true took no checksum"
                );
            }
            // Every critical option that passed is one the port knows, and
            // where options are mapped the flow key holds them all.
            let opts = tun.geneve_options();
            let mut pos = 0;
            while pos + 4 <= opts.len() {
                let class = u16::from_be_bytes([opts[pos], opts[pos + 1]]);
                let typ = opts[pos + 2];
                assert!(
                    typ & 0x80 == 0 || port.geneve_known.contains(class, typ),
                    "unknown critical option {class:#x}/{typ:#x} passed"
                );
                pos += 4 + usize::from(opts[pos + 3] & 0x1f) * 4;
            }
            assert_eq!(pos, opts.len(), "a truncated option list passed");
            if !port.geneve_known.is_empty() {
                assert!(opts.len() <= dp_core::flow::key::GENEVE_KEY_OPTS);
            }
        }
        Err(_) => assert_eq!(packet.data(), frame, "a refused packet was changed"),
    }
    drop(packet);
    assert_eq!(pool.in_use(), 0, "buffer not returned");
}
