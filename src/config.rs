//! The daemon's config file (TOML) and its validation.
//!
//! Parsing is strict: an unknown key is an error, not a silent no-op. OVS
//! users' hyphenated spellings (`pmd-rxq-assign`, `emc-insert-inv-prob`,
//! `pmd-rxq-affinity`, ...) are accepted as aliases of the snake_case
//! names. Validation runs before anything starts and reports the first
//! problem as one line naming the file, the key and why, e.g.
//! `oxvs.toml: datapath.pmd_cores: core 7 is not available to this process (allowed: 0-1)`.
//!
//! See `configs/oxvs.toml` for the commented reference.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Default control socket path.
pub const DEFAULT_SOCKET: &str = "/run/oxvs/oxvsd.ctl";

/// The whole file.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub datapath: DatapathSection,
    #[serde(default)]
    pub control: ControlSection,
    #[serde(default)]
    pub log: LogSection,
    /// `[metrics]`: the Prometheus endpoint (off unless `listen` is set).
    #[serde(default)]
    pub metrics: crate::metrics::MetricsSection,
    #[serde(default, rename = "bridge")]
    pub bridges: Vec<BridgeSection>,
}

/// `[datapath]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DatapathSection {
    /// Cores for PMD threads (one thread each).
    #[serde(alias = "pmd-cores")]
    pub pmd_cores: Option<Vec<usize>>,
    /// Alternative to `pmd_cores`: a hex CPU mask as OVS's `pmd-cpu-mask`.
    #[serde(alias = "pmd-cpu-mask")]
    pub pmd_cpu_mask: Option<String>,
    #[serde(alias = "pmd-rxq-assign")]
    pub pmd_rxq_assign: String,
    #[serde(alias = "pmd-rxq-isolate")]
    pub pmd_rxq_isolate: bool,
    #[serde(alias = "emc-insert-inv-prob")]
    pub emc_insert_inv_prob: u32,
    /// true (always, as OVS), false or "auto" (the default: in use while
    /// the classifier needs it and the SMC is not, see `dp_core::cascade`).
    #[serde(alias = "emc-enable", deserialize_with = "emc_mode")]
    pub emc_enable: dp_core::cascade::EmcMode,
    /// true, false or "auto" (the default: on while the classifier needs
    /// it, see `dp_core::cascade`).
    #[serde(alias = "smc-enable", deserialize_with = "smc_mode")]
    pub smc_enable: dp_core::cascade::SmcMode,
    /// µs a packet may wait in a tx buffer.
    #[serde(alias = "tx-flush-interval")]
    pub tx_flush_interval: u64,
    #[serde(alias = "flow-limit")]
    pub flow_limit: usize,
    /// ms before an unused megaflow is deleted.
    #[serde(alias = "max-idle")]
    pub max_idle: u64,
    /// µs an idle PMD may sleep (0 = busy polling).
    #[serde(alias = "pmd-sleep-max")]
    pub pmd_sleep_max: u64,
    #[serde(alias = "upcall-budget")]
    pub upcall_budget: usize,
    /// % of a PMD's cycles upcalls may take while it also forwards
    /// established traffic (0 = no admission control).
    #[serde(alias = "upcall-share")]
    pub upcall_share: u32,
    /// DPDK EAL settings (used when the build has DPDK).
    pub dpdk: Option<DpdkSection>,
}

impl Default for DatapathSection {
    fn default() -> Self {
        DatapathSection {
            pmd_cores: None,
            pmd_cpu_mask: None,
            pmd_rxq_assign: "cycles".into(),
            pmd_rxq_isolate: true,
            emc_insert_inv_prob: 100,
            emc_enable: dp_core::cascade::EmcMode::Auto,
            smc_enable: dp_core::cascade::SmcMode::Auto,
            tx_flush_interval: 0,
            flow_limit: 200_000,
            max_idle: 10_000,
            pmd_sleep_max: 0,
            upcall_budget: 64,
            upcall_share: dp_pmd::pmd::admission::DEFAULT_UPCALL_SHARE_PCT,
            dpdk: None,
        }
    }
}

