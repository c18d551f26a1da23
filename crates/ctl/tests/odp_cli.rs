//! `oxvsctl odp ...` end to end: the conformance files through the real
//! binary, one output line per input line.

use std::io::Write;
use std::process::{Command, Stdio};

fn conformance(name: &str) -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/conformance/odp/"
    );
    std::fs::read_to_string(format!("{path}{name}")).unwrap()
}

fn run(sub: &str, input: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_oxvsctl"))
        .args(["odp", sub])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn parse_keys_matches_expected() {
    assert_eq!(
        run("parse-keys", &conformance("keys.txt")),
        conformance("keys.expected.txt")
    );
}

#[test]
fn parse_masked_keys_is_identity() {
    let input = conformance("masked-keys.txt");
    assert_eq!(run("parse-masked-keys", &input), input);
}

#[test]
fn parse_actions_is_identity_and_rejects_invalid() {
    let input = conformance("actions.txt");
    assert_eq!(run("parse-actions", &input), input);
    let invalid = conformance("actions-invalid.txt");
    let out = run("parse-actions", &invalid);
    assert_eq!(out.lines().count(), invalid.lines().count());
    assert!(out.lines().all(|l| l.starts_with("error: ")), "{out}");
}
