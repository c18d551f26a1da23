//! The control commands, with OVS's names and output shapes where OVS has
//! the command (`dpctl/*`, `dpif-netdev/*`, `upcall/*`, `ofproto/trace`,
//! `fdb/*`, `netdev-dummy/receive`, `coverage/show`, `vlog/*`), plus rule
//! and port management (`ofctl/*`, `bridge/*`) and `reload`.
//!
//! Every command checks its argument count and reports errors naming the
//! argument; none can bring the daemon down.

use std::fmt::Write;
use std::sync::Arc;

use dp_core::action::Action;
use dp_core::flow::FlowKey;
use dp_core::odp::{self, PortNames};
use dp_pmd::pmd::FlowDump;
use dp_pmd::pmd::msg::PutMode;
use dp_pmd::stats::PmdIdentity;

use crate::config::PortSection;
use crate::daemon::Daemon;
use crate::logging;

/// One command: name, argument count range, usage, handler.
struct Command {
    name: &'static str,
    min: usize,
    max: usize,
    usage: &'static str,
    run: fn(&mut Daemon, &[String]) -> Result<String, String>,
}

const COMMANDS: &[Command] = &[
    // Native tunnelling (crate::tunnel).
    Command {
        name: "tnl/ports/show",
        min: 0,
        max: 1,
        usage: "[-v]",
        run: crate::tunnel::ports_show,
    },
    Command {
        name: "tnl/neigh/show",
        min: 0,
        max: 0,
        usage: "",
        run: crate::tunnel::neigh_show,
    },
    Command {
        name: "tnl/neigh/flush",
        min: 0,
        max: 0,
        usage: "",
        run: crate::tunnel::neigh_flush,
    },
    Command {
        name: "tnl/neigh/set",
        min: 3,
        max: 3,
        usage: "BRIDGE IP MAC",
        run: crate::tunnel::neigh_set,
    },
    Command {
        name: "tnl/tlv-map/add",
        min: 2,
        max: 65,
        usage: "BRIDGE {class=C,type=T,len=L}->tun_metadataN...",
        run: crate::tunnel::tlv_map_add,
    },
    Command {
        name: "tnl/tlv-map/del",
        min: 1,
        max: 65,
        usage: "BRIDGE [{class=C,type=T,len=L}->tun_metadataN...]",
        run: crate::tunnel::tlv_map_del,
    },
    Command {
        name: "tnl/tlv-map/show",
        min: 0,
        max: 1,
        usage: "[BRIDGE]",
        run: crate::tunnel::tlv_map_show,
    },
    Command {
        name: "ovs/route/show",
        min: 0,
        max: 0,
        usage: "",
        run: crate::tunnel::route_show,
    },
    Command {
        name: "ovs/route/add",
        min: 2,
        max: 4,
        usage: "IP/PLEN OUTPUT_PORT [GW] [src=IP]",
        run: crate::tunnel::route_add,
    },
    Command {
        name: "ovs/route/del",
        min: 1,
        max: 1,
        usage: "IP/PLEN",
        run: crate::tunnel::route_del,
    },
    Command {
        name: "list-commands",
        min: 0,
        max: 0,
        usage: "",
        run: list_commands,
    },
    Command {
        name: "version",
        min: 0,
        max: 0,
        usage: "",
        run: version,
    },
    Command {
        name: "exit",
        min: 0,
        max: 1,
        usage: "[--cleanup]",
        run: exit,
    },
    Command {
        name: "reload",
        min: 0,
        max: 0,
        usage: "",
        run: reload,
    },
    Command {
        name: "dpctl/show",
        min: 0,
        max: 2,
        usage: "[-s] [DP]",
        run: dpctl_show,
    },
    Command {
        name: "dpctl/dump-flows",
        min: 0,
        max: 5,
        usage: "[-m] [--names] [DP] [pmd=N] [filter=MATCH]",
        run: dpctl_dump_flows,
    },
    Command {
        name: "dpctl/add-flow",
        min: 2,
        max: 4,
        usage: "[--may-create] [DP] FLOW ACTIONS",
        run: dpctl_add_flow,
    },
    Command {
        name: "dpctl/mod-flow",
        min: 2,
        max: 5,
        usage: "[--may-create] [--clear] [DP] FLOW ACTIONS",
        run: dpctl_mod_flow,
    },
    Command {
        name: "dpctl/del-flow",
        min: 1,
        max: 2,
        usage: "[DP] FLOW|ufid:UFID",
        run: dpctl_del_flow,
    },
    Command {
        name: "dpctl/get-flow",
        min: 1,
        max: 2,
        usage: "[DP] ufid:UFID",
        run: dpctl_get_flow,
    },
    Command {
        name: "dpctl/del-flows",
        min: 0,
        max: 1,
        usage: "[DP]",
        run: dpctl_del_flows,
    },
    Command {
        name: "dpif-netdev/pmd-stats-show",
        min: 0,
        max: 3,
        usage: "[-pmd CORE] [DP]",
        run: pmd_stats_show,
    },
    Command {
        name: "dpif-netdev/pmd-stats-clear",
        min: 0,
        max: 3,
        usage: "[-pmd CORE] [DP]",
        run: pmd_stats_clear,
    },
    Command {
        name: "dpif-netdev/pmd-rxq-show",
        min: 0,
        max: 3,
        usage: "[-pmd CORE] [DP]",
        run: pmd_rxq_show,
    },
    Command {
        name: "dpif-netdev/pmd-rxq-rebalance",
        min: 0,
        max: 1,
        usage: "[DP]",
        run: pmd_rxq_rebalance,
    },
    Command {
        name: "dpif-netdev/pmd-perf-show",
        min: 0,
        max: 4,
        usage: "[-nh] [-pmd CORE] [DP]",
        run: crate::observe::pmd_perf_show,
    },
    Command {
        name: "dpif-netdev/pmd-perf-log-set",
        min: 0,
        max: 5,
        usage: "[on|off] [-us USEC] [-pmd CORE]",
        run: crate::observe::pmd_perf_log_set,
    },
    Command {
        name: "capture/start",
        min: 2,
        max: 12,
        usage: "PORT FILE [--rx|--tx|--both] [--count N] [--filter MATCH] [--snaplen N] [--ring N]",
        run: crate::capture::start,
    },
    Command {
        name: "capture/status",
        min: 0,
        max: 1,
        usage: "[ID]",
        run: crate::capture::status,
    },
    Command {
        name: "capture/stop",
        min: 0,
        max: 1,
        usage: "[ID]",
        run: crate::capture::stop,
    },
    Command {
        name: "upcall/show",
        min: 0,
        max: 0,
        usage: "",
        run: upcall_show,
    },
    Command {
        name: "upcall/set-flow-limit",
        min: 1,
        max: 1,
        usage: "N",
        run: upcall_set_flow_limit,
    },
    Command {
        name: "revalidator/purge",
        min: 0,
        max: 0,
        usage: "",
        run: revalidator_purge,
    },
    Command {
        name: "ofproto/trace",
        min: 1,
        max: 3,
        usage: "[BRIDGE] FLOW [--generate]",
        run: ofproto_trace,
    },
    Command {
        name: "fdb/show",
        min: 1,
        max: 1,
        usage: "BRIDGE",
        run: fdb_show,
    },
    Command {
        name: "fdb/flush",
        min: 0,
        max: 1,
        usage: "[BRIDGE]",
        run: fdb_flush,
    },
    Command {
        name: "netdev-dpdk/get-mempool-info",
        min: 0,
        max: 1,
        usage: "[PORT]",
        run: crate::dpdk::get_mempool_info,
    },
    Command {
        name: "netdev-dpdk/link-state",
        min: 0,
        max: 1,
        usage: "[PORT]",
        run: crate::dpdk::link_state,
    },
    Command {
        name: "netdev-dummy/receive",
        min: 2,
        max: 6,
        usage: "PORT PACKET|FLOW [--len N] [--qid Q]",
        run: dummy_receive,
    },
    Command {
        name: "coverage/show",
        min: 0,
        max: 0,
        usage: "",
        run: coverage_show,
    },
    Command {
        name: "vlog/list",
        min: 0,
        max: 0,
        usage: "",
        run: vlog_list,
    },
    Command {
        name: "vlog/set",
        min: 1,
        max: 1,
        usage: "FILTER",
        run: vlog_set,
    },
    Command {
        name: "ofctl/add-flow",
        min: 2,
        max: 2,
        usage: "BRIDGE FLOW",
        run: ofctl_add_flow,
    },
    Command {
        name: "ofctl/add-flows",
        min: 2,
        max: 2,
        usage: "BRIDGE FLOWS",
        run: ofctl_add_flows,
    },
    Command {
        name: "ofctl/mod-flows",
        min: 2,
        max: 3,
        usage: "[--strict] BRIDGE FLOW",
        run: ofctl_mod_flows,
    },
    Command {
        name: "ofctl/del-flows",
        min: 1,
        max: 3,
        usage: "[--strict] BRIDGE [FLOW]",
        run: ofctl_del_flows,
    },
    Command {
        name: "ofctl/dump-flows",
        min: 1,
        max: 1,
        usage: "BRIDGE",
        run: ofctl_dump_flows,
    },
    Command {
        name: "bridge/add-port",
        min: 3,
        max: 8,
        usage: "BRIDGE PORT TYPE [n_rxq=N] [n_txq=N] [ofport=N] [KEY=VALUE]...",
        run: bridge_add_port,
    },
    Command {
        name: "bridge/del-port",
        min: 1,
        max: 2,
        usage: "[BRIDGE] PORT",
        run: bridge_del_port,
    },
    Command {
        name: "bridge/show",
        min: 0,
        max: 0,
        usage: "",
        run: bridge_show,
    },
];

