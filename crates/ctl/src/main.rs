//! oxvsctl: the oxvs command-line interface.
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};
use std::io::{BufRead, Write};

/// Inspect and control an oxvs datapath.
#[derive(Parser, Debug)]
#[command(name = "oxvsctl", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// OVS datapath flow text (ODP format) tools; no daemon needed.
    #[command(subcommand)]
    Odp(OdpCommand),
}

/// Each reads one item per line on stdin and prints one normalised line
/// per input line (or `error: <reason>`), like OVS's `ovstest test-odp`.
#[derive(Subcommand, Debug, Clone, Copy)]
enum OdpCommand {
    /// Exact flow keys, printed as OVS prints a key after a flow round trip.
    #[command(name = "parse-keys")]
    Keys,
    /// Flow keys with masks (`field=value/mask`), printed as dump-flows does.
    #[command(name = "parse-masked-keys")]
    MaskedKeys,
    /// Datapath action lists.
    #[command(name = "parse-actions")]
    Actions,
}

fn normalize(cmd: OdpCommand, line: &str) -> Result<String, dp_core::odp::OdpError> {
    match cmd {
        OdpCommand::Keys => dp_core::odp::normalize_key(line),
        OdpCommand::MaskedKeys => dp_core::odp::normalize_masked_key(line),
        OdpCommand::Actions => dp_core::odp::normalize_actions(line),
    }
}

fn run_odp(cmd: OdpCommand) -> std::io::Result<()> {
    let stdin = std::io::stdin().lock();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for line in stdin.lines() {
        let line = line?;
        match normalize(cmd, &line) {
            Ok(s) => writeln!(out, "{s}")?,
            Err(e) => writeln!(out, "error: {e}")?,
        }
    }
    out.flush()
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Odp(cmd) => run_odp(cmd),
    };
    if let Err(e) = result {
        eprintln!("oxvsctl: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_odp_lines() {
        assert_eq!(normalize(OdpCommand::Actions, "1,2").unwrap(), "1,2");
        assert!(normalize(OdpCommand::Actions, "psample()").is_err());
        assert_eq!(
            normalize(OdpCommand::MaskedKeys, "in_port(1),eth_type(0x0800)").unwrap(),
            "in_port(1),eth_type(0x0800)"
        );
    }

    #[test]
    fn test_cli_parses() {
        let cli = Cli::try_parse_from(["oxvsctl", "odp", "parse-masked-keys"]).unwrap();
        assert!(matches!(cli.command, Command::Odp(OdpCommand::MaskedKeys)));
    }
}
