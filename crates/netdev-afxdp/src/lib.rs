//! Kernel-facing netdevs for oxvs: `afxdp` (AF_XDP sockets), `tap` and
//! `internal` (TUN/TAP), and `system` (AF_PACKET). Each implements
//! dp-core's [`Netdev`]; the daemon picks one by type name with
//! [`open_netdev`].
//!
//! # Map
//! - [`afxdp`]: the AF_XDP port: UMEM and per-frame ownership (`umem`),
//!   UMEMs shared between ports (`shared`), the rings (`ring`), the XDP
//!   program and its attachment (`xdp`), the per-queue sockets and rx/tx
//!   queues (`queue`).
//! - [`kernel`]: `tap`/`internal` and `system`, polled by the non-PMD thread.
//! - [`csum`]: partial (offloaded) TCP/UDP checksums: completing them
//!   (system ports, which the kernel tells) and recognising them (AF_XDP
//!   ports, which it does not).
//! - `sys`: every system call of the crate (the one FFI choke point).
//!
//! # Why our own XDP program instead of libxdp
//! The port needs one trivial program: redirect the packet to the socket
//! bound to its rx queue, else pass it to the stack. We ship it as five
//! eBPF instructions and load it with the `bpf(2)` syscall, and attach it
//! with a **bpf_link** (`BPF_LINK_CREATE`, Linux ≥ 5.9):
//! - the attachment lives exactly as long as our link descriptor, so port
//!   removal, exit, and even a crash detach it — no stale program can be
//!   left by this version; a stale one from elsewhere (legacy netlink
//!   attach of an `oxvs_xsk` program) is detected and detached at start;
//! - no C toolchain, no object file, no libxdp/libbpf version coupling
//!   (Debian's libxdp 1.3.1 would also install its multi-program
//!   dispatcher, which needs BTF and pinning in bpffs, for no benefit here);
//! - the rings are simple enough to drive directly (`afxdp::ring` follows
//!   libxdp's `xsk_ring_prod`/`xsk_ring_cons` index discipline).
//!
//! The cost: no chaining with other XDP programs on the same interface
//! (libxdp's dispatcher would allow that); a foreign program there is
//! reported as [`error::OpenCause::XdpBusy`].

pub mod afxdp;
pub mod csum;
pub mod drop_sink;
pub mod error;
pub mod iofwd;
pub mod kernel;
pub mod live_gen;
mod stats;
mod sys;

use std::sync::Arc;

use dp_core::netdev::Netdev;

pub use afxdp::umem::{UmemAudit, UmemWatch};
pub use afxdp::{AfxdpConfig, AfxdpNetdev, UmemGroup, XdpMode};
pub use error::{OpenCause, OpenError};
pub use kernel::system::SystemNetdev;
pub use kernel::tap::{TapKind, TapNetdev};

/// The port types this crate opens (`af_packet` is another name for
/// `system`).
pub const PORT_TYPES: &[&str] = &["afxdp", "tap", "internal", "system", "af_packet"];

/// Checks `options` for a port of `type_name` without opening anything
/// (config validation); the error names the bad option.
pub fn check_options(type_name: &str, options: &[(&str, &str)]) -> Result<(), String> {
    match type_name {
        "afxdp" => afxdp_config(options).map(drop),
        "tap" | "internal" | "system" | "af_packet" => match options.first() {
            Some((key, _)) => Err(format!("{type_name} ports take no options (got {key:?})")),
            None => Ok(()),
        },
        _ => Err(format!(
            "unknown port type {type_name:?} (this driver opens {})",
            PORT_TYPES.join(", ")
        )),
    }
}

/// The `afxdp` options: `n_rxq`, `xdp-mode`, `use-need-wakeup`,
/// `n_rxq_desc` and `n_txq_desc` (entries of the fill/rx and tx/completion
/// rings, as OVS's DPDK ports name them), `shared-umem` (default true:
/// the port's sockets share UMEMs with the process's other `afxdp` ports,
/// [`UmemGroup::process`]; false: a UMEM per queue, as OVS), `mtu` (the
/// daemon passes the port's `mtu` key here).
pub fn afxdp_config(options: &[(&str, &str)]) -> Result<AfxdpConfig, String> {
    let mut config = AfxdpConfig {
        umem_group: Some(UmemGroup::process()),
        ..AfxdpConfig::default()
    };
    for &(key, value) in options {
        match key {
            "n_rxq" | "n-rxq" => {
                config.n_rxq = value
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("n_rxq {value:?} is not a positive number"))?
            }
            "xdp-mode" => config.xdp_mode = value.parse()?,
            "mtu" => {
                let max = afxdp::max_mtu();
                config.mtu =
                    Some(
                        value.parse().ok().filter(|&m| m >= 68).ok_or_else(|| {
                            format!("mtu {value:?} is not a number of at least 68")
                        })?,
                    );
                if config.mtu > Some(max) {
                    return Err(format!(
                        "mtu {value} is too large for AF_XDP frames of {} bytes (at most {max})",
                        afxdp::FRAME_SIZE
                    ));
                }
            }
            "n_rxq_desc" | "n_txq_desc" => {
                let size = value
                    .parse::<u32>()
                    .ok()
                    .filter(|n| n.is_power_of_two() && afxdp::RING_SIZES.contains(n))
                    .ok_or_else(|| {
                        format!(
                            "{key} {value:?} is not a power of two in {}..={}",
                            afxdp::RING_SIZES.start(),
                            afxdp::RING_SIZES.end()
                        )
                    })?;
                if key == "n_rxq_desc" {
                    config.set_rx_ring_size(size);
                } else {
                    config.tx_ring_size = size;
                }
            }
            "shared-umem" => {
                let shared: bool = value
                    .parse()
                    .map_err(|_| format!("shared-umem {value:?} is not true or false"))?;
                config.umem_group = shared.then(UmemGroup::process);
            }
            "use-need-wakeup" => {
                config.use_need_wakeup = value
                    .parse()
                    .map_err(|_| format!("use-need-wakeup {value:?} is not true or false"))?
            }
            _ => {
                return Err(format!(
                    "unknown afxdp option {key:?} (expected n_rxq, xdp-mode, use-need-wakeup, \
                     n_rxq_desc, n_txq_desc, shared-umem, mtu)"
                ));
            }
        }
    }
    Ok(config)
}

