//! The real daemon with `dpdk` ports on DPDK virtual devices (no hugepages,
//! no PCI): `net_pcap` replaying UDP forever → an OpenFlow rule →
//! `net_null`; counters through the control socket; the PMD thread's
//! lcore cache in `netdev-dpdk/get-mempool-info`; a clean exit whose leak
//! check covers the mbufs lent to packets.

#![cfg(feature = "dpdk")]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

struct Running {
    child: Option<Child>,
    dir: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn call(socket: &Path, method: &str, params: &[&str]) -> Result<String, String> {
    let mut s = UnixStream::connect(socket).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let req = json!({"id": 1, "method": method, "params": params});
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
            return match &v["error"] {
                Value::Null => Ok(v["result"].as_str().unwrap_or_default().to_string()),
                e => Err(e.to_string()),
            };
        }
    }
}

/// `TX packets:N` of `port` in `dpctl/show -s`.
fn tx_packets(show: &str, port: &str) -> u64 {
    let mut in_port = false;
    for line in show.lines() {
        if line.contains(&format!(": {port} ")) || line.trim_end().ends_with(&format!(": {port}")) {
            in_port = true;
        } else if in_port && line.contains("TX packets:") {
            let n = line.split("TX packets:").nth(1).unwrap_or("");
            return n
                .split_whitespace()
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
        }
    }
    0
}

#[test]
fn forwards_net_pcap_to_net_null_and_exits_clean() {
    let dir = std::env::temp_dir().join(format!("oxvsd-dpdk-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let capture = dir.join("in.pcap");
    testbed::udp_pcap(&capture, 16);
    let socket = dir.join("ctl");
    let config = format!(
        r#"
[datapath]
pmd_cores = [0]

[datapath.dpdk]
no_huge = true
socket_mem = "256"
extra_args = ["--no-pci"]

[control]
socket = "{socket}"

[[bridge]]
name = "br0"
flows = ["in_port=1,actions=output:2"]

[[bridge.port]]
name = "p1"
type = "dpdk"
options = {{ dpdk-devargs = "net_pcap_oxvsd0,rx_pcap={capture},infinite_rx=1", n_mbufs = 4096, n_rxq_desc = 256, n_txq_desc = 256 }}

[[bridge.port]]
name = "p2"
type = "dpdk"
options = {{ dpdk-devargs = "net_null_oxvsd0,no-rx=1", n_txq_desc = 256 }}
"#,
        socket = socket.display(),
        capture = capture.display(),
    );
    let config_path = dir.join("oxvs.toml");
    std::fs::write(&config_path, config).unwrap();
    let stderr = dir.join("stderr");
    let mut running = Running {
        child: Some(
            Command::new(env!("CARGO_BIN_EXE_oxvsd"))
                .arg("--config")
                .arg(&config_path)
                .stderr(std::fs::File::create(&stderr).unwrap())
                .stdout(Stdio::null())
                .spawn()
                .expect("spawn oxvsd"),
        ),
        dir: dir.clone(),
    };
    let log = || std::fs::read_to_string(&stderr).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut forwarded = 0;
    while forwarded < 100_000 {
        if let Some(status) = running.child.as_mut().unwrap().try_wait().unwrap() {
            panic!("oxvsd exited ({status}): {}", log());
        }
        assert!(
            Instant::now() < deadline,
            "only {forwarded} forwarded: {}",
            log()
        );
        if let Ok(show) = call(&socket, "dpctl/show", &["-s"]) {
            forwarded = tx_packets(&show, "p2");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // The PMD thread registered as a DPDK lcore: its cache in the pool
    // holds mbufs (lcore 0 is the EAL's main thread).
    let info = call(&socket, "netdev-dpdk/get-mempool-info", &["p1"]).unwrap();
    assert!(info.starts_with("mempool <ovs_mp_"), "{info}");
    let pmd_cached: u64 = info
        .lines()
        .filter_map(|l| l.trim().strip_prefix("cache_count["))
        .filter_map(|l| l.split_once("]="))
        .filter(|(lcore, _)| *lcore != "0")
        .map(|(_, n)| n.parse::<u64>().unwrap())
        .sum();
    assert!(pmd_cached > 0, "no PMD lcore cache in use:\n{info}");
    assert!(call(&socket, "netdev-dpdk/get-mempool-info", &["nosuch"]).is_err());
    let all = call(&socket, "netdev-dpdk/get-mempool-info", &[]).unwrap();
    assert!(all.contains(info.lines().next().unwrap()), "{all}");
    let _ = call(&socket, "exit", &[]);
    let mut child = running.child.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "oxvsd did not exit: {}", log());
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "{}", log());
}
