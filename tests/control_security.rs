//! The control plane under hostile or careless local clients, against the
//! real `oxvsd` binary: socket and directory permissions, the request size
//! limit, garbage, clients that connect and hang, trickle one byte at a
//! time, open more connections than the daemon keeps, or never read their
//! replies; capture paths that are relative, symlinks or devices; and the
//! warning for a config file others may write. In every case a
//! well-behaved client is still served promptly and the daemon exits
//! cleanly with every buffer returned.

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testbed::daemon::{Daemon, DaemonOptions, TempDir, two_dummy_ports_config};

const OXVSD: &str = env!("CARGO_BIN_EXE_oxvsd");

/// Starts oxvsd with its socket at `socket` and its config file created
/// with `config_mode`.
fn start(dir: &TempDir, socket: PathBuf, config_mode: u32) -> Daemon {
    Daemon::start_with(
        OXVSD,
        dir,
        &two_dummy_ports_config("pmd_sleep_max = 500", "", ""),
        DaemonOptions {
            socket: Some(socket),
            config_mode: Some(config_mode),
            ..DaemonOptions::default()
        },
    )
}

/// A well-behaved client is answered within a few seconds.
fn assert_serving(d: &Daemon, after: &str) {
    let start = Instant::now();
    let version = d
        .call("version", &[])
        .unwrap_or_else(|e| panic!("after {after}: {e}\n{}", d.log()));
    assert!(version.contains("oxvs"), "{version}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "after {after}: answered only after {:?}",
        start.elapsed()
    );
}

/// Reads one JSON reply from `s`.
fn read_reply(s: &mut UnixStream) -> Result<Value, String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        let n = s.read(&mut chunk).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err(format!(
                "connection closed after {:?}",
                String::from_utf8_lossy(&buf)
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Ok(v) = serde_json::from_slice::<Value>(&buf) {
            return Ok(v);
        }
    }
}

