//! `oxvsctl capture`: live capture from a datapath port into a pcap file
//! that tcpdump, tshark and Wireshark read.
//!
//! `oxvsctl capture PORT [--rx|--tx|--both] [--count N] [--filter MATCH]
//! [--snaplen N] [--duration SECS] -w FILE` asks the daemon to start a
//! capture (`capture/start`); the daemon's writer thread writes FILE.
//! With `--count` or `--duration` oxvsctl waits for the end and prints
//! the final status (packets written, copies dropped because the capture
//! ring was full); without either it returns at once and the capture runs
//! until `oxvsctl capture --stop`. `--status` shows the latest capture.
//!
//! FILE is made absolute here, because the daemon's working directory is
//! not the caller's.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;

use crate::client::{self, CallError};
use crate::daemon_cmds::Connection;

/// How often the status is polled while waiting.
const POLL: Duration = Duration::from_millis(200);

#[derive(Args, Debug, Clone, PartialEq)]
pub struct CaptureArgs {
    /// The port to capture on.
    #[arg(required_unless_present_any = ["stop", "status"])]
    pub port: Option<String>,
    /// Packets the port receives.
    #[arg(long, group = "direction")]
    pub rx: bool,
    /// Packets the port sends.
    #[arg(long, group = "direction")]
    pub tx: bool,
    /// Both (the default).
    #[arg(long, group = "direction")]
    pub both: bool,
    /// Stop after this many packets.
    #[arg(long)]
    pub count: Option<u64>,
    /// Only packets matching this ODP flow match, e.g.
    /// `eth_type(0x0800),ipv4(proto=6),tcp(dst=80)`.
    #[arg(long)]
    pub filter: Option<String>,
    /// Bytes kept per packet.
    #[arg(long)]
    pub snaplen: Option<usize>,
    /// Stop after this many seconds.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Records in each PMD's capture ring.
    #[arg(long)]
    pub ring: Option<usize>,
    /// The pcap file to write (or a FIFO a live tshark reads).
    #[arg(short = 'w', value_name = "FILE", required_unless_present_any = ["stop", "status"])]
    pub file: Option<PathBuf>,
    /// Stop the running capture.
    #[arg(long, conflicts_with_all = ["port", "status"])]
    pub stop: bool,
    /// Show the latest capture.
    #[arg(long, conflicts_with = "port")]
    pub status: bool,
}

impl CaptureArgs {
    /// The `capture/start` arguments.
    pub fn start_params(&self, cwd: &std::path::Path) -> Vec<String> {
        let file = self.file.clone().unwrap_or_default();
        let file = if file.is_absolute() {
            file
        } else {
            cwd.join(file)
        };
        let mut a = vec![
            self.port.clone().unwrap_or_default(),
            file.display().to_string(),
        ];
        if self.rx {
            a.push("--rx".into());
        } else if self.tx {
            a.push("--tx".into());
        } else {
            a.push("--both".into());
        }
        let mut opt = |flag: &str, v: Option<String>| {
            if let Some(v) = v {
                a.extend([flag.to_string(), v]);
            }
        };
        opt("--count", self.count.map(|c| c.to_string()));
        opt("--filter", self.filter.clone());
        opt("--snaplen", self.snaplen.map(|s| s.to_string()));
        opt("--ring", self.ring.map(|r| r.to_string()));
        a
    }
}

/// When `--duration SECS` from `now` ends, checked: a value that is not a
/// positive number of seconds, or one past what the clock can represent,
/// is an error naming the option (it used to panic in `Duration` or
/// `Instant` arithmetic).
fn deadline_after(duration: Option<f64>, now: Instant) -> Result<Option<Instant>, String> {
    let Some(d) = duration else {
        return Ok(None);
    };
    if !(d > 0.0 && d.is_finite()) {
        return Err(format!(
            "--duration {d}: expected a positive number of seconds"
        ));
    }
    Duration::try_from_secs_f64(d)
        .ok()
        .and_then(|span| now.checked_add(span))
        .map(Some)
        .ok_or_else(|| format!("--duration {d}: too many seconds"))
}

fn fail(e: &CallError) -> i32 {
    eprintln!("oxvsctl: {e}");
    match e {
        CallError::Server(_) => 1,
        CallError::Connect(_) | CallError::Protocol(_) => 3,
    }
}

/// Runs the subcommand; returns the exit code.
pub fn run(conn: &Connection, args: &CaptureArgs) -> i32 {
    let call = |m: &str, a: &[String]| client::call(&conn.socket, m, a);
    if args.stop || args.status {
        let method = if args.stop {
            "capture/stop"
        } else {
            "capture/status"
        };
        return match call(method, &[]) {
            Ok(text) => {
                print!("{text}");
                0
            }
            Err(e) => fail(&e),
        };
    }
    let deadline = match deadline_after(args.duration, Instant::now()) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("oxvsctl: {e}");
            return 2;
        }
    };
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    match call("capture/start", &args.start_params(&cwd)) {
        Ok(text) => eprint!("{text}"),
        Err(e) => return fail(&e),
    }
    if args.count.is_none() && args.duration.is_none() {
        eprintln!("capture running; `oxvsctl capture --stop` ends it");
        return 0;
    }
    loop {
        std::thread::sleep(POLL);
        let status = match call("capture/status", &[]) {
            Ok(s) => s,
            Err(e) => return fail(&e),
        };
        if status.contains(", done") {
            print!("{status}");
            return 0;
        }
        if status.contains(", failed") {
            eprint!("{status}");
            return 1;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return match call("capture/stop", &[]) {
                Ok(text) => {
                    print!("{text}");
                    0
                }
                Err(e) => fail(&e),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_checked_not_panicked_on() {
        let now = Instant::now();
        assert_eq!(deadline_after(None, now), Ok(None));
        assert_eq!(
            deadline_after(Some(1.5), now),
            Ok(Some(now + Duration::from_millis(1500)))
        );
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let e = deadline_after(Some(bad), now).unwrap_err();
            assert!(e.contains("--duration"), "{e}");
        }
        // Past Duration's range, and past what Instant can add.
        for huge in [1e300, 1e19, u64::MAX as f64 / 2.0] {
            let e = deadline_after(Some(huge), now).unwrap_err();
            assert!(e.contains("too many seconds"), "{huge}: {e}");
        }
    }
}
