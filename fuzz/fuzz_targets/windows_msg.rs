//! The Windows shim contract from the untrusted side: `data` is decoded as
//! a buffer of control messages (every typed reader runs over each), then
//! drives a hostile shim writing ring indices and descriptors while the
//! userspace rx/tx queues consume them. No panic, no out-of-bounds read;
//! the ring consumer's own oracle checks that no frame is lost or lent
//! twice and that every packet goes back to its pool.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dp_windows_ext::fuzzing::control_messages(data);
    let _ = dp_windows_ext::fuzzing::ring_consumer(data);
});
