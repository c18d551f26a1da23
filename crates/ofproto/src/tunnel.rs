//! Outer headers for `tnl_push`: Ethernet + IPv4 + UDP + VXLAN/Geneve,
//! built once per translation from the tunnel port's configuration.
//!
//! Per dp-core's `TnlPush` contract the IPv4 total length and checksum and
//! the UDP length, source port and checksum are left zero: the executor
//! fills them per packet (the UDP source port from the packet hash, as
//! OVS does for entropy).

use crate::ports::{TunnelConfig, TunnelKind};
use dp_core::action::{TnlPush, vport_type};

/// Builds the `tnl_push` for sending through `cfg` with key `vni`.
pub fn build_push(cfg: &TunnelConfig, tnl_port: u32, vni: u64) -> TnlPush {
    let mut h = Vec::with_capacity(50);
    h.extend_from_slice(&cfg.next_hop_mac);
    h.extend_from_slice(&cfg.local_mac);
    h.extend_from_slice(&0x0800u16.to_be_bytes());
    // IPv4, no options, don't fragment.
    h.extend_from_slice(&[0x45, cfg.tos, 0, 0, 0, 0, 0x40, 0x00, cfg.ttl, 17, 0, 0]);
    h.extend_from_slice(&cfg.local_ip);
    h.extend_from_slice(&cfg.remote_ip);
    h.extend_from_slice(&[0, 0]);
    h.extend_from_slice(&cfg.dst_port.to_be_bytes());
    h.extend_from_slice(&[0, 0, 0, 0]);
    let vni_field = ((vni as u32) & 0x00ff_ffff) << 8;
    let tnl_type = match cfg.kind {
        TunnelKind::Vxlan => {
            // Flags word: "VNI present".
            h.extend_from_slice(&0x0800_0000u32.to_be_bytes());
            h.extend_from_slice(&vni_field.to_be_bytes());
            vport_type::VXLAN
        }
        TunnelKind::Geneve => {
            // Version 0, no options, protocol Transparent Ethernet Bridging.
            h.extend_from_slice(&[0, 0, 0x65, 0x58]);
            h.extend_from_slice(&vni_field.to_be_bytes());
            vport_type::GENEVE
        }
    };
    TnlPush {
        tnl_port,
        out_port: cfg.underlay_odp_port,
        tnl_type,
        header: h,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::odp_actions::format_odp_actions;
    use dp_core::action::Action;

    #[test]
    fn vxlan_header_formats_like_ovs() {
        let mut cfg = TunnelConfig::vxlan([1, 1, 1, 1], [2, 2, 2, 2], 1);
        cfg.local_mac = [0xaa, 0x55, 0xaa, 0x55, 0, 0];
        cfg.next_hop_mac = [0, 0x0b, 0, 0, 0, 2];
        let p = build_push(&cfg, 4, 123);
        assert_eq!(p.header.len(), 50);
        assert_eq!(
            format_odp_actions(&[Action::TnlPush(p)]),
            "tnl_push(tnl_port(4),header(size=50,type=4,eth(dst=00:0b:00:00:00:02,src=aa:55:aa:55:00:00,dl_type=0x0800),ipv4(src=1.1.1.1,dst=2.2.2.2,proto=17,tos=0,ttl=64,frag=0x4000),udp(src=0,dst=4789,csum=0x0),vxlan(flags=0x8000000,vni=0x7b)),out_port(1))"
        );
    }
}
