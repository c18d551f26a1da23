//! The AF_XDP io forwarder ([`netdev_afxdp::iofwd`]) as a program: the
//! equivalent of `dpdk-testpmd --forward-mode=io` for the benchmark
//! (benches/afxdp-vs-ovs.sh, system `io`).
//!
//! ```text
//! iofwd --a IF --b IF [--cpu N] [--seconds S] [--report-ms MS] [--option KEY=VALUE]...
//! ```
//!
//! Opens `--a` and `--b` as `afxdp` ports with oxvsd's defaults (and the
//! `--option`s, oxvsd's afxdp port options, e.g. `xdp-mode=native`),
//! pins its forwarding thread (named `pmd-io`, so tools that look for a
//! PMD thread find it) to `--cpu`, and forwards every packet from each
//! port out of the other until `--seconds` pass (default: until SIGINT or
//! SIGTERM, which also end a timed run early). Prints the packets sent
//! each way every second, the cumulative packets received and busy and
//! idle cycles every `--report-ms` (default 1000: the benchmark reads
//! them as `pmd-stats-show`), and, at exit, the totals each way, `avg processing cycles per packet`
//! as `pmd-stats-show` computes it, and the UMEM frames still lent and
//! not back on the free list once the ports are closed; exits non-zero if
//! either is not 0.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use netdev_afxdp::iofwd::IoForwarder;

fn usage() -> ExitCode {
    eprintln!(
        "usage: iofwd --a IF --b IF [--cpu N] [--seconds S] [--report-ms MS] [--option KEY=VALUE]... \
         (options: oxvsd's afxdp port options, e.g. xdp-mode=native)"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mut a, mut b, mut cpu, mut seconds) = (None, None, None, None);
    let mut report = Duration::from_secs(1);
    let mut options: Vec<(String, String)> = Vec::new();
    let mut it = args.iter();
    while let Some(key) = it.next() {
        let Some(value) = it.next() else {
            return usage();
        };
        match key.as_str() {
            "--a" => a = Some(value.clone()),
            "--b" => b = Some(value.clone()),
            "--cpu" => match value.parse::<usize>() {
                Ok(n) => cpu = Some(n),
                Err(_) => {
                    eprintln!("iofwd: --cpu {value:?} is not a CPU number");
                    return ExitCode::from(2);
                }
            },
            "--seconds" => match value.parse::<f64>() {
                Ok(s) if s > 0.0 => seconds = Some(s),
                _ => {
                    eprintln!("iofwd: --seconds {value:?} is not a positive number");
                    return ExitCode::from(2);
                }
            },
            "--report-ms" => match value.parse::<u64>() {
                Ok(ms) if ms > 0 => report = Duration::from_millis(ms),
                _ => {
                    eprintln!("iofwd: --report-ms {value:?} is not a positive number");
                    return ExitCode::from(2);
                }
            },
            "--option" => match value.split_once('=') {
                Some((k, v)) => options.push((k.to_string(), v.to_string())),
                None => {
                    eprintln!("iofwd: --option {value:?} is not KEY=VALUE");
                    return ExitCode::from(2);
                }
            },
            _ => return usage(),
        }
    }
    let (Some(a), Some(b)) = (a, b) else {
        return usage();
    };
    // Only a CPU this process may run on (as the daemon checks
    // `pmd_cores`): pinning to any other is refused, or out of range.
    if let Some(cpu) = cpu
        && !core_affinity::get_core_ids()
            .unwrap_or_default()
            .iter()
            .any(|c| c.id == cpu)
    {
        eprintln!("iofwd: --cpu {cpu}: not a CPU this process may run on");
        return ExitCode::FAILURE;
    }
    // SIGINT/SIGTERM set the flag, so the loop ends and the ports close,
    // detaching XDP.
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(signal, Arc::clone(&stop)) {
            eprintln!("iofwd: installing the SIGINT/SIGTERM handler: {e}");
            return ExitCode::FAILURE;
        }
    }
    let pairs: Vec<(&str, &str)> = options
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut fwd = match IoForwarder::open(&a, &b, &pairs) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("iofwd: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mode = fwd.ports()[0].xdp_mode_in_use();
    let deadline = seconds.map(|s| Instant::now() + Duration::from_secs_f64(s));
    println!("iofwd: {a} <-> {b}, xdp-mode in use {mode}, cpu {cpu:?}");
    // The forwarding runs on its own thread, named like a PMD.
    let worker = std::thread::Builder::new()
        .name("pmd-io".into())
        .spawn(move || {
            // As a PMD thread pins itself to its `pmd_cores` entry.
            if let Some(cpu) = cpu
                && !core_affinity::set_for_current(core_affinity::CoreId { id: cpu })
            {
                eprintln!("iofwd: pinning to cpu {cpu}: refused (no such CPU?)");
                return None;
            }
            let mut last = fwd.stats();
            let mut second = Instant::now();
            let mut next = Instant::now() + report;
            loop {
                let until = deadline.map_or(next, |d| d.min(next));
                fwd.run(&stop, Some(until), dp_pmd::cycles::now);
                if stop.load(std::sync::atomic::Ordering::Relaxed)
                    || deadline.is_some_and(|d| Instant::now() >= d)
                {
                    break;
                }
                let s = fwd.stats();
                // Cumulative, in pmd-stats-show's words, for the
                // benchmark's stand-in of `pmd-stats-show`.
                println!(
                    "io stats packets received: {} processing cycles: {} idle cycles: {}",
                    s.packets(),
                    s.busy_cycles,
                    s.idle_cycles
                );
                if second.elapsed() >= Duration::from_secs(1) {
                    println!(
                        "io a->b {} pps b->a {} pps (tx dropped {} {})",
                        s.sent[0] - last.sent[0],
                        s.sent[1] - last.sent[1],
                        s.tx_dropped[0] - last.tx_dropped[0],
                        s.tx_dropped[1] - last.tx_dropped[1],
                    );
                    last = s;
                    second = Instant::now();
                }
                next += report;
            }
            // Shared UMEM: forwarded frames go out without a copy.
            let (zero_copy, copied) = fwd.ports().iter().fold((0, 0), |(z, c), p| {
                (z + p.tx_zero_copy_packets(), c + p.tx_copied_packets())
            });
            println!("tx zero-copy {zero_copy} copied {copied}");
            Some(fwd.close())
        });
    let closed = match worker.map(|w| w.join()) {
        Ok(Ok(Some(c))) => c,
        Ok(Ok(None)) => return ExitCode::FAILURE,
        Ok(Err(_)) => {
            eprintln!("iofwd: the forwarding thread panicked");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("iofwd: starting the forwarding thread: {e}");
            return ExitCode::FAILURE;
        }
    };
    let s = closed.stats;
    println!(
        "io total a->b received {} sent {} tx-dropped {}; b->a received {} sent {} tx-dropped {}; rx errors {}",
        s.received[0],
        s.sent[0],
        s.tx_dropped[0],
        s.received[1],
        s.sent[1],
        s.tx_dropped[1],
        s.rx_errors[0] + s.rx_errors[1],
    );
    let cpp = s
        .processing_cycles_per_packet()
        .map_or("-".to_string(), |c| format!("{c:.2}"));
    println!(
        "avg processing cycles per packet: {cpp} ({}/{}); idle cycles {}",
        s.busy_cycles,
        s.packets(),
        s.idle_cycles
    );
    println!(
        "umem frames in use at exit: {}; not back on the free list after close: {}",
        closed.in_use, closed.not_free
    );
    if closed.in_use != 0 || closed.not_free != 0 {
        eprintln!("iofwd: UMEM frames were not all returned");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
