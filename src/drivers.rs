//! Opening ports from the config: one function per port type, each
//! checking its own options so a typo in `options` is an error naming it.

use std::path::PathBuf;
use std::sync::Arc;

use dp_core::netdev::Netdev;
use dp_pmd::netdev::dummy::{DummyConfig, DummyNetdev};
use dp_pmd::netdev::pcap::{PcapConfig, PcapNetdev};
use netdev_afxdp::{AfxdpNetdev, SystemNetdev, TapKind, TapNetdev};

use crate::config::{PortSection, parse_mac};

/// An opened port, keeping the concrete type where the daemon needs it
/// (`netdev-dummy/receive` injects into dummy ports; the shutdown leak
/// check reads each driver's buffer accounting).
#[derive(Debug, Clone)]
pub enum OpenedPort {
    Dummy(Arc<DummyNetdev>),
    Pcap(Arc<PcapNetdev>),
    Afxdp(Arc<AfxdpNetdev>),
    Tap(Arc<TapNetdev>),
    System(Arc<SystemNetdev>),
    #[cfg(feature = "dpdk")]
    Dpdk(Arc<netdev_dpdk::DpdkNetdev>),
    Windows(Arc<dp_windows_ext::WindowsNetdev>),
    /// A `vxlan`/`geneve` port (see `crate::tunnel`).
    Tunnel(Arc<crate::tunnel::TunnelNetdev>),
}

impl OpenedPort {
    pub fn netdev(&self) -> Arc<dyn Netdev> {
        match self {
            OpenedPort::Dummy(d) => d.clone(),
            OpenedPort::Pcap(p) => p.clone(),
            OpenedPort::Afxdp(a) => a.clone(),
            OpenedPort::Tap(t) => t.clone(),
            OpenedPort::System(s) => s.clone(),
            #[cfg(feature = "dpdk")]
            OpenedPort::Dpdk(d) => d.clone(),
            OpenedPort::Windows(w) => w.clone(),
            OpenedPort::Tunnel(t) => t.clone(),
        }
    }

    /// Buffers of this port still out (packets or UMEM frames), for the
    /// leak check at shutdown, with a name for the report.
    pub fn buffers_in_use(&self) -> (String, usize) {
        match self {
            OpenedPort::Dummy(d) => (d.pool().name().to_string(), d.pool().in_use()),
            OpenedPort::Pcap(p) => (p.pool().name().to_string(), p.pool().in_use()),
            OpenedPort::Afxdp(a) => (format!("afxdp:{} umem", a.name()), a.umem_in_use()),
            OpenedPort::Tap(t) => (t.pool().name().to_string(), t.pool().in_use()),
            OpenedPort::System(s) => (s.pool().name().to_string(), s.pool().in_use()),
            // Mbufs this port lent to packets (the device's own rings and a
            // vdev's replay buffer are not leaks).
            #[cfg(feature = "dpdk")]
            OpenedPort::Dpdk(d) => (
                format!("dpdk:{} mbufs ({})", d.name(), d.mempool().name()),
                d.packets_in_use(),
            ),
            OpenedPort::Windows(w) => (
                format!("windows:{} ring frames", w.name()),
                w.frames_lent() + w.pool().in_use(),
            ),
            // Holds no buffers: packets only pass through it as metadata.
            OpenedPort::Tunnel(t) => (format!("tunnel:{}", t.name()), 0),
        }
    }
}

/// AF_XDP and kernel-facing port types (Linux).
pub fn linux_available(port_type: &str) -> Result<(), String> {
    if netdev_afxdp::PORT_TYPES.contains(&port_type) {
        Ok(())
    } else {
        Err(format!(
            "type \"{port_type}\" is not available in this build"
        ))
    }
}

/// DPDK port types: available when the build has the `dpdk` feature.
pub fn dpdk_available(port_type: &str) -> Result<(), String> {
    if cfg!(feature = "dpdk") {
        Ok(())
    } else {
        Err(format!(
            "type \"{port_type}\" needs DPDK, which this build does not include"
        ))
    }
}

