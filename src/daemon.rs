//! The daemon's state: the datapath, the bridges, the ports, and how a
//! config becomes (or changes into) a running switch.
//!
//! # Start-up order ("nothing half-started")
//! 1. every port is opened (driver options, files, devices checked);
//! 2. every bridge is built and its ports and initial rules applied (rule
//!    text errors surface here, naming the bridge and the rule);
//! 3. only then the datapath starts its threads and the ports are added.
//!
//! Datapath port numbers are allocated here, so bridges can refer to
//! ports before the datapath exists. A failure at any step drops what was
//! built and reports one error line.
//!
//! # Reload
//! [`Daemon::reload`] re-reads the config and applies the difference: new
//! ports are added, removed ports deleted, each bridge's rules replaced in
//! one atomic flow-mod batch. Unchanged ports keep forwarding. A change of
//! the PMD cores starts and stops PMD threads and deals the rx queues
//! again (`crate::pmd_cores`); the rest of `[datapath]` needs a restart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crossbeam_channel::{Receiver, bounded};
use dp_pmd::datapath::{Datapath, DatapathConfig, PortOptions};
use dp_pmd::pmd::exec::UserspacePacket;
use dp_pmd::sched::parse_rxq_affinity;
use ofproto::{FlowModCommand, Ofproto, PacketIn, PortConfig, parse_flow_mod};

use crate::bridge::Bridges;
use crate::config::{BridgeSection, Config, PortSection};
use crate::drivers::{self, OpenedPort};

/// Packets `userspace` actions may queue for the daemon.
const USERSPACE_QUEUE: usize = 1024;

/// A port the daemon runs.
#[derive(Debug)]
pub struct PortState {
    pub bridge: String,
    pub port_no: u32,
    pub opened: OpenedPort,
    pub section: PortSection,
}

/// The running switch.
#[derive(Debug)]
pub struct Daemon {
    pub config_path: PathBuf,
    pub config: Config,
    pub datapath: Datapath,
    pub bridges: Arc<Bridges>,
    pub ports: BTreeMap<String, PortState>,
    userspace: Receiver<UserspacePacket>,
    /// Live captures (`capture/*`).
    pub captures: crate::capture::Captures,
    /// Suspicious PMD iterations already written to the log.
    pub perf_log: crate::observe::PerfLogState,
    /// Route table, neighbour cache, ARP requests (`crate::tunnel`).
    pub tunnels: crate::tunnel::Tunnels,
    pub exit_requested: bool,
    /// Port link states seen by the periodic pass.
    pub links: crate::port_health::LinkWatch,
}

fn datapath_config(config: &Config) -> DatapathConfig {
    let d = &config.datapath;
    DatapathConfig {
        pmd_cores: config.pmd_cores(),
        rxq_assign: d.pmd_rxq_assign.parse().unwrap_or_default(),
        rxq_isolate: d.pmd_rxq_isolate,
        emc_insert_inv_prob: d.emc_insert_inv_prob,
        emc_enable: d.emc_enable,
        smc_enable: d.smc_enable,
        tx_flush_interval_us: d.tx_flush_interval,
        upcall_budget: d.upcall_budget,
        upcall_share_pct: d.upcall_share,
        flow_limit: d.flow_limit,
        max_idle_ms: d.max_idle,
        pmd_sleep_max_us: d.pmd_sleep_max,
        ..DatapathConfig::default()
    }
}

/// A bridge built from its section, with its ports (at their planned
/// datapath numbers) and its rules.
fn build_bridge(
    section: &BridgeSection,
    port_numbers: &BTreeMap<String, u32>,
) -> Result<Arc<Ofproto>, String> {
    let bridge = if section.flows.is_empty() {
        Ofproto::new_standalone(&section.name)
    } else {
        Ofproto::new(&section.name)
    };
    for port in &section.ports {
        let mut cfg = PortConfig::new(&port.name, port_numbers[&port.name]);
        cfg.ofport = port.ofport;
        cfg.tunnel = crate::tunnel::port_tunnel_config(port)
            .map_err(|e| format!("bridge {} port {}: {e}", section.name, port.name))?;
        bridge
            .add_port(cfg)
            .map_err(|e| format!("bridge {} port {}: {e}", section.name, port.name))?;
    }
    for (i, flow) in section.flows.iter().enumerate() {
        bridge
            .add_flow(flow, 0)
            .map_err(|e| format!("bridge {}.flows[{i}]: {e}", section.name))?;
    }
    Ok(Arc::new(bridge))
}