/// Runs `method` with `params` against the daemon.
pub fn dispatch(daemon: &mut Daemon, method: &str, params: &[String]) -> Result<String, String> {
    let Some(cmd) = COMMANDS.iter().find(|c| c.name == method) else {
        return Err(format!("\"{method}\" is not a valid command"));
    };
    if params.len() < cmd.min || params.len() > cmd.max {
        return Err(format!(
            "\"{method}\" command takes at least {} arguments and at most {} (usage: {method} {})",
            cmd.min, cmd.max, cmd.usage
        ));
    }
    (cmd.run)(daemon, params)
}

fn list_commands(_: &mut Daemon, _: &[String]) -> Result<String, String> {
    let mut out = String::from("The available commands are:\n");
    for c in COMMANDS {
        let _ = writeln!(out, "  {:<32}{}", c.name, c.usage);
    }
    Ok(out)
}

fn version(_: &mut Daemon, _: &[String]) -> Result<String, String> {
    Ok(format!("oxvsd (oxvs) {}\n", env!("CARGO_PKG_VERSION")))
}

fn exit(d: &mut Daemon, _: &[String]) -> Result<String, String> {
    d.exit_requested = true;
    Ok(String::new())
}

fn reload(d: &mut Daemon, _: &[String]) -> Result<String, String> {
    d.reload()
}