/// Initialises DPDK's EAL from `[datapath.dpdk]` when the config has that
/// section or any DPDK port (before any port opens; once per process).
#[cfg(feature = "dpdk")]
pub fn init_dpdk(config: &crate::config::Config) -> Result<(), String> {
    let has_port = config
        .bridges
        .iter()
        .flat_map(|b| &b.ports)
        .any(|p| p.port_type.starts_with("dpdk"));
    if !has_port && config.datapath.dpdk.is_none() {
        return Ok(());
    }
    let section = config.datapath.dpdk.clone().unwrap_or_default();
    let mut eal = netdev_dpdk::EalConfig {
        lcore: section.lcore,
        no_huge: section.no_huge,
        extra_args: section.extra_args.clone(),
        ..netdev_dpdk::EalConfig::default()
    };
    if let Some(mem) = &section.socket_mem {
        if section.no_huge {
            // `-m` takes one total; socket-mem lists one value per socket.
            let total = mem
                .split(',')
                .map(|v| v.trim().parse::<u32>())
                .sum::<Result<u32, _>>()
                .map_err(|_| format!("datapath.dpdk.socket_mem: {mem:?} is not a list of MiB"))?;
            eal.memory_mb = Some(total);
        } else {
            eal.extra_args
                .extend(["--socket-mem".to_string(), mem.clone()]);
        }
    }
    netdev_dpdk::eal::init(&eal)?;
    // PMD threads spawned from now on take a DPDK lcore id each, so the
    // mbufs they allocate and free go through per-lcore mempool caches.
    dp_pmd::pmd::thread::add_thread_hook(dp_pmd::pmd::thread::ThreadHook {
        name: "dpdk",
        start: netdev_dpdk::eal::register_thread,
        stop: netdev_dpdk::eal::unregister_thread,
    });
    Ok(())
}

/// Without DPDK in the build there is nothing to initialise.
#[cfg(not(feature = "dpdk"))]
pub fn init_dpdk(_config: &crate::config::Config) -> Result<(), String> {
    Ok(())
}

/// Options of the DPDK port types.
const DPDK_OPTIONS: &[&str] = &["dpdk-devargs", "n_rxq_desc", "n_txq_desc", "n_mbufs"];
const VHOST_OPTIONS: &[&str] = &["vhost-server-path", "n_rxq_desc", "n_txq_desc", "n_mbufs"];

fn u32_option(port: &PortSection, key: &str) -> Result<Option<u32>, String> {
    match port.options.get(key) {
        None => Ok(None),
        Some(toml::Value::Integer(i)) => u32::try_from(*i)
            .map(Some)
            .map_err(|_| format!("option \"{key}\" is out of range: {i}")),
        Some(other) => Err(format!(
            "option \"{key}\" must be a number, not {}",
            other.type_str()
        )),
    }
}

fn desc_option(port: &PortSection, key: &str) -> Result<u16, String> {
    match u32_option(port, key)? {
        None => Ok(2048),
        Some(n @ 1..=4096) => Ok(n as u16),
        Some(n) => Err(format!("option \"{key}\" must be 1 to 4096, not {n}")),
    }
}

fn check_dpdk_options(port: &PortSection) -> Result<(), String> {
    if port.port_type == "dpdk" {
        allowed(port, DPDK_OPTIONS)?;
        if string_option(port, "dpdk-devargs")?.is_none() {
            return Err("option \"dpdk-devargs\" is required (a PCI address or a vdev such as net_pcap0,rx_pcap=FILE)".into());
        }
    } else {
        allowed(port, VHOST_OPTIONS)?;
        let path = string_option(port, "vhost-server-path")?;
        if port.port_type == "dpdkvhostuserclient" && path.is_none() {
            return Err("option \"vhost-server-path\" is required for dpdkvhostuserclient".into());
        }
    }
    desc_option(port, "n_rxq_desc")?;
    desc_option(port, "n_txq_desc")?;
    u32_option(port, "n_mbufs")?;
    Ok(())
}

