//! The MAC learning table behind the NORMAL action (OVS
//! `lib/mac-learning.c`, reduced): which port each (VLAN, MAC) was last
//! seen on, with aging and a size limit.
//!
//! # How it works
//! One `HashMap<(vlan, mac), entry>` under a `Mutex`. It is the only state
//! translation writes, and it does so once per NORMAL upcall, so a single
//! short critical section is cheaper than sharding would be. Time is
//! always passed in (`now_ms`): nothing here reads a clock, so tests age
//! entries by passing a later `now`.
//!
//! Every change that can alter a forwarding decision (a new entry, a MAC
//! moving port, expiry, flushes) bumps [`MacLearning::seq`]. A megaflow
//! whose translation used NORMAL records the `seq` it saw; the
//! revalidator re-translates it when the number moved. Refreshing an
//! existing entry does not bump it.
//!
//! # Invariants
//! - At most `max_entries` entries; inserting into a full table evicts
//!   the least recently seen entry (OVS evicts per port; this is simpler
//!   and also bounded).
//! - An entry older than `idle_ms` is never returned by `lookup`, even
//!   before `expire` removes it.

use crate::ports::{PortNamer, format_port};
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// OVS's default MAC aging time.
pub const DEFAULT_IDLE_MS: u64 = 300_000;
/// OVS's default table size.
pub const DEFAULT_MAX_ENTRIES: usize = 2048;

/// One learned address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MacEntry {
    pub vlan: u16,
    pub mac: [u8; 6],
    /// OpenFlow port it was learned on.
    pub port: u32,
    pub last_seen_ms: u64,
}

#[derive(Debug)]
struct Inner {
    table: HashMap<(u16, [u8; 6]), MacEntry>,
    max_entries: usize,
    idle_ms: u64,
}

/// The shared learning table (see the module docs).
#[derive(Debug)]
pub struct MacLearning {
    inner: Mutex<Inner>,
    seq: AtomicU64,
}

impl Default for MacLearning {
    fn default() -> Self {
        MacLearning::new(DEFAULT_IDLE_MS, DEFAULT_MAX_ENTRIES)
    }
}