fn smc_mode<'de, D: serde::Deserializer<'de>>(d: D) -> Result<dp_core::cascade::SmcMode, D::Error> {
    cache_mode(d, "smc-enable")
}

fn emc_mode<'de, D: serde::Deserializer<'de>>(d: D) -> Result<dp_core::cascade::EmcMode, D::Error> {
    cache_mode(d, "emc-enable")
}

/// `smc_enable`, `emc_enable`: a boolean (OVS's `smc-enable`) or the
/// string "auto"; errors name `key`.
fn cache_mode<'de, D: serde::Deserializer<'de>>(
    d: D,
    key: &'static str,
) -> Result<dp_core::cascade::CacheMode, D::Error> {
    struct Mode(&'static str);
    impl serde::de::Visitor<'_> for Mode {
        type Value = dp_core::cascade::CacheMode;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{}: true, false or \"auto\"", self.0)
        }
        fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Ok(if v {
                dp_core::cascade::CacheMode::On
            } else {
                dp_core::cascade::CacheMode::Off
            })
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            v.parse().map_err(|e| E::custom(format!("{}: {e}", self.0)))
        }
    }
    d.deserialize_any(Mode(key))
}

/// The largest `tx_flush_interval` (µs), as OVS's `tx-flush-interval`.
pub const MAX_TX_FLUSH_INTERVAL_US: u64 = 1_000_000;
/// The largest `pmd_sleep_max` (µs), as OVS's `pmd-sleep-max`.
pub const MAX_PMD_SLEEP_US: u64 = 10_000;

/// `[datapath.dpdk]`: EAL arguments.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DpdkSection {
    #[serde(alias = "dpdk-lcore")]
    pub lcore: Option<usize>,
    #[serde(alias = "no-huge")]
    pub no_huge: bool,
    #[serde(alias = "socket-mem")]
    pub socket_mem: Option<String>,
    #[serde(alias = "extra")]
    pub extra_args: Vec<String>,
}

/// `[control]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ControlSection {
    pub socket: PathBuf,
    pub pid_file: Option<PathBuf>,
}

impl Default for ControlSection {
    fn default() -> Self {
        ControlSection {
            socket: PathBuf::from(DEFAULT_SOCKET),
            pid_file: None,
        }
    }
}

/// `[log]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// A tracing filter: `info`, `debug`, `oxvs=debug,dp_pmd=info`.
    pub level: String,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            level: "info".into(),
        }
    }
}

/// `[[bridge]]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BridgeSection {
    pub name: String,
    #[serde(alias = "datapath-type", default = "default_datapath_type")]
    pub datapath_type: String,
    /// Initial OpenFlow rules, in ovs-ofctl syntax.
    #[serde(default)]
    pub flows: Vec<String>,
    /// Geneve TLV map entries, `ovs-ofctl add-tlv-map` syntax
    /// (`{class=0xffff,type=0x80,len=4}->tun_metadata0`); see `crate::tunnel`.
    #[serde(default, alias = "tlv-map")]
    pub tlv_map: Vec<String>,
    #[serde(default, rename = "port")]
    pub ports: Vec<PortSection>,
}

fn default_datapath_type() -> String {
    "netdev".into()
}

/// `[[bridge.port]]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PortSection {
    pub name: String,
    #[serde(rename = "type")]
    pub port_type: String,
    /// OpenFlow port number (default: the next free one).
    #[serde(alias = "ofport")]
    pub ofport: Option<u32>,
    #[serde(default = "one", alias = "n-rxq")]
    pub n_rxq: usize,
    #[serde(default = "one", alias = "n-txq")]
    pub n_txq: usize,
    #[serde(alias = "pmd-rxq-affinity")]
    pub pmd_rxq_affinity: Option<String>,
    pub mtu: Option<u16>,
    pub mac: Option<String>,
    /// Driver-specific options (`rx_pcap`, `tx_pcap`, `infinite`,
    /// `xdp-mode`, `dpdk-devargs`, ...), checked by the driver.
    #[serde(default)]
    pub options: BTreeMap<String, toml::Value>,
}

