//! End to end on Linux: two namespaces attached as emulated Hyper-V ports
//! (veth host ends behind the emulated shim), two `windows` ports found by
//! friendly name, switched by a real oxvs datapath (one PMD): ping both
//! ways, a UDP burst each way, link events when a veth goes down and up,
//! the socket packet queue for a port without rings, and every buffer
//! back afterwards.
#![cfg(not(windows))]

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use dp_core::netdev::{LinkState, Netdev};
use dp_windows_ext::client::{Client, Event};
use dp_windows_ext::contract::*;
use dp_windows_ext::{BadInputCounters, WindowsConfig, WindowsNetdev, device};

fn config(emu: &dp_windows_ext::emulator::Emulator) -> WindowsConfig {
    WindowsConfig {
        device: emu.socket().to_str().unwrap().to_string(),
        ring_size: 512,
        n_frames: 2048,
        ..WindowsConfig::default()
    }
}

fn client(emu: &dp_windows_ext::emulator::Emulator) -> Client {
    let dev = device::open(emu.socket().to_str().unwrap()).unwrap();
    Client::connect(dev, Arc::new(BadInputCounters::default())).unwrap()
}

/// Waits for the next link event of port `port_no`.
fn link_event(watcher: &mut Client, port_no: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Some(Event::Link(p)) = watcher.read_event(500).unwrap()
            && p.port_no == port_no
        {
            return p.link_up;
        }
    }
    panic!("no link event for port {port_no} within 5 s");
}

#[test]
fn ping_and_udp_between_namespaces_through_emulated_hyperv_ports() {
    if !prerequisites("windows emulator end to end") {
        return;
    }
    let topo = netns("e");
    let emu = emulator(&topo);

    // Discovery: both switch ports, by friendly name and kind.
    let mut watcher = client(&emu);
    watcher.subscribe(MCGRP_VPORT, true).unwrap();
    let ports = watcher.vport_dump().unwrap();
    let names: Vec<_> = ports.iter().map(|p| (p.name.as_str(), p.kind)).collect();
    assert_eq!(
        names,
        [("OVS-pa", PortKind::VmNic), ("OVS-pb", PortKind::External)]
    );
    assert!(
        ports
            .iter()
            .all(|p| p.origin == PortOrigin::Switch && p.link_up)
    );

    let a = Arc::new(WindowsNetdev::open("pa", &config(&emu)).unwrap_or_else(|e| panic!("{e}")));
    let b = Arc::new(WindowsNetdev::open("pb", &config(&emu)).unwrap_or_else(|e| panic!("{e}")));
    assert_eq!(a.vport().name, "OVS-pa");
    assert_eq!(emu.rings_attached(), 2);
    let mut dp = datapath();
    dp.add_port(a.clone(), port_no(1)).unwrap();
    dp.add_port(b.clone(), port_no(2)).unwrap();

    wait_reachable(&topo.ns_a, IP_B);
    eprintln!("ping a -> b: {}", ping(&topo.ns_a, IP_B, 5));
    eprintln!("ping b -> a: {}", ping(&topo.ns_b, IP_A, 3));
    udp_exchange(&topo.ns_a, &topo.ns_b, IP_B, 2000);
    udp_exchange(&topo.ns_b, &topo.ns_a, IP_A, 2000);

    let s1 = dp.port_stats(1).unwrap();
    let s2 = dp.port_stats(2).unwrap();
    assert!(
        s1.rx_packets >= 2000 && s2.tx_packets >= 2000,
        "{s1:?} {s2:?}"
    );
    assert!(
        s2.rx_packets >= 2000 && s1.tx_packets >= 2000,
        "{s1:?} {s2:?}"
    );
    assert_eq!(a.bad_input().total() + b.bad_input().total(), 0);
    assert_eq!(emu.stats().bad.total(), 0);

    // Link down and up on the veth behind OVS-pa: events, and the netdev
    // reports it.
    sh(&["ip", "link", "set", &topo.host_a, "down"]);
    assert!(!link_event(&mut watcher, a.vport().port_no));
    assert_eq!(a.link_state(), LinkState::Down);
    sh(&["ip", "link", "set", &topo.host_a, "up"]);
    assert!(link_event(&mut watcher, a.vport().port_no));
    assert_eq!(a.link_state(), LinkState::Up);

    // Shut down: every frame back from packets, every packet back to
    // the pools.
    dp.shutdown();
    drop(dp);
    assert_eq!(a.frames_lent() + b.frames_lent(), 0, "frames still lent");
    assert_eq!(a.pool().in_use() + b.pool().in_use(), 0, "packets alive");
    eprintln!(
        "emulator: punted {} injected {} dropped {}",
        emu.stats().punted.load(Ordering::Relaxed),
        emu.stats().injected.load(Ordering::Relaxed),
        emu.stats().dropped.load(Ordering::Relaxed)
    );
    drop((a, b));
    let deadline = Instant::now() + Duration::from_secs(2);
    while emu.rings_attached() != 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(emu.rings_attached(), 0, "rings detached on close");
}

#[test]
fn without_rings_frames_go_to_the_upcall_socket_queue_and_execute_injects() {
    if !prerequisites("windows emulator socket queue") {
        return;
    }
    let topo = netns("q");
    let emu = emulator(&topo);
    let mut c = client(&emu);
    let pa = c.vport_by_name("OVS-pa").unwrap().expect("OVS-pa");
    let pb = c.vport_by_name("OVS-pb").unwrap().expect("OVS-pb");
    c.vport_set_upcall_pid(pa.port_no, c.pid()).unwrap();
    // Something from namespace a: an ARP request for b's address.
    let ping = std::process::Command::new("ip")
        .args([
            "netns", "exec", &topo.ns_a, "ping", "-c", "2", "-W", "1", IP_B,
        ])
        .output();
    drop(ping);
    let deadline = Instant::now() + Duration::from_secs(5);
    let (port_no, frame) = loop {
        if let Some(p) = c.read_packet().unwrap() {
            break p;
        }
        assert!(Instant::now() < deadline, "nothing on the socket queue");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(port_no, pa.port_no);
    assert!(frame.len() >= 42, "a whole frame: {}", frame.len());
    assert!(emu.stats().queued.load(Ordering::Relaxed) >= 1);
    // Slow-path inject of that frame out of OVS-pb.
    let before = emu.stats().injected.load(Ordering::Relaxed);
    c.execute(&[pb.port_no], &frame).unwrap();
    assert_eq!(emu.stats().injected.load(Ordering::Relaxed), before + 1);
}
