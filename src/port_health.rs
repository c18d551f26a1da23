//! Link watching: the daemon's periodic pass reads every port's link state
//! and logs each change, so a device that disappears under the switch (a
//! veth deleted, a NIC unplugged) is reported by name and a port that
//! comes back is too.
//!
//! # How it works
//! [`LinkWatch::check`] compares each port's [`LinkState`] with the one
//! seen on the previous pass (ports seen for the first time are recorded
//! silently when up). A port whose device is gone reads as down: its
//! queues keep returning nothing or errors, which the PMDs already
//! tolerate, so the other ports keep forwarding; this module only makes
//! the fault visible (`WARN ... port down`) and keeps the current state
//! for display.
//!
//! A kernel-backed port (`system`/`af_packet`, `afxdp`) whose link comes
//! back up after being seen down is re-opened ([`reopen_returned`]): its
//! socket was bound to the old device, so a veth deleted and created again
//! under the same name would otherwise stay dead. Re-opening is a port
//! delete and add with the same config section, as a reload does, so the
//! port's flows are flushed and re-learnt.
//!
//! # Invariants
//! - One log line per transition, never one per pass.
//! - Ports removed from the daemon are forgotten at the next pass.
//!
//! Runs on the daemon's main thread only.

use std::collections::HashMap;

use dp_core::netdev::LinkState;

/// The last link state seen per port name.
#[derive(Debug, Default)]
pub struct LinkWatch {
    last: HashMap<String, LinkState>,
}

impl LinkWatch {
    /// Records `ports` (name, current state), logs what changed since the
    /// last pass, and returns the changes.
    pub fn check<'a>(
        &mut self,
        ports: impl IntoIterator<Item = (&'a str, LinkState)>,
    ) -> Vec<(String, LinkState)> {
        let mut seen = HashMap::with_capacity(self.last.len());
        let mut changes = Vec::new();
        for (name, state) in ports {
            let before = self.last.get(name).copied();
            if before != Some(state) && (before.is_some() || state == LinkState::Down) {
                match state {
                    LinkState::Down => tracing::warn!(
                        port = name,
                        "port down: link lost or device gone; the other ports keep forwarding"
                    ),
                    LinkState::Up => tracing::info!(port = name, "port up again"),
                }
                changes.push((name.to_string(), state));
            }
            seen.insert(name.to_string(), state);
        }
        self.last = seen;
        changes
    }

    /// The state seen on the last pass (`None`: not seen yet).
    pub fn state(&self, port: &str) -> Option<LinkState> {
        self.last.get(port).copied()
    }
}

/// Port types whose open device handle does not survive the device going
/// away (they are bound to an ifindex).
const REOPENED_TYPES: &[&str] = &["system", "af_packet", "afxdp"];

/// Re-opens each kernel-backed port that `changes` shows coming back up
/// (see the module docs); a port that cannot be re-opened is logged and
/// left out until the next reload.
pub fn reopen_returned(daemon: &mut crate::daemon::Daemon, changes: &[(String, LinkState)]) {
    for (name, state) in changes {
        if *state != LinkState::Up {
            continue;
        }
        let Some(port) = daemon.ports.get(name) else {
            continue;
        };
        if !REOPENED_TYPES.contains(&port.section.port_type.as_str()) {
            continue;
        }
        let (bridge, section) = (port.bridge.clone(), port.section.clone());
        let result = daemon
            .del_port(name)
            .and_then(|()| daemon.add_port(&bridge, section));
        match result {
            Ok(port_no) => {
                tracing::info!(port = %name, port_no, "port re-opened on its returned device")
            }
            Err(e) => tracing::error!(port = %name, "port could not be re-opened: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_each_transition_once_and_forgets_removed_ports() {
        let mut watch = LinkWatch::default();
        assert!(
            watch
                .check([("p1", LinkState::Up), ("p2", LinkState::Up)])
                .is_empty()
        );
        assert_eq!(
            watch.check([("p1", LinkState::Up), ("p2", LinkState::Down)]),
            vec![("p2".to_string(), LinkState::Down)]
        );
        assert!(
            watch
                .check([("p1", LinkState::Up), ("p2", LinkState::Down)])
                .is_empty()
        );
        assert_eq!(
            watch.check([("p1", LinkState::Up), ("p2", LinkState::Up)]),
            vec![("p2".to_string(), LinkState::Up)]
        );
        // A port first seen down is reported; a removed one is forgotten.
        assert_eq!(watch.check([("p3", LinkState::Down)]).len(), 1);
        assert_eq!(watch.state("p1"), None);
        assert_eq!(watch.state("p3"), Some(LinkState::Down));
    }
}
