//! The control channel against the emulator, without privileges: hello and
//! version refusal, PIDs, caller-driven dumps, userspace-created ports and
//! their events, bad requests counted, and a `windows` netdev on a
//! userspace-created port (rings attached, injected frames completed,
//! every frame back).
#![cfg(not(windows))]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use dp_core::netdev::Netdev;
use dp_core::packet::{PacketBatch, PacketPool, PoolConfig};
use dp_windows_ext::client::{Client, ClientError, Event};
use dp_windows_ext::codec::{Builder, Decoded, decode};
use dp_windows_ext::contract::*;
use dp_windows_ext::emulator::{Emulator, EmulatorConfig};
use dp_windows_ext::{BadInput, BadInputCounters, WindowsConfig, WindowsNetdev, device};

static NEXT: AtomicU32 = AtomicU32::new(0);

fn emulator() -> Emulator {
    let path = std::env::temp_dir().join(format!(
        "oxvs-winshim-test-{}-{}.sock",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    Emulator::start(EmulatorConfig::new(path)).expect("emulator starts")
}

fn client(emu: &Emulator) -> Client {
    let dev = device::open(emu.socket().to_str().unwrap()).expect("device opens");
    Client::connect(dev, Arc::new(BadInputCounters::default())).expect("hello")
}

fn raw(emu: &Emulator, code: u32, input: &[u8]) -> Vec<u8> {
    let mut dev = device::open(emu.socket().to_str().unwrap()).unwrap();
    let mut out = Vec::new();
    dev.ioctl(code, input, &mut out).unwrap();
    out
}

fn errno_of(reply: &[u8]) -> i32 {
    match decode(reply).expect("reply decodes").0 {
        Decoded::Error { errno, .. } => errno,
        other => panic!("expected an error reply, got {other:?}"),
    }
}

#[test]
fn each_socket_gets_its_own_pid_and_the_shim_version() {
    let emu = emulator();
    let a = client(&emu);
    let b = client(&emu);
    assert_ne!(a.pid(), 0);
    assert_ne!(a.pid(), b.pid());
    assert_eq!(a.shim_version(), VERSION);
}

#[test]
fn an_incompatible_major_version_is_refused_and_stays_refused() {
    let emu = emulator();
    let mut dev = device::open(emu.socket().to_str().unwrap()).unwrap();
    let mut out = Vec::new();
    let hello = Builder::new(FAMILY_CTRL, CTRL_CMD_HELLO, NLM_F_REQUEST, 1, 0)
        .u32(ATTR_CTRL_VERSION, 2 << 16)
        .finish();
    dev.ioctl(IOCTL_TRANSACT, &hello, &mut out).unwrap();
    // The shim says what it is...
    let Decoded::Genl(m) = decode(&out).unwrap().0 else {
        panic!("hello reply")
    };
    assert_eq!(m.u32(ATTR_CTRL_VERSION), Ok(VERSION));
    // ...and refuses everything else on this socket.
    let get = Builder::new(FAMILY_CTRL, CTRL_CMD_GET_PID, NLM_F_REQUEST, 2, 0).finish();
    dev.ioctl(IOCTL_TRANSACT, &get, &mut out).unwrap();
    assert_eq!(errno_of(&out), EPROTO);
    assert_eq!(emu.stats().bad.get(BadInput::BadVersion), 1);
}

#[test]
fn requests_before_hello_malformed_or_unknown_get_errors_and_are_counted() {
    let emu = emulator();
    let get = Builder::new(FAMILY_CTRL, CTRL_CMD_GET_PID, NLM_F_REQUEST, 1, 0).finish();
    assert_eq!(errno_of(&raw(&emu, IOCTL_TRANSACT, &get)), EPROTO);
    let unknown = Builder::new(0x77, 1, NLM_F_REQUEST, 1, 0).finish();
    assert_eq!(errno_of(&raw(&emu, IOCTL_TRANSACT, &unknown)), EOPNOTSUPP);
    let bad_cmd = Builder::new(FAMILY_VPORT, 99, NLM_F_REQUEST, 1, 0).finish();
    assert_eq!(errno_of(&raw(&emu, IOCTL_TRANSACT, &bad_cmd)), EOPNOTSUPP);
    let mut truncated = get.clone();
    truncated[..4].copy_from_slice(&1000u32.to_le_bytes());
    assert_eq!(errno_of(&raw(&emu, IOCTL_TRANSACT, &truncated)), EINVAL);
    assert_eq!(errno_of(&raw(&emu, IOCTL_TRANSACT, &[1, 2, 3])), EINVAL);
    let s = &emu.stats().bad;
    assert_eq!(s.get(BadInput::UnknownFamily), 1);
    assert_eq!(s.get(BadInput::UnknownCommand), 1);
    assert_eq!(s.get(BadInput::BadMessageLength), 1);
    assert_eq!(s.get(BadInput::TruncatedHeader), 1);
    // The emulator survived all of it.
    let mut c = client(&emu);
    assert!(c.vport_dump().unwrap().is_empty());
}

#[test]
fn dumps_are_caller_driven_across_many_batches() {
    let emu = emulator();
    let mut c = client(&emu);
    let n = 3 * DUMP_BATCH + 5;
    for i in 0..n {
        let v = c
            .vport_new(&format!("OVS-u{i}"), PortKind::Internal)
            .unwrap();
        assert_eq!(v.port_no, USER_PORT_BASE + i as u32);
        assert_eq!(v.origin, PortOrigin::User);
    }
    let all = c.vport_dump().unwrap();
    assert_eq!(all.len(), n);
    assert!(all.windows(2).all(|w| w[0].port_no < w[1].port_no));
    assert_eq!(
        c.vport_by_name("OVS-u7").unwrap().unwrap().port_no,
        USER_PORT_BASE + 7
    );
    assert!(c.vport_by_name("OVS-none").unwrap().is_none());
    assert!(matches!(
        c.vport_new("OVS-u1", PortKind::Internal),
        Err(ClientError::Errno(EEXIST))
    ));
}

#[test]
fn subscribers_see_userspace_port_add_and_delete() {
    let emu = emulator();
    let mut watcher = client(&emu);
    watcher.subscribe(MCGRP_VPORT, true).unwrap();
    let mut other = client(&emu);
    assert_eq!(watcher.read_event(0).unwrap(), None);
    let v = other.vport_new("OVS-int0", PortKind::Internal).unwrap();
    match watcher.read_event(2000).unwrap() {
        Some(Event::PortAdded(p)) => assert_eq!(p, v),
        e => panic!("expected port added, got {e:?}"),
    }
    other.vport_del(v.port_no).unwrap();
    assert!(matches!(
        watcher.read_event(2000).unwrap(),
        Some(Event::PortDeleted(p)) if p.port_no == v.port_no
    ));
    // Unsubscribed sockets get nothing.
    watcher.subscribe(MCGRP_VPORT, false).unwrap();
    other.vport_new("OVS-int1", PortKind::Internal).unwrap();
    assert_eq!(watcher.read_event(100).unwrap(), None);
    // A port that does not exist: ENOENT.
    assert!(matches!(
        other.vport_del(v.port_no + 100),
        Err(ClientError::Errno(ENOENT))
    ));
}

#[test]
fn windows_netdev_on_a_userspace_port_sends_and_gets_every_frame_back() {
    let emu = emulator();
    let mut c = client(&emu);
    c.vport_new("OVS-int0", PortKind::Internal).unwrap();
    let config = WindowsConfig {
        device: emu.socket().to_str().unwrap().to_string(),
        ring_size: 64,
        n_frames: 256,
        ..WindowsConfig::default()
    };
    let port = WindowsNetdev::open("int0", &config).expect("opens by friendly name");
    assert_eq!(port.type_name(), "windows");
    assert_eq!(port.info().n_rxq, 1);
    assert_eq!(emu.rings_attached(), 1);
    let mut rxq = port.open_rxq(0).unwrap();
    assert!(port.open_rxq(0).is_err(), "one owner per rx queue");
    let mut txq = port.open_txq(0).unwrap();
    let heap = PacketPool::new("test", PoolConfig::heap(64));
    for round in 0..50 {
        let mut batch = PacketBatch::new();
        for _ in 0..32 {
            batch
                .push(heap.alloc_from(&[round as u8; 60]).unwrap())
                .unwrap();
        }
        let out = txq.send(&mut batch);
        assert_eq!(out.sent + out.dropped, 32);
        assert!(batch.is_empty());
        let mut rx = PacketBatch::new();
        assert_eq!(
            rxq.recv(&mut rx).unwrap(),
            0,
            "no interface, nothing punted"
        );
        // Now and then long enough for the shim to sleep and ask for a
        // wakeup.
        let pause = if round % 10 == 0 { 30 } else { 1 };
        std::thread::sleep(std::time::Duration::from_millis(pause));
    }
    // Sends to a sleeping shim rang its doorbell.
    assert!(emu.stats().wakeups.load(Ordering::Relaxed) > 0);
    // The shim completes every injected frame (the port has no
    // interface: each is a counted drop on its side).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let mut empty = PacketBatch::new();
        txq.send(&mut empty);
        // What the shim still holds is the fill ring (64 slots, filled by
        // the rx side); every injected frame has been completed.
        if port.frames_with_shim() == 64 || std::time::Instant::now() > deadline {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(port.frames_with_shim(), 64);
    assert_eq!(port.frames_free() + 64, 256);
    assert!(emu.stats().dropped.load(Ordering::Relaxed) > 0);
    assert_eq!(port.stats().tx_packets + port.stats().tx_dropped, 50 * 32);
    assert_eq!(port.bad_input().total(), 0);
    assert_eq!(heap.in_use(), 0);
    assert_eq!(port.frames_lent(), 0);
    drop((rxq, txq));
    drop(port);
    // Detached on close; the region file is gone.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while emu.rings_attached() != 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(emu.rings_attached(), 0);
}

#[test]
fn opening_a_port_the_switch_does_not_have_names_it() {
    let emu = emulator();
    let config = WindowsConfig {
        device: emu.socket().to_str().unwrap().to_string(),
        ..WindowsConfig::default()
    };
    let err = WindowsNetdev::open("ghost", &config)
        .unwrap_err()
        .to_string();
    assert!(err.contains("OVS-ghost"), "{err}");
    let err = WindowsConfig::from_options(&[("ring_size", "1000")]).unwrap_err();
    assert!(err.contains("ring_size"), "{err}");
    let err = WindowsConfig::from_options(&[("colour", "blue")]).unwrap_err();
    assert!(err.contains("colour"), "{err}");
    let missing = WindowsConfig {
        device: "/nonexistent/winshim.sock".into(),
        ..WindowsConfig::default()
    };
    let err = WindowsNetdev::open("p", &missing).unwrap_err().to_string();
    assert!(err.contains("/nonexistent/winshim.sock"), "{err}");
}
