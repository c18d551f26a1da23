//! OpenFlow rule tables as an immutable, versioned snapshot, and the
//! flow-mod semantics that produce the next snapshot.
//!
//! # How it works
//! A [`RuleSet`] holds tables 0..=254, each a [`Classifier`] of
//! `Arc<Rule>`, behind `Arc`s so a new version shares every table it
//! did not change. [`RuleSet::apply`] takes a batch of [`FlowMod`]s,
//! copies only the tables they touch, and returns the next version; the
//! owner ([`crate::Ofproto`]) publishes it by swapping an `Arc`, so
//! translation never waits for a flow mod and never sees half of one.
//!
//! Rule statistics (`n_packets`, `n_bytes`, last use) are atomics in an
//! `Arc<RuleStats>` shared by every version of the rule, so a modify that
//! keeps counters and the datapath's stats crediting need no lock.
//!
//! # Semantics (OpenFlow 1.0 as `ovs-ofctl` uses it)
//! - add replaces a rule with the same match and priority in the table
//!   (keeping its counters unless `reset_counts`), or fails on
//!   `check_overlap` if a same-priority rule overlaps.
//! - modify (loose) changes the actions of every rule the request covers,
//!   strict only the one with the same match and priority; if nothing
//!   matched, it adds the rule, as OpenFlow 1.0 specifies.
//! - delete (loose/strict) selects the same way, filtered by cookie mask
//!   and `out_port`.
//! - Hard timeouts count from the last add or modify, idle timeouts from
//!   the last use (or the add).

use crate::actions::OfAction;
use crate::classifier::{Classifier, Entry};
use crate::r#match::Match;
use crate::parse::{FlowMod, FlowModCommand, FlowModFlags};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Number of OpenFlow tables (0..=254).
pub const N_TABLES: usize = 255;

/// Counters shared by all versions of a rule.
#[derive(Debug, Default)]
pub struct RuleStats {
    pub n_packets: AtomicU64,
    pub n_bytes: AtomicU64,
    /// Last time (ms) a packet hit the rule; 0 if never.
    pub used_ms: AtomicU64,
}

/// One installed rule.
#[derive(Debug)]
pub struct Rule {
    pub table_id: u8,
    pub priority: u16,
    pub r#match: Match,
    pub actions: Vec<OfAction>,
    pub cookie: u64,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    pub flags: FlowModFlags,
    /// When the rule was added (ms), for `duration`.
    pub created_ms: u64,
    /// When the rule was last added or modified (ms), for the hard timeout.
    pub modified_ms: u64,
    pub stats: Arc<RuleStats>,
}

impl Rule {
    /// Credits `packets`/`bytes` seen at `now_ms` (revalidator or upcall).
    pub fn credit(&self, packets: u64, bytes: u64, now_ms: u64) {
        self.stats.n_packets.fetch_add(packets, Ordering::Relaxed);
        self.stats.n_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.stats.used_ms.fetch_max(now_ms, Ordering::Relaxed);
    }

    pub fn n_packets(&self) -> u64 {
        self.stats.n_packets.load(Ordering::Relaxed)
    }

    pub fn n_bytes(&self) -> u64 {
        self.stats.n_bytes.load(Ordering::Relaxed)
    }

    /// True when an action outputs to `port` (the `out_port` filter).
    pub fn outputs_to(&self, port: u32) -> bool {
        self.actions.iter().any(|a| match a {
            OfAction::Output { port: p } => *p == port,
            OfAction::Controller { .. } => port == crate::ports::OFPP_CONTROLLER,
            _ => false,
        })
    }

    /// Why the rule has expired at `now_ms`, if it has.
    pub fn expired(&self, now_ms: u64) -> Option<ExpireReason> {
        if self.hard_timeout > 0 && now_ms >= self.modified_ms + u64::from(self.hard_timeout) * 1000
        {
            return Some(ExpireReason::Hard);
        }
        if self.idle_timeout > 0 {
            let used = self
                .stats
                .used_ms
                .load(Ordering::Relaxed)
                .max(self.modified_ms);
            if now_ms >= used + u64::from(self.idle_timeout) * 1000 {
                return Some(ExpireReason::Idle);
            }
        }
        None
    }
}

/// Why a rule left the table by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpireReason {
    Idle,
    Hard,
}

/// A rule that timed out, and why.
pub type ExpiredRule = (Arc<Rule>, ExpireReason);

