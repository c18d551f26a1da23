//! A far-side sink for benchmarks: a tc program in an interface's tcx
//! ingress hook that counts every frame into a one-slot array and drops
//! it.
//!
//! # Why a tcx drop, not an AF_XDP socket
//! A frame that a switch sends into a veth reaches the peer either through
//! the peer's NAPI poll (where a native XDP program runs) or through the
//! per-CPU backlog (`__netif_rx`, the ordinary stack). `veth_xmit` picks
//! NAPI only when the peer has NAPI enabled (a native XDP program, or GRO
//! requested) *and* the frame is "GRO-eligible"
//! (`veth_skb_is_eligible_for_gro`: the sending device has TSO off, or the
//! skb frees with `sock_wfree` and the peer forwards UDP GRO). An AF_XDP
//! sink with a native program made that choice per frame, and it went
//! both ways between runs and switches. With no XDP program and GRO off
//! on the peer, veth has no NAPI for it, so every frame takes the backlog
//! path, whoever sent it; the tcx ingress hook (`sch_handle_ingress`, in
//! `__netif_receive_skb_core`) is the first thing that path runs, so the
//! count is exact and the drop is as cheap as the stack allows.
//!
//! # The program
//! Ten instructions (eleven slots), shipped as bytecode:
//!
//! ```text
//! *(u32 *)(r10 - 4) = 0           ; key 0 on the stack
//! r2 = r10; r2 += -4
//! r1 = map[count] ll              ; the counter array (fd relocated at load)
//! call bpf_map_lookup_elem
//! if r0 == 0 goto +2
//! r1 = 1
//! lock *(u64 *)(r0 + 0) += r1     ; count it
//! r0 = TCX_DROP
//! exit
//! ```
//!
//! The link lives exactly as long as the [`DropSink`] (dropping it
//! detaches, and a crashed process's closed descriptor does too), so the
//! interface is left as it was found.

use std::io;
use std::os::fd::OwnedFd;

use crate::sys::{self, BpfInsn};

const PROG_NAME: &str = "oxvs_drop_sink";
const MAP_NAME: &str = "oxvs_drop_cnt";
const LICENSE: &str = "Dual BSD/GPL";

/// `TCX_DROP` (the same value as `TC_ACT_SHOT`).
const TCX_DROP: i32 = 2;
const BPF_FUNC_MAP_LOOKUP_ELEM: i32 = 1;

/// The drop-and-count program, with `map_fd` in its map load.
fn program(map_fd: i32) -> [BpfInsn; 11] {
    use sys::op::*;
    let insn = BpfInsn::new;
    [
        insn(ST_W, 10, 0, -4, 0),
        insn(MOV64_X, 2, 10, 0, 0),
        insn(ADD64_K, 2, 0, 0, -4),
        insn(LD_IMM64, 1, PSEUDO_MAP_FD, 0, map_fd),
        insn(0, 0, 0, 0, 0),
        insn(CALL, 0, 0, 0, BPF_FUNC_MAP_LOOKUP_ELEM),
        insn(JEQ_K, 0, 0, 2, 0),
        insn(MOV64_K, 1, 0, 0, 1),
        insn(ATOMIC_DW, 0, 1, 0, ATOMIC_ADD),
        insn(MOV64_K, 0, 0, 0, TCX_DROP),
        insn(EXIT, 0, 0, 0, 0),
    ]
}

/// An attached drop-and-count program. Dropping it detaches the program.
#[derive(Debug)]
pub struct DropSink {
    map: OwnedFd,
    link: OwnedFd,
    // The link holds its own reference to the program; kept for clarity
    // of ownership (the program is ours until the sink goes).
    _prog: OwnedFd,
}

impl DropSink {
    /// Attaches the sink to interface `ifname` (in this thread's network
    /// namespace). Errors name the interface and the step that failed
    /// (the tcx hook needs Linux 6.6 and CAP_BPF + CAP_NET_ADMIN).
    pub fn attach(ifname: &str) -> io::Result<DropSink> {
        let step = |what: &str, e: io::Error| {
            io::Error::new(e.kind(), format!("drop sink on {ifname}: {what}: {e}"))
        };
        let ifindex = sys::ifindex(ifname).map_err(|e| step("no such interface", e))?;
        let map = sys::bpf_map_create_u64_array(MAP_NAME, 1)
            .map_err(|e| step("creating the counter map", e))?;
        let prog = sys::bpf_prog_load_tc(PROG_NAME, &program(sys::raw(&map)), LICENSE)
            .map_err(|e| step("loading the program", e))?;
        let link = sys::bpf_link_create_tcx_ingress(&prog, ifindex)
            .map_err(|e| step("attaching to tcx ingress", e))?;
        Ok(DropSink {
            map,
            link,
            _prog: prog,
        })
    }

    /// Frames counted and dropped so far.
    pub fn dropped(&self) -> io::Result<u64> {
        sys::bpf_map_lookup_u64(&self.map, 0)
    }
}

impl Drop for DropSink {
    fn drop(&mut self) {
        // Detach now even if a forked child still holds a copy of the
        // link's descriptor (see `afxdp::xdp::XdpLink`).
        let _ = sys::bpf_link_detach(&self.link);
    }
}