/// The devargs for a port: `dpdk-devargs` verbatim, or a `net_vhost`
/// vdev for the vhost-user types (server: we create the socket;
/// client: the VM's side did).
#[cfg(feature = "dpdk")]
fn dpdk_devargs(port: &PortSection) -> Result<String, String> {
    if port.port_type == "dpdk" {
        return string_option(port, "dpdk-devargs")?
            .ok_or_else(|| "option \"dpdk-devargs\" is required".to_string());
    }
    let path = match string_option(port, "vhost-server-path")? {
        Some(p) => p,
        None => format!("/var/run/oxvs/{}", port.name),
    };
    if port.port_type == "dpdkvhostuser" {
        // Server mode: we create the socket, so its directory must exist.
        if let Some(dir) = std::path::Path::new(&path).parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
    }
    let client = u8::from(port.port_type == "dpdkvhostuserclient");
    Ok(format!(
        "net_vhost_{},iface={path},queues={},client={client}",
        port.name,
        port.n_rxq.max(port.n_txq)
    ))
}

/// The port's driver options as text pairs (what netdev-afxdp reads);
/// `n_rxq` comes from the port's own key.
fn text_options(port: &PortSection) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (key, value) in &port.options {
        let text = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                return Err(format!(
                    "option \"{key}\" must be a string, number or boolean, not {}",
                    other.type_str()
                ));
            }
        };
        out.push((key.clone(), text));
    }
    if port.port_type == "afxdp" {
        out.push(("n_rxq".into(), port.n_rxq.to_string()));
        // The port's `mtu` key: the driver sets it and refuses one too
        // large for its frames.
        if let Some(mtu) = port.mtu {
            out.push(("mtu".into(), mtu.to_string()));
        }
    }
    Ok(out)
}