#[test]
fn socket_directory_is_private_and_socket_owner_only() {
    let dir = TempDir::new("rl-ctl-perm");
    // The daemon creates the socket's directory itself.
    let socket = dir.path("run/oxvs/ctl");
    let d = start(&dir, socket.clone(), 0o600);
    let run = std::fs::metadata(dir.path("run/oxvs")).unwrap();
    assert_eq!(
        run.permissions().mode() & 0o777,
        0o700,
        "socket directory mode"
    );
    let sock = std::fs::symlink_metadata(&socket).unwrap();
    assert_eq!(sock.permissions().mode() & 0o777, 0o600, "socket mode");
    let me = std::fs::metadata(dir.path("oxvs.toml")).unwrap();
    assert_eq!(
        (sock.uid(), run.uid()),
        (me.uid(), me.uid()),
        "owned by the daemon's user"
    );
    assert!(
        !d.log().contains("writable by"),
        "no warning for a private setup"
    );
    // A second daemon on the same socket is refused and leaves it alone.
    let out = Command::new(env!("CARGO_BIN_EXE_oxvsd"))
        .arg("--config")
        .arg(dir.path("oxvs.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("another daemon"));
    assert_serving(&d, "a second daemon tried the socket");
    let (code, log) = d.stop();
    assert_eq!(code, 0, "{log}");
    assert!(!socket.exists(), "socket removed at exit");
}

#[test]
fn world_writable_config_and_socket_directory_are_warned() {
    let dir = TempDir::new("rl-ctl-warn");
    let shared = dir.path("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let d = start(&dir, shared.join("ctl"), 0o666);
    let (code, log) = d.stop();
    assert_eq!(code, 0, "{log}");
    assert!(
        log.contains("config file is writable by group or others"),
        "{log}"
    );
    assert!(
        log.contains("control socket directory is writable by others"),
        "{log}"
    );
}

#[test]
fn hostile_clients_do_not_stop_the_daemon_serving_others() {
    let dir = TempDir::new("rl-ctl-hostile");
    let d = start(&dir, dir.path("ctl"), 0o600);

    // Garbage: an error, then the connection closes.
    let mut s = UnixStream::connect(d.socket()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"\xff\xfe}{ not json").unwrap();
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    assert!(reply.contains("invalid JSON"), "{reply}");
    assert_serving(&d, "garbage");

    // A huge request, sent by a thread while we check the daemon still
    // answers: refused with an error naming the limit.
    let socket = d.socket().to_path_buf();
    let huge = std::thread::spawn(move || {
        let mut s = UnixStream::connect(&socket).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let big = format!(
            r#"{{"id":1,"method":"version","params":["{}"]}}"#,
            "y".repeat(8 << 20)
        );
        let _ = s.write_all(big.as_bytes());
        let mut reply = String::new();
        let _ = s.read_to_string(&mut reply);
        reply
    });
    assert_serving(&d, "a huge request started");
    let reply = huge.join().unwrap();
    assert!(reply.contains("request larger than"), "{reply}");
    assert_serving(&d, "a huge request");

    // Clients that connect and hang: one silent, one stuck mid-request.
    let silent = UnixStream::connect(d.socket()).unwrap();
    let mut stuck = UnixStream::connect(d.socket()).unwrap();
    stuck.write_all(br#"{"id":1,"method":"dpctl/sh"#).unwrap();
    assert_serving(&d, "two hung clients");

    // A request trickled one byte at a time is still answered, and others
    // are served while it trickles.
    let mut slow = UnixStream::connect(d.socket()).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let req = br#"{"id":42,"method":"version","params":[]}"#;
    for (i, b) in req.iter().enumerate() {
        slow.write_all(&[*b]).unwrap();
        if i == req.len() / 2 {
            assert_serving(&d, "half a trickled request");
        }
    }
    let v = read_reply(&mut slow).unwrap();
    assert_eq!(v["id"], json!(42));
    assert!(v["result"].as_str().unwrap().contains("oxvs"));

    // Pipelined requests on one connection are answered in order.
    let mut pipe = UnixStream::connect(d.socket()).unwrap();
    pipe.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    pipe.write_all(br#"{"id":1,"method":"version"} [] {"id":3,"method":"version"}"#)
        .unwrap();
    let mut ids = Vec::new();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while ids.len() < 3 {
        let n = pipe.read(&mut chunk).unwrap();
        assert!(n > 0, "closed after {ids:?}");
        buf.extend_from_slice(&chunk[..n]);
        let mut stream = serde_json::Deserializer::from_slice(&buf).into_iter::<Value>();
        ids = stream
            .by_ref()
            .filter_map(Result::ok)
            .map(|v| v["id"].clone())
            .collect();
    }
    assert_eq!(ids, vec![json!(1), Value::Null, json!(3)]);

    drop((silent, stuck, slow, pipe));
    d.stop_clean();
}

#[test]
fn connection_floods_and_clients_that_never_read_stay_bounded() {
    let dir = TempDir::new("rl-ctl-flood");
    let d = start(&dir, dir.path("ctl"), 0o600);

    // More idle connections than the daemon keeps: the newest client is
    // still served (the longest idle ones are closed to make room).
    let hogs: Vec<UnixStream> = (0..100)
        .map(|_| UnixStream::connect(d.socket()).unwrap())
        .collect();
    assert_serving(&d, "100 idle connections");
    assert!(d.log().contains("too many connections"), "{}", d.log());
    drop(hogs);

    // A client that pipelines requests and never reads a reply: the
    // daemon stops reading from it once its unread replies pass the
    // limit, so its memory stays bounded and others are still served.
    let rss_before = d.rss_kib();
    let mut greedy = UnixStream::connect(d.socket()).unwrap();
    greedy
        .set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let req = br#"{"id":1,"method":"list-commands"} "#;
    let mut sent = 0usize;
    let deadline = Instant::now() + Duration::from_secs(60);
    // Write until the daemon stops taking requests (the write times out)
    // or 16 MiB of requests (gigabytes of replies) went in. Only the
    // first ends the check successfully: running out of time proves
    // nothing either way, so it fails too.
    let batch = req.repeat(256);
    let mut refused = false;
    while sent < 16 << 20 && Instant::now() < deadline {
        match greedy.write(&batch) {
            Ok(n) => sent += n,
            Err(_) => {
                refused = true;
                break;
            }
        }
    }
    assert!(
        refused,
        "the daemon kept reading requests whose replies pile up ({sent} bytes taken{})",
        if sent < 16 << 20 {
            ", until the 60 s deadline"
        } else {
            ""
        }
    );
    assert_serving(&d, "a client that never reads");
    let grown_kib = d.rss_kib().saturating_sub(rss_before);
    assert!(
        grown_kib < 48 * 1024,
        "daemon grew {grown_kib} KiB for a client that never reads"
    );
    drop(greedy);
    assert_serving(&d, "the greedy client left");
    d.stop_clean();
}

#[test]
fn capture_paths_are_validated_before_anything_is_opened() {
    let dir = TempDir::new("rl-ctl-capture");
    let d = start(&dir, dir.path("ctl"), 0o600);
    // A file the daemon must not touch, reachable through a symlink.
    let precious = dir.path("precious");
    std::fs::write(&precious, b"keep me").unwrap();
    let link = dir.path("link.pcap");
    std::os::unix::fs::symlink(&precious, &link).unwrap();
    let cases = [
        ("relative.pcap".to_string(), "absolute path"),
        (link.display().to_string(), "symlink"),
        ("/dev/null".to_string(), "not a regular file"),
        (
            dir.path("no/such/dir/x.pcap").display().to_string(),
            "does not exist",
        ),
        // An existing file that is not a capture is never overwritten.
        (precious.display().to_string(), "not a capture file"),
    ];
    for (path, why) in &cases {
        let err = d
            .call("capture/start", &["p1", path])
            .expect_err("capture to a bad path started");
        assert!(err.contains(why), "{path}: {err}");
    }
    assert_eq!(std::fs::read(&precious).unwrap(), b"keep me");
    assert!(!Path::new("relative.pcap").exists());
    // A previous capture is replaced, and a new file is private (0600).
    let old_capture = dir.path("old.pcap");
    std::fs::write(&old_capture, [0xd4, 0xc3, 0xb2, 0xa1, 1, 2, 3, 4]).unwrap();
    let fresh = dir.path("fresh.pcap");
    for path in [&old_capture, &fresh] {
        let path = path.display().to_string();
        d.ok("capture/start", &["p1", &path]);
        d.ok("capture/stop", &[]);
    }
    let header = std::fs::read(&old_capture).unwrap();
    assert_eq!(header.len(), 24, "replaced by a fresh pcap header");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&fresh).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    d.stop_clean();
}