/// Strips an optional datapath name argument (`netdev@ovs-netdev`,
/// `ovs-netdev`), the only datapath oxvs has.
fn without_dp(args: &[String]) -> Vec<&str> {
    args.iter()
        .map(String::as_str)
        .filter(|a| {
            !matches!(
                *a,
                "netdev@ovs-netdev" | "ovs-netdev" | "netdev@oxvs" | "system@ovs-system"
            )
        })
        .collect()
}

fn port_names(d: &Daemon) -> PortNames {
    let mut names = PortNames::new();
    for (name, p) in &d.ports {
        names.insert(p.port_no, name.clone());
    }
    names
}

fn dpctl_show(d: &mut Daemon, args: &[String]) -> Result<String, String> {
    let stats = d.datapath.pmd_stats().map_err(|e| e.to_string())?;
    let (mut hit, mut missed, mut lost) = (0u64, 0u64, 0u64);
    for r in &stats {
        let l = &r.stats.lookup;
        hit += l.simple_match_hits + l.emc_hits + l.smc_hits + l.megaflow_hits;
        missed += r.stats.miss_upcall_ok;
        lost += r.stats.miss_upcall_failed;
    }
    let pass = d.bridges.begin_credit_pass();
    let flows = d.datapath.dump_flows().map_err(|e| e.to_string())?;
    // Tunnel port counters come from megaflow statistics: fold them in.
    d.bridges.credit_flow_stats(pass, &flows, d.now_ms());
    let mut out = String::from("netdev@ovs-netdev:\n");
    let _ = writeln!(out, "  lookups: hit:{hit} missed:{missed} lost:{lost}");
    let _ = writeln!(out, "  flows: {}", flows.len());
    let show_stats = args.iter().any(|a| a == "-s");
    for (n, name, netdev) in d.datapath.ports() {
        let _ = writeln!(out, "  port {n}: {name} ({})", netdev.type_name());
        if show_stats {
            let s = netdev.stats();
            let _ = writeln!(
                out,
                "    RX packets:{} errors:{} dropped:{}",
                s.rx_packets, s.rx_errors, s.rx_dropped
            );
            let _ = writeln!(
                out,
                "    TX packets:{} errors:{} dropped:{}",
                s.tx_packets, s.tx_errors, s.tx_dropped
            );
            let _ = writeln!(out, "    RX bytes:{}  TX bytes:{}", s.rx_bytes, s.tx_bytes);
            let custom = netdev.custom_stats();
            if !custom.is_empty() {
                let fields: Vec<String> = custom.iter().map(|(k, v)| format!("{k}:{v}")).collect();
                let _ = writeln!(out, "    {}", fields.join(" "));
            }
        }
    }
    Ok(out)
}