fn as_pairs(options: &[(String, String)]) -> Vec<(&str, &str)> {
    options
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

fn allowed(port: &PortSection, keys: &[&str]) -> Result<(), String> {
    for key in port.options.keys() {
        if !keys.contains(&key.as_str()) {
            let expected = if keys.is_empty() {
                "none".to_string()
            } else {
                keys.join(", ")
            };
            return Err(format!(
                "unknown option \"{key}\" for type {} (expected: {expected})",
                port.port_type
            ));
        }
    }
    Ok(())
}

fn string_option(port: &PortSection, key: &str) -> Result<Option<String>, String> {
    match port.options.get(key) {
        None => Ok(None),
        Some(toml::Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!(
            "option \"{key}\" must be a string, not {}",
            other.type_str()
        )),
    }
}

fn bool_option(port: &PortSection, key: &str) -> Result<bool, String> {
    match port.options.get(key) {
        None => Ok(false),
        Some(toml::Value::Boolean(b)) => Ok(*b),
        Some(other) => Err(format!(
            "option \"{key}\" must be true or false, not {}",
            other.type_str()
        )),
    }
}

/// Checks a port's driver options without opening anything.
pub fn validate_options(port: &PortSection) -> Result<(), String> {
    match port.port_type.as_str() {
        "dummy" | "dummy-pmd" => allowed(port, &[]),
        "pcap" => {
            allowed(port, &["rx_pcap", "tx_pcap", "infinite"])?;
            string_option(port, "rx_pcap")?;
            string_option(port, "tx_pcap")?;
            bool_option(port, "infinite")?;
            Ok(())
        }
        t if netdev_afxdp::PORT_TYPES.contains(&t) => {
            netdev_afxdp::check_options(t, &as_pairs(&text_options(port)?))
        }
        "dpdk" | "dpdkvhostuser" | "dpdkvhostuserclient" => check_dpdk_options(port),
        "windows" => {
            dp_windows_ext::WindowsConfig::from_options(&as_pairs(&windows_options(port)?))
                .map(drop)
        }
        "vxlan" | "geneve" | "gre" => crate::tunnel::tunnel_spec(port).map(drop),
        _ => Ok(()),
    }
}

/// A windows port's options, with `n_rxq` from the port's own key.
fn windows_options(port: &PortSection) -> Result<Vec<(String, String)>, String> {
    let mut options = text_options(port)?;
    options.push(("n_rxq".into(), port.n_rxq.to_string()));
    Ok(options)
}

/// Opens the port `port` describes.
pub fn open(port: &PortSection) -> Result<OpenedPort, String> {
    let mac = match &port.mac {
        Some(m) => parse_mac(m)?,
        None => default_mac(&port.name),
    };
    match port.port_type.as_str() {
        "vxlan" | "geneve" | "gre" => Ok(OpenedPort::Tunnel(Arc::new(
            crate::tunnel::TunnelNetdev::open(port)?,
        ))),
        "dummy" | "dummy-pmd" => Ok(OpenedPort::Dummy(Arc::new(DummyNetdev::new(
            &port.name,
            DummyConfig {
                n_rxq: port.n_rxq,
                n_txq: port.n_txq,
                mac,
                mtu: port.mtu.unwrap_or(1500),
                pmd: port.port_type == "dummy-pmd",
                ..DummyConfig::default()
            },
        )))),
        "pcap" => {
            let config = PcapConfig {
                rx_file: string_option(port, "rx_pcap")?.map(PathBuf::from),
                tx_file: string_option(port, "tx_pcap")?.map(PathBuf::from),
                infinite: bool_option(port, "infinite")?,
                pool_capacity: 0,
            };
            let netdev = PcapNetdev::new(&port.name, &config).map_err(|e| e.to_string())?;
            Ok(OpenedPort::Pcap(Arc::new(netdev)))
        }
        "afxdp" => {
            let config = netdev_afxdp::afxdp_config(&as_pairs(&text_options(port)?))?;
            Ok(OpenedPort::Afxdp(Arc::new(
                AfxdpNetdev::open(&port.name, &config).map_err(|e| e.to_string())?,
            )))
        }
        "tap" | "internal" => {
            let kind = if port.port_type == "tap" {
                TapKind::Tap
            } else {
                TapKind::Internal
            };
            Ok(OpenedPort::Tap(Arc::new(
                TapNetdev::open(&port.name, kind).map_err(|e| e.to_string())?,
            )))
        }
        "system" | "af_packet" => Ok(OpenedPort::System(Arc::new(
            SystemNetdev::open(&port.name).map_err(|e| e.to_string())?,
        ))),
        // The Hyper-V shim on Windows; on Linux its emulator (the
        // `device` option names the emulator's socket).
        "windows" => {
            let config =
                dp_windows_ext::WindowsConfig::from_options(&as_pairs(&windows_options(port)?))?;
            Ok(OpenedPort::Windows(Arc::new(
                dp_windows_ext::WindowsNetdev::open(&port.name, &config)
                    .map_err(|e| e.to_string())?,
            )))
        }
        #[cfg(feature = "dpdk")]
        "dpdk" | "dpdkvhostuser" | "dpdkvhostuserclient" => {
            check_dpdk_options(port)?;
            let config = netdev_dpdk::DpdkConfig {
                devargs: dpdk_devargs(port)?,
                n_rxq: port.n_rxq,
                n_txq: port.n_txq,
                n_rxq_desc: desc_option(port, "n_rxq_desc")?,
                n_txq_desc: desc_option(port, "n_txq_desc")?,
                mtu: port.mtu.unwrap_or(1500),
                n_mbufs: u32_option(port, "n_mbufs")?,
            };
            let netdev =
                netdev_dpdk::DpdkNetdev::open(&port.name, &config).map_err(|e| e.to_string())?;
            Ok(OpenedPort::Dpdk(Arc::new(netdev)))
        }
        other => Err(crate::config::port_type_available(other)
            .err()
            .unwrap_or_else(|| format!("type \"{other}\" has no driver in this build"))),
    }
}

/// A stable locally administered MAC derived from the port name.
pub fn default_mac(name: &str) -> [u8; 6] {
    let h = dp_core::flow::hash::hash_finish(
        name.bytes()
            .fold(0u32, |h, b| dp_core::flow::hash::hash_add(h, u32::from(b))),
        name.len() as u32,
    );
    let b = h.to_be_bytes();
    [0xaa, 0x55, b[0], b[1], b[2], b[3]]
}
