//! The real `oxvsd` binary under test: a temp directory per test, a
//! daemon started from a config text and driven through its control
//! socket (the JSON-RPC that `oxvsctl` and `ovs-appctl` speak), stopped by
//! request or by signal, and killed on drop if the test did not stop it —
//! a failing test never leaves a daemon (and its spinning PMD) behind.
//!
//! The binary's path comes from the caller (`env!("CARGO_BIN_EXE_oxvsd")`
//! exists only in the root package's tests).

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

static NEXT_DIR: AtomicU32 = AtomicU32::new(0);

/// A directory of its own under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// `<tmp>/<tag>-<pid>-<n>`: unique per process and per call.
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "{tag}-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }

    /// `name` inside the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// How to start a [`Daemon`] beyond its config text.
#[derive(Clone, Debug)]
pub struct DaemonOptions {
    /// Run inside this network namespace (`ip netns exec`, which execs the
    /// daemon: the child is still the daemon).
    pub netns: Option<String>,
    /// The control socket's path; default `<dir>/ctl`.
    pub socket: Option<PathBuf>,
    /// Permission bits of the config file, when the test cares.
    pub config_mode: Option<u32>,
    /// How long the daemon may take to answer its first request.
    pub start_timeout: Duration,
}

impl Default for DaemonOptions {
    fn default() -> Self {
        DaemonOptions {
            netns: None,
            socket: None,
            config_mode: None,
            start_timeout: Duration::from_secs(30),
        }
    }
}

/// A running `oxvsd`, killed on drop if the test did not stop it.
#[derive(Debug)]
pub struct Daemon {
    child: Option<Child>,
    socket: PathBuf,
    stderr: PathBuf,
}

impl Daemon {
    /// Writes `config` (every `@SOCKET@` replaced by the control socket's
    /// path) to `<dir>/oxvs.toml`, starts `binary` on it with stderr to
    /// `<dir>/stderr`, and waits until it answers `version`.
    pub fn start(binary: &str, dir: &TempDir, config: &str) -> Daemon {
        Daemon::start_with(binary, dir, config, DaemonOptions::default())
    }