fn pmd_header(who: PmdIdentity) -> String {
    match who {
        PmdIdentity::Pmd { core_id, .. } => format!("flow-dump from pmd on cpu core: {core_id}\n"),
        PmdIdentity::Main => "flow-dump from the main thread:\n".into(),
    }
}

fn format_dump(f: &FlowDump, now_ms: u64, names: Option<&PortNames>, verbose: bool) -> String {
    let stats = odp::dump::FlowStats {
        packets: f.stats.packets,
        bytes: f.stats.bytes,
        used_ms: (f.stats.used_ms != 0 || f.stats.packets != 0).then_some(f.stats.used_ms),
        tcp_flags: f.stats.tcp_flags,
    };
    odp::dump::format_megaflow(
        Some(f.ufid),
        &f.key,
        &f.mask,
        stats,
        &f.actions,
        now_ms,
        names,
        verbose,
    )
}

fn dpctl_dump_flows(d: &mut Daemon, args: &[String]) -> Result<String, String> {
    let mut verbose = false;
    let mut use_names = false;
    let mut pmd: Option<usize> = None;
    let mut filter: Option<(FlowKey, FlowKey)> = None;
    let names = port_names(d);
    for a in without_dp(args) {
        if a == "-m" || a == "--more" {
            verbose = true;
        } else if a == "--names" {
            use_names = true;
        } else if a == "--no-names" {
            use_names = false;
        } else if let Some(n) = a.strip_prefix("pmd=") {
            pmd = Some(
                n.parse()
                    .map_err(|_| format!("pmd={n}: not a core number"))?,
            );
        } else if let Some(text) = a.strip_prefix("filter=") {
            let mk =
                odp::key::parse_masked(text, Some(&names)).map_err(|e| format!("filter: {e}"))?;
            let (k, m) = odp::flow::masked_key_to_flow(&mk.key, &mk.mask)
                .map_err(|e| format!("filter: {e}"))?;
            filter = Some((k, m));
        } else {
            return Err(format!("dump-flows: unknown argument \"{a}\""));
        }
    }
    let mut flows = d.datapath.dump_flows().map_err(|e| e.to_string())?;
    flows.retain(|f| match pmd {
        Some(core) => matches!(f.pmd, PmdIdentity::Pmd { core_id, .. } if core_id == core),
        None => true,
    });
    if let Some((fk, fm)) = &filter {
        // A flow passes when, on the filter's fields, it matches the
        // filter's values (as OVS's filter= does).
        flows.retain(|f| f.key.masked(fm) == fk.masked(fm));
    }
    let now = dp_pmd::cycles::monotonic_ns() / 1_000_000;
    let mut out = String::new();
    let mut last: Option<PmdIdentity> = None;
    for f in &flows {
        if last != Some(f.pmd) {
            out.push_str(&pmd_header(f.pmd));
            last = Some(f.pmd);
        }
        out.push_str(&format_dump(f, now, use_names.then_some(&names), verbose));
        out.push('\n');
    }
    Ok(out)
}

/// Parses `FLOW ACTIONS` for add/mod: a masked ODP key and an ODP action
/// list.
fn parse_flow_and_actions(
    d: &Daemon,
    flow: &str,
    actions: &str,
) -> Result<(FlowKey, FlowKey, Vec<Action>), String> {
    let names = port_names(d);
    let mk = odp::key::parse_masked(flow, Some(&names)).map_err(|e| format!("flow: {e}"))?;
    let (key, mask) =
        odp::flow::masked_key_to_flow(&mk.key, &mk.mask).map_err(|e| format!("flow: {e}"))?;
    let acts = odp::actions::parse(actions, Some(&names)).map_err(|e| format!("actions: {e}"))?;
    if let Err(a) = dp_core::execute::Executor::check(&acts) {
        return Err(format!(
            "actions: {} cannot be executed by this datapath",
            odp::actions::format(std::slice::from_ref(a), None)
        ));
    }
    Ok((key, mask, acts))
}

