//! oxvsctl: the oxvs command-line interface.
//!
//! Daemon commands ([`daemon_cmds`]) talk to oxvsd over its control
//! socket ([`client`]); `odp` works on flow text with no daemon;
//! `completions` prints a shell completion script.
#![forbid(unsafe_code)]

mod capture;
mod client;
mod daemon_cmds;

use clap::{CommandFactory, Parser, Subcommand};
use dp_core::odp::{self, PortNames};
use std::io::{BufRead, Write};

/// Inspect and control an oxvs datapath.
#[derive(Parser, Debug)]
#[command(name = "oxvsctl", version, about)]
struct Cli {
    #[command(flatten)]
    connection: daemon_cmds::Connection,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// OVS datapath flow text (ODP format) tools; no daemon needed.
    Odp(OdpArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Live capture from a port into a pcap file (tcpdump/tshark read it).
    Capture(capture::CaptureArgs),
    #[command(flatten)]
    Daemon(daemon_cmds::DaemonCommand),
}

#[derive(clap::Args, Debug)]
struct OdpArgs {
    /// Port names as `1=p1,2=p2`: accepted in `in_port(NAME)` and as
    /// output ports, and printed instead of the numbers.
    #[arg(long, value_name = "N=NAME,...")]
    names: Option<dp_core::odp::PortNames>,
    #[command(subcommand)]
    command: OdpCommand,
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

fn normalize(
    cmd: OdpCommand,
    names: Option<&PortNames>,
    line: &str,
) -> Result<String, dp_core::odp::OdpError> {
    match cmd {
        OdpCommand::Keys => odp::normalize_key_with(line, names),
        OdpCommand::MaskedKeys => odp::normalize_masked_key_with(line, names),
        OdpCommand::Actions => odp::normalize_actions_with(line, names),
    }
}

fn run_odp(args: OdpArgs) -> std::io::Result<()> {
    let (cmd, names) = (args.command, args.names);
    let stdin = std::io::stdin().lock();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for line in stdin.lines() {
        let line = line?;
        match normalize(cmd, names.as_ref(), &line) {
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
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "oxvsctl",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Command::Daemon(cmd) => std::process::exit(daemon_cmds::run(&cli.connection, &cmd)),
        Command::Capture(args) => std::process::exit(capture::run(&cli.connection, &args)),
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
        assert_eq!(normalize(OdpCommand::Actions, None, "1,2").unwrap(), "1,2");
        assert!(normalize(OdpCommand::Actions, None, "psample()").is_err());
        let names: PortNames = "1=p1,2=p2".parse().unwrap();
        assert_eq!(
            normalize(OdpCommand::Actions, Some(&names), "p2,3").unwrap(),
            "p2,3"
        );
        assert_eq!(
            normalize(OdpCommand::MaskedKeys, Some(&names), "in_port(p1)").unwrap(),
            "in_port(p1)"
        );
        assert_eq!(
            normalize(OdpCommand::MaskedKeys, None, "in_port(1),eth_type(0x0800)").unwrap(),
            "in_port(1),eth_type(0x0800)"
        );
    }

    #[test]
    fn test_cli_parses() {
        let cli = Cli::try_parse_from(["oxvsctl", "odp", "parse-masked-keys"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Odp(OdpArgs {
                command: OdpCommand::MaskedKeys,
                names: None
            })
        ));
        let cli = Cli::try_parse_from(["oxvsctl", "odp", "--names", "1=a", "parse-keys"]).unwrap();
        let Command::Odp(args) = cli.command else {
            panic!("odp subcommand");
        };
        assert_eq!(args.names.unwrap().name(1), Some("a"));
        let cli = Cli::try_parse_from([
            "oxvsctl",
            "--socket",
            "/tmp/x",
            "dump-flows",
            "-m",
            "--pmd",
            "1",
        ])
        .unwrap();
        assert_eq!(cli.connection.socket, std::path::PathBuf::from("/tmp/x"));
        assert!(matches!(
            cli.command,
            Command::Daemon(daemon_cmds::DaemonCommand::DumpFlows {
                more: true,
                pmd: Some(1),
                ..
            })
        ));
        let cli = Cli::try_parse_from([
            "oxvsctl", "capture", "p1", "--rx", "--count", "100", "-w", "x.pcap",
        ])
        .unwrap();
        let Command::Capture(args) = cli.command else {
            panic!("capture subcommand");
        };
        assert_eq!(
            args.start_params(std::path::Path::new("/d")),
            ["p1", "/d/x.pcap", "--rx", "--count", "100"]
        );
        assert!(
            Cli::try_parse_from(["oxvsctl", "capture", "p1"]).is_err(),
            "-w is required"
        );
        assert!(
            Cli::try_parse_from(["oxvsctl", "capture", "p1", "--rx", "--tx", "-w", "f"]).is_err()
        );
        assert!(Cli::try_parse_from(["oxvsctl", "capture", "--stop"]).is_ok());
        let cli = Cli::try_parse_from(["oxvsctl", "call", "dpctl/show", "-s"]).unwrap();
        assert!(
            matches!(cli.command, Command::Daemon(daemon_cmds::DaemonCommand::Call { ref args, .. }) if args == &["-s"])
        );
    }
}
