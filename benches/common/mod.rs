//! Frames shared by the benchmarks (not a bench target itself).

/// A 60-byte Ethernet + IPv4 + UDP frame (TTL 64, 18 bytes of zero
/// payload, checksums left zero: the datapath under test does not check
/// them).
pub fn udp4_frame(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src_ip: [u8; 4],
    dst_ip: [u8; 4],
    sport: u16,
    dport: u16,
) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[..6].copy_from_slice(&dst_mac);
    f[6..12].copy_from_slice(&src_mac);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[16..18].copy_from_slice(&46u16.to_be_bytes());
    f[22] = 64;
    f[23] = 17;
    f[26..30].copy_from_slice(&src_ip);
    f[30..34].copy_from_slice(&dst_ip);
    f[34..36].copy_from_slice(&sport.to_be_bytes());
    f[36..38].copy_from_slice(&dport.to_be_bytes());
    f[38..40].copy_from_slice(&26u16.to_be_bytes());
    f
}

/// The plain 10.0.0.1:1000 → 10.0.0.2:2000 frame most cases use.
#[allow(
    dead_code,
    reason = "each bench target uses its own subset of this module"
)]
pub fn udp4_60() -> Vec<u8> {
    udp4_frame(
        [0, 1, 2, 3, 4, 5],
        [6, 7, 8, 9, 10, 11],
        [10, 0, 0, 1],
        [10, 0, 0, 2],
        1000,
        2000,
    )
}

/// True when `OXVS_BENCH_ONLY` is unset or `name` contains it (or, when
/// it ends in `$`, `name` ends with the rest: `.../1$` is not `.../100`).
#[allow(
    dead_code,
    reason = "each bench target uses its own subset of this module"
)]
pub fn selected(name: &str) -> bool {
    std::env::var("OXVS_BENCH_ONLY").map_or(true, |only| match only.strip_suffix('$') {
        Some(tail) => name.ends_with(tail),
        None => name.contains(&only),
    })
}

/// Runs one benchmark case `name` whose every call of `f` processes
/// `units_per_iter` units (packets, flows):
///
/// - with `OXVS_BENCH_ITERS=N`, calls `f` exactly `N` times and prints
///   only the count, nothing timed: the mode for
///   `valgrind --tool=callgrind`, whose instruction counts divided by
///   `N * units_per_iter` are the per-unit cost even on a busy machine;
/// - otherwise prints a preemption-robust figure,
///   `figure <name>: min .. median .. ns/<unit>`: the minimum and median
///   over ~300 short repetitions (each well under a scheduler quantum, so
///   the minimum is the case's own cost even on a shared machine), then
///   runs `f` under criterion through `criterion_run` unless
///   `OXVS_BENCH_QUICK` is set.
///
/// Cases whose name does not contain `OXVS_BENCH_ONLY` are skipped.
#[allow(
    dead_code,
    reason = "each bench target uses its own subset of this module"
)]
pub fn run_case<F: FnMut()>(
    name: &str,
    unit: &str,
    units_per_iter: u64,
    mut f: F,
    criterion_run: impl FnOnce(&mut F),
) {
    if !selected(name) {
        return;
    }
    if let Some(n) = std::env::var("OXVS_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        for _ in 0..n {
            f();
        }
        eprintln!("iterations {name}: {n} x {units_per_iter} {unit}s");
        return;
    }
    let start = std::time::Instant::now();
    f();
    let once = start.elapsed().as_nanos().max(1);
    let iters = (50_000 / once).clamp(1, 10_000) as usize;
    let reps = (300_000_000 / (once * iters as u128)).clamp(5, 301) as usize;
    for _ in 0..iters {
        f();
    }
    let mut per_unit: Vec<f64> = (0..reps)
        .map(|_| {
            let t = std::time::Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed().as_nanos() as f64 / (iters as u64 * units_per_iter) as f64
        })
        .collect();
    per_unit.sort_by(f64::total_cmp);
    eprintln!(
        "figure {name}: min {:.1} median {:.1} ns/{unit} ({reps} reps x {iters} iters x {units_per_iter} {unit}s)",
        per_unit[0],
        per_unit[reps / 2]
    );
    if std::env::var_os("OXVS_BENCH_QUICK").is_none() {
        criterion_run(&mut f);
    }
}