/// Why a flow mod was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FlowModError {
    /// `check_overlap` found an overlapping rule of the same priority.
    Overlap { table_id: u8 },
}

impl std::fmt::Display for FlowModError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FlowModError::Overlap { table_id } => write!(
                f,
                "check_overlap: an overlapping rule of the same priority exists in table {table_id}"
            ),
        }
    }
}

impl std::error::Error for FlowModError {}

/// The rule tables at one version (see the module docs).
#[derive(Clone, Debug)]
pub struct RuleSet {
    pub version: u64,
    tables: Vec<Arc<Classifier<Arc<Rule>>>>,
}

impl Default for RuleSet {
    fn default() -> Self {
        let empty = Arc::new(Classifier::new());
        RuleSet {
            version: 0,
            tables: vec![empty; N_TABLES],
        }
    }
}

impl RuleSet {
    /// Table `id` (empty for 255).
    pub fn table(&self, id: u8) -> Option<&Classifier<Arc<Rule>>> {
        self.tables.get(usize::from(id)).map(|t| &**t)
    }

    /// Total number of rules.
    pub fn n_rules(&self) -> usize {
        self.tables.iter().map(|t| t.len()).sum()
    }

    /// Every rule, by table then priority (highest first), as
    /// `dump-flows` lists them.
    pub fn rules(&self) -> Vec<Arc<Rule>> {
        let mut out = Vec::new();
        for t in &self.tables {
            let mut v: Vec<&Entry<Arc<Rule>>> = t.iter().collect();
            v.sort_by(|a, b| {
                b.priority
                    .cmp(&a.priority)
                    .then_with(|| a.rule.created_ms.cmp(&b.rule.created_ms))
            });
            out.extend(v.into_iter().map(|e| e.rule.clone()));
        }
        out
    }

    /// The rules `fm` selects, as modify and delete would (strict or
    /// covering), in `dump-flows` order.
    pub fn select(&self, fm: &FlowMod, strict: bool) -> Vec<Arc<Rule>> {
        let mut out: Vec<Arc<Rule>> = Vec::new();
        for table in Self::tables_for(fm) {
            let mut v: Vec<&Entry<Arc<Rule>>> = self.tables[table]
                .iter()
                .filter(|e| Self::selected(fm, e, strict))
                .collect();
            v.sort_by(|a, b| {
                b.priority
                    .cmp(&a.priority)
                    .then_with(|| a.rule.created_ms.cmp(&b.rule.created_ms))
            });
            out.extend(v.into_iter().map(|e| e.rule.clone()));
        }
        out
    }

    fn tables_for(fm: &FlowMod) -> std::ops::Range<usize> {
        match fm.table_id {
            Some(t) => usize::from(t)..usize::from(t) + 1,
            None if fm.command == FlowModCommand::Add => 0..1,
            None => 0..N_TABLES,
        }
    }

    fn selected(fm: &FlowMod, e: &Entry<Arc<Rule>>, strict: bool) -> bool {
        let r = &e.rule;
        let by_match = if strict {
            e.priority == fm.priority && e.r#match == fm.r#match
        } else {
            fm.r#match.covers(&e.r#match)
        };
        by_match
            && (r.cookie & fm.cookie_mask) == (fm.cookie & fm.cookie_mask)
            && fm.out_port.is_none_or(|p| r.outputs_to(p))
    }

    /// Applies a batch of flow mods at `now_ms`, returning the next
    /// version and the rules that were removed. Either the whole batch
    /// applies or none of it does.
    pub fn apply(
        &self,
        mods: &[FlowMod],
        now_ms: u64,
    ) -> Result<(RuleSet, Vec<Arc<Rule>>), FlowModError> {
        let mut next = self.clone();
        let mut removed = Vec::new();
        for fm in mods {
            next.apply_one(fm, now_ms, &mut removed)?;
        }
        next.version = self.version + 1;
        Ok((next, removed))
    }