/// Opens a port of type `type_name` on interface `name` with `options`
/// (see [`check_options`]).
pub fn open_netdev(
    type_name: &str,
    name: &str,
    options: &[(&str, &str)],
) -> Result<Arc<dyn Netdev>, OpenError> {
    check_options(type_name, options)
        .map_err(|what| OpenError::new(name, OpenCause::BadConfig(what)))?;
    Ok(match type_name {
        "afxdp" => {
            let config = afxdp_config(options)
                .map_err(|what| OpenError::new(name, OpenCause::BadConfig(what)))?;
            Arc::new(AfxdpNetdev::open(name, &config)?)
        }
        "tap" => Arc::new(TapNetdev::open(name, TapKind::Tap)?),
        "internal" => Arc::new(TapNetdev::open(name, TapKind::Internal)?),
        _ => Arc::new(SystemNetdev::open(name)?),
    })
}

/// Test and tooling helpers that need system calls (kept here so tests do
/// not carry their own unsafe code).
pub mod testing {
    use std::io;

    pub use crate::sys::XdpAttachment;

    /// Moves the calling thread (only) into network namespace `name`
    /// (`/run/netns/<name>`, as `ip netns add` creates).
    pub fn enter_netns(name: &str) -> io::Result<()> {
        crate::sys::enter_netns(name)
    }

    /// Gives a socket a receive buffer of `bytes` regardless of
    /// `net.core.rmem_max` (so a test sink does not drop under load).
    pub fn set_rcvbuf(sock: &impl std::os::fd::AsFd, bytes: u32) -> io::Result<()> {
        crate::sys::set_rcvbuf_force(sock.as_fd(), bytes)
    }

    /// Drops every capability of the calling thread (only), to test the
    /// no-permission errors as root.
    pub fn drop_thread_capabilities() -> io::Result<()> {
        crate::sys::drop_thread_capabilities()
    }

    /// The MAC address of interface `ifname` (this thread's namespace).
    pub fn if_mac(ifname: &str) -> io::Result<[u8; 6]> {
        crate::sys::if_mac(ifname)
    }

    /// What XDP program interface `ifname` has attached (this thread's
    /// namespace).
    pub fn xdp_attachment(ifname: &str) -> io::Result<XdpAttachment> {
        crate::sys::xdp_query(crate::sys::ifindex(ifname)?)
    }

    /// Attaches an `oxvs_xsk` program the legacy way, as an older release
    /// would have left it (to test stale-program replacement).
    pub fn attach_stale_program(ifname: &str) -> io::Result<()> {
        crate::afxdp::xdp::attach_legacy_for_test(crate::sys::ifindex(ifname)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_size_options_set_the_rings_and_the_frames() {
        let c = afxdp_config(&[("n_rxq_desc", "8192"), ("n_txq_desc", "512")]).unwrap();
        assert_eq!((c.rx_ring_size, c.tx_ring_size), (8192, 512));
        assert_eq!(c.frames_per_queue, 16384, "a full fill ring and rx ring");
        let c = afxdp_config(&[("n_rxq_desc", "256")]).unwrap();
        assert_eq!(c.rx_ring_size, 256);
        assert_eq!(
            c.frames_per_queue,
            AfxdpConfig::default().frames_per_queue,
            "never fewer frames than the default"
        );
        assert_eq!(
            c.umem_group,
            Some(UmemGroup::process()),
            "shared by default"
        );
        let c = afxdp_config(&[("shared-umem", "false")]).unwrap();
        assert_eq!(c.umem_group, None);
        for (key, value) in [
            ("shared-umem", "yes"),
            ("n_rxq_desc", "3000"),
            ("n_rxq_desc", "32"),
            ("n_txq_desc", "32768"),
            ("n_txq_desc", "many"),
        ] {
            let err = afxdp_config(&[(key, value)]).unwrap_err();
            assert!(err.contains(key) && err.contains(value), "{err}");
        }
    }
}
