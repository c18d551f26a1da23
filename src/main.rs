//! oxvsd: the oxvs daemon.
//!
//! Reads a config file, validates it completely, builds the datapath, the
//! bridges and the ports (see [`daemon`]), then runs the control socket
//! ([`control`]) in a mio loop on the main thread until SIGTERM/SIGINT or
//! `exit`. SIGHUP (or `oxvsctl reload`) re-reads the config. Shutdown
//! stops every thread and returns every buffer before the process exits.
//!
//! Exit codes: 0 after a clean shutdown, 1 for a config or start-up error
//! (one line on stderr naming the file, the key and why), 2 for bad
//! command-line arguments.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

use oxvs::config::Config;
use oxvs::control::{ControlServer, LISTENER};
use oxvs::daemon::Daemon;
use oxvs::{commands, logging};

const SIGNALS: Token = Token(1);
/// Housekeeping period (rule timeouts, MAC aging, rule stats).
const PERIODIC: Duration = Duration::from_secs(1);

/// The oxvs daemon: a userspace software switch.
#[derive(Parser, Debug)]
#[command(name = "oxvsd", version, about)]
struct Args {
    /// Config file (TOML).
    #[arg(short, long, default_value = "/etc/oxvs/oxvs.toml")]
    config: PathBuf,
    /// Control socket path (overrides [control] socket).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Check the config and exit.
    #[arg(long)]
    check: bool,
}

fn main() {
    let args = Args::parse();
    match run(args) {
        Ok(()) => {}
        Err(e) => {
            eprintln!("oxvsd: {e}");
            std::process::exit(1);
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    let mut config = Config::load(&args.config).map_err(|e| e.to_string())?;
    if let Some(socket) = args.socket {
        config.control.socket = socket;
    }
    if args.check {
        println!("{}: ok", args.config.display());
        return Ok(());
    }
    logging::init(&config.log.level)?;

    let mut poll = Poll::new().map_err(|e| format!("poll: {e}"))?;
    let mut signals =
        Signals::new([SIGHUP, SIGINT, SIGTERM]).map_err(|e| format!("signals: {e}"))?;
    poll.registry()
        .register(&mut signals, SIGNALS, Interest::READABLE)
        .map_err(|e| format!("signals: {e}"))?;
    // Bind the socket before starting threads: a second daemon on the same
    // socket fails here with nothing started.
    let mut server = ControlServer::bind(&config.control.socket, poll.registry())?;
    let mut metrics = oxvs::metrics::MetricsServer::bind(&config.metrics, poll.registry())?;
    let pid_file = config.control.pid_file.clone();
    if let Some(pid_file) = &pid_file {
        std::fs::write(pid_file, format!("{}\n", std::process::id()))
            .map_err(|e| format!("pid file {}: {e}", pid_file.display()))?;
    }
    let mut daemon = Daemon::start(&args.config, config)?;
    tracing::info!(
        socket = %server.path().display(),
        ports = daemon.ports.len(),
        pmd_cores = ?daemon.config.pmd_cores(),
        metrics = ?metrics.as_ref().map(|m| m.address()),
        "oxvsd started"
    );

    let mut events = Events::with_capacity(64);
    let mut next_periodic = std::time::Instant::now() + PERIODIC;
    'main: loop {
        let timeout = next_periodic.saturating_duration_since(std::time::Instant::now());
        if let Err(e) = poll.poll(&mut events, Some(timeout))
            && e.kind() != std::io::ErrorKind::Interrupted
        {
            tracing::error!("poll: {e}");
            break;
        }
        for event in events.iter() {
            match event.token() {
                SIGNALS => {
                    for signal in signals.pending() {
                        match signal {
                            SIGHUP => match daemon.reload() {
                                Ok(summary) => tracing::info!("reload: {}", summary.trim_end()),
                                Err(e) => tracing::error!("reload: {e}"),
                            },
                            _ => {
                                tracing::info!(signal, "shutting down");
                                break 'main;
                            }
                        }
                    }
                }
                LISTENER => server.accept(poll.registry()),
                token if metrics.as_ref().is_some_and(|m| m.owns(token)) => {
                    if let Some(m) = metrics.as_mut() {
                        m.ready(token, poll.registry(), || oxvs::metrics::render(&daemon));
                    }
                }
                token => {
                    server.ready(token, poll.registry(), |req| {
                        tracing::debug!(method = %req.method, params = ?req.params, "control request");
                        commands::dispatch(&mut daemon, &req.method, &req.params)
                    });
                }
            }
        }
        if daemon.exit_requested {
            break;
        }
        if std::time::Instant::now() >= next_periodic {
            daemon.run_periodic();
            if let Some(m) = metrics.as_mut() {
                m.expire(poll.registry());
            }
            next_periodic = std::time::Instant::now() + PERIODIC;
        }
    }
    // Stop every thread (returning every buffer) before the socket goes.
    let leaked = daemon.shutdown();
    drop(server);
    if let Some(pid_file) = pid_file {
        let _ = std::fs::remove_file(pid_file);
    }
    if leaked > 0 {
        return Err(format!(
            "{leaked} packet buffers were not returned at shutdown"
        ));
    }
    tracing::info!("oxvsd stopped: all packet buffers returned");
    Ok(())
}
