//! `netdev-dpdk/*` control commands, as OVS names them.
//!
//! - `netdev-dpdk/get-mempool-info [PORT]`: the mbuf pool a DPDK port
//!   receives into (every pool without PORT), in the shape of DPDK's
//!   `rte_mempool_dump` as OVS prints it: size, object layout, per-lcore
//!   cache fill (which PMD lcores hold mbufs), the shared ring's count,
//!   and how many mbufs are out of the pool.
//! - `netdev-dpdk/link-state [PORT]`: each DPDK port's link as OVS's
//!   Interface columns show it (`ovs-vsctl list interface`): `link_state`,
//!   `link_speed` (bit/s) and `link_resets`, the link changes since the
//!   port started, from DPDK's link-state events or seen when read (see
//!   `netdev_dpdk::link`).

use crate::daemon::Daemon;

/// `netdev-dpdk/get-mempool-info [PORT]`.
pub fn get_mempool_info(d: &mut Daemon, args: &[String]) -> Result<String, String> {
    #[cfg(feature = "dpdk")]
    {
        let mut pools = match args.first() {
            Some(port) => {
                let state = d
                    .ports
                    .get(port)
                    .ok_or_else(|| format!("no such port: {port}"))?;
                let crate::drivers::OpenedPort::Dpdk(dev) = &state.opened else {
                    return Err(format!("port {port} is not a DPDK port"));
                };
                vec![dev.mempool().clone()]
            }
            None => netdev_dpdk::mempool::all(),
        };
        pools.sort_by(|a, b| a.name().cmp(b.name()));
        Ok(pools.iter().map(|p| p.info().to_text()).collect())
    }
    #[cfg(not(feature = "dpdk"))]
    {
        let _ = (d, args);
        Err("this build has no DPDK (the \"dpdk\" feature)".into())
    }
}

/// `netdev-dpdk/link-state [PORT]`: one block per DPDK port, sorted by
/// name.
pub fn link_state(d: &mut Daemon, args: &[String]) -> Result<String, String> {
    #[cfg(feature = "dpdk")]
    {
        use dp_core::netdev::Netdev as _;
        use std::fmt::Write as _;
        let dpdk = |state: &crate::daemon::PortState| match &state.opened {
            crate::drivers::OpenedPort::Dpdk(dev) => Some(std::sync::Arc::clone(dev)),
            _ => None,
        };
        let ports: Vec<(String, String, std::sync::Arc<netdev_dpdk::DpdkNetdev>)> = match args
            .first()
        {
            Some(port) => {
                let state = d
                    .ports
                    .get(port)
                    .ok_or_else(|| format!("no such port: {port}"))?;
                let dev = dpdk(state).ok_or_else(|| format!("port {port} is not a DPDK port"))?;
                vec![(port.clone(), state.section.port_type.clone(), dev)]
            }
            // BTreeMap: already sorted by name.
            None => d
                .ports
                .iter()
                .filter_map(|(name, state)| {
                    dpdk(state).map(|dev| (name.clone(), state.section.port_type.clone(), dev))
                })
                .collect(),
        };
        let mut out = String::new();
        for (name, port_type, dev) in ports {
            // Read the state first: a change seen by this read is counted
            // before the counter is printed.
            let up = dev.link_state() == dp_core::netdev::LinkState::Up;
            let speed_mbps = dev.link_speed();
            let _ = write!(
                out,
                "{name} ({port_type}, ethdev port {}):\n  link_state: {}\n  link_speed: {}\n  link_resets: {}\n",
                dev.port_id(),
                if up { "up" } else { "down" },
                u64::from(speed_mbps) * 1_000_000,
                dev.link_resets()
            );
        }
        Ok(out)
    }
    #[cfg(not(feature = "dpdk"))]
    {
        let _ = (d, args);
        Err("this build has no DPDK (the \"dpdk\" feature)".into())
    }
}
