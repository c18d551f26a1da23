//! Operator visibility, end to end through the real daemon: the metrics
//! endpoint scraped over HTTP and parsed by the Prometheus project's own
//! Python parser (`prometheus_client`), live capture read back by
//! `tshark`, a full capture ring that must not cost a forwarded packet,
//! PMD perf histograms that move with load, `ofproto/trace --generate`,
//! and every drop reason in `coverage/show` and the metrics.
//!
//! Each test runs its own `oxvsd` in its own temp directory (prefix
//! `ob-`), stops it, and checks that every packet buffer came back.
//! Prerequisites (`tshark`, `python3-prometheus-client`, `mkfifo`) are
//! installed by `scripts/install-deps.sh`; with `CI=true` a missing one
//! fails the test instead of skipping it.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dp_core::execute::DropReason;
use testbed::daemon::{Daemon, TempDir, two_dummy_ports_config};

/// The daemon under test, started on `config` in `dir`.
fn start(dir: &TempDir, config: &str) -> Daemon {
    Daemon::start(env!("CARGO_BIN_EXE_oxvsd"), dir, config)
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A UDP/IPv4 frame from 50:54:00:00:00:01 to :02 whose payload encodes
/// `seq`, `len` bytes long (≥ 60).
fn udp_frame(seq: u32, len: usize, dst_port: u16) -> Vec<u8> {
    let mut f = vec![0u8; len.max(60)];
    f[0..6].copy_from_slice(&[0x50, 0x54, 0, 0, 0, 2]);
    f[6..12].copy_from_slice(&[0x50, 0x54, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip_len = (f.len() - 14) as u16;
    f[14] = 0x45;
    f[16..18].copy_from_slice(&ip_len.to_be_bytes());
    f[22] = 64;
    f[23] = 17;
    f[26..30].copy_from_slice(&[10, 0, 0, 1]);
    f[30..34].copy_from_slice(&[10, 0, 0, 2]);
    f[34..36].copy_from_slice(&1000u16.to_be_bytes());
    f[36..38].copy_from_slice(&dst_port.to_be_bytes());
    f[38..40].copy_from_slice(&(ip_len - 20).to_be_bytes());
    for (i, b) in f[42..].iter_mut().enumerate() {
        *b = (seq as usize * 7 + i) as u8;
    }
    f[42..46].copy_from_slice(&seq.to_be_bytes());
    f
}

/// Two dummy-pmd ports on `br0` with `flows`, `extra` tables beside; the
/// EMC takes every flow.
fn config(extra: &str, flows: &str) -> String {
    two_dummy_ports_config(
        "pmd_sleep_max = 200\nemc_insert_inv_prob = 1\nemc_enable = true",
        extra,
        flows,
    )
}

/// A prerequisite: `Some(value)` when present; `None` (skip) outside CI;
/// a failure in CI.
fn prerequisite<T>(what: &str, found: Option<T>) -> Option<T> {
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{what} is required in CI (scripts/install-deps.sh installs it)"
        );
        eprintln!("skipping: {what} is not installed (scripts/install-deps.sh)");
    }
    found
}

fn tool(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

/// A Python with `prometheus_client` (Debian's python3-prometheus-client
/// lives under /usr/bin/python3, which may not be the first python3 on
/// PATH).
fn python_with_prometheus() -> Option<PathBuf> {
    let mut candidates = vec![PathBuf::from("/usr/bin/python3")];
    candidates.extend(tool("python3"));
    candidates.into_iter().find(|py| {
        Command::new(py)
            .args(["-c", "import prometheus_client.parser"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// A raw HTTP exchange: the status line and the body.
fn http(addr: &str, request: &[u8]) -> (String, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the metrics endpoint");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(request);
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    let reply = String::from_utf8_lossy(&reply).into_owned();
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

/// Samples by `name{sorted labels}`, as Prometheus's own parser reads
/// the page (it raises on anything malformed).
fn parse_with_prometheus_client(py: &Path, page: &str) -> HashMap<String, f64> {
    const SCRIPT: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for fam in text_string_to_metric_families(sys.stdin.read()):
    assert fam.type in ("counter", "gauge", "histogram"), (fam.name, fam.type)
    assert fam.documentation, fam.name
    for s in fam.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        out[f"{s.name}{{{labels}}}"] = s.value
json.dump(out, sys.stdout)
"#;
    let mut child = Command::new(py)
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client rejected the page: {}\n{page}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn metrics_address(d: &Daemon) -> String {
    let mut addr = None;
    wait_until("the metrics address in the log", || {
        let log = d.log();
        // The field may be wrapped in colour codes; the value is not.
        addr = log
            .split("Some(127.0.0.1:")
            .nth(1)
            .and_then(|r| r.split(')').next())
            .map(|port| format!("127.0.0.1:{port}"));
        addr.is_some()
    });
    addr.unwrap()
}

#[test]
fn metrics_parse_with_prometheus_client_and_move_with_traffic() {
    let Some(py) = prerequisite("python3-prometheus-client", python_with_prometheus()) else {
        return;
    };
    let dir = TempDir::new("ob-metrics");
    let d = start(
        &dir,
        &config(
            "[metrics]\nlisten = \"127.0.0.1:0\"",
            "flows = [\"priority=10,udp,tp_dst=9,actions=drop\", \"priority=0,actions=NORMAL\"]",
        ),
    );
    let addr = metrics_address(&d);
    let scrape = || {
        let (status, body) = http(&addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
        parse_with_prometheus_client(&py, &body)
    };

    let before = scrape();
    let get = |m: &HashMap<String, f64>, k: &str| -> f64 {
        *m.get(k)
            .unwrap_or_else(|| panic!("{k} missing from {:?}", m.keys().collect::<Vec<_>>()))
    };
    assert_eq!(get(&before, "oxvs_pmd_packets_received_total{pmd=0}"), 0.0);
    assert_eq!(get(&before, "oxvs_flow_limit{}"), 200_000.0);
    // Every declared drop reason is on the page, for every thread.
    for r in DropReason::ALL {
        let reason = r.name().strip_prefix("datapath_drop_").unwrap();
        for pmd in ["0", "main"] {
            get(
                &before,
                &format!("oxvs_drops_total{{pmd={pmd},reason={reason}}}"),
            );
        }
    }
    for key in [
        "oxvs_pmd_cycles_total{pmd=0,state=idle}",
        "oxvs_pmd_lookups_total{level=emc,pmd=0}",
        "oxvs_pmd_upcalls_total{pmd=0,result=ok}",
        "oxvs_pmd_iterations_total{pmd=0}",
        "oxvs_flows{pmd=0}",
        "oxvs_revalidator_dump_duration_seconds{}",
        "oxvs_port_rx_errors_total{port=p1,type=dummy-pmd}",
        "oxvs_pool_buffers_in_use{pool=dummy:p1}",
        "oxvs_pool_buffers_available{pool=dummy:p1}",
    ] {
        get(&before, key);
    }

    // 20 forwarded packets and 5 dropped by the rule.
    let forwarded: Vec<Vec<u8>> = (0..20).map(|i| udp_frame(i, 100, 2000)).collect();
    let dropped: Vec<Vec<u8>> = (0..5).map(|i| udp_frame(i, 100, 9)).collect();
    d.receive_frames("p1", &forwarded);
    d.receive_frames("p1", &dropped);
    wait_until("25 packets processed", || {
        scrape()["oxvs_pmd_packets_received_total{pmd=0}"] == 25.0
    });
    wait_until("20 packets sent on p2", || {
        d.port_counter("p2", "TX packets") == 20
    });
    let after = scrape();
    assert_eq!(
        get(&after, "oxvs_port_rx_packets_total{port=p1,type=dummy-pmd}"),
        25.0
    );
    assert_eq!(
        get(&after, "oxvs_port_tx_packets_total{port=p2,type=dummy-pmd}"),
        20.0
    );
    assert_eq!(
        get(&after, "oxvs_port_tx_bytes_total{port=p2,type=dummy-pmd}"),
        2000.0
    );
    assert_eq!(get(&after, "oxvs_drops_total{pmd=0,reason=action}"), 5.0);
    assert_eq!(get(&after, "oxvs_pmd_upcalls_total{pmd=0,result=ok}"), 2.0);
    let hits = get(&after, "oxvs_pmd_lookups_total{level=emc,pmd=0}")
        + get(&after, "oxvs_pmd_lookups_total{level=megaflow,pmd=0}");
    assert_eq!(hits, 23.0);
    assert_eq!(get(&after, "oxvs_flows{pmd=0}"), 2.0);
    // The perf history as histograms: every iteration counted once, the
    // busy ones (25 packets arrived one request at a time) above le=0.
    let count = get(&after, "oxvs_pmd_iteration_packets_count{pmd=0}");
    assert_eq!(
        get(&after, "oxvs_pmd_iteration_packets_bucket{le=+Inf,pmd=0}"),
        count
    );
    assert_eq!(count, get(&after, "oxvs_pmd_iterations_total{pmd=0}"));
    assert_eq!(get(&after, "oxvs_pmd_iteration_packets_sum{pmd=0}"), 25.0);
    assert!(get(&after, "oxvs_pmd_iteration_packets_bucket{le=0,pmd=0}") < count);
    assert!(
        get(&after, "oxvs_pmd_cycles_total{pmd=0,state=busy}")
            > get(&before, "oxvs_pmd_cycles_total{pmd=0,state=busy}")
    );
    assert!(
        get(&after, "oxvs_pmd_iterations_total{pmd=0}")
            > get(&before, "oxvs_pmd_iterations_total{pmd=0}")
    );
    // coverage/show lists every drop reason too, with the same count.
    let coverage = d.ok("coverage/show", &[]);
    for r in DropReason::ALL {
        assert!(coverage.contains(r.name()), "{} in {coverage}", r.name());
    }
    assert!(
        coverage
            .lines()
            .any(|l| l.starts_with("datapath_drop_action") && l.ends_with("total: 5")),
        "{coverage}"
    );

    // Not the page, not GET, not HTTP, too large: refused, daemon fine.
    assert_eq!(
        http(&addr, b"GET /nope HTTP/1.1\r\n\r\n").0,
        "HTTP/1.1 404 Not Found"
    );
    assert_eq!(
        http(&addr, b"DELETE /metrics HTTP/1.1\r\n\r\n").0,
        "HTTP/1.1 405 Method Not Allowed"
    );
    let mut big = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 20_000));
    assert_eq!(
        http(&addr, &big).0,
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    // A client that connects and says nothing does not block others.
    let _idle = TcpStream::connect(&addr).unwrap();
    assert_eq!(scrape()["oxvs_flows{pmd=0}"], 2.0);
    d.stop_clean();
}

#[test]
fn clients_holding_every_metrics_connection_do_not_lock_out_a_scraper() {
    let dir = TempDir::new("ob-metrics-full");
    let d = start(&dir, &config("[metrics]\nlisten = \"127.0.0.1:0\"", ""));
    let addr = metrics_address(&d);
    // As many clients as the endpoint keeps, each mid-request and silent
    // (a header never finished), all accepted before the scraper.
    let mut hung: Vec<TcpStream> = (0..16)
        .map(|_| {
            let mut s = TcpStream::connect(&addr).unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
            s
        })
        .collect();
    // The scraper is answered (before, it was closed unanswered until
    // the hung ones timed out).
    let (status, body) = http(&addr, b"GET /metrics HTTP/1.1\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    assert!(body.contains("oxvs_flows{pmd=\"0\"}"), "{body}");
    // The connection open longest made room: closed by the daemon.
    let first = &mut hung[0];
    first
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 64];
    // Closed with its request unread: EOF or a reset, never data.
    match first.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("the oldest connection is still open: {other:?}"),
    }
    assert!(d.log().contains("metrics: too many connections"));
    d.stop_clean();
}

#[test]
fn the_metrics_address_must_be_loopback() {
    let dir = TempDir::new("ob-metrics-cfg");
    for (listen, expected) in [
        (
            "0.0.0.0:9465",
            "metrics.listen: 0.0.0.0:9465 is not a loopback address",
        ),
        (
            "localhost:9465",
            "metrics.listen: \"localhost:9465\" is not an IP address",
        ),
    ] {
        let path = dir.path("bad.toml");
        std::fs::write(&path, format!("[metrics]\nlisten = \"{listen}\"\n")).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_oxvsd"))
            .args(["--check", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
    }
}

/// The bytes of every frame in `file`, as `tshark -x` prints them.
fn tshark_frames(tshark: &Path, file: &Path) -> Vec<Vec<u8>> {
    let out = Command::new(tshark)
        .arg("-r")
        .arg(file)
        .arg("-x")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tshark -r {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut frames = Vec::new();
    let mut current: Vec<u8> = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // "0010  00 2e 00 00 ...  ascii": offset, two spaces, 16 hex
        // bytes in fixed columns.
        let is_row = line.len() > 6
            && line.as_bytes()[..4].iter().all(u8::is_ascii_hexdigit)
            && &line[4..6] == "  ";
        if !is_row {
            if !current.is_empty() {
                frames.push(std::mem::take(&mut current));
            }
            continue;
        }
        let offset = usize::from_str_radix(&line[..4], 16).unwrap();
        assert_eq!(offset, current.len(), "{line}");
        let hex = &line[6..line.len().min(6 + 16 * 3 - 1)];
        for byte in hex.split(' ').take_while(|t| t.len() == 2) {
            current.push(u8::from_str_radix(byte, 16).unwrap());
        }
    }
    if !current.is_empty() {
        frames.push(current);
    }
    frames
}

#[test]
fn a_capture_of_100_known_packets_reads_back_byte_identical_in_tshark() {
    let Some(tshark) = prerequisite("tshark", tool("tshark")) else {
        return;
    };
    let dir = TempDir::new("ob-capture");
    let d = start(&dir, &config("", ""));
    let file = dir.path("p1.pcap");
    let file_arg = file.display().to_string();
    // Other traffic first (not captured: the capture starts later).
    d.receive_frames("p1", &[udp_frame(999, 60, 2000)]);
    wait_until("warm-up forwarded", || {
        d.port_counter("p2", "TX packets") == 1
    });

    let started = d.ok(
        "capture/start",
        &["p1", &file_arg, "--rx", "--count", "100"],
    );
    assert!(
        started.contains("capture 1 started on port p1"),
        "{started}"
    );
    let frames: Vec<Vec<u8>> = (0..100)
        .map(|i| udp_frame(i, 60 + (i as usize * 13) % 1400, 2000))
        .collect();
    d.receive_frames("p1", &frames);
    // Traffic sent back on p2 is another port: not in this capture.
    d.receive_frames("p2", &[udp_frame(5000, 60, 2000)]);
    wait_until("the capture is done", || {
        d.ok("capture/status", &[]).contains(", done")
    });
    let status = d.ok("capture/status", &[]);
    assert!(
        status.contains("packets written: 100/100") && status.contains("ring full drops: 0"),
        "{status}"
    );
    let read = tshark_frames(&tshark, &file);
    assert_eq!(read.len(), 100, "tshark read {} frames", read.len());
    for (i, (got, want)) in read.iter().zip(&frames).enumerate() {
        assert_eq!(got, want, "frame {i} differs");
    }
    // Our own pcap reader agrees on the original lengths.
    let records = dp_core::pcap::parse(&std::fs::read(&file).unwrap()).unwrap();
    assert!(
        records
            .iter()
            .zip(&frames)
            .all(|(r, f)| r.orig_len as usize == f.len())
    );

    // A second capture: tx on p2, a filter on the UDP port, a snap length.
    let file2 = dir.path("p2.pcap");
    let file2_arg = file2.display().to_string();
    d.ok(
        "capture/start",
        &[
            "p2",
            &file2_arg,
            "--tx",
            "--count",
            "3",
            "--snaplen",
            "64",
            "--filter",
            "eth_type(0x0800),ipv4(proto=17),udp(dst=3000)",
        ],
    );
    let mixed: Vec<Vec<u8>> = (0..10)
        .map(|i| udp_frame(i, 200, if i % 3 == 0 { 3000 } else { 2000 }))
        .collect();
    d.receive_frames("p1", &mixed);
    wait_until("the second capture is done", || {
        d.ok("capture/status", &[]).contains(", done")
    });
    let read = tshark_frames(&tshark, &file2);
    let want: Vec<&Vec<u8>> = mixed.iter().step_by(3).take(3).collect();
    assert_eq!(read.len(), 3);
    for (got, want) in read.iter().zip(want) {
        assert_eq!(got[..], want[..64], "snapped to 64 bytes");
    }
    // Removing the port ends its capture.
    let file3 = dir.path("p1-again.pcap");
    d.ok("capture/start", &["p1", &file3.display().to_string()]);
    d.ok("bridge/del-port", &["p1"]);
    let status = d.ok("capture/status", &[]);
    assert!(status.contains("failed: port p1 was removed"), "{status}");
    d.ok("bridge/add-port", &["br0", "p1", "dummy-pmd"]);
    // Bad requests name what is wrong.
    for (args, expected) in [
        (vec!["nope", "/tmp/x.pcap"], "no such port: nope"),
        (vec!["p1", "relative.pcap"], "absolute path"),
        (vec!["p1", "/nonexistent-dir/x.pcap"], "does not exist"),
        (vec!["p1", &file_arg, "--count", "0"], "--count 0"),
        (
            vec!["p1", &file_arg, "--ring", "65536"],
            "--ring 65536 with --snaplen 65535",
        ),
        (
            vec!["p1", &file_arg, "--filter", "ipv4(src=1.2.3.999)"],
            "--filter",
        ),
    ] {
        let err = d.call("capture/start", &args).unwrap_err();
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    d.stop_clean();
}

#[test]
fn a_full_capture_ring_never_drops_forwarded_packets() {
    let Some(mkfifo) = prerequisite("mkfifo", tool("mkfifo")) else {
        return;
    };
    let dir = TempDir::new("ob-ring");
    let d = start(&dir, &config("", ""));
    // The capture writes into a FIFO that nobody drains until the traffic
    // is through: the pipe fills, the writer blocks, the ring fills.
    let fifo = dir.path("capture.fifo");
    assert!(Command::new(mkfifo).arg(&fifo).status().unwrap().success());
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut f = std::fs::File::open(&fifo).unwrap(); // waits for the writer
            let _ = go_rx.recv_timeout(Duration::from_secs(60));
            let mut bytes = Vec::new();
            f.read_to_end(&mut bytes).unwrap();
            bytes
        })
    };
    let fifo_arg = fifo.display().to_string();
    d.ok("capture/start", &["p1", &fifo_arg, "--rx", "--ring", "8"]);
    const N: usize = 2000;
    let frames: Vec<Vec<u8>> = (0..N as u32).map(|i| udp_frame(i, 1000, 2000)).collect();
    d.receive_frames("p1", &frames);
    wait_until("every packet forwarded", || {
        d.port_counter("p2", "TX packets") == N as u64
    });
    let status = d.ok("capture/status", &[]);
    let number = |status: &str, label: &str| -> u64 {
        let at = status
            .find(label)
            .unwrap_or_else(|| panic!("{label}: {status}"));
        status[at + label.len()..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(
        number(&status, "ring full drops: ") > 0,
        "the ring filled: {status}"
    );
    assert_eq!(d.port_counter("p1", "RX packets"), N as u64);
    let coverage = d.ok("coverage/show", &[]);
    assert!(
        !coverage
            .lines()
            .any(|l| l.starts_with("datapath_drop") && !l.ends_with("total: 0")),
        "no datapath drop: {coverage}"
    );

    // Drain the FIFO, stop: every packet was either written or counted.
    go_tx.send(()).unwrap();
    let final_status = d.ok("capture/stop", &[]);
    let bytes = reader.join().unwrap();
    let records = dp_core::pcap::parse(&bytes).unwrap();
    let status = final_status;
    let written = number(&status, "packets written: ");
    let drops = number(&status, "ring full drops: ");
    assert_eq!(records.len() as u64, written, "{status}");
    assert_eq!(written + drops, N as u64, "{status}");
    assert!(records.iter().all(|r| r.data.len() == 1000));
    d.stop_clean();
}

#[test]
fn a_capture_to_a_fifo_nobody_opens_or_drains_still_stops() {
    let Some(mkfifo) = prerequisite("mkfifo", tool("mkfifo")) else {
        return;
    };
    let dir = TempDir::new("ob-fifo-stuck");
    let d = start(&dir, &config("", ""));

    // Nobody ever opens it: the writer must not wait in open() for good.
    let lonely = dir.path("lonely.fifo");
    assert!(
        Command::new(&mkfifo)
            .arg(&lonely)
            .status()
            .unwrap()
            .success()
    );
    d.ok("capture/start", &["p1", &lonely.display().to_string()]);
    let status = d.ok("capture/stop", &[]);
    assert!(
        status.contains("failed:") && status.contains("no reader opened the FIFO"),
        "{status}"
    );

    // Its port is removed while the writer waits for a reader: the status
    // names the removal, not the writer's giving up that followed.
    d.ok("capture/start", &["p1", &lonely.display().to_string()]);
    d.ok("bridge/del-port", &["p1"]);
    let status = d.ok("capture/status", &[]);
    assert!(status.contains("failed: port p1 was removed"), "{status}");
    d.ok("bridge/add-port", &["br0", "p1", "dummy-pmd"]);

    // A reader opens it and never reads: the pipe fills, the writer waits
    // for room, and gives up once stopped.
    let stuck = dir.path("stuck.fifo");
    assert!(
        Command::new(&mkfifo)
            .arg(&stuck)
            .status()
            .unwrap()
            .success()
    );
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let reader = {
        let stuck = stuck.clone();
        std::thread::spawn(move || {
            let f = std::fs::File::open(&stuck).unwrap(); // waits for the writer
            let _ = done_rx.recv_timeout(Duration::from_secs(60));
            drop(f);
        })
    };
    d.ok(
        "capture/start",
        &["p1", &stuck.display().to_string(), "--rx"],
    );
    // 2 MB of frames: far more than a pipe holds.
    let frames: Vec<Vec<u8>> = (0..2000).map(|i| udp_frame(i, 1000, 2000)).collect();
    d.receive_frames("p1", &frames);
    wait_until("every packet forwarded", || {
        d.port_counter("p2", "TX packets") == 2000
    });
    let status = d.ok("capture/stop", &[]);
    assert!(
        status.contains("failed:") && status.contains("stopped reading"),
        "{status}"
    );
    done_tx.send(()).unwrap();
    reader.join().unwrap();
    // Neither writer was left behind.
    assert!(!d.log().contains("detached"), "{}", d.log());
    // The next capture starts and runs normally.
    let file = dir.path("after.pcap");
    d.ok(
        "capture/start",
        &["p1", &file.display().to_string(), "--count", "1"],
    );
    d.receive_frames("p1", &frames[..1]);
    wait_until("the capture after wrote its packet", || {
        d.ok("capture/status", &[]).contains("done")
    });
    d.stop_clean();
}

/// `(bucket floor, count)` rows of one column of pmd-perf-show's
/// histogram table (0: cycles/it, 1: packets/it, 2: upcalls/it).
fn histogram_column(perf: &str, column: usize) -> Vec<(u64, u64)> {
    perf.lines()
        .filter(|l| l.trim_start().starts_with(">="))
        .map(|l| {
            let cells: Vec<&str> = l.split(">=").skip(1).collect();
            let mut it = cells[column].split_whitespace();
            (
                it.next().unwrap().parse().unwrap(),
                it.next().unwrap().parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn perf_histograms_and_the_suspicious_log_change_with_load() {
    let dir = TempDir::new("ob-perf");
    let d = start(&dir, &config("", ""));
    d.ok("dpif-netdev/pmd-stats-clear", &[]);
    let idle = d.ok("dpif-netdev/pmd-perf-show", &[]);
    assert!(idle.contains("pmd thread numa_id 0 core_id 0:"), "{idle}");
    let busy_rows = |perf: &str, column| -> u64 {
        histogram_column(perf, column)
            .iter()
            .filter(|(floor, _)| *floor >= 1)
            .map(|(_, n)| n)
            .sum()
    };
    assert_eq!(busy_rows(&idle, 1), 0, "no packets yet: {idle}");
    assert!(idle.contains("logging off"), "{idle}");

    let set = d.ok("dpif-netdev/pmd-perf-log-set", &["on", "-us", "1"]);
    assert!(set.contains("on (threshold 1 us)"), "{set}");
    let frames: Vec<Vec<u8>> = (0..500)
        .map(|i| udp_frame(i, 100, 2000 + (i % 4) as u16))
        .collect();
    d.receive_frames("p1", &frames);
    wait_until("500 forwarded", || {
        d.port_counter("p2", "TX packets") == 500
    });
    let loaded = d.ok("dpif-netdev/pmd-perf-show", &[]);
    assert!(
        busy_rows(&loaded, 1) >= 16,
        "at least 500/32 busy iterations: {loaded}"
    );
    assert!(busy_rows(&loaded, 2) >= 1, "upcalls seen: {loaded}");
    assert!(
        loaded.contains("Rx packets:                 500"),
        "{loaded}"
    );
    // Processing a burst takes more than 1 µs: logged.
    let seen = loaded
        .split(" seen,")
        .next()
        .and_then(|r| r.rsplit(' ').next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("{loaded}"));
    assert!(seen > 0, "{loaded}");
    assert!(loaded.contains("    iteration "), "{loaded}");
    // ...and written to the daemon's log by the housekeeping tick.
    wait_until("a suspicious iteration in the log", || {
        d.log().contains("suspicious PMD iteration (over 1 us)")
    });
    // -nh leaves the histograms out; clearing empties them.
    assert!(
        !d.ok("dpif-netdev/pmd-perf-show", &["-nh"])
            .contains("Histograms")
    );
    d.ok("dpif-netdev/pmd-stats-clear", &[]);
    let cleared = d.ok("dpif-netdev/pmd-perf-show", &[]);
    assert_eq!(busy_rows(&cleared, 1), 0, "{cleared}");
    assert!(
        d.call("dpif-netdev/pmd-perf-log-set", &["-us", "zero"])
            .unwrap_err()
            .contains("-us zero")
    );
    d.stop_clean();
}

const UDP_FLOW: &str = "in_port(1),eth(src=50:54:00:00:00:01,dst=50:54:00:00:00:02),eth_type(0x0800),ipv4(src=10.0.0.1,dst=10.0.0.2,proto=17,tos=0,ttl=64,frag=no),udp(src=1000,dst=2000)";
const DROPPED_FLOW: &str = "in_port(1),eth(src=50:54:00:00:00:01,dst=50:54:00:00:00:02),eth_type(0x0800),ipv4(src=10.0.0.1,dst=10.0.0.2,proto=17,tos=0,ttl=64,frag=no),udp(src=1000,dst=9)";

#[test]
fn trace_generate_runs_the_packet_through_the_datapath_and_names_the_cache_level() {
    let dir = TempDir::new("ob-trace");
    let d = start(
        &dir,
        &config(
            "",
            "flows = [\"priority=10,udp,tp_dst=9,actions=drop\", \"priority=0,actions=NORMAL\"]",
        ),
    );
    // Learn p2's MAC first, so NORMAL sends to p2 only.
    d.receive_frames(
        "p2",
        &[{
            let mut f = udp_frame(0, 60, 1);
            f[0..6].copy_from_slice(&[0x50, 0x54, 0, 0, 0, 1]);
            f[6..12].copy_from_slice(&[0x50, 0x54, 0, 0, 0, 2]);
            f
        }],
    );
    wait_until("p2 learned", || d.port_counter("p1", "TX packets") == 1);

    let first = d.ok("ofproto/trace", &["br0", UDP_FLOW, "--generate"]);
    assert!(first.contains("Datapath (--generate)"), "{first}");
    assert!(first.contains("Cache: miss (upcall ok)"), "{first}");
    assert!(first.contains("packets transmitted: 1"), "{first}");
    assert!(
        first.contains("Megaflow: ") && first.contains("actions:p2"),
        "{first}"
    );
    wait_until("the traced packet left on p2", || {
        d.port_counter("p2", "TX packets") == 1
    });
    let second = d.ok("ofproto/trace", &[UDP_FLOW, "--generate"]);
    assert!(second.contains("Cache: emc hit"), "{second}");
    let dropped = d.ok("ofproto/trace", &["br0", DROPPED_FLOW, "--generate"]);
    assert!(dropped.contains("Drops: datapath_drop_action"), "{dropped}");
    assert!(dropped.contains("packets transmitted: 0"), "{dropped}");
    // Without --generate nothing reaches the datapath.
    let plain = d.ok("ofproto/trace", &["br0", UDP_FLOW]);
    assert!(!plain.contains("--generate"), "{plain}");
    assert_eq!(d.port_counter("p2", "TX packets"), 2);
    let err = d
        .call(
            "ofproto/trace",
            &["br0", "in_port=1,dl_type=0x0800", "--generate"],
        )
        .unwrap_err();
    assert!(err.contains("ODP"), "{err}");
    d.stop_clean();
}
