//! What the namespace tests of the Windows shim share beyond the common
//! harness (`testbed`: prerequisites, the namespace [`Topology`] guard
//! with host-end offloads off so a Hyper-V port sees MTU frames, traffic
//! checks, one-PMD datapaths): the emulator on the host ends.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::sync::Arc;

use dp_pmd::datapath::Datapath;
use dp_windows_ext::contract::PortKind;
use dp_windows_ext::emulator::{EmuPortConfig, Emulator, EmulatorConfig};
pub use testbed::*;

/// `testbed::prerequisites` with the tools these tests use.
pub fn prerequisites(test: &str) -> bool {
    testbed::prerequisites(test, &[])
}

/// Two namespaces on veths whose host ends take no super-frames: what the
/// emulated Hyper-V ports sit on.
pub fn netns(tag: &str) -> Topology {
    let topo = Topology::veth(&format!("w{tag}"));
    topo.host_offloads_off();
    topo
}

/// An emulator with Hyper-V ports `OVS-pa` on `host_a` and `OVS-pb` on
/// `host_b`, listening on a unique socket.
pub fn emulator(topo: &Topology) -> Emulator {
    let socket = std::env::temp_dir().join(format!("{}.winshim.sock", topo.ns_a));
    let mut config = EmulatorConfig::new(socket);
    config.ports = vec![
        EmuPortConfig {
            friendly_name: "OVS-pa".into(),
            ifname: topo.host_a.clone(),
            kind: PortKind::VmNic,
        },
        EmuPortConfig {
            friendly_name: "OVS-pb".into(),
            ifname: topo.host_b.clone(),
            kind: PortKind::External,
        },
    ];
    Emulator::start(config).expect("emulator starts")
}

/// One PMD on the last core swapping ports 1 and 2, idle back-off on.
pub fn datapath() -> Datapath {
    one_pmd_datapath(false, Arc::new(PortSwap))
}
