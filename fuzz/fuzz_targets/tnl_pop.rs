//! `tnl_pop` on arbitrary frames, for every tunnel kind and receive check
//! (fixed key, required checksum): must not panic, must never decapsulate
//! into less than an Ethernet header (UDP tunnels), must leave a refused
//! packet exactly as it was, and must return the buffer to its pool.
//!
//! Input: one selector byte (bits 0-1 kind, bit 2 fixed key, bits 3-6 the
//! key, bit 7 csum required), then the frame.
#![no_main]

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
    let kind = match sel & 3 {
        0 => TunnelKind::Vxlan,
        1 => TunnelKind::Geneve,
        _ => TunnelKind::Gre,
    };
    let port = TunnelPort {
        kind,
        key: (sel & 4 != 0).then_some(u64::from((sel >> 3) & 0xf)),
        csum_required: sel & 0x80 != 0,
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
        }
        Err(_) => assert_eq!(packet.data(), frame, "a refused packet was changed"),
    }
    drop(packet);
    assert_eq!(pool.in_use(), 0, "buffer not returned");
}
