//! The PMD core list changed by `reload` (OVS: `ovs-vsctl set
//! Open_vSwitch . other_config:pmd-cpu-mask=…`).
//!
//! Of the `[datapath]` section only `pmd_cores` / `pmd_cpu_mask` may
//! change at run time: [`only_cores_differ`] tells reload whether the rest
//! is untouched, and [`apply`] asks the datapath to run PMD threads on the
//! new cores ([`dp_pmd::datapath::Datapath::set_pmd_cores`]: threads
//! started and stopped, rx queues dealt again, buffers all returned).
//! The same cores written the other way (a list instead of a mask) change
//! nothing.

use dp_pmd::datapath::Datapath;

use crate::config::{Config, DatapathSection};

/// Whether `a` and `b` differ at most in the PMD cores.
pub fn only_cores_differ(a: &DatapathSection, b: &DatapathSection) -> bool {
    let strip = |d: &DatapathSection| DatapathSection {
        pmd_cores: None,
        pmd_cpu_mask: None,
        ..d.clone()
    };
    strip(a) == strip(b)
}

/// Moves the datapath's PMD threads to `new`'s cores, adding a line to
/// `summary` when anything changed.
pub fn apply(
    datapath: &mut Datapath,
    new: &Config,
    summary: &mut Vec<String>,
) -> Result<(), String> {
    let before = datapath.pmd_cores();
    let change = datapath
        .set_pmd_cores(&new.pmd_cores())
        .map_err(|e| format!("reload: datapath.pmd_cores: {e}"))?;
    if change.is_empty() {
        return Ok(());
    }
    let list = |cores: &[usize]| {
        if cores.is_empty() {
            "none".to_string()
        } else {
            cores
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(",")
        }
    };
    tracing::info!(
        from = %list(&before),
        to = %list(&datapath.pmd_cores()),
        "PMD cores changed"
    );
    for warning in &change.warnings {
        tracing::warn!("{warning}");
    }
    summary.push(format!(
        "PMD cores {} -> {} (started on {}, stopped on {})",
        list(&before),
        list(&datapath.pmd_cores()),
        list(&change.added),
        list(&change.removed)
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_cores_may_differ() {
        let a = DatapathSection {
            pmd_cores: Some(vec![0]),
            ..DatapathSection::default()
        };
        let b = DatapathSection {
            pmd_cores: None,
            pmd_cpu_mask: Some("0x3".into()),
            ..a.clone()
        };
        assert!(only_cores_differ(&a, &b));
        let c = DatapathSection {
            flow_limit: 10,
            ..a.clone()
        };
        assert!(!only_cores_differ(&a, &c));
    }
}
