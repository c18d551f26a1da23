//! oxvsd: the oxvs daemon. The config-to-datapath wiring lands with the
//! daemon issue; until then it only reports its version.
#![forbid(unsafe_code)]

fn main() {
    println!("oxvsd {}", env!("CARGO_PKG_VERSION"));
    eprintln!("oxvsd: the datapath is not wired yet (see the daemon issue); exiting");
    std::process::exit(2);
}