    /// [`Daemon::start`] with options.
    pub fn start_with(binary: &str, dir: &TempDir, config: &str, opts: DaemonOptions) -> Daemon {
        let socket = opts.socket.clone().unwrap_or_else(|| dir.path("ctl"));
        let config_path = dir.path("oxvs.toml");
        std::fs::write(
            &config_path,
            config.replace("@SOCKET@", &socket.display().to_string()),
        )
        .expect("write the daemon's config");
        if let Some(mode) = opts.config_mode {
            std::fs::set_permissions(&config_path, std::fs::Permissions::from_mode(mode))
                .expect("config file mode");
        }
        let stderr = dir.path("stderr");
        let mut command = match &opts.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, binary]);
                c
            }
            None => Command::new(binary),
        };
        let child = command
            .arg("--config")
            .arg(&config_path)
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {binary}: {e}"));
        let mut d = Daemon {
            child: Some(child),
            socket,
            stderr,
        };
        let deadline = Instant::now() + opts.start_timeout;
        while call(&d.socket, "version", &[]).is_err() {
            if let Some(status) = d.child_mut().try_wait().expect("wait for oxvsd") {
                panic!("oxvsd exited early ({status}): {}", d.log());
            }
            assert!(
                Instant::now() < deadline,
                "oxvsd did not answer within {:?}: {}",
                opts.start_timeout,
                d.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        d
    }

    fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("the daemon is running")
    }

    /// Everything the daemon wrote to stderr so far (its log).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The control socket's path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the daemon is running").id()
    }

    /// The daemon's resident memory, KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("/proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// One control request; the reply text or the daemon's error text.
    pub fn call(&self, method: &str, params: &[&str]) -> Result<String, String> {
        call(&self.socket, method, params)
    }

    /// One control request that must succeed; panics with the daemon's log
    /// otherwise.
    pub fn ok(&self, method: &str, params: &[&str]) -> String {
        self.call(method, params)
            .unwrap_or_else(|e| panic!("{method} {params:?}: {e}\n{}", self.log()))
    }

    /// `port`'s counter `field` ("RX packets", "TX packets", "RX dropped",
    /// …) as `dpctl/show -s` prints it.
    pub fn port_counter(&self, port: &str, field: &str) -> u64 {
        let show = self.ok("dpctl/show", &["-s"]);
        let mut in_port = false;
        for line in show.lines() {
            if line.trim_start().starts_with("port ") {
                in_port = line.contains(&format!(": {port} "));
            } else if in_port && let Some(at) = line.find(&format!("{field}:")) {
                let rest = &line[at + field.len() + 1..];
                return rest
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| panic!("{field} of {port} in {show}"));
            }
        }
        panic!("no {field} for {port} in {show}");
    }

    /// Injects raw `frames` on dummy port `port` (`netdev-dummy/receive`
    /// with hex frames, five per request: the command's limit).
    pub fn receive_frames(&self, port: &str, frames: &[Vec<u8>]) {
        for chunk in frames.chunks(5) {
            let hex: Vec<String> = chunk
                .iter()
                .map(|f| f.iter().map(|b| format!("{b:02x}")).collect())
                .collect();
            let mut args = vec![port];
            args.extend(hex.iter().map(String::as_str));
            self.ok("netdev-dummy/receive", &args);
        }
    }

    /// Asks the daemon to exit and waits (bounded); returns its exit code
    /// and its log.
    pub fn stop(mut self) -> (i32, String) {
        let _ = self.call("exit", &[]);
        self.wait_exit("exit request")
    }

    /// [`Daemon::stop`], and asserts a clean exit with every packet buffer
    /// back in its pool (the daemon's shutdown check).
    pub fn stop_clean(self) -> String {
        let (code, log) = self.stop();
        assert_eq!(code, 0, "oxvsd exit code: {log}");
        assert!(log.contains("all packet buffers returned"), "{log}");
        log
    }

    /// Sends `signal` (as `kill -s` names it: TERM, INT, …) and waits
    /// (bounded); returns the exit code (-1 if killed by a signal) and
    /// the log.
    pub fn signal_and_wait(mut self, signal: &str) -> (i32, String) {
        let pid = self.pid().to_string();
        let sent = Command::new("kill")
            .args(["-s", signal, &pid])
            .status()
            .is_ok_and(|s| s.success());
        assert!(sent, "kill -s {signal} {pid} failed");
        self.wait_exit(signal)
    }

    fn wait_exit(&mut self, after: &str) -> (i32, String) {
        let mut child = self.child.take().expect("the daemon is running");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().expect("wait for oxvsd") {
                return (status.code().unwrap_or(-1), self.log());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("oxvsd did not exit within 20 s of {after}: {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One JSON-RPC request on the control socket at `socket` (10 s read
/// timeout); the reply's result text, or its error text, or why the
/// exchange failed.
pub fn call(socket: &Path, method: &str, params: &[&str]) -> Result<String, String> {
    let mut s = UnixStream::connect(socket).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let req = json!({"id": 7, "method": method, "params": params});
    s.write_all(req.to_string().as_bytes())
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        let n = s.read(&mut chunk).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("connection closed".into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Ok(v) = serde_json::from_slice::<Value>(&buf) {
            if v["id"] != json!(7) {
                return Err(format!("reply with the wrong id: {v}"));
            }
            return match &v["error"] {
                Value::Null => Ok(v["result"].as_str().unwrap_or_default().to_string()),
                e => Err(e.as_str().unwrap_or_default().to_string()),
            };
        }
    }
}

/// The config most daemon tests start from: one PMD on core 0, the control
/// socket at `@SOCKET@`, info logging, and bridge `br0` with two
/// `dummy-pmd` ports, `p1` and `p2` (OpenFlow ports 1 and 2).
/// - `datapath`: more lines of the `[datapath]` table;
/// - `sections`: more tables (`[metrics]`, …), before the bridge;
/// - `bridge`: more lines of the bridge's table (`flows = [...]`, …).
pub fn two_dummy_ports_config(datapath: &str, sections: &str, bridge: &str) -> String {
    format!(
        r#"
[datapath]
pmd_cores = [0]
{datapath}

[control]
socket = "@SOCKET@"

[log]
level = "info"
{sections}

[[bridge]]
name = "br0"
{bridge}

[[bridge.port]]
name = "p1"
type = "dummy-pmd"

[[bridge.port]]
name = "p2"
type = "dummy-pmd"
"#
    )
}