fn one() -> usize {
    1
}

/// A config problem: the file, the key and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub key: String,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file, self.reason)
        } else {
            write!(f, "{}: {}: {}", self.file, self.key, self.reason)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Port types this build knows, and whether it can open them.
pub fn port_type_available(port_type: &str) -> Result<(), String> {
    match port_type {
        "dummy" | "dummy-pmd" | "pcap" => Ok(()),
        "afxdp" | "tap" | "system" | "af_packet" | "internal" => {
            crate::drivers::linux_available(port_type)
        }
        "dpdk" | "dpdkvhostuser" | "dpdkvhostuserclient" => {
            crate::drivers::dpdk_available(port_type)
        }
        "windows" => Ok(()),
        "vxlan" | "geneve" | "gre" => Ok(()),
        other => Err(format!(
            "unknown port type \"{other}\" (expected dummy, dummy-pmd, pcap, afxdp, tap, system, internal, dpdk, windows, vxlan, geneve, gre)"
        )),
    }
}

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            key: String::new(),
            reason: format!("cannot read: {e}"),
        })?;
        Config::parse(&text, &file)
    }

    /// Logs a warning when users other than the owner may write the config
    /// file at `path` (or it cannot be checked): whoever can write it
    /// chooses the ports, rules and capture paths of the next reload.
    pub fn warn_if_others_can_write(path: &Path) {
        use std::os::unix::fs::PermissionsExt;
        match std::fs::metadata(path) {
            Ok(meta) if meta.permissions().mode() & 0o022 != 0 => tracing::warn!(
                file = %path.display(),
                mode = format!("{:o}", meta.permissions().mode() & 0o7777),
                "config file is writable by group or others: they can change the daemon's ports and rules at the next reload"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(file = %path.display(), "config file permissions: {e}"),
        }
    }

    /// Parses and validates `text` (named `file` in errors).
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError {
            file: file.to_string(),
            key: String::new(),
            reason: e.message().to_string() + &location(text, e.span()),
        })?;
        config.validate(file)?;
        Ok(config)
    }

    /// Cores the PMD threads run on.
    pub fn pmd_cores(&self) -> Vec<usize> {
        if let Some(cores) = &self.datapath.pmd_cores {
            return cores.clone();
        }
        match &self.datapath.pmd_cpu_mask {
            Some(mask) => parse_cpu_mask(mask).unwrap_or_default(),
            None => Vec::new(),
        }
    }

    fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let err = |key: &str, reason: String| ConfigError {
            file: file.to_string(),
            key: key.to_string(),
            reason,
        };
        let d = &self.datapath;
        if d.pmd_cores.is_some() && d.pmd_cpu_mask.is_some() {
            return Err(err(
                "datapath.pmd_cpu_mask",
                "set either pmd_cores or pmd_cpu_mask, not both".into(),
            ));
        }
        if let Some(mask) = &d.pmd_cpu_mask {
            parse_cpu_mask(mask).map_err(|r| err("datapath.pmd_cpu_mask", r))?;
        }
        let allowed = allowed_cores();
        let mut seen = HashSet::new();
        for core in self.pmd_cores() {
            if !seen.insert(core) {
                return Err(err(
                    "datapath.pmd_cores",
                    format!("core {core} is listed twice"),
                ));
            }
            if !allowed.contains(&core) {
                return Err(err(
                    "datapath.pmd_cores",
                    format!(
                        "core {core} is not available to this process (allowed: {})",
                        format_cores(&allowed)
                    ),
                ));
            }
        }
        d.pmd_rxq_assign
            .parse::<dp_pmd::sched::RxqAssign>()
            .map_err(|r| err("datapath.pmd_rxq_assign", r))?;
        if d.flow_limit == 0 {
            return Err(err("datapath.flow_limit", "must be at least 1".into()));
        }
        if d.upcall_budget == 0 {
            return Err(err("datapath.upcall_budget", "must be at least 1".into()));
        }
        if d.upcall_share > 90 {
            return Err(err(
                "datapath.upcall_share",
                format!("{} is over 90 (%)", d.upcall_share),
            ));
        }
        // OVS's ranges; larger values would also overflow the PMD's µs → ns
        // arithmetic.
        if d.tx_flush_interval > MAX_TX_FLUSH_INTERVAL_US {
            return Err(err(
                "datapath.tx_flush_interval",
                format!(
                    "{} µs is out of range (0 to {MAX_TX_FLUSH_INTERVAL_US})",
                    d.tx_flush_interval
                ),
            ));
        }
        if d.pmd_sleep_max > MAX_PMD_SLEEP_US {
            return Err(err(
                "datapath.pmd_sleep_max",
                format!(
                    "{} µs is out of range (0 to {MAX_PMD_SLEEP_US})",
                    d.pmd_sleep_max
                ),
            ));
        }
        tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .map_err(|e| err("log.level", format!("\"{}\": {e}", self.log.level)))?;
        self.metrics
            .address()
            .map_err(|r| err("metrics.listen", r))?;

        let mut bridges = HashSet::new();
        let mut ports = HashSet::new();
        for (b, bridge) in self.bridges.iter().enumerate() {
            let bkey = format!("bridge[{b}]");
            if bridge.name.is_empty() {
                return Err(err(&format!("{bkey}.name"), "must not be empty".into()));
            }
            if !bridges.insert(bridge.name.as_str()) {
                return Err(err(
                    &format!("{bkey}.name"),
                    format!("duplicate bridge \"{}\"", bridge.name),
                ));
            }
            if bridge.datapath_type != "netdev" {
                return Err(err(
                    &format!("bridge {}.datapath_type", bridge.name),
                    format!(
                        "\"{}\" is not supported: oxvs is a userspace datapath (use \"netdev\")",
                        bridge.datapath_type
                    ),
                ));
            }
            crate::tunnel::check_tlv_map(&bridge.tlv_map)
                .map_err(|(i, r)| err(&format!("bridge {}.tlv_map[{i}]", bridge.name), r))?;
            let mut ofports = HashSet::new();
            for port in &bridge.ports {
                let pkey = format!("bridge {} port {}", bridge.name, port.name);
                if port.name.is_empty() {
                    return Err(err(
                        &format!("bridge {}.port.name", bridge.name),
                        "must not be empty".into(),
                    ));
                }
                if !ports.insert(port.name.as_str()) || port.name == bridge.name {
                    return Err(err(
                        &format!("{pkey}.name"),
                        format!("duplicate port \"{}\"", port.name),
                    ));
                }
                if let Some(ofport) = port.ofport {
                    if ofport == 0 || ofport >= 0xff00 {
                        return Err(err(
                            &format!("{pkey}.ofport"),
                            format!("{ofport} is outside 1..65279"),
                        ));
                    }
                    if !ofports.insert(ofport) {
                        return Err(err(
                            &format!("{pkey}.ofport"),
                            format!("{ofport} is used twice"),
                        ));
                    }
                }
                port_type_available(&port.port_type)
                    .map_err(|r| err(&format!("{pkey}.type"), r))?;
                if port.n_rxq == 0 || port.n_rxq > 64 {
                    return Err(err(
                        &format!("{pkey}.n_rxq"),
                        format!("{} is outside 1..64", port.n_rxq),
                    ));
                }
                if port.n_txq == 0 || port.n_txq > 64 {
                    return Err(err(
                        &format!("{pkey}.n_txq"),
                        format!("{} is outside 1..64", port.n_txq),
                    ));
                }
                if let Some(mtu) = port.mtu
                    && !(68..=9702).contains(&mtu)
                {
                    return Err(err(
                        &format!("{pkey}.mtu"),
                        format!("{mtu} is outside 68..9702"),
                    ));
                }
                if let Some(mac) = &port.mac {
                    parse_mac(mac).map_err(|r| err(&format!("{pkey}.mac"), r))?;
                }
                if let Some(affinity) = &port.pmd_rxq_affinity {
                    let pairs = dp_pmd::sched::parse_rxq_affinity(affinity)
                        .map_err(|r| err(&format!("{pkey}.pmd_rxq_affinity"), r))?;
                    for (q, core) in pairs {
                        if q >= port.n_rxq {
                            return Err(err(
                                &format!("{pkey}.pmd_rxq_affinity"),
                                format!("queue {q} does not exist (n_rxq = {})", port.n_rxq),
                            ));
                        }
                        if !self.pmd_cores().contains(&core) {
                            return Err(err(
                                &format!("{pkey}.pmd_rxq_affinity"),
                                format!(
                                    "core {core} runs no PMD thread (pmd_cores: {})",
                                    format_cores(&self.pmd_cores())
                                ),
                            ));
                        }
                    }
                }
                crate::drivers::validate_options(port)
                    .map_err(|r| err(&format!("{pkey}.options"), r))?;
            }
        }
        Ok(())
    }
}

