//! The harness of oxvs's real-traffic tests: what every test that builds
//! network namespaces needs, written once.
//!
//! - [`prerequisites`]: root and the command-line tools a test drives. A
//!   missing one fails the test when `CI=true` (CI must run every test);
//!   elsewhere the test is skipped with a printed reason.
//! - [`Topology`]: a guard over uniquely named namespaces and veth pairs
//!   that deletes everything it created on drop, even when the test
//!   panics half way through building it.
//! - [`daemon`]: the real `oxvsd` in a temp directory, driven through its
//!   control socket and killed on drop if the test did not stop it.
//! - [`datapath`]: one-PMD datapaths with in_port-only handlers, for tests
//!   that check a driver rather than switching.
//! - [`traffic`]: checks run from threads that enter a namespace — ping,
//!   UDP datagrams of mixed sizes that must arrive intact exactly once, a
//!   TCP transfer compared by checksum on both sides, floods and sinks.
//!
//! Everything here is bounded in time: a check that does not complete
//! panics with what it saw instead of hanging the suite.

#![forbid(unsafe_code)]

pub mod daemon;
pub mod datapath;
mod topology;
pub mod traffic;

use std::process::Command;

pub use datapath::{PortSwap, Reflect, one_pmd_datapath, port_no, replay_frame, udp_pcap};
pub use topology::{IP_A, IP_B, Topology, add_veth};
pub use traffic::{
    Rtt, in_netns, ping, tcp_transfer, udp_exchange, udp_flood, udp_sink, wait_for, wait_reachable,
    wait_reachable_within,
};

/// Whether the process runs with effective uid 0 (read from /proc, so no
/// system call is needed).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// Whether this run is CI's (`CI=true`), where nothing may be skipped.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Checks that the process is root and that `ip`, `ethtool`, `ping` and
/// every tool in `extra_tools` can be run. `false` means "skip this test"
/// (outside CI only); under `CI=true` a missing prerequisite panics.
pub fn prerequisites(test: &str, extra_tools: &[&str]) -> bool {
    let mut missing = Vec::new();
    if !is_root() {
        missing.push("root".to_string());
    }
    for tool in ["ip", "ethtool", "ping"].iter().chain(extra_tools) {
        if !tool_exists(tool) {
            missing.push(format!("`{tool}`"));
        }
    }
    if missing.is_empty() {
        return true;
    }
    let reason = format!("{test}: needs {}", missing.join(", "));
    if in_ci() {
        panic!("{reason} (CI=true: a missing prerequisite fails)");
    }
    eprintln!("SKIPPED {reason}");
    false
}

/// Whether `tool` is an executable on `PATH`.
pub fn tool_exists(tool: &str) -> bool {
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| {
        std::fs::metadata(dir.join(tool)).is_ok_and(|m| {
            m.is_file() && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0
        })
    })
}

/// Runs a command; panics with its output when it fails.
pub fn sh(args: &[&str]) {
    sh_output(args);
}

/// Runs a command and returns its standard output; panics with both
/// outputs when it fails.
pub fn sh_output(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", args.join(" ")));
    assert!(
        out.status.success(),
        "{} failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command and ignores whether it worked (clean-up paths).
pub fn sh_quiet(args: &[&str]) {
    let _ = Command::new(args[0]).args(&args[1..]).output();
}
