//! oxvsctl: the oxvs command-line interface.
#![forbid(unsafe_code)]

use clap::Parser;

/// Inspect and control an oxvs datapath.
#[derive(Parser, Debug)]
#[command(name = "oxvsctl", version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
    eprintln!("oxvsctl: no subcommands yet; the control socket lands with the daemon issue");
    std::process::exit(2);
}