fn location(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!(" (line {line})")
        }
        None => String::new(),
    }
}

/// Parses `pmd-cpu-mask` ("0x6" → cores 1 and 2).
pub fn parse_cpu_mask(mask: &str) -> Result<Vec<usize>, String> {
    let hex = mask
        .trim()
        .trim_start_matches("0x")
        .trim_start_matches("0X");
    if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("\"{mask}\" is not a hex CPU mask"));
    }
    let mut cores = Vec::new();
    for (i, c) in hex.chars().rev().enumerate() {
        let nibble = c.to_digit(16).expect("checked hex digit");
        for bit in 0..4 {
            if nibble & (1 << bit) != 0 {
                cores.push(i * 4 + bit);
            }
        }
    }
    if cores.is_empty() {
        return Err(format!("\"{mask}\" selects no core"));
    }
    Ok(cores)
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(text: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() != 6 {
        return Err(format!("\"{text}\" is not a MAC address"));
    }
    let mut mac = [0u8; 6];
    for (byte, part) in mac.iter_mut().zip(parts) {
        *byte =
            u8::from_str_radix(part, 16).map_err(|_| format!("\"{text}\" is not a MAC address"))?;
    }
    Ok(mac)
}

/// Cores this process may run on.
pub fn allowed_cores() -> Vec<usize> {
    core_affinity::get_core_ids()
        .map(|ids| ids.into_iter().map(|c| c.id).collect())
        .unwrap_or_default()
}

