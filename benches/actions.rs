//! Placeholder: action execution benchmarks land with issue #5.
fn main() {}
