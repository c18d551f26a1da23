//! The XDP side of an AF_XDP port: our redirect program, its XSKMAP, the
//! bpf_link that attaches it, and the stale-program check at start.
//!
//! # The program
//! Five instructions (six slots: the map load is double-wide), shipped as
//! bytecode (no clang, no object file):
//!
//! ```text
//! r2 = *(u32 *)(r1 + 16)          ; ctx->rx_queue_index
//! r1 = map[xsks] ll               ; the XSKMAP (fd relocated at load)
//! r3 = XDP_PASS                   ; what to do when no socket is bound
//! call bpf_redirect_map           ; redirect to xsks[queue] or pass
//! exit
//! ```
//!
//! (Since Linux 5.3 the low bits of the `flags` argument are the action
//! taken when the map has no entry, so queues without a socket keep going
//! to the kernel stack.)
//!
//! # Attachment and clean-up
//! The program is attached with `BPF_LINK_CREATE`: the attachment lives
//! at most as long as the link descriptor, which [`XdpLink`] owns, so a
//! crash (the kernel closes the descriptor) detaches it. Port removal and
//! exit detach it explicitly (`BPF_LINK_DETACH` in `XdpLink`'s drop), so
//! that a copy of the descriptor held by a child process between `fork`
//! and `exec` cannot keep it attached for a moment (tests that run in
//! parallel and spawn `ip` hit exactly that). An older oxvs, or someone's `ip link set xdp`, may still
//! have attached a program the legacy netlink way; at start we look at the
//! interface, and if an `oxvs_xsk` program sits there unowned we detach it
//! and say so. Any other program is left alone and reported.

use std::io;
use std::os::fd::OwnedFd;

use crate::error::{OpenCause, OpenError};
use crate::sys::{self, BpfInsn, XdpLinkMode};

/// The name our program is loaded with (how a stale one is recognised).
pub const PROG_NAME: &str = "oxvs_xsk";
const MAP_NAME: &str = "oxvs_xsks";
const LICENSE: &str = "Dual BSD/GPL";

const BPF_FUNC_REDIRECT_MAP: i32 = 51;
/// `offsetof(struct xdp_md, rx_queue_index)`.
const XDP_MD_RX_QUEUE_INDEX: i16 = 16;

/// The redirect program, with `map_fd` in its map load.
pub fn program(map_fd: i32) -> [BpfInsn; 6] {
    use sys::op::*;
    let insn = BpfInsn::new;
    [
        insn(LDX_W, 2, 1, XDP_MD_RX_QUEUE_INDEX, 0),
        insn(LD_IMM64, 1, PSEUDO_MAP_FD, 0, map_fd),
        insn(0, 0, 0, 0, 0),
        insn(MOV64_K, 3, 0, 0, XDP_PASS),
        insn(CALL, 0, 0, 0, BPF_FUNC_REDIRECT_MAP),
        insn(EXIT, 0, 0, 0, 0),
    ]
}

/// The loaded program and its map, before attachment.
#[derive(Debug)]
pub struct XdpProgram {
    map: OwnedFd,
    prog: OwnedFd,
}

/// An attached program. Dropping it detaches the program.
#[derive(Debug)]
pub struct XdpLink {
    link: OwnedFd,
    pub mode: XdpLinkMode,
}

impl Drop for XdpLink {
    fn drop(&mut self) {
        // Closing the descriptor would detach too, but only once every
        // copy is closed: a child process forked elsewhere in the daemon
        // holds copies until it execs. Detach now, explicitly.
        let _ = sys::bpf_link_detach(&self.link);
    }
}

impl XdpProgram {
    /// Creates the XSKMAP with `n_queues` slots and loads the program.
    pub fn load(port: &str, n_queues: u32) -> Result<XdpProgram, OpenError> {
        let map = sys::bpf_map_create_xskmap(MAP_NAME, n_queues)
            .map_err(|e| OpenError::io(port, "creating the XSKMAP", e))?;
        let insns = program(sys::raw(&map));
        let prog = sys::bpf_prog_load_xdp(PROG_NAME, &insns, LICENSE)
            .map_err(|e| OpenError::io(port, "loading the XDP program", e))?;
        Ok(XdpProgram { map, prog })
    }

    /// Attaches to `ifindex` in `mode` through a bpf_link.
    pub fn attach(&self, ifindex: u32, mode: XdpLinkMode) -> io::Result<XdpLink> {
        let link = sys::bpf_link_create_xdp(&self.prog, ifindex, mode)?;
        Ok(XdpLink { link, mode })
    }

    /// Points queue `qid` at socket `xsk`.
    pub fn bind_queue(&self, qid: u32, xsk: &OwnedFd) -> io::Result<()> {
        sys::bpf_map_update_u32(&self.map, qid, sys::raw(xsk) as u32)
    }
}

/// Looks at what `ifindex` has attached: nothing → fine; a stale `oxvs_xsk`
/// program attached the legacy way → detached (returns a line to log);
/// anything else → [`OpenCause::XdpBusy`].
pub fn clear_stale_program(port: &str, ifindex: u32) -> Result<Option<String>, OpenError> {
    let attached =
        sys::xdp_query(ifindex).map_err(|e| OpenError::io(port, "querying XDP state", e))?;
    if attached.attached == 0 || attached.prog_id == 0 {
        return Ok(None);
    }
    let id = attached.prog_id;
    let name = sys::bpf_prog_get_fd_by_id(id)
        .and_then(|fd| sys::bpf_prog_name(&fd))
        .map_err(|e| OpenError::io(port, "looking up the attached XDP program", e))?;
    if name != PROG_NAME {
        return Err(OpenError::new(
            port,
            OpenCause::XdpBusy { program: name, id },
        ));
    }
    let flags = match attached.attached {
        1 => XdpLinkMode::Native.flags(),
        2 => XdpLinkMode::Generic.flags(),
        _ => 0,
    };
    match sys::xdp_set_fd_legacy(ifindex, -1, flags) {
        Ok(()) => Ok(Some(format!(
            "port {port}: detached stale XDP program {PROG_NAME} (id {id}) left by an earlier run"
        ))),
        // A bpf_link owns it: a live process (another oxvs) uses the port.
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => Err(OpenError::new(
            port,
            OpenCause::XdpBusy { program: name, id },
        )),
        Err(e) => Err(OpenError::io(port, "detaching a stale XDP program", e)),
    }
}

/// Attaches `program` the legacy way (netlink, no bpf_link) in generic
/// mode, as an older release or a crashed tool would have left it. Only for
/// tests of the stale-program check.
#[doc(hidden)]
pub fn attach_legacy_for_test(ifindex: u32) -> io::Result<()> {
    let program = XdpProgram::load("test", 1).map_err(|e| io::Error::other(e.to_string()))?;
    sys::xdp_set_fd_legacy(
        ifindex,
        sys::raw(&program.prog),
        XdpLinkMode::Generic.flags(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_encodes_the_map_fd_in_a_pseudo_map_load() {
        let insns = program(7);
        assert_eq!(insns[1].code, 0x18);
        assert_eq!(insns[1].regs, 0x11, "dst r1, src BPF_PSEUDO_MAP_FD");
        assert_eq!(insns[1].imm, 7);
        assert_eq!(insns[4].imm, BPF_FUNC_REDIRECT_MAP);
        assert_eq!(std::mem::size_of::<BpfInsn>(), 8);
    }
}
