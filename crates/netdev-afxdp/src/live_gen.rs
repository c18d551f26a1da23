//! A packet generator for benchmarks that builds no skb: a two-instruction
//! XDP program (`return XDP_TX`) run by `BPF_PROG_TEST_RUN` in live-frames
//! mode on a copy of one frame, as if received on an interface, so each
//! run sends the frame out of that interface through its driver's
//! `ndo_xdp_xmit`.
//!
//! On a veth the frame goes straight into the peer's XDP ring (veth
//! accepts it only while the peer has an XDP program, as a switch's
//! AF_XDP port has), with no socket, no skb and no stack on the sending
//! side: far cheaper per frame than an AF_XDP or AF_PACKET sender, whose
//! kernel side builds and frees an skb per frame. Frames the peer's ring
//! has no room for are dropped by veth (its `xdp_xmit_err` counters), so
//! [`LiveGen::send`] runs small bursts: between two calls the sending
//! CPU's softirq drains the ring.
//!
//! [`XdpPass`] is what a peer needs to take such frames when no switch
//! program is on it: a native `return XDP_PASS` program, so veth accepts
//! the frames into its NAPI and hands them to the stack.

use std::io;
use std::os::fd::OwnedFd;

use crate::sys::{self, BpfInsn};

const PROG_NAME: &str = "oxvs_live_gen";
const LICENSE: &str = "Dual BSD/GPL";
const PASS_NAME: &str = "oxvs_xdp_pass";
use sys::op::{XDP_PASS, XDP_TX};

/// `r0 = verdict; exit`.
fn verdict_program(verdict: i32) -> [BpfInsn; 2] {
    use sys::op::{EXIT, MOV64_K};
    [
        BpfInsn::new(MOV64_K, 0, 0, 0, verdict),
        BpfInsn::new(EXIT, 0, 0, 0, 0),
    ]
}

/// A loaded generator program bound to an interface and a frame.
#[derive(Debug)]
pub struct LiveGen {
    prog: OwnedFd,
    ifindex: u32,
    frame: Vec<u8>,
}

impl LiveGen {
    /// Loads the program for sending `frame` out of `ifname` (this
    /// thread's network namespace).
    pub fn new(ifname: &str, frame: &[u8]) -> io::Result<LiveGen> {
        let step = |what: &str, e: io::Error| {
            io::Error::new(e.kind(), format!("live generator on {ifname}: {what}: {e}"))
        };
        let ifindex = sys::ifindex(ifname).map_err(|e| step("no such interface", e))?;
        let prog = sys::bpf_prog_load_xdp(PROG_NAME, &verdict_program(XDP_TX), LICENSE)
            .map_err(|e| step("loading the program", e))?;
        Ok(LiveGen {
            prog,
            ifindex,
            frame: frame.to_vec(),
        })
    }

    /// Sends the frame `n` times (one system call).
    pub fn send(&self, n: u32) -> io::Result<()> {
        sys::bpf_prog_test_run_xdp_live(&self.prog, &self.frame, self.ifindex, n)
    }
}

/// A native `return XDP_PASS` program on an interface, attached through a
/// bpf_link as long as this lives.
#[derive(Debug)]
pub struct XdpPass {
    link: OwnedFd,
    _prog: OwnedFd,
}

impl XdpPass {
    /// Attaches to `ifname` (this thread's network namespace) in native
    /// mode.
    pub fn attach(ifname: &str) -> io::Result<XdpPass> {
        let step = |what: &str, e: io::Error| {
            io::Error::new(
                e.kind(),
                format!("XDP pass program on {ifname}: {what}: {e}"),
            )
        };
        let ifindex = sys::ifindex(ifname).map_err(|e| step("no such interface", e))?;
        let prog = sys::bpf_prog_load_xdp(PASS_NAME, &verdict_program(XDP_PASS), LICENSE)
            .map_err(|e| step("loading the program", e))?;
        let link = sys::bpf_link_create_xdp(&prog, ifindex, sys::XdpLinkMode::Native)
            .map_err(|e| step("attaching it", e))?;
        Ok(XdpPass { link, _prog: prog })
    }
}

impl Drop for XdpPass {
    fn drop(&mut self) {
        // As `afxdp::xdp::XdpLink`: detach now, whoever holds copies.
        let _ = sys::bpf_link_detach(&self.link);
    }
}
