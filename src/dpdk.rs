//! `netdev-dpdk/*` control commands, as OVS names them.
//!
//! - `netdev-dpdk/get-mempool-info [PORT]`: the mbuf pool a DPDK port
//!   receives into (every pool without PORT), in the shape of DPDK's
//!   `rte_mempool_dump` as OVS prints it: size, object layout, per-lcore
//!   cache fill (which PMD lcores hold mbufs), the shared ring's count,
//!   and how many mbufs are out of the pool.

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
