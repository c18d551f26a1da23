//! oxvsctl's daemon commands: friendly names over the daemon's control
//! commands, plus `call` to send any command as is.
//!
//! Exit codes scripts can rely on: 0 success, 1 the daemon refused the
//! command (its message on stderr), 2 bad usage, 3 the daemon could not
//! be reached.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::client::{self, CallError};

/// Where and how to reach the daemon.
#[derive(Args, Debug, Clone)]
pub struct Connection {
    /// The daemon's control socket.
    #[arg(
        long,
        global = true,
        env = "OXVS_SOCKET",
        default_value = "/run/oxvs/oxvsd.ctl"
    )]
    pub socket: PathBuf,
    /// Print the daemon's JSON-RPC reply object instead of its text.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum DaemonCommand {
    /// Bridges, ports and datapath summary.
    Show,
    /// Datapath megaflows (dpctl/dump-flows).
    DumpFlows {
        /// Verbose: UFIDs, wildcarded fields, datapath layer.
        #[arg(short = 'm', long)]
        more: bool,
        /// Print port names instead of numbers.
        #[arg(long)]
        names: bool,
        /// Only the flows of the PMD on this core.
        #[arg(long)]
        pmd: Option<usize>,
        /// Only flows matching this ODP match (e.g. `in_port(1),eth_type(0x0800)`).
        #[arg(long)]
        filter: Option<String>,
    },
    /// PMD statistics (dpif-netdev/pmd-stats-show).
    PmdStats {
        #[arg(long)]
        pmd: Option<usize>,
        /// Reset the counters instead of showing them.
        #[arg(long)]
        clear: bool,
    },
    /// Receive-queue placement (dpif-netdev/pmd-rxq-show).
    PmdRxq {
        /// Deal the queues out again with the configured policy.
        #[arg(long)]
        rebalance: bool,
    },
    /// Per-PMD performance summary (dpif-netdev/pmd-perf-show).
    PmdPerf,
    /// Drop reasons and event counters (coverage/show).
    Coverage,
    /// Upcall and revalidator state (upcall/show).
    Upcalls,
    /// Add an OpenFlow rule (ovs-ofctl syntax).
    AddFlow { bridge: String, flow: String },
    /// Modify the actions of matching rules.
    ModFlows {
        bridge: String,
        flow: String,
        #[arg(long)]
        strict: bool,
    },
    /// Delete matching rules (all rules without FLOW).
    DelFlows {
        bridge: String,
        flow: Option<String>,
        #[arg(long)]
        strict: bool,
    },
    /// A bridge's OpenFlow rules with their statistics.
    DumpRules { bridge: String },
    /// Explain how a packet is translated (ofproto/trace).
    Trace {
        bridge: String,
        flow: String,
        /// Also run the packet through the datapath and report the cache
        /// level it hit, its drops and its megaflow (ODP flow only).
        #[arg(long)]
        generate: bool,
    },
    /// The MAC learning table of a bridge (fdb/show).
    Fdb {
        bridge: String,
        /// Empty it instead (fdb/flush).
        #[arg(long)]
        flush: bool,
    },
    /// Add a port at run time: `add-port br0 p3 dummy n_rxq=2`.
    AddPort {
        bridge: String,
        port: String,
        #[arg(value_name = "TYPE")]
        port_type: String,
        /// KEY=VALUE options (n_rxq, n_txq, ofport, pmd-rxq-affinity, driver options).
        options: Vec<String>,
    },
    /// Remove a port.
    DelPort { port: String },
    /// Inject a packet on a dummy port (netdev-dummy/receive): an ODP flow or hex frame.
    Receive {
        port: String,
        packet: String,
        #[arg(long)]
        len: Option<usize>,
        #[arg(long)]
        qid: Option<usize>,
    },
    /// Re-read the config file (as SIGHUP).
    Reload,
    /// Stop the daemon.
    Stop,
    /// Send any control command as is: `call dpctl/show -s`.
    Call {
        method: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

impl DaemonCommand {
    /// The control command(s) this maps to, in order.
    fn requests(&self) -> Vec<(String, Vec<String>)> {
        let one = |m: &str, a: Vec<String>| vec![(m.to_string(), a)];
        let s = |v: &str| v.to_string();
        match self {
            DaemonCommand::Show => vec![(s("bridge/show"), vec![]), (s("dpctl/show"), vec![])],
            DaemonCommand::DumpFlows {
                more,
                names,
                pmd,
                filter,
            } => {
                let mut a = Vec::new();
                if *more {
                    a.push(s("-m"));
                }
                if *names {
                    a.push(s("--names"));
                }
                if let Some(p) = pmd {
                    a.push(format!("pmd={p}"));
                }
                if let Some(f) = filter {
                    a.push(format!("filter={f}"));
                }
                one("dpctl/dump-flows", a)
            }
            DaemonCommand::PmdStats { pmd, clear } => {
                let a = pmd
                    .map(|p| vec![s("-pmd"), p.to_string()])
                    .unwrap_or_default();
                one(
                    if *clear {
                        "dpif-netdev/pmd-stats-clear"
                    } else {
                        "dpif-netdev/pmd-stats-show"
                    },
                    a,
                )
            }
            DaemonCommand::PmdRxq { rebalance } => {
                if *rebalance {
                    one("dpif-netdev/pmd-rxq-rebalance", vec![])
                } else {
                    one("dpif-netdev/pmd-rxq-show", vec![])
                }
            }
            DaemonCommand::PmdPerf => one("dpif-netdev/pmd-perf-show", vec![]),
            DaemonCommand::Coverage => one("coverage/show", vec![]),
            DaemonCommand::Upcalls => one("upcall/show", vec![]),
            DaemonCommand::AddFlow { bridge, flow } => {
                one("ofctl/add-flow", vec![bridge.clone(), flow.clone()])
            }
            DaemonCommand::ModFlows {
                bridge,
                flow,
                strict,
            } => {
                let mut a = if *strict { vec![s("--strict")] } else { vec![] };
                a.extend([bridge.clone(), flow.clone()]);
                one("ofctl/mod-flows", a)
            }
            DaemonCommand::DelFlows {
                bridge,
                flow,
                strict,
            } => {
                let mut a = if *strict { vec![s("--strict")] } else { vec![] };
                a.push(bridge.clone());
                a.extend(flow.clone());
                one("ofctl/del-flows", a)
            }
            DaemonCommand::DumpRules { bridge } => one("ofctl/dump-flows", vec![bridge.clone()]),
            DaemonCommand::Trace {
                bridge,
                flow,
                generate,
            } => {
                let mut a = vec![bridge.clone(), flow.clone()];
                if *generate {
                    a.push(s("--generate"));
                }
                one("ofproto/trace", a)
            }
            DaemonCommand::Fdb { bridge, flush } => one(
                if *flush { "fdb/flush" } else { "fdb/show" },
                vec![bridge.clone()],
            ),
            DaemonCommand::AddPort {
                bridge,
                port,
                port_type,
                options,
            } => {
                let mut a = vec![bridge.clone(), port.clone(), port_type.clone()];
                a.extend(options.iter().cloned());
                one("bridge/add-port", a)
            }
            DaemonCommand::DelPort { port } => one("bridge/del-port", vec![port.clone()]),
            DaemonCommand::Receive {
                port,
                packet,
                len,
                qid,
            } => {
                let mut a = vec![port.clone(), packet.clone()];
                if let Some(l) = len {
                    a.extend([s("--len"), l.to_string()]);
                }
                if let Some(q) = qid {
                    a.extend([s("--qid"), q.to_string()]);
                }
                one("netdev-dummy/receive", a)
            }
            DaemonCommand::Reload => one("reload", vec![]),
            DaemonCommand::Stop => one("exit", vec![]),
            DaemonCommand::Call { method, args } => one(method, args.clone()),
        }
    }
}

/// Runs `cmd`; returns the process exit code.
pub fn run(conn: &Connection, cmd: &DaemonCommand) -> i32 {
    for (method, args) in cmd.requests() {
        if conn.json {
            match client::call_raw(&conn.socket, &method, &args) {
                Ok(reply) => println!("{reply}"),
                Err(e) => return report(&e),
            }
            continue;
        }
        match client::call(&conn.socket, &method, &args) {
            Ok(text) => print!("{text}"),
            Err(e) => return report(&e),
        }
    }
    0
}

fn report(e: &CallError) -> i32 {
    eprintln!("oxvsctl: {e}");
    match e {
        CallError::Server(_) => 1,
        CallError::Connect(_) => 3,
        CallError::Protocol(_) => 3,
    }
}