fn put(d: &mut Daemon, args: &[String], modify: bool) -> Result<String, String> {
    let mut may_create = false;
    let mut clear = false;
    let mut rest = Vec::new();
    for a in without_dp(args) {
        match a {
            "--may-create" => may_create = true,
            "--clear" => clear = true,
            "-s" | "--statistics" => {}
            other => rest.push(other),
        }
    }
    let [flow, actions] = rest[..] else {
        return Err("expected FLOW ACTIONS".into());
    };
    let (key, mask, acts) = parse_flow_and_actions(d, flow, actions)?;
    let mode = match (modify, may_create) {
        (false, false) => PutMode::Create,
        (true, false) => PutMode::Modify { zero_stats: clear },
        (_, true) => PutMode::CreateOrModify,
    };
    d.datapath
        .flow_put(&key, &mask, None, Arc::from(acts), mode, None)
        .map_err(|e| format!("{}: {e}", if modify { "mod-flow" } else { "add-flow" }))?;
    Ok(String::new())
}

fn dpctl_add_flow(d: &mut Daemon, args: &[String]) -> Result<String, String> {
    put(d, args, false)
}

fn dpctl_mod_flow(d: &mut Daemon, args: &[String]) -> Result<String, String> {
    put(d, args, true)
}

/// The UFID of `FLOW|ufid:UFID`.
fn resolve_ufid(d: &Daemon, text: &str) -> Result<u128, String> {
    if text.starts_with("ufid:") {
        return odp::dump::parse_ufid(text).map_err(|e| e.to_string());
    }
    let names = port_names(d);
    let mk = odp::key::parse_masked(text, Some(&names)).map_err(|e| format!("flow: {e}"))?;
    let (key, mask) =
        odp::flow::masked_key_to_flow(&mk.key, &mk.mask).map_err(|e| format!("flow: {e}"))?;
    let flows = d.datapath.dump_flows().map_err(|e| e.to_string())?;
    flows
        .iter()
        .find(|f| f.mask == mask && f.key == key.masked(&mask))
        .map(|f| f.ufid)
        .ok_or_else(|| "no such flow".to_string())
}

fn dpctl_del_flow(d: &mut Daemon, args: &[String]) -> Result<String, String> {
    let rest = without_dp(args);
    let [flow] = rest[..] else {
        return Err("expected FLOW or ufid:UFID".into());
    };
    let ufid = resolve_ufid(d, flow)?;
    d.datapath
        .flow_del(ufid)
        .map_err(|e| format!("del-flow: {e}"))?;
    Ok(String::new())
}

fn dpctl_get_flow(d: &mut Daemon, args: &[String]) -> Result<String, String> {
    let rest = without_dp(args);
    let [flow] = rest[..] else {
        return Err("expected ufid:UFID".into());
    };
    let ufid = resolve_ufid(d, flow)?;
    let flows = d.datapath.dump_flows().map_err(|e| e.to_string())?;
    let now = dp_pmd::cycles::monotonic_ns() / 1_000_000;
    let names = port_names(d);
    let mut out = String::new();
    for f in flows.iter().filter(|f| f.ufid == ufid) {
        out.push_str(&format_dump(f, now, Some(&names), true));
        out.push('\n');
    }
    if out.is_empty() {
        return Err("no such flow".into());
    }
    Ok(out)
}

fn dpctl_del_flows(d: &mut Daemon, _: &[String]) -> Result<String, String> {
    d.datapath.flow_flush();
    Ok(String::new())
}

/// `-pmd CORE` filter of the pmd-* commands.
fn pmd_filter(args: &[String]) -> Result<Option<usize>, String> {
    let rest = without_dp(args);
    match rest[..] {
        [] => Ok(None),
        ["-pmd", core] => core
            .parse()
            .map(Some)
            .map_err(|_| format!("-pmd {core}: not a core number")),
        _ => Err(format!("unexpected arguments: {}", rest.join(" "))),
    }
}

fn pmd_stats_show(d: &mut Daemon, args: &[String]) -> Result<String, String> {
    let core = pmd_filter(args)?;
    let mut reports = d.datapath.pmd_stats().map_err(|e| e.to_string())?;
    // OVS lists the main thread first.
    reports.rotate_right(1);
    let mut out = String::new();
    for r in reports {
        if let Some(c) = core
            && !matches!(r.identity, PmdIdentity::Pmd { core_id, .. } if core_id == c)
        {
            continue;
        }
        dp_pmd::stats::format_pmd_stats(&mut out, r.identity, &r.stats);
        let (emc, smc) = (d.datapath.emc_mode(), d.datapath.smc_mode());
        dp_pmd::datapath::format_cache_state(&mut out, &r.stats, emc, smc);
    }
    Ok(out)
}

