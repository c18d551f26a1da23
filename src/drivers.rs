//! Opening ports from the config: one function per port type, each
//! checking its own options so a typo in `options` is an error naming it.

use std::path::PathBuf;
use std::sync::Arc;

use dp_core::netdev::Netdev;
use dp_core::packet::PacketPool;
use dp_pmd::netdev::dummy::{DummyConfig, DummyNetdev};
use dp_pmd::netdev::pcap::{PcapConfig, PcapNetdev};

use crate::config::{PortSection, parse_mac};

/// An opened port, keeping the concrete type where the daemon needs it
/// (`netdev-dummy/receive` injects into dummy ports).
#[derive(Debug, Clone)]
pub enum OpenedPort {
    Dummy(Arc<DummyNetdev>),
    Pcap(Arc<PcapNetdev>),
}

impl OpenedPort {
    pub fn netdev(&self) -> Arc<dyn Netdev> {
        match self {
            OpenedPort::Dummy(d) => d.clone(),
            OpenedPort::Pcap(p) => p.clone(),
        }
    }

    /// The buffer pools the port's packets come from (for the leak check
    /// at shutdown).
    pub fn pools(&self) -> Vec<PacketPool> {
        match self {
            OpenedPort::Dummy(d) => vec![d.pool().clone()],
            OpenedPort::Pcap(p) => vec![p.pool().clone()],
        }
    }
}

/// Kernel-facing and AF_XDP port types are not in this build yet.
pub fn linux_available(port_type: &str) -> Result<(), String> {
    Err(format!(
        "type \"{port_type}\" is not available in this build yet"
    ))
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
        _ => Ok(()),
    }
}

/// Opens the port `port` describes.
pub fn open(port: &PortSection) -> Result<OpenedPort, String> {
    let mac = match &port.mac {
        Some(m) => parse_mac(m)?,
        None => default_mac(&port.name),
    };
    match port.port_type.as_str() {
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