impl MacLearning {
    pub fn new(idle_ms: u64, max_entries: usize) -> MacLearning {
        MacLearning {
            inner: Mutex::new(Inner {
                table: HashMap::new(),
                max_entries: max_entries.max(1),
                idle_ms,
            }),
            seq: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the map invalid
        // (every update is a single insert or remove), so keep going.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.seq.fetch_add(1, Ordering::Release);
    }

    /// The change counter (see the module docs).
    pub fn seq(&self) -> u64 {
        self.seq.load(Ordering::Acquire)
    }

    /// Changes aging time and size limit (entries over the new limit are
    /// evicted oldest first).
    pub fn configure(&self, idle_ms: u64, max_entries: usize) {
        let mut g = self.lock();
        g.idle_ms = idle_ms;
        g.max_entries = max_entries.max(1);
        let mut evicted = false;
        while g.table.len() > g.max_entries {
            evict_oldest(&mut g);
            evicted = true;
        }
        drop(g);
        if evicted {
            self.bump();
        }
    }

    /// Records that `mac` in `vlan` was seen on `port` at `now_ms`.
    /// Returns true when this changed the table (new or moved entry).
    pub fn learn(&self, vlan: u16, mac: [u8; 6], port: u32, now_ms: u64) -> bool {
        let mut g = self.lock();
        let idle = g.idle_ms;
        if let Some(e) = g.table.get_mut(&(vlan, mac)) {
            let expired = now_ms.saturating_sub(e.last_seen_ms) >= idle;
            let moved = e.port != port;
            e.port = port;
            e.last_seen_ms = e.last_seen_ms.max(now_ms);
            drop(g);
            if moved || expired {
                self.bump();
            }
            return moved || expired;
        }
        if g.table.len() >= g.max_entries {
            evict_oldest(&mut g);
        }
        g.table.insert(
            (vlan, mac),
            MacEntry {
                vlan,
                mac,
                port,
                last_seen_ms: now_ms,
            },
        );
        drop(g);
        self.bump();
        true
    }

    /// The port `mac` in `vlan` was learned on, unless aged out.
    pub fn lookup(&self, vlan: u16, mac: [u8; 6], now_ms: u64) -> Option<u32> {
        let g = self.lock();
        let e = g.table.get(&(vlan, mac))?;
        (now_ms.saturating_sub(e.last_seen_ms) < g.idle_ms).then_some(e.port)
    }

    /// Removes entries idle for the aging time; returns how many.
    pub fn expire(&self, now_ms: u64) -> usize {
        let mut g = self.lock();
        let idle = g.idle_ms;
        let before = g.table.len();
        g.table
            .retain(|_, e| now_ms.saturating_sub(e.last_seen_ms) < idle);
        let n = before - g.table.len();
        drop(g);
        if n > 0 {
            self.bump();
        }
        n
    }

    /// Forgets everything learned on `port` (port removal).
    pub fn flush_port(&self, port: u32) -> usize {
        let mut g = self.lock();
        let before = g.table.len();
        g.table.retain(|_, e| e.port != port);
        let n = before - g.table.len();
        drop(g);
        if n > 0 {
            self.bump();
        }
        n
    }

    /// Forgets everything (`fdb/flush`).
    pub fn flush(&self) -> usize {
        let mut g = self.lock();
        let n = g.table.len();
        g.table.clear();
        drop(g);
        self.bump();
        n
    }

    pub fn len(&self) -> usize {
        self.lock().table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All entries, by port, VLAN and MAC.
    pub fn entries(&self) -> Vec<MacEntry> {
        let mut v: Vec<MacEntry> = self.lock().table.values().copied().collect();
        v.sort_by_key(|e| (e.port, e.vlan, e.mac));
        v
    }

    /// `ovs-appctl fdb/show` output.
    pub fn format_fdb(&self, names: Option<&dyn PortNamer>, now_ms: u64) -> String {
        let mut s = String::from(" port  VLAN  MAC                Age\n");
        let idle = self.lock().idle_ms;
        for e in self.entries() {
            let age = now_ms.saturating_sub(e.last_seen_ms);
            if age >= idle {
                continue;
            }
            let mut port = String::new();
            format_port(&mut port, e.port, names);
            let m = e.mac;
            let _ = writeln!(
                s,
                "{port:>5}  {:>4}  {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}  {:>3}",
                e.vlan,
                m[0],
                m[1],
                m[2],
                m[3],
                m[4],
                m[5],
                age / 1000
            );
        }
        s
    }
}

fn evict_oldest(g: &mut Inner) {
    if let Some(k) = g
        .table
        .iter()
        .min_by_key(|(k, e)| (e.last_seen_ms, **k))
        .map(|(k, _)| *k)
    {
        g.table.remove(&k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 6] = [0, 0, 0, 0, 0, 0xa];
    const B: [u8; 6] = [0, 0, 0, 0, 0, 0xb];

    #[test]
    fn learn_move_age_and_seq() {
        let ml = MacLearning::new(1000, 10);
        let s0 = ml.seq();
        assert!(ml.learn(0, A, 1, 0));
        assert!(ml.seq() > s0);
        let s1 = ml.seq();
        assert!(!ml.learn(0, A, 1, 500), "refresh is not a change");
        assert_eq!(ml.seq(), s1);
        assert_eq!(ml.lookup(0, A, 1499), Some(1));
        assert_eq!(ml.lookup(0, A, 1500), None, "aged out");
        assert_eq!(ml.lookup(7, A, 0), None, "VLANs are separate");
        assert!(ml.learn(0, A, 2, 600), "moved");
        assert_eq!(ml.lookup(0, A, 600), Some(2));
        assert_eq!(ml.expire(1599), 0);
        assert_eq!(ml.expire(1600), 1);
        assert!(ml.is_empty());
    }

    #[test]
    fn size_limit_evicts_oldest() {
        let ml = MacLearning::new(10_000, 2);
        ml.learn(0, A, 1, 1);
        ml.learn(0, B, 1, 2);
        ml.learn(5, A, 2, 3);
        assert_eq!(ml.len(), 2);
        assert_eq!(ml.lookup(0, A, 3), None);
        assert_eq!(ml.lookup(0, B, 3), Some(1));
    }

    #[test]
    fn fdb_show_format() {
        let ml = MacLearning::default();
        ml.learn(10, [0x50, 0x54, 0, 0, 0, 1], 1, 0);
        assert_eq!(
            ml.format_fdb(None, 2500),
            " port  VLAN  MAC                Age\n    1    10  50:54:00:00:00:01    2\n"
        );
        assert_eq!(ml.flush_port(1), 1);
        assert_eq!(ml.flush_port(1), 0);
    }
}