fn port_options(section: &PortSection, port_no: u32) -> Result<PortOptions, String> {
    let rxq_affinity = match &section.pmd_rxq_affinity {
        Some(text) => parse_rxq_affinity(text)?,
        None => Vec::new(),
    };
    Ok(PortOptions {
        port_no: Some(port_no),
        rxq_affinity,
    })
}

impl Daemon {
    /// Builds and starts everything `config` describes.
    pub fn start(config_path: &Path, config: Config) -> Result<Daemon, String> {
        Config::warn_if_others_can_write(config_path);
        // 0. DPDK's EAL, before any DPDK port opens.
        drivers::init_dpdk(&config)?;
        // 1. Open ports, numbering them 1.. in config order.
        let mut opened = Vec::new();
        let mut numbers = BTreeMap::new();
        let mut next = 1u32;
        for bridge in &config.bridges {
            for port in &bridge.ports {
                let port_opened = drivers::open(port)
                    .map_err(|e| format!("bridge {} port {}: {e}", bridge.name, port.name))?;
                numbers.insert(port.name.clone(), next);
                opened.push((bridge.name.clone(), next, port_opened, port.clone()));
                next += 1;
            }
        }
        // 2. Bridges, their ports and rules.
        let bridges = Arc::new(Bridges::new());
        for section in &config.bridges {
            bridges.add_bridge(build_bridge(section, &numbers)?);
        }
        let mut tunnels = crate::tunnel::Tunnels::new();
        tunnels.counters = bridges.tunnel_counters.clone();
        tunnels.counters.keep_alive(tunnels.state.clone());
        for bridge in bridges.all() {
            bridge.set_tunnel_state(tunnels.state.clone());
            tunnels.state.register_bridge(&bridge);
        }
        crate::tunnel::configure_tlv_maps(&tunnels.state, &config.bridges)?;
        // 3. The datapath and its ports.
        let (userspace_tx, userspace) = bounded(USERSPACE_QUEUE);
        let mut datapath = Datapath::with_userspace_queue(
            datapath_config(&config),
            bridges.clone(),
            Some(userspace_tx),
        )
        .map_err(|e| format!("datapath: {e}"))?;
        let mut ports = BTreeMap::new();
        for (bridge_name, port_no, port_opened, section) in opened {
            let options = port_options(&section, port_no)?;
            datapath
                .add_port(port_opened.netdev(), options)
                .map_err(|e| format!("bridge {bridge_name} port {}: {e}", section.name))?;
            crate::tunnel::attach(&mut tunnels, &datapath, port_no, &port_opened);
            let bridge = bridges.bridge(&bridge_name).expect("bridge built above");
            bridges.attach_port(port_no, bridge);
            ports.insert(
                section.name.clone(),
                PortState {
                    bridge: bridge_name,
                    port_no,
                    opened: port_opened,
                    section,
                },
            );
        }
        Ok(Daemon {
            config_path: config_path.to_path_buf(),
            config,
            datapath,
            bridges,
            ports,
            userspace,
            captures: Default::default(),
            perf_log: Default::default(),
            tunnels,
            exit_requested: false,
            links: Default::default(),
        })
    }

    /// Milliseconds on the PMD threads' clock ([`dp_pmd::cycles::monotonic_ns`]):
    /// the clock rules, MAC aging and stats credit use. Rules are also
    /// credited and touched by upcalls and flow deletions on the PMD
    /// threads, with the PMD clock's readings, so the daemon must read the
    /// same clock: a clock of its own, started later, put a rule's
    /// `used` ahead of the daemon's now and delayed idle timeouts by the
    /// start-up time.
    pub fn now_ms(&self) -> u64 {
        dp_pmd::cycles::monotonic_ns() / 1_000_000
    }

