//! OVS ODP text conformance: the data under `../shared/conformance/odp/`
//! (taken from OVS's own test suite) must parse and print back exactly as
//! OVS does. Lines for families oxvs does not implement must be rejected
//! with an "unsupported" error and are listed here, so the gap is visible.

use dp_core::odp::{self, OdpError};

fn data(name: &str) -> Vec<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/conformance/odp/"
    );
    let text = std::fs::read_to_string(format!("{path}{name}"))
        .unwrap_or_else(|e| panic!("reading {path}{name}: {e}"));
    text.lines().map(str::to_owned).collect()
}

/// Checks every line; returns the 1-based numbers of the lines rejected as
/// unsupported. Any other mismatch fails the test.
fn check(
    name: &str,
    expected: &[String],
    f: impl Fn(&str) -> Result<String, OdpError>,
) -> Vec<usize> {
    let input = data(name);
    let mut unsupported = Vec::new();
    let mut failures = Vec::new();
    for (i, line) in input.iter().enumerate() {
        match f(line) {
            Ok(out) if out == expected[i] => {}
            Ok(out) => failures.push(format!(
                "{name}:{}:\n  in:   {line}\n  want: {}\n  got:  {out}",
                i + 1,
                expected[i]
            )),
            Err(OdpError::Unsupported(why)) => {
                eprintln!("{name}:{}: unsupported: {why}", i + 1);
                unsupported.push(i + 1);
            }
            Err(e) => failures.push(format!("{name}:{}: {e}\n  in: {line}", i + 1)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!(
        "{name}: {} lines, {} pass, {} unsupported",
        input.len(),
        input.len() - unsupported.len(),
        unsupported.len()
    );
    unsupported
}

#[test]
fn masked_keys_round_trip() {
    let lines = data("masked-keys.txt");
    let unsupported = check("masked-keys.txt", &lines, odp::normalize_masked_key);
    assert_eq!(unsupported, Vec::<usize>::new());
}

#[test]
fn keys_normalize_like_ovs() {
    let expected = data("keys.expected.txt");
    let unsupported = check("keys.txt", &expected, odp::normalize_key);
    assert_eq!(unsupported, Vec::<usize>::new());
}

#[test]
fn actions_round_trip() {
    let lines = data("actions.txt");
    let unsupported = check("actions.txt", &lines, odp::normalize_actions);
    assert_eq!(unsupported, Vec::<usize>::new());
}

#[test]
fn invalid_actions_are_rejected() {
    for line in data("actions-invalid.txt") {
        match odp::normalize_actions(&line) {
            Ok(out) => panic!("accepted invalid actions {line:?} as {out:?}"),
            Err(e) => eprintln!("rejected {line:?}: {e}"),
        }
    }
}
