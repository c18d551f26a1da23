//! An EMC holds no resident memory until entries are written: its array
//! comes from zeroed memory (`Emc::new`), so a PMD whose `auto` EMC is
//! never used does not pay its ~2.8 MB. Its own test binary: the
//! resident-set readings must not see other tests' allocations.

#![cfg(target_os = "linux")]

use dp_core::emc::Emc;
use dp_core::flow::FlowKey;
use dp_core::flow_table::FlowTable;

/// Resident bytes of this process (`/proc/self/statm`, field 2).
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|f| f.parse().ok())
        .expect("resident pages");
    pages * 4096
}

#[test]
fn emcs_hold_resident_memory_only_where_entries_were_written() {
    const EMCS: usize = 32;
    let size = Emc::default().heap_bytes() as u64;
    let before = resident_bytes();
    let mut emcs: Vec<Emc> = (0..EMCS).map(|_| Emc::default()).collect();
    let fresh = resident_bytes().saturating_sub(before);
    // 32 arrays of ~2.8 MB: written one by one, 90 MB resident.
    assert!(
        fresh < size * EMCS as u64 / 8,
        "{EMCS} fresh EMCs of {size} bytes made {fresh} bytes resident"
    );

    // Entries written everywhere in one EMC: its pages come in.
    let mut table: FlowTable<u32> = FlowTable::default();
    let mut key = FlowKey::ZERO;
    key.in_port = 1;
    let flow = table
        .insert(&key, &FlowKey::exact_mask(), None, 7, 0)
        .expect("insert");
    let before = resident_bytes();
    for hash in 0..emcs[0].capacity() as u32 {
        emcs[0].insert(&key, hash, flow, &table);
    }
    let written = resident_bytes().saturating_sub(before);
    assert!(
        written >= size / 2,
        "filling one EMC of {size} bytes made only {written} bytes resident"
    );
    assert_eq!(emcs[0].lookup(&key, 5, &table), Some(flow));
    assert_eq!(emcs[1].lookup(&key, 5, &table), None);
}