    /// Periodic housekeeping (about once a second): rule timeouts, MAC
    /// aging, rule statistics, packets sent to the controller.
    pub fn run_periodic(&mut self) {
        crate::tunnel::run(self);
        let links: Vec<_> = self
            .ports
            .iter()
            .map(|(name, p)| (name.as_str(), p.opened.netdev().link_state()))
            .collect();
        let changes = self.links.check(links);
        crate::port_health::reopen_returned(self, &changes);
        let now = self.now_ms();
        self.captures.reap(&self.datapath);
        crate::observe::report_suspicious(self);
        for bridge in self.bridges.all() {
            let report = bridge.run(now);
            for (rule, reason) in report.expired_rules {
                tracing::debug!(bridge = bridge.name(), ?reason, "rule expired: {rule:?}");
            }
        }
        let pass = self.bridges.begin_credit_pass();
        if let Ok(flows) = self.datapath.dump_flows() {
            self.bridges.credit_flow_stats(pass, &flows, now);
        }
        while let Ok(up) = self.userspace.try_recv() {
            let in_port = up.packet.meta().in_port;
            if let Some(state) = self.ports.values().find(|p| p.port_no == in_port)
                && let Some(bridge) = self.bridges.bridge(&state.bridge)
            {
                bridge.packet_in(PacketIn {
                    reason: 1,
                    cookie: 0,
                    data: up.packet.data().to_vec(),
                });
            }
        }
    }

    /// Adds a port at run time (`bridge/add-port`, reload).
    pub fn add_port(&mut self, bridge_name: &str, section: PortSection) -> Result<u32, String> {
        if self.ports.contains_key(&section.name) {
            return Err(format!("port {} already exists", section.name));
        }
        let bridge = self
            .bridges
            .bridge(bridge_name)
            .ok_or_else(|| format!("no such bridge: {bridge_name}"))?;
        crate::config::port_type_available(&section.port_type)
            .map_err(|e| format!("port {}: {e}", section.name))?;
        drivers::validate_options(&section).map_err(|e| format!("port {}: {e}", section.name))?;
        let opened = drivers::open(&section).map_err(|e| format!("port {}: {e}", section.name))?;
        let port_no = (1..)
            .find(|n| self.ports.values().all(|p| p.port_no != *n))
            .expect("port numbers are plenty");
        let mut cfg = PortConfig::new(&section.name, port_no);
        cfg.ofport = section.ofport;
        cfg.tunnel = crate::tunnel::port_tunnel_config(&section)
            .map_err(|e| format!("port {}: {e}", section.name))?;
        bridge
            .add_port(cfg)
            .map_err(|e| format!("port {}: {e}", section.name))?;
        let options = port_options(&section, port_no)?;
        if let Err(e) = self.datapath.add_port(opened.netdev(), options) {
            let _ = bridge.del_port(&section.name);
            return Err(format!("port {}: {e}", section.name));
        }
        crate::tunnel::attach(&mut self.tunnels, &self.datapath, port_no, &opened);
        self.bridges.attach_port(port_no, bridge);
        self.ports.insert(
            section.name.clone(),
            PortState {
                bridge: bridge_name.to_string(),
                port_no,
                opened,
                section,
            },
        );
        Ok(port_no)
    }

    /// Removes a port (`bridge/del-port`, reload).
    pub fn del_port(&mut self, name: &str) -> Result<(), String> {
        let state = self
            .ports
            .get(name)
            .ok_or_else(|| format!("no such port: {name}"))?;
        crate::tunnel::detach(&mut self.tunnels, &self.datapath, state.port_no, name);
        self.datapath.del_port(name).map_err(|e| e.to_string())?;
        self.bridges.detach_port(state.port_no);
        if let Some(bridge) = self.bridges.bridge(&state.bridge) {
            let _ = bridge.del_port(name);
            bridge.mac_learning().flush_port(state.port_no);
        }
        self.ports.remove(name);
        // A capture on it ends now, before its number can be reused.
        self.captures.reap(&self.datapath);
        Ok(())
    }

