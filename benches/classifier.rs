//! Placeholder: EMC/SMC/dpcls benchmarks land with issue #4.
fn main() {}