    fn add(&mut self, fm: &FlowMod, table: usize, now_ms: u64) -> Result<(), FlowModError> {
        let t = Arc::make_mut(&mut self.tables[table]);
        if fm.flags.check_overlap
            && t.iter().any(|e| {
                e.priority == fm.priority
                    && e.r#match != fm.r#match
                    && e.r#match.overlaps(&fm.r#match)
            })
        {
            return Err(FlowModError::Overlap {
                table_id: table as u8,
            });
        }
        let old = t
            .find_exact(&fm.r#match, fm.priority)
            .map(|e| e.rule.clone());
        let stats = match &old {
            Some(o) if !fm.flags.reset_counts => o.stats.clone(),
            _ => Arc::new(RuleStats::default()),
        };
        let rule = Arc::new(Rule {
            table_id: table as u8,
            priority: fm.priority,
            r#match: fm.r#match,
            actions: fm.actions.clone(),
            cookie: fm.cookie,
            idle_timeout: fm.idle_timeout,
            hard_timeout: fm.hard_timeout,
            flags: fm.flags,
            created_ms: now_ms,
            modified_ms: now_ms,
            stats,
        });
        t.insert(fm.r#match, fm.priority, rule);
        Ok(())
    }

    fn apply_one(
        &mut self,
        fm: &FlowMod,
        now_ms: u64,
        removed: &mut Vec<Arc<Rule>>,
    ) -> Result<(), FlowModError> {
        match fm.command {
            FlowModCommand::Add => {
                let table = Self::tables_for(fm).start;
                self.add(fm, table, now_ms)
            }
            FlowModCommand::Modify { strict } => {
                let mut any = false;
                for table in Self::tables_for(fm) {
                    let victims: Vec<Arc<Rule>> = self.tables[table]
                        .iter()
                        .filter(|e| Self::selected(fm, e, strict))
                        .map(|e| e.rule.clone())
                        .collect();
                    if victims.is_empty() {
                        continue;
                    }
                    any = true;
                    let t = Arc::make_mut(&mut self.tables[table]);
                    for old in victims {
                        let stats = if fm.flags.reset_counts {
                            Arc::new(RuleStats::default())
                        } else {
                            old.stats.clone()
                        };
                        let rule = Arc::new(Rule {
                            actions: fm.actions.clone(),
                            modified_ms: now_ms,
                            stats,
                            r#match: old.r#match,
                            table_id: old.table_id,
                            priority: old.priority,
                            cookie: old.cookie,
                            idle_timeout: old.idle_timeout,
                            hard_timeout: old.hard_timeout,
                            flags: old.flags,
                            created_ms: old.created_ms,
                        });
                        t.insert(old.r#match, old.priority, rule);
                    }
                }
                if !any {
                    let add = FlowMod {
                        command: FlowModCommand::Add,
                        ..fm.clone()
                    };
                    let table = usize::from(fm.table_id.unwrap_or(0));
                    self.add(&add, table, now_ms)?;
                }
                Ok(())
            }
            FlowModCommand::Delete { strict } => {
                for table in Self::tables_for(fm) {
                    let victims: Vec<(Match, u16)> = self.tables[table]
                        .iter()
                        .filter(|e| Self::selected(fm, e, strict))
                        .map(|e| (e.r#match, e.priority))
                        .collect();
                    if victims.is_empty() {
                        continue;
                    }
                    let t = Arc::make_mut(&mut self.tables[table]);
                    for (m, p) in victims {
                        if let Some(r) = t.remove(&m, p) {
                            removed.push(r);
                        }
                    }
                }
                Ok(())
            }
        }
    }

    /// The next version without the rules expired at `now_ms` (and the
    /// expired rules), or `None` when nothing expired.
    pub fn expire(&self, now_ms: u64) -> Option<(RuleSet, Vec<ExpiredRule>)> {
        let mut next: Option<RuleSet> = None;
        let mut gone = Vec::new();
        for table in 0..N_TABLES {
            let victims: Vec<(Arc<Rule>, ExpireReason)> = self.tables[table]
                .iter()
                .filter_map(|e| e.rule.expired(now_ms).map(|r| (e.rule.clone(), r)))
                .collect();
            if victims.is_empty() {
                continue;
            }
            let n = next.get_or_insert_with(|| self.clone());
            let t = Arc::make_mut(&mut n.tables[table]);
            for (r, why) in victims {
                t.remove(&r.r#match, r.priority);
                gone.push((r, why));
            }
        }
        next.map(|mut n| {
            n.version = self.version + 1;
            (n, gone)
        })
    }

    /// The same tables at the next version (after a port change, so that
    /// installed megaflows get revalidated).
    pub fn bumped(&self) -> RuleSet {
        RuleSet {
            version: self.version + 1,
            tables: self.tables.clone(),
        }
    }
}