    /// Stops the datapath and closes every port, then reports packet
    /// buffers still out of their pools (0 means nothing leaked).
    pub fn shutdown(mut self) -> usize {
        self.datapath.shutdown();
        // Keep handles to check after the daemon (and every queue) is gone.
        let ports: Vec<_> = self.ports.values().map(|p| p.opened.clone()).collect();
        drop(self);
        ports
            .iter()
            .map(|port| {
                let (name, n) = port.buffers_in_use();
                if n > 0 {
                    tracing::error!(pool = %name, in_use = n, "packet buffers not returned");
                }
                n
            })
            .sum()
    }

    /// Re-reads the config file and applies the difference.
    pub fn reload(&mut self) -> Result<String, String> {
        Config::warn_if_others_can_write(&self.config_path);
        let new = Config::load(&self.config_path).map_err(|e| e.to_string())?;
        if !crate::pmd_cores::only_cores_differ(&new.datapath, &self.config.datapath)
            || new.control != self.config.control
            || new.metrics != self.config.metrics
            || new
                .bridges
                .iter()
                .map(|b| &b.name)
                .ne(self.config.bridges.iter().map(|b| &b.name))
        {
            return Err(
                "reload: only ports, rules and the PMD cores (datapath.pmd_cores, datapath.pmd_cpu_mask) can change at run time; restart the daemon to change the rest of [datapath], [control], [metrics] or the set of bridges"
                    .into(),
            );
        }
        let mut summary = Vec::new();
        // Geneve TLV maps first: checked in full before anything changes.
        crate::tunnel::reload_tlv_maps(self, &new.bridges, &mut summary)?;
        // PMD threads first, so re-added ports are dealt over the new set.
        crate::pmd_cores::apply(&mut self.datapath, &new, &mut summary)?;
        // Ports that vanished or changed go first.
        let wanted: BTreeMap<&str, (&str, &PortSection)> = new
            .bridges
            .iter()
            .flat_map(|b| {
                b.ports
                    .iter()
                    .map(move |p| (p.name.as_str(), (b.name.as_str(), p)))
            })
            .collect();
        let doomed: Vec<String> = self
            .ports
            .iter()
            .filter(|(name, state)| {
                wanted
                    .get(name.as_str())
                    .is_none_or(|(b, p)| *b != state.bridge || **p != state.section)
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in doomed {
            self.del_port(&name)?;
            summary.push(format!("removed port {name}"));
        }
        for (name, (bridge, section)) in &wanted {
            if !self.ports.contains_key(*name) {
                self.add_port(bridge, (*section).clone())?;
                summary.push(format!("added port {name}"));
            }
        }
        for section in &new.bridges {
            let old = self.config.bridges.iter().find(|b| b.name == section.name);
            if old.is_some_and(|o| o.flows == section.flows) {
                continue;
            }
            let bridge = self.bridges.bridge(&section.name).expect("same bridges");
            let flows: Vec<&str> = if section.flows.is_empty() {
                vec!["priority=0,actions=NORMAL"]
            } else {
                section.flows.iter().map(String::as_str).collect()
            };
            // Delete-all and the new rules in one batch: one new version,
            // so no packet ever sees an empty table.
            let ports = bridge.ports();
            let mut mods = vec![
                parse_flow_mod("", FlowModCommand::Delete { strict: false }, ports.as_ref())
                    .map_err(|e| format!("bridge {}: {e}", section.name))?,
            ];
            for (i, f) in flows.iter().enumerate() {
                mods.push(
                    parse_flow_mod(f, FlowModCommand::Add, ports.as_ref())
                        .map_err(|e| format!("bridge {}.flows[{i}]: {e}", section.name))?,
                );
            }
            bridge
                .apply_flow_mods(&mods, self.now_ms())
                .map_err(|e| format!("bridge {}: {e}", section.name))?;
            summary.push(format!("replaced the rules of bridge {}", section.name));
        }
        self.config = new;
        if summary.is_empty() {
            summary.push("no change".into());
        }
        Ok(summary.join("\n") + "\n")
    }
}
