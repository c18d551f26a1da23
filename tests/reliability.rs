//! Reliability of the running datapath (real PMD, non-PMD and revalidator
//! threads over in-memory ports): a flow-setup flood beside an established
//! flow, and a bounded soak with churning flows, ports and rules.
//!
//! - Flood: while one established 5-tuple is sent at a modest paced rate,
//!   a generator sends new 5-tuples as fast as it can. The established
//!   flow must lose almost nothing, the flow table must stay within the
//!   flow limit, the refused installs must be counted, and memory must
//!   stay bounded. (The throughput ratio under an unpaced established
//!   flow is a number, measured by `benches/flood.rs`, not asserted.)
//! - Soak: mixed traffic (many 5-tuples, ARP, IPv6, malformed frames)
//!   through `dummy-pmd` and `dummy` ports while flows are put and
//!   deleted, a port is removed and re-added, and the rules change under
//!   the revalidator. At the end every pool's in-use count is back to
//!   zero, and neither the live heap (counted by this binary's allocator,
//!   packet buffers aside) nor RSS (after `malloc_trim`) grew over the
//!   second half. `RL_SOAK_SECS` overrides its length (default 60 s);
//!   `RL_SOAK_TRACE=1` prints every memory sample.
//!
//! The upcall handler installs exact 5-tuple megaflows (what a rule set
//! matching L4 ports gives), so every new 5-tuple is a new flow.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dp_core::action::Action;
use dp_core::flow::FlowKey;
use dp_core::netdev::Netdev;
use dp_core::packet::Packet;
use dp_pmd::datapath::{Datapath, DatapathConfig, PortOptions};
use dp_pmd::netdev::dummy::{DummyConfig, DummyNetdev};
use dp_pmd::pmd::msg::PutMode;
use dp_pmd::upcall::FlowActions;
use testbed::datapath::{Megaflows, five_tuple_mask, udp_frame};

/// Exact 5-tuple megaflows: port 1 ↔ 2, port 3 → 4 (the flood's sink),
/// anything else dropped. An odd version drops port 3's traffic (a rule
/// change the revalidator must apply).
fn five_tuple() -> Megaflows {
    Megaflows::new(five_tuple_mask(), |key, version| match key.in_port {
        1 => vec![Action::Output(2)],
        2 => vec![Action::Output(1)],
        3 if version.is_multiple_of(2) => vec![Action::Output(4)],
        _ => Vec::new(),
    })
}

/// The system allocator, counting the bytes live on the heap: the soak's
/// leak check, free of the allocator's own caching and fragmentation that
/// make RSS noisy.
struct CountingAlloc;

