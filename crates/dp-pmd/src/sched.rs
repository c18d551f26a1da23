//! Assigning receive queues to PMD threads (OVS `pmd-rxq-assign`).
//!
//! Pure functions over a description of the queues and the cores, so the
//! policies can be tested without threads:
//! - `roundrobin`: queues in port/queue order, dealt to PMDs in turn;
//! - `cycles` (default): queues sorted by measured processing cycles,
//!   busiest first, dealt to PMDs in turn;
//! - `group`: queues sorted by cycles, each given to the PMD with the least
//!   load so far (measured cycles; queue count breaks ties).
//!
//! A queue with `pmd-rxq-affinity` goes to the PMD on that core whatever
//! the policy, and that PMD is isolated (gets no other queues) unless
//! `isolate` is off, as in OVS. A queue pinned to a core with no PMD is
//! reported as an error and left to the policy.

use std::fmt;
use std::str::FromStr;

/// The assignment policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RxqAssign {
    RoundRobin,
    #[default]
    Cycles,
    Group,
}

impl FromStr for RxqAssign {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "roundrobin" => Ok(RxqAssign::RoundRobin),
            "cycles" => Ok(RxqAssign::Cycles),
            "group" => Ok(RxqAssign::Group),
            other => Err(format!(
                "pmd-rxq-assign: unknown policy \"{other}\" (expected roundrobin, cycles or group)"
            )),
        }
    }
}

impl fmt::Display for RxqAssign {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RxqAssign::RoundRobin => "roundrobin",
            RxqAssign::Cycles => "cycles",
            RxqAssign::Group => "group",
        })
    }
}

/// One receive queue to place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RxqInfo {
    pub port_no: u32,
    pub port_name: String,
    pub qid: usize,
    /// Core requested by `pmd-rxq-affinity`.
    pub affinity: Option<usize>,
    /// Processing cycles measured over the history window.
    pub cycles: u64,
}

/// Where each queue goes: `(index into the input, core)`, plus warnings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Assignment {
    pub placements: Vec<(usize, usize)>,
    pub warnings: Vec<String>,
}

impl Assignment {
    /// The core assigned to input queue `index`.
    pub fn core_of(&self, index: usize) -> Option<usize> {
        self.placements
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, c)| *c)
    }
}

/// Places `rxqs` on the PMDs of `cores` (see the module docs).
pub fn assign_rxqs(
    rxqs: &[RxqInfo],
    cores: &[usize],
    policy: RxqAssign,
    isolate: bool,
) -> Assignment {
    let mut out = Assignment::default();
    if cores.is_empty() {
        out.warnings
            .push("no PMD cores: receive queues are not polled".into());
        return out;
    }
    let mut load = vec![(0u64, 0usize); cores.len()];
    let mut isolated = vec![false; cores.len()];
    let mut free = Vec::new();
    for (i, q) in rxqs.iter().enumerate() {
        match q.affinity {
            Some(core) => match cores.iter().position(|c| *c == core) {
                Some(p) => {
                    out.placements.push((i, core));
                    load[p].0 += q.cycles;
                    load[p].1 += 1;
                    isolated[p] = isolate;
                }
                None => {
                    out.warnings.push(format!(
                        "port {} queue {}: pmd-rxq-affinity core {core} has no PMD thread; assigned by {policy}",
                        q.port_name, q.qid
                    ));
                    free.push(i);
                }
            },
            None => free.push(i),
        }
    }
    let candidates: Vec<usize> = (0..cores.len()).filter(|p| !isolated[*p]).collect();
    if candidates.is_empty() {
        if !free.is_empty() {
            out.warnings.push(
                "every PMD is isolated by pmd-rxq-affinity: other queues are not polled".into(),
            );
        }
        return out;
    }
    match policy {
        RxqAssign::RoundRobin => {
            free.sort_by_key(|&i| (rxqs[i].port_no, rxqs[i].qid));
        }
        RxqAssign::Cycles | RxqAssign::Group => {
            free.sort_by_key(|&i| {
                (
                    std::cmp::Reverse(rxqs[i].cycles),
                    rxqs[i].port_no,
                    rxqs[i].qid,
                )
            });
        }
    }
    for (n, i) in free.into_iter().enumerate() {
        let p = match policy {
            RxqAssign::RoundRobin | RxqAssign::Cycles => candidates[n % candidates.len()],
            RxqAssign::Group => *candidates
                .iter()
                .min_by_key(|&&p| (load[p].0, load[p].1, p))
                .expect("candidates is not empty"),
        };
        load[p].0 += rxqs[i].cycles;
        load[p].1 += 1;
        out.placements.push((i, cores[p]));
    }
    out
}

