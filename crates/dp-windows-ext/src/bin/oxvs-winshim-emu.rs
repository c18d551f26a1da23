//! `oxvs-winshim-emu`: the Hyper-V shim emulator as a process, for demos
//! and for running oxvsd's `windows` ports on Linux.
//!
//! ```text
//! oxvs-winshim-emu --socket /run/oxvs/winshim.sock \
//!     --port OVS-vm1=veth-vm1:vmnic --port OVS-uplink=eth1:external
//! ```
//! Each `--port FRIENDLY=IFNAME[:KIND]` is an emulated Hyper-V port backed
//! by a Linux interface (kind: external, internal, vmnic; default vmnic).
//! It runs until killed, or with `--exit-on-eof` until stdin reaches end
//! of file (then it removes its socket and ring files); the counters are
//! printed every `--stats SECS` seconds when given.

#[cfg(not(windows))]
fn main() {
    use dp_windows_ext::contract::PortKind;
    use dp_windows_ext::emulator::{EmuPortConfig, Emulator, EmulatorConfig};
    use std::sync::atomic::Ordering;

    let usage = "usage: oxvs-winshim-emu [--socket PATH] [--stats SECS] [--exit-on-eof] --port FRIENDLY=IFNAME[:KIND]...";
    let mut config = EmulatorConfig::new(dp_windows_ext::device::default_path());
    let mut stats_every = None;
    let mut exit_on_eof = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next().unwrap_or_else(|| {
                eprintln!("{arg} needs a value\n{usage}");
                std::process::exit(2)
            })
        };
        match arg.as_str() {
            "--socket" => config.socket = value().into(),
            "--shm-dir" => config.shm_dir = value().into(),
            "--stats" => stats_every = value().parse::<u64>().ok(),
            "--exit-on-eof" => exit_on_eof = true,
            "--port" => {
                let spec = value();
                let parsed = spec.split_once('=').and_then(|(name, rest)| {
                    let (ifname, kind) = match rest.split_once(':') {
                        Some((i, k)) => (i, PortKind::parse(k)?),
                        None => (rest, PortKind::VmNic),
                    };
                    Some(EmuPortConfig {
                        friendly_name: name.to_string(),
                        ifname: ifname.to_string(),
                        kind,
                    })
                });
                match parsed {
                    Some(p) => config.ports.push(p),
                    None => {
                        eprintln!(
                            "--port {spec}: expected FRIENDLY=IFNAME[:external|internal|vmnic]"
                        );
                        std::process::exit(2);
                    }
                }
            }
            "-h" | "--help" => {
                println!("{usage}");
                return;
            }
            _ => {
                eprintln!("unknown argument {arg}\n{usage}");
                std::process::exit(2);
            }
        }
    }
    if let Some(dir) = config.socket.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let emulator = match Emulator::start(config.clone()) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("oxvs-winshim-emu: {e}");
            std::process::exit(1);
        }
    };
    println!(
        "oxvs-winshim-emu: listening on {} with {} port(s)",
        emulator.socket().display(),
        config.ports.len()
    );
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let d = std::sync::Arc::clone(&done);
    std::thread::spawn(move || {
        if !exit_on_eof {
            return;
        }
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        d.store(true, Ordering::Release);
    });
    let started = std::time::Instant::now();
    let mut last = 0;
    while !done.load(Ordering::Acquire) {
        std::thread::sleep(std::time::Duration::from_millis(200));
        if let Some(every) = stats_every.filter(|s| *s > 0) {
            let now = started.elapsed().as_secs();
            if now / every != last {
                last = now / every;
                let s = emulator.stats();
                println!(
                    "punted {} injected {} queued {} dropped {} bad {:?}",
                    s.punted.load(Ordering::Relaxed),
                    s.injected.load(Ordering::Relaxed),
                    s.queued.load(Ordering::Relaxed),
                    s.dropped.load(Ordering::Relaxed),
                    s.bad.nonzero()
                );
            }
        }
    }
}

#[cfg(windows)]
fn main() {
    eprintln!(
        "oxvs-winshim-emu emulates the Windows shim on Linux; on Windows, install the driver"
    );
    std::process::exit(2);
}