static HEAP_LIVE: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded to `System` with the caller's arguments;
// the counter is updated only for allocations that succeeded.
unsafe impl std::alloc::GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        let p = unsafe { std::alloc::System.alloc(layout) };
        if !p.is_null() {
            HEAP_LIVE.fetch_add(layout.size() as u64, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: forwarded unchanged; `ptr` came from this allocator.
        unsafe { std::alloc::System.dealloc(ptr, layout) };
        HEAP_LIVE.fetch_sub(layout.size() as u64, Ordering::Relaxed);
    }

    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        let p = unsafe { std::alloc::System.alloc_zeroed(layout) };
        if !p.is_null() {
            HEAP_LIVE.fetch_add(layout.size() as u64, Ordering::Relaxed);
        }
        p
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged; `ptr` came from this allocator.
        let p = unsafe { std::alloc::System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            HEAP_LIVE.fetch_add(new_size as u64, Ordering::Relaxed);
            HEAP_LIVE.fetch_sub(layout.size() as u64, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: CountingAlloc = CountingAlloc;

fn heap_kib() -> u64 {
    HEAP_LIVE.load(Ordering::Relaxed) / 1024
}

unsafe extern "C" {
    /// glibc: gives the free memory of every arena back to the kernel.
    safe fn malloc_trim(pad: usize) -> i32;
    /// glibc: sets a malloc parameter.
    safe fn mallopt(param: i32, value: i32) -> i32;
}

/// glibc's `M_ARENA_MAX`.
const M_ARENA_MAX: i32 = -8;

/// One malloc arena for this test binary, set before `main`. glibc gives
/// threads their own arenas, and memory freed into one arena is not
/// reused by another thread's allocations: with PMD, revalidator,
/// generator and test threads, RSS then drifts up by several MiB over a
/// minute while the live heap stays flat (measured: trimmed RSS +8 MiB
/// with per-thread arenas, +80 KiB with one). The soak measures this
/// datapath's memory, not that drift.
#[used]
#[unsafe(link_section = ".init_array")]
static ONE_MALLOC_ARENA: extern "C" fn() = {
    extern "C" fn one_arena() {
        mallopt(M_ARENA_MAX, 1);
    }
    one_arena
};

/// RSS after glibc has returned what it holds free, so the figure is the
/// memory in use plus fragmentation, not the allocator's cache.
fn trimmed_rss_kib() -> u64 {
    malloc_trim(0);
    rss_kib()
}

/// One memory sample of the soak.
struct MemSample {
    at: Duration,
    /// Taken at a quiet point: traffic paused, queues drained, every flow
    /// flushed. Only these samples are compared: between them the heap
    /// follows the flow table (0 to `flow_limit` flows, a few KiB each)
    /// and the revalidator's dumps, so their floor depends on how the
    /// machine's load paced the generator, not on leaks.
    quiet: bool,
    /// Live heap bytes minus the ports' packet buffers (KiB): what a leak
    /// raises. Buffers are bounded by pool capacity and follow the
    /// backlog, which rises and falls with the machine's load.
    heap_kib: u64,
    rss_kib: u64,
}

/// The lowest value of `f` among the quiet samples taken in `from..to`.
fn floor(samples: &[MemSample], from: Duration, to: Duration, f: fn(&MemSample) -> u64) -> u64 {
    samples
        .iter()
        .filter(|s| s.quiet && s.at >= from && s.at < to)
        .map(f)
        .min()
        .expect("samples in the window")
}

/// The tests measure the process's RSS and load the CPUs: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

fn dummy(name: &str, pmd: bool) -> Arc<DummyNetdev> {
    let port = Arc::new(DummyNetdev::new(
        name,
        DummyConfig {
            pmd,
            ..DummyConfig::default()
        },
    ));
    // Every buffer created and written once, as a driver's pool is
    // populated up front: a pool creates buffers lazily and the kernel
    // maps a zeroed buffer's pages on first write, so otherwise RSS
    // creeps up for minutes as backlog reaches buffers never used before.
    let pool = port.pool();
    let fill = vec![0x5a; pool.buffer_size() - dp_core::packet::DEFAULT_HEADROOM];
    let all: Vec<Packet> = std::iter::from_fn(|| pool.alloc_from(&fill)).collect();
    assert!(!all.is_empty());
    drop(all);
    port
}

fn add(dp: &mut Datapath, port: &Arc<DummyNetdev>, port_no: u32) {
    let netdev: Arc<dyn Netdev> = port.clone();
    dp.add_port(
        netdev,
        PortOptions {
            port_no: Some(port_no),
            ..PortOptions::default()
        },
    )
    .unwrap();
}

fn config(flow_limit: usize) -> DatapathConfig {
    DatapathConfig {
        // One PMD thread; it busy-polls, as in production.
        pmd_cores: vec![0],
        flow_limit,
        max_idle_ms: 500,
        revalidate_interval_ms: 100,
        ..DatapathConfig::default()
    }
}

/// Sends `frame` on `port` every `period` in bursts of `burst` until
/// `stop`; returns (attempted, accepted by the port).
fn paced(
    port: Arc<DummyNetdev>,
    frame: Vec<u8>,
    burst: u64,
    period: Duration,
    stop: Arc<AtomicBool>,
) -> JoinHandle<(u64, u64)> {
    std::thread::spawn(move || {
        let (mut attempted, mut accepted) = (0, 0);
        let mut next = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            for _ in 0..burst {
                attempted += 1;
                accepted += u64::from(port.receive(0, &frame).is_ok());
            }
            next += period;
            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        (attempted, accepted)
    })
}

/// Sends a new 5-tuple each time, as fast as the port takes them, until
/// `stop`; returns the frames accepted.
fn flood(port: Arc<DummyNetdev>, stop: Arc<AtomicBool>) -> JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut sent = 0u64;
        let mut i = 0u32;
        while !stop.load(Ordering::Relaxed) {
            i = i.wrapping_add(1);
            let b = i.to_be_bytes();
            let frame = udp_frame([172, b[1], b[2], b[3]], (i >> 8) as u16, 9);
            match port.receive(0, &frame) {
                Ok(()) => sent += 1,
                // Queue full: the PMD is behind; let it run.
                Err(_) => std::thread::yield_now(),
            }
        }
        sent
    })
}