/// Parses `pmd-rxq-affinity` ("0:3,1:7": queue 0 on core 3, queue 1 on
/// core 7) into `(qid, core)` pairs.
pub fn parse_rxq_affinity(text: &str) -> Result<Vec<(usize, usize)>, String> {
    let mut out = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (q, c) = item
            .split_once(':')
            .ok_or_else(|| format!("pmd-rxq-affinity: \"{item}\" is not QUEUE:CORE"))?;
        let q = q
            .trim()
            .parse()
            .map_err(|_| format!("pmd-rxq-affinity: bad queue id \"{q}\""))?;
        let c = c
            .trim()
            .parse()
            .map_err(|_| format!("pmd-rxq-affinity: bad core id \"{c}\""))?;
        if out.iter().any(|(seen, _)| *seen == q) {
            return Err(format!("pmd-rxq-affinity: queue {q} listed twice"));
        }
        out.push((q, c));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(port_no: u32, qid: usize, cycles: u64, affinity: Option<usize>) -> RxqInfo {
        RxqInfo {
            port_no,
            port_name: format!("p{port_no}"),
            qid,
            affinity,
            cycles,
        }
    }

    #[test]
    fn roundrobin_deals_in_port_queue_order() {
        let rxqs = [
            q(2, 0, 0, None),
            q(1, 1, 0, None),
            q(1, 0, 0, None),
            q(2, 1, 0, None),
        ];
        let a = assign_rxqs(&rxqs, &[3, 5], RxqAssign::RoundRobin, true);
        assert_eq!(a.core_of(2), Some(3)); // p1 q0
        assert_eq!(a.core_of(1), Some(5)); // p1 q1
        assert_eq!(a.core_of(0), Some(3)); // p2 q0
        assert_eq!(a.core_of(3), Some(5)); // p2 q1
    }

    #[test]
    fn cycles_deals_busiest_first_and_group_balances_load() {
        let rxqs = [
            q(1, 0, 100, None),
            q(1, 1, 90, None),
            q(1, 2, 10, None),
            q(1, 3, 5, None),
        ];
        let a = assign_rxqs(&rxqs, &[0, 1], RxqAssign::Cycles, true);
        assert_eq!(
            [a.core_of(0), a.core_of(1), a.core_of(2), a.core_of(3)],
            [Some(0), Some(1), Some(0), Some(1)]
        );
        let a = assign_rxqs(&rxqs, &[0, 1], RxqAssign::Group, true);
        // 100 → pmd0; 90 → pmd1; 10 → pmd1 (90 < 100); 5 → pmd0 (100 = 100, fewer queues).
        assert_eq!(
            [a.core_of(0), a.core_of(1), a.core_of(2), a.core_of(3)],
            [Some(0), Some(1), Some(1), Some(0)]
        );
    }

    #[test]
    fn affinity_pins_and_isolates() {
        let rxqs = [
            q(1, 0, 0, Some(7)),
            q(1, 1, 0, None),
            q(2, 0, 0, None),
            q(3, 0, 0, Some(9)),
        ];
        let a = assign_rxqs(&rxqs, &[6, 7], RxqAssign::RoundRobin, true);
        assert_eq!(a.core_of(0), Some(7));
        assert_eq!(a.core_of(1), Some(6));
        assert_eq!(a.core_of(2), Some(6));
        assert_eq!(
            a.core_of(3),
            Some(6),
            "pinned to a core without PMD: falls back"
        );
        assert_eq!(a.warnings.len(), 1);
        assert!(a.warnings[0].contains("core 9"));
        let a = assign_rxqs(&rxqs, &[6, 7], RxqAssign::RoundRobin, false);
        assert!(
            a.placements.iter().any(|&(i, c)| i != 0 && c == 7),
            "not isolated: 7 takes others too"
        );
    }

    #[test]
    fn affinity_text() {
        assert_eq!(
            parse_rxq_affinity("0:3, 1:7").unwrap(),
            vec![(0, 3), (1, 7)]
        );
        assert!(
            parse_rxq_affinity("0-3")
                .unwrap_err()
                .contains("QUEUE:CORE")
        );
        assert!(parse_rxq_affinity("0:3,0:4").unwrap_err().contains("twice"));
        assert_eq!("group".parse::<RxqAssign>(), Ok(RxqAssign::Group));
        assert!(
            "fastest"
                .parse::<RxqAssign>()
                .unwrap_err()
                .contains("fastest")
        );
    }
}