fn pmd_stats_clear(d: &mut Daemon, args: &[String]) -> Result<String, String> {
    pmd_filter(args)?;
    d.datapath.pmd_stats_clear();
    Ok(String::new())
}

fn pmd_rxq_show(d: &mut Daemon, args: &[String]) -> Result<String, String> {
    pmd_filter(args)?;
    d.datapath.pmd_rxq_show().map_err(|e| e.to_string())
}

fn pmd_rxq_rebalance(d: &mut Daemon, _: &[String]) -> Result<String, String> {
    d.datapath.rebalance().map_err(|e| e.to_string())?;
    Ok("pmd rxq rebalance requested.\n".into())
}

fn upcall_show(d: &mut Daemon, _: &[String]) -> Result<String, String> {
    let flows = d.datapath.dump_flows().map_err(|e| e.to_string())?;
    let mut out = String::from("netdev@ovs-netdev:\n");
    let _ = writeln!(
        out,
        "  flows         : (current {}) (avg {}) (max {}) (limit {})",
        flows.len(),
        flows.len(),
        flows.len(),
        d.datapath.flow_limit()
    );
    let limit_hits: u64 = d
        .datapath
        .pmd_stats()
        .map_err(|e| e.to_string())?
        .iter()
        .map(|r| r.stats.upcall_flow_limit_hit)
        .sum();
    let _ = writeln!(out, "  offloaded flows : 0");
    let _ = writeln!(out, "  upcall_flow_limit_hit : {limit_hits}");
    if let Some(r) = d.datapath.revalidator() {
        use std::sync::atomic::Ordering::Relaxed;
        let s = r.stats();
        let _ = writeln!(
            out,
            "  dump duration : {}ms",
            s.last_dump_duration_ms.load(Relaxed)
        );
        let _ = writeln!(out, "  revalidator rounds : {}", s.rounds.load(Relaxed));
        let _ = writeln!(
            out,
            "  flows deleted : idle {} limit {} retranslation {}; modified {}",
            s.flows_deleted_idle.load(Relaxed),
            s.flows_deleted_limit.load(Relaxed),
            s.flows_deleted_retranslation.load(Relaxed),
            s.flows_modified.load(Relaxed)
        );
    }
    Ok(out)
}

fn upcall_set_flow_limit(d: &mut Daemon, args: &[String]) -> Result<String, String> {
    let n: usize = args[0]
        .parse()
        .map_err(|_| format!("\"{}\": not a number", args[0]))?;
    if n == 0 {
        return Err("flow limit must be at least 1".into());
    }
    d.datapath.set_flow_limit(n);
    Ok(format!("set flow_limit to {n}\n"))
}

fn revalidator_purge(d: &mut Daemon, _: &[String]) -> Result<String, String> {
    match d.datapath.revalidator() {
        Some(r) => r.purge(),
        None => d.datapath.flow_flush(),
    }
    Ok(String::new())
}

fn bridge_arg<'a>(
    d: &Daemon,
    args: &'a [String],
) -> Result<(Arc<ofproto::Ofproto>, &'a [String]), String> {
    if let Some(first) = args.first()
        && let Some(b) = d.bridges.bridge(first)
    {
        return Ok((b, &args[1..]));
    }
    let all = d.bridges.all();
    match all.len() {
        1 => Ok((all[0].clone(), args)),
        0 => Err("no bridges".into()),
        _ => Err(format!(
            "no such bridge: {}",
            args.first().map(String::as_str).unwrap_or("")
        )),
    }
}

fn ofproto_trace(d: &mut Daemon, args: &[String]) -> Result<String, String> {
    let generate = args.iter().any(|a| a == "--generate");
    let args: Vec<String> = args
        .iter()
        .filter(|a| *a != "--generate")
        .cloned()
        .collect();
    let (bridge, rest) = bridge_arg(d, &args)?;
    let [flow] = rest else {
        return Err("expected BRIDGE FLOW".into());
    };
    let mut out = bridge.trace(flow, d.now_ms()).map_err(|e| e.to_string())?;
    if generate {
        out += &crate::observe::trace_generate(d, flow)?;
    }
    Ok(out)
}

fn fdb_show(d: &mut Daemon, args: &[String]) -> Result<String, String> {
    let bridge = d
        .bridges
        .bridge(&args[0])
        .ok_or_else(|| format!("no such bridge: {}", args[0]))?;
    Ok(bridge.fdb_show(d.now_ms()))
}