fn format_cores(cores: &[usize]) -> String {
    if cores.is_empty() {
        return "none".into();
    }
    let mut out = String::new();
    let mut i = 0;
    while i < cores.len() {
        let start = cores[i];
        let mut end = start;
        while i + 1 < cores.len() && cores[i + 1] == end + 1 {
            end += 1;
            i += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out += &start.to_string();
        } else {
            out += &format!("{start}-{end}");
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, "t.toml").map_err(|e| e.to_string())
    }

    #[test]
    fn minimal_and_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.datapath.emc_insert_inv_prob, 100);
        assert_eq!(c.control.socket, PathBuf::from(DEFAULT_SOCKET));
        assert!(c.pmd_cores().is_empty());
    }

    #[test]
    fn errors_name_the_file_the_key_and_why() {
        let e = parse("[datapath]\npmd_cores = [4096]\n").unwrap_err();
        assert!(
            e.starts_with("t.toml: datapath.pmd_cores: core 4096 is not available"),
            "{e}"
        );
        let e = parse("[datapath]\nbogus = 1\n").unwrap_err();
        assert!(
            e.contains("t.toml") && e.contains("bogus") && e.contains("line 2"),
            "{e}"
        );
        let dpdk =
            parse("[[bridge]]\nname = \"br0\"\n[[bridge.port]]\nname = \"p1\"\ntype = \"dpdk\"\n");
        if cfg!(feature = "dpdk") {
            let e = dpdk.unwrap_err();
            assert!(
                e.contains("p1.options: option \"dpdk-devargs\" is required"),
                "{e}"
            );
        } else {
            assert_eq!(
                dpdk.unwrap_err(),
                "t.toml: bridge br0 port p1.type: type \"dpdk\" needs DPDK, which this build does not include"
            );
        }
        let e = parse("[[bridge]]\nname = \"br0\"\n[[bridge.port]]\nname = \"p1\"\ntype = \"dummy\"\n[[bridge.port]]\nname = \"p1\"\ntype = \"dummy\"\n").unwrap_err();
        assert!(e.contains("duplicate port \"p1\""), "{e}");
        let e = parse("[[bridge]]\nname = \"br0\"\ndatapath_type = \"system\"\n").unwrap_err();
        assert!(e.contains("bridge br0.datapath_type"), "{e}");
        let e = parse("[datapath]\ntx-flush-interval = 9223372036854775807\n").unwrap_err();
        assert!(
            e.contains("datapath.tx_flush_interval") && e.contains("out of range"),
            "{e}"
        );
        let e = parse("[datapath]\nupcall-share = 91\n").unwrap_err();
        assert!(e.contains("datapath.upcall_share"), "{e}");
        assert!(parse("[datapath]\nupcall_share = 0\n").is_ok());
        let e = parse("[datapath]\npmd_sleep_max = 10001\n").unwrap_err();
        assert!(e.contains("datapath.pmd_sleep_max"), "{e}");
        assert!(parse("[datapath]\ntx_flush_interval = 1000000\npmd_sleep_max = 10000\n").is_ok());
        let e = parse("[datapath]\npmd-rxq-assign = \"fastest\"\n").unwrap_err();
        assert!(
            e.contains("datapath.pmd_rxq_assign") && e.contains("fastest"),
            "{e}"
        );
    }

    #[test]
    fn cpu_masks_and_ovs_spellings() {
        assert_eq!(parse_cpu_mask("0x6").unwrap(), vec![1, 2]);
        assert!(parse_cpu_mask("0x0").is_err());
        assert!(parse_cpu_mask("zz").is_err());
        let c = parse("[datapath]\nemc-insert-inv-prob = 1\npmd-cpu-mask = \"0x1\"\n").unwrap();
        assert_eq!(c.datapath.emc_insert_inv_prob, 1);
        assert_eq!(c.pmd_cores(), vec![0]);
        assert_eq!(format_cores(&[0, 1, 2, 5, 7, 8]), "0-2,5,7-8");
    }

    #[test]
    fn smc_and_emc_enable_take_a_boolean_or_auto() {
        use dp_core::cascade::CacheMode;
        let d = parse("").unwrap().datapath;
        assert_eq!(
            (d.emc_enable, d.smc_enable),
            (CacheMode::Auto, CacheMode::Auto)
        );
        for cache in ["smc", "emc"] {
            for (value, mode) in [
                ("true", CacheMode::On),
                ("false", CacheMode::Off),
                ("\"auto\"", CacheMode::Auto),
            ] {
                for text in [
                    format!("{cache}-enable = {value}"),
                    format!("{cache}_enable = {value}"),
                ] {
                    let d = parse(&format!("[datapath]\n{text}\n")).unwrap().datapath;
                    let got = if cache == "smc" {
                        d.smc_enable
                    } else {
                        d.emc_enable
                    };
                    assert_eq!(got, mode, "{text}");
                }
            }
            let e = parse(&format!("[datapath]\n{cache}-enable = \"sometimes\"\n")).unwrap_err();
            assert!(e.contains(cache) && e.contains("sometimes"), "{e}");
            let e = parse(&format!("[datapath]\n{cache}-enable = 1\n")).unwrap_err();
            assert!(e.contains("true, false or \"auto\""), "{e}");
        }
    }
}