fn wait_drained(ports: &[&Arc<DummyNetdev>]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while ports.iter().any(|p| p.pool().in_use() > 0) {
        assert!(Instant::now() < deadline, "rx queues did not drain");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn flow_setup_flood_does_not_starve_an_established_flow() {
    let _serial = serial();
    const FLOW_LIMIT: usize = 2000;
    let mut dp = Datapath::new(config(FLOW_LIMIT), Arc::new(five_tuple())).unwrap();
    let ports: Vec<Arc<DummyNetdev>> = (1..=4).map(|i| dummy(&format!("rl-f{i}"), true)).collect();
    for (i, port) in ports.iter().enumerate() {
        add(&mut dp, port, i as u32 + 1);
    }
    let established = udp_frame([10, 0, 0, 1], 1000, 2000);

    // Warm up: the established flow is installed before the flood.
    ports[0].receive(0, &established).unwrap();
    wait_drained(&[&ports[0]]);
    let rss_before = rss_kib();

    let stop = Arc::new(AtomicBool::new(false));
    // 5,000 packets/s in bursts of 10: modest, so a loaded CI machine can
    // keep up and any loss is the flood's doing.
    let est = paced(
        ports[0].clone(),
        established.clone(),
        10,
        Duration::from_millis(2),
        stop.clone(),
    );
    let generator = flood(ports[2].clone(), stop.clone());
    let mut max_flows = 0;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(6) {
        std::thread::sleep(Duration::from_millis(200));
        max_flows = max_flows.max(dp.dump_flows().unwrap().len());
    }
    stop.store(true, Ordering::Relaxed);
    let (attempted, accepted) = est.join().unwrap();
    let flooded = generator.join().unwrap();
    wait_drained(&[&ports[0], &ports[2]]);

    let delivered = ports[1].stats().tx_packets - 1;
    let stats = dp.pmd_stats().unwrap();
    let refused: u64 = stats
        .iter()
        .map(|r| r.stats.upcall_flow_limit_hit + r.stats.upcall_budget_exceeded)
        .sum();
    let grown_kib = rss_kib().saturating_sub(rss_before);
    eprintln!(
        "flood: established {delivered}/{attempted} delivered ({accepted} accepted by the port), \
         {flooded} new 5-tuples, max {max_flows} flows, {refused} installs refused, RSS +{grown_kib} KiB"
    );
    assert!(
        flooded > 10 * FLOW_LIMIT as u64,
        "the flood was too weak to test anything"
    );
    assert!(attempted > 1000);
    // The bar (80 %), not the loss-free result seen on a quiet
    // machine: on CI's two shared cores the paced sender and the PMD can
    // both be descheduled, and that loss is not the flood's doing.
    assert!(
        delivered * 100 >= attempted * 80,
        "established flow lost {} of {attempted} packets under the flood",
        attempted - delivered
    );
    assert!(
        max_flows <= FLOW_LIMIT,
        "flow table reached {max_flows} flows, over the limit {FLOW_LIMIT}"
    );
    assert!(refused > 0, "no refused install counted under a flood");
    assert!(grown_kib < 64 * 1024, "RSS grew {grown_kib} KiB");
    dp.shutdown();
    drop(dp);
    for port in &ports {
        assert_eq!(port.pool().in_use(), 0, "{} holds buffers", port.name());
    }
}

#[test]
fn soak_with_churning_flows_ports_and_rules_returns_every_buffer() {
    let _serial = serial();
    let secs: u64 = std::env::var("RL_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let handler = Arc::new(five_tuple());
    let mut dp = Datapath::new(config(5000), handler.clone()).unwrap();
    // Ports 1, 2, 3: PMD-polled; port 4: polled by the non-PMD thread.
    let mut ports: Vec<Arc<DummyNetdev>> =
        (1..=3).map(|i| dummy(&format!("rl-s{i}"), true)).collect();
    ports.push(dummy("rl-s4", false));
    for (i, port) in ports.iter().enumerate() {
        add(&mut dp, port, i as u32 + 1);
    }
    let mut ports_created = ports.len();

    let stop = Arc::new(AtomicBool::new(false));
    // The test pauses the generator for each quiet point; it answers
    // through `paused` once it has stopped sending.
    let pause = Arc::new(AtomicBool::new(false));
    let paused = Arc::new(AtomicBool::new(false));
    let mixed = {
        let (p1, p2, p4) = (ports[0].clone(), ports[1].clone(), ports[3].clone());
        let (stop, pause, paused) = (stop.clone(), pause.clone(), paused.clone());
        std::thread::spawn(move || {
            let mut arp = vec![0xff; 6];
            arp.extend_from_slice(&[0, 0, 0, 0, 0, 1, 0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
            arp.resize(60, 0);
            let mut v6 = vec![
                0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1, 0x86, 0xdd, 0x60, 0, 0, 0, 0, 8, 17, 64,
            ];
            v6.resize(54, 0x20);
            v6.extend_from_slice(&[0, 1, 0, 2, 0, 8, 0, 0]);
            let runt = vec![0u8; 10];
            let mut bad_ip = udp_frame([10, 0, 0, 9], 1, 2);
            bad_ip[16..18].copy_from_slice(&5u16.to_be_bytes());
            let mut sent = 0u64;
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                if pause.load(Ordering::Acquire) {
                    paused.store(true, Ordering::Release);
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                }
                paused.store(false, Ordering::Release);
                i = i.wrapping_add(1);
                let frame = match i % 8 {
                    0 => arp.clone(),
                    1 => v6.clone(),
                    2 => runt.clone(),
                    3 => bad_ip.clone(),
                    _ => udp_frame(
                        [10, 1, (i >> 16) as u8 & 3, (i >> 8) as u8],
                        i as u16 % 512,
                        53,
                    ),
                };
                let port = match i % 3 {
                    0 => &p1,
                    1 => &p2,
                    _ => &p4,
                };
                if port.receive(0, &frame).is_ok() {
                    sent += 1;
                }
                // About 50,000 frames/s: leave CPU for the churn.
                if i.is_multiple_of(64) {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            sent
        })
    };

    let start = Instant::now();
    // Room for every sample up front: its growth would count as heap.
    let mut samples: Vec<MemSample> = Vec::with_capacity(secs as usize * 20);
    let mut round = 0u64;
    let mut churn_port: Option<Arc<DummyNetdev>> = Some(ports[2].clone());
    let mut flows_put = 0u64;
    let mut flood_sent = 0u64;
    let mut last_quiet = start;
    while start.elapsed() < Duration::from_secs(secs) {
        round += 1;
        // Flows: put a batch by hand, then delete some of them.
        let mut ufids = Vec::new();
        for j in 0..50u16 {
            let mut key = FlowKey::ZERO;
            key.in_port = 1;
            key.dl_type = 0x0800;
            key.tp_dst = 7000 + j;
            let mut mask = FlowKey::ZERO;
            mask.in_port = u32::MAX;
            mask.dl_type = u16::MAX;
            mask.tp_dst = u16::MAX;
            let actions: FlowActions = Arc::from(vec![Action::Output(2)]);
            if let Ok(ufid) = dp.flow_put(&key, &mask, None, actions, PutMode::CreateOrModify, None)
            {
                ufids.push(ufid);
                flows_put += 1;
            }
        }
        for ufid in ufids.iter().step_by(2) {
            let _ = dp.flow_del(*ufid);
        }
        // Rules change: the revalidator re-translates port 3's flows.
        if round.is_multiple_of(5) {
            handler.bump_version();
        }
        // Port churn: port 3 goes away and comes back as a new device,
        // with a burst of new flows sent to it while it exists.
        match churn_port.take() {
            Some(port) => {
                for k in 0..200u32 {
                    let b = (k + (round as u32) * 200).to_be_bytes();
                    if port
                        .receive(0, &udp_frame([172, 16, b[2], b[3]], 7, 9))
                        .is_ok()
                    {
                        flood_sent += 1;
                    }
                }
                // Removed once drained: frames still queued on a removed
                // port stay in its queue until the device itself goes.
                wait_drained(&[&port]);
                dp.del_port(port.name()).unwrap();
                // Its queues are closed now: every buffer must be back.
                assert_eq!(
                    port.pool().in_use(),
                    0,
                    "removed {} holds buffers",
                    port.name()
                );
            }
            None => {
                let port = dummy(&format!("rl-s3-{round}"), true);
                add(&mut dp, &port, 3);
                ports_created += 1;
                churn_port = Some(port);
            }
        }
        // A quiet point every 2 s or so, each with the churned port
        // away: the heap is then the datapath's standing memory with the
        // same ports and no flow, which a leak raises and nothing else
        // moves.
        let quiet = churn_port.is_none() && last_quiet.elapsed() >= Duration::from_secs(2);
        if quiet {
            pause.store(true, Ordering::Release);
            while !paused.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(1));
            }
            // Drained: every buffer received has been forwarded (and
            // taken from its output port here) or dropped.
            let deadline = Instant::now() + Duration::from_secs(10);
            while ports.iter().chain(churn_port.iter()).any(|p| {
                let _ = p.take_sent();
                p.pool().in_use() > 0
            }) {
                assert!(Instant::now() < deadline, "rx queues did not drain");
                std::thread::sleep(Duration::from_millis(10));
            }
            dp.flow_flush();
            // Answered after the flush: each thread handles its control
            // messages in order.
            dp.pmd_stats().unwrap();
            // Two more revalidator rounds: the second began after the
            // flush, so a dump (up to flow_limit flows, MiBs) the first
            // may have held is freed.
            let rounds = &dp.revalidator().expect("a revalidator").stats().rounds;
            let target = rounds.load(Ordering::Relaxed) + 2;
            while rounds.load(Ordering::Relaxed) < target {
                assert!(Instant::now() < deadline, "the revalidator stopped");
                std::thread::sleep(Duration::from_millis(5));
            }
            last_quiet = Instant::now();
        } else {
            std::thread::sleep(Duration::from_millis(100));
        }
        let pooled_kib: u64 = ports
            .iter()
            .chain(churn_port.iter())
            .map(|p| (p.pool().stats().created * p.pool().buffer_size()) as u64 / 1024)
            .sum();
        let sample = MemSample {
            at: start.elapsed(),
            quiet,
            heap_kib: heap_kib().saturating_sub(pooled_kib),
            rss_kib: trimmed_rss_kib(),
        };
        if std::env::var_os("RL_SOAK_TRACE").is_some() {
            eprintln!(
                "{:.1} s: heap {} KiB (+{pooled_kib} KiB buffers), RSS {} KiB{}",
                sample.at.as_secs_f64(),
                sample.heap_kib,
                sample.rss_kib,
                if quiet { " (quiet)" } else { "" }
            );
        }
        samples.push(sample);
        pause.store(false, Ordering::Release);
        for port in &ports {
            let _ = port.take_sent();
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mixed_sent = mixed.join().unwrap();
    let stats = dp.pmd_stats().unwrap();
    let received: u64 = stats.iter().map(|r| r.stats.packets_received).sum();
    dp.shutdown();
    drop(dp);
    // Leak check: the floor of the last quarter's quiet samples against
    // the floor of those of the quarter before half time. Quiet samples
    // agree within a few KiB under load (three busy loops beside the
    // test: 16,552 KiB at every one); a leak raises the floor.
    let total = Duration::from_secs(secs);
    let (q1, q2, q3) = (total / 4, total / 2, total * 3 / 4);
    let heap_before = floor(&samples, q1, q2, |s| s.heap_kib);
    let heap_after = floor(&samples, q3, total * 2, |s| s.heap_kib);
    let rss_before = floor(&samples, q1, q2, |s| s.rss_kib);
    let rss_after = floor(&samples, q3, total * 2, |s| s.rss_kib);
    let rss_max = samples.iter().map(|s| s.rss_kib).max().unwrap_or(0);
    eprintln!(
        "soak: {secs} s, {round} rounds, {mixed_sent} mixed + {flood_sent} churn-port frames sent, \
         {received} received by the datapath, {flows_put} flows put, {ports_created} ports created; \
         heap without buffers {heap_before} -> {heap_after} KiB, \
         RSS (trimmed) {rss_before} -> {rss_after} KiB, max {rss_max} KiB"
    );
    assert!(received > 0 && mixed_sent > 1000);
    for port in ports.iter().chain(churn_port.iter()) {
        assert_eq!(port.pool().in_use(), 0, "{} holds buffers", port.name());
    }
    assert!(
        heap_after <= heap_before + 1024,
        "the heap (packet buffers aside) grew from {heap_before} KiB to {heap_after} KiB \
         over the second half"
    );
    assert!(
        rss_after <= rss_before + (rss_before / 10).max(8 * 1024),
        "RSS grew from {rss_before} KiB to {rss_after} KiB over the second half"
    );
}