fn fdb_flush(d: &mut Daemon, args: &[String]) -> Result<String, String> {
    let bridges = match args.first() {
        Some(name) => vec![
            d.bridges
                .bridge(name)
                .ok_or_else(|| format!("no such bridge: {name}"))?,
        ],
        None => d.bridges.all(),
    };
    for b in bridges {
        b.fdb_flush();
    }
    Ok("table successfully flushed\n".into())
}

fn dummy_receive(d: &mut Daemon, args: &[String]) -> Result<String, String> {
    let port = &args[0];
    let state = d
        .ports
        .get(port)
        .ok_or_else(|| format!("no such port: {port}"))?;
    let crate::drivers::OpenedPort::Dummy(dummy) = &state.opened else {
        return Err(format!("port {port} is not a dummy port"));
    };
    let mut qid = 0usize;
    let mut len: Option<usize> = None;
    let mut packets = Vec::new();
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--qid" => {
                let v = args.get(i + 1).ok_or("--qid needs a queue id")?;
                qid = v
                    .parse()
                    .map_err(|_| format!("--qid {v}: not a queue id"))?;
                i += 2;
            }
            "--len" => {
                let v = args.get(i + 1).ok_or("--len needs a length")?;
                len = Some(v.parse().map_err(|_| format!("--len {v}: not a length"))?);
                i += 2;
            }
            text => {
                packets.push(text.to_string());
                i += 1;
            }
        }
    }
    if packets.is_empty() {
        return Err("no packet given".into());
    }
    let names = port_names(d);
    for text in packets {
        let frame = if text.len() % 2 == 0
            && !text.is_empty()
            && text.bytes().all(|b| b.is_ascii_hexdigit())
        {
            (0..text.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex checked"))
                .collect()
        } else {
            odp::packet::build_frame(&text, len, Some(&names))
                .map_err(|e| format!("packet: {e}"))?
        };
        dummy.receive(qid, &frame).map_err(|e| e.to_string())?;
    }
    Ok(String::new())
}

fn coverage_show(d: &mut Daemon, _: &[String]) -> Result<String, String> {
    let reports = d.datapath.pmd_stats().map_err(|e| e.to_string())?;
    let mut totals: Vec<(&'static str, u64)> = Vec::new();
    for r in &reports {
        for (name, n) in &r.drops {
            match totals.iter_mut().find(|(t, _)| t == name) {
                Some(t) => t.1 += n,
                None => totals.push((name, *n)),
            }
        }
    }
    let mut events = vec![
        (
            "upcall_flow_limit_hit",
            reports
                .iter()
                .map(|r| r.stats.upcall_flow_limit_hit)
                .sum::<u64>(),
        ),
        (
            "upcall_budget_exceeded",
            reports.iter().map(|r| r.stats.upcall_budget_exceeded).sum(),
        ),
        (
            "datapath_upcall_ok",
            reports.iter().map(|r| r.stats.miss_upcall_ok).sum(),
        ),
        (
            "datapath_upcall_failed",
            reports.iter().map(|r| r.stats.miss_upcall_failed).sum(),
        ),
    ];
    // Every declared drop reason is listed, zeros included; other events
    // only when hit, as OVS does.
    let drops = crate::observe::drop_reason_totals(&reports);
    events.extend(
        totals
            .into_iter()
            .filter(|(n, _)| !drops.iter().any(|(d, _)| d == n)),
    );
    let mut out = String::from("Event coverage, totals since start:\n");
    let mut zero = 0;
    for (name, n) in events {
        if n == 0 {
            zero += 1;
            continue;
        }
        let _ = writeln!(out, "{name:<32} total: {n}");
    }
    for (name, n) in drops {
        let _ = writeln!(out, "{name:<32} total: {n}");
    }
    let _ = writeln!(out, "{zero} events never hit");
    Ok(out)
}

fn vlog_list(_: &mut Daemon, _: &[String]) -> Result<String, String> {
    Ok(format!("log filter: {}\n", logging::current_filter()))
}

fn vlog_set(_: &mut Daemon, args: &[String]) -> Result<String, String> {
    logging::set_filter(&args[0])?;
    Ok(String::new())
}

fn ofctl_add_flow(d: &mut Daemon, args: &[String]) -> Result<String, String> {
    let bridge = d
        .bridges
        .bridge(&args[0])
        .ok_or_else(|| format!("no such bridge: {}", args[0]))?;
    bridge
        .add_flow(&args[1], d.now_ms())
        .map_err(|e| e.to_string())?;
    Ok(String::new())
}

fn ofctl_add_flows(d: &mut Daemon, args: &[String]) -> Result<String, String> {
    let bridge = d
        .bridges
        .bridge(&args[0])
        .ok_or_else(|| format!("no such bridge: {}", args[0]))?;
    bridge
        .add_flows(&args[1], d.now_ms())
        .map_err(|e| e.to_string())?;
    Ok(String::new())
}

fn strict_args(args: &[String]) -> (bool, Vec<&String>) {
    let strict = args.iter().any(|a| a == "--strict");
    (strict, args.iter().filter(|a| *a != "--strict").collect())
}

fn ofctl_mod_flows(d: &mut Daemon, args: &[String]) -> Result<String, String> {
    let (strict, rest) = strict_args(args);
    let [bridge, flow] = rest[..] else {
        return Err("expected [--strict] BRIDGE FLOW".into());
    };
    let b = d
        .bridges
        .bridge(bridge)
        .ok_or_else(|| format!("no such bridge: {bridge}"))?;
    b.mod_flows(flow, strict, d.now_ms())
        .map_err(|e| e.to_string())?;
    Ok(String::new())
}

fn ofctl_del_flows(d: &mut Daemon, args: &[String]) -> Result<String, String> {
    let (strict, rest) = strict_args(args);
    let (bridge, flow) = match rest[..] {
        [b] => (b, ""),
        [b, f] => (b, f.as_str()),
        _ => return Err("expected [--strict] BRIDGE [FLOW]".into()),
    };
    let b = d
        .bridges
        .bridge(bridge)
        .ok_or_else(|| format!("no such bridge: {bridge}"))?;
    b.del_flows(flow, strict, d.now_ms())
        .map_err(|e| e.to_string())?;
    Ok(String::new())
}

fn ofctl_dump_flows(d: &mut Daemon, args: &[String]) -> Result<String, String> {
    let b = d
        .bridges
        .bridge(&args[0])
        .ok_or_else(|| format!("no such bridge: {}", args[0]))?;
    // Fold in what megaflows forwarded since the last sample first.
    let pass = d.bridges.begin_credit_pass();
    if let Ok(flows) = d.datapath.dump_flows() {
        d.bridges.credit_flow_stats(pass, &flows, d.now_ms());
    }
    Ok(b.dump_flows(d.now_ms()))
}

fn bridge_add_port(d: &mut Daemon, args: &[String]) -> Result<String, String> {
    let (bridge, name, port_type) = (&args[0], &args[1], &args[2]);
    let mut section = PortSection {
        name: name.clone(),
        port_type: port_type.clone(),
        ofport: None,
        n_rxq: 1,
        n_txq: 1,
        pmd_rxq_affinity: None,
        mtu: None,
        mac: None,
        options: Default::default(),
    };
    for kv in &args[3..] {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("\"{kv}\" is not KEY=VALUE"))?;
        let num = || {
            v.parse::<usize>()
                .map_err(|_| format!("{k}={v}: not a number"))
        };
        match k {
            "n_rxq" => section.n_rxq = num()?,
            "n_txq" => section.n_txq = num()?,
            "ofport" => section.ofport = Some(num()? as u32),
            "pmd-rxq-affinity" | "pmd_rxq_affinity" => {
                section.pmd_rxq_affinity = Some(v.to_string())
            }
            _ => {
                let value = match v {
                    "true" => toml::Value::Boolean(true),
                    "false" => toml::Value::Boolean(false),
                    _ => toml::Value::String(v.to_string()),
                };
                section.options.insert(k.to_string(), value);
            }
        }
    }
    let n = d.add_port(bridge, section)?;
    Ok(format!("added port {name} as datapath port {n}\n"))
}

fn bridge_del_port(d: &mut Daemon, args: &[String]) -> Result<String, String> {
    let name = args.last().expect("arity checked");
    d.del_port(name)?;
    Ok(String::new())
}

fn bridge_show(d: &mut Daemon, _: &[String]) -> Result<String, String> {
    let mut out = String::new();
    for b in d.bridges.all() {
        let _ = writeln!(out, "Bridge {}", b.name());
        let _ = writeln!(out, "    datapath_type: netdev");
        for port in b.ports().iter() {
            let kind = d
                .ports
                .get(&port.name)
                .map(|p| p.section.port_type.as_str())
                .unwrap_or("internal");
            let _ = writeln!(
                out,
                "    Port {} (ofport {}, datapath port {}, type {kind})",
                port.name, port.ofport, port.odp_port
            );
        }
    }
    Ok(out)
}
