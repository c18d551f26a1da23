//! The few `bpf(2)` commands the AF_XDP port needs: create an XSKMAP, put
//! a socket in it, load the redirect program, attach it with a bpf_link,
//! and look up an attached program's name; and for the benchmarks' drop
//! sink (`crate::drop_sink`), a one-slot counter array, a tc program and
//! its tcx ingress link. Attribute layouts follow
//! `union bpf_attr` in `linux/bpf.h` (each command's prefix, zero-padded).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use super::{check, owned};

const BPF_MAP_CREATE: libc::c_int = 0;
const BPF_MAP_LOOKUP_ELEM: libc::c_int = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_int = 2;
const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_TEST_RUN: libc::c_int = 10;
const BPF_PROG_GET_FD_BY_ID: libc::c_int = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_int = 15;
const BPF_LINK_CREATE: libc::c_int = 28;
const BPF_LINK_DETACH: libc::c_int = 34;

const BPF_MAP_TYPE_ARRAY: u32 = 2;
const BPF_MAP_TYPE_XSKMAP: u32 = 17;
const BPF_PROG_TYPE_SCHED_CLS: u32 = 3;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;
const BPF_TCX_INGRESS: u32 = 46;
/// Offset and size of `name` in `struct bpf_prog_info`.
const PROG_INFO_NAME: std::ops::Range<usize> = 64..80;

const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BpfInsn {
    pub code: u8,
    /// `dst_reg` in the low nibble, `src_reg` in the high nibble.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

impl BpfInsn {
    /// The instruction `code` with registers `dst` and `src`, offset `off`
    /// and immediate `imm` (a 64-bit immediate load takes a second, all-zero
    /// instruction for its upper half).
    pub const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> BpfInsn {
        BpfInsn {
            code,
            regs: dst | (src << 4),
            off,
            imm,
        }
    }
}

/// The eBPF opcodes our hand-written programs use (`linux/bpf.h`,
/// `linux/bpf_common.h`), and the constants their instructions carry.
pub mod op {
    /// `BPF_LDX | BPF_MEM | BPF_W`: 32-bit load from memory.
    pub const LDX_W: u8 = 0x61;
    /// `BPF_ST | BPF_MEM | BPF_W`: 32-bit store of an immediate.
    pub const ST_W: u8 = 0x62;
    /// `BPF_LD | BPF_IMM | BPF_DW`: 64-bit immediate load (two slots).
    pub const LD_IMM64: u8 = 0x18;
    /// `BPF_ALU64 | BPF_MOV | BPF_K`.
    pub const MOV64_K: u8 = 0xb7;
    /// `BPF_ALU64 | BPF_MOV | BPF_X`.
    pub const MOV64_X: u8 = 0xbf;
    /// `BPF_ALU64 | BPF_ADD | BPF_K`.
    pub const ADD64_K: u8 = 0x07;
    /// `BPF_STX | BPF_ATOMIC | BPF_DW`: 64-bit atomic operation.
    pub const ATOMIC_DW: u8 = 0xdb;
    /// `BPF_JMP | BPF_JEQ | BPF_K`.
    pub const JEQ_K: u8 = 0x15;
    /// `BPF_JMP | BPF_CALL`.
    pub const CALL: u8 = 0x85;
    /// `BPF_JMP | BPF_EXIT`.
    pub const EXIT: u8 = 0x95;
    /// `src_reg` of a `LD_IMM64` whose immediate is a map's fd.
    pub const PSEUDO_MAP_FD: u8 = 1;
    /// The `BPF_ATOMIC` operation in `imm`: add.
    pub const ATOMIC_ADD: i32 = 0;
    /// XDP verdicts.
    pub const XDP_PASS: i32 = 2;
    pub const XDP_TX: i32 = 3;
}

/// Where an XDP program runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpLinkMode {
    /// In the driver (`XDP_FLAGS_DRV_MODE`).
    Native,
    /// On the generic skb path (`XDP_FLAGS_SKB_MODE`).
    Generic,
}

impl XdpLinkMode {
    pub fn flags(self) -> u32 {
        match self {
            XdpLinkMode::Native => XDP_FLAGS_DRV_MODE,
            XdpLinkMode::Generic => XDP_FLAGS_SKB_MODE,
        }
    }
}

/// Issues `bpf(cmd, attr, size_of::<A>())`.
fn bpf<A>(cmd: libc::c_int, attr: &mut A) -> io::Result<libc::c_int> {
    // SAFETY: `attr` is a zero-padded `repr(C)` prefix of `union bpf_attr`
    // for `cmd`, valid for reads and writes of its size; pointers inside
    // it (checked by the callers) stay valid across the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            (attr as *mut A).cast::<libc::c_void>(),
            std::mem::size_of::<A>() as libc::c_uint,
        )
    };
    check(ret as libc::c_int)
}

fn name16(name: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (dst, src) in out.iter_mut().zip(name.bytes().take(15)) {
        *dst = src;
    }
    out
}

#[repr(C)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
    pad: [u8; 64],
}

/// Creates an XSKMAP (queue index → AF_XDP socket) with `entries` slots.
pub fn bpf_map_create_xskmap(name: &str, entries: u32) -> io::Result<OwnedFd> {
    map_create(name, BPF_MAP_TYPE_XSKMAP, 4, entries)
}

/// Creates an array of `entries` zeroed `u64`s (4-byte keys).
pub fn bpf_map_create_u64_array(name: &str, entries: u32) -> io::Result<OwnedFd> {
    map_create(name, BPF_MAP_TYPE_ARRAY, 8, entries)
}

fn map_create(name: &str, map_type: u32, value_size: u32, entries: u32) -> io::Result<OwnedFd> {
    let mut attr = MapCreateAttr {
        map_type,
        key_size: 4,
        value_size,
        max_entries: entries,
        map_flags: 0,
        inner_map_fd: 0,
        numa_node: 0,
        map_name: name16(name),
        pad: [0; 64],
    };
    owned(bpf(BPF_MAP_CREATE, &mut attr)?)
}

#[repr(C)]
struct MapElemAttr {
    map_fd: u32,
    pad0: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// `map[key] = value` for a map with 4-byte keys and values.
pub fn bpf_map_update_u32(map: &OwnedFd, key: u32, value: u32) -> io::Result<()> {
    let mut attr = MapElemAttr {
        map_fd: map.as_raw_fd() as u32,
        pad0: 0,
        key: &key as *const u32 as u64,
        value: &value as *const u32 as u64,
        flags: 0,
    };
    bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map(drop)
}

/// `map[key]` of a map with 4-byte keys and `u64` values.
pub fn bpf_map_lookup_u64(map: &OwnedFd, key: u32) -> io::Result<u64> {
    let mut value = 0u64;
    let mut attr = MapElemAttr {
        map_fd: map.as_raw_fd() as u32,
        pad0: 0,
        key: &key as *const u32 as u64,
        value: &mut value as *mut u64 as u64,
        flags: 0,
    };
    bpf(BPF_MAP_LOOKUP_ELEM, &mut attr)?;
    Ok(value)
}

#[repr(C)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
    pad: [u8; 64],
}

/// Loads an XDP program; on a verifier rejection the error carries the
/// verifier's log.
pub fn bpf_prog_load_xdp(name: &str, insns: &[BpfInsn], license: &str) -> io::Result<OwnedFd> {
    prog_load(BPF_PROG_TYPE_XDP, BPF_XDP, name, insns, license)
}

/// Loads a tc (`BPF_PROG_TYPE_SCHED_CLS`) program, for a tcx link.
pub fn bpf_prog_load_tc(name: &str, insns: &[BpfInsn], license: &str) -> io::Result<OwnedFd> {
    prog_load(BPF_PROG_TYPE_SCHED_CLS, 0, name, insns, license)
}

fn prog_load(
    prog_type: u32,
    expected_attach_type: u32,
    name: &str,
    insns: &[BpfInsn],
    license: &str,
) -> io::Result<OwnedFd> {
    let license =
        std::ffi::CString::new(license).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let mut log = vec![0u8; 64 * 1024];
    let mut attr = ProgLoadAttr {
        prog_type,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        kern_version: 0,
        prog_flags: 0,
        prog_name: name16(name),
        prog_ifindex: 0,
        expected_attach_type,
        pad: [0; 64],
    };
    match bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(fd) => owned(fd),
        Err(e) => {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]);
            if text.trim().is_empty() {
                Err(e)
            } else {
                Err(io::Error::new(
                    e.kind(),
                    format!("{e}; verifier: {}", text.trim()),
                ))
            }
        }
    }
}

#[repr(C)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
    pad: [u8; 48],
}

/// Attaches `prog` to interface `ifindex` through a bpf_link: the program
/// stays attached exactly as long as the returned descriptor is open, so
/// a crashed process cannot leave it behind.
pub fn bpf_link_create_xdp(prog: &OwnedFd, ifindex: u32, mode: XdpLinkMode) -> io::Result<OwnedFd> {
    let mut attr = LinkCreateAttr {
        prog_fd: prog.as_raw_fd() as u32,
        target_ifindex: ifindex,
        attach_type: BPF_XDP,
        flags: mode.flags(),
        pad: [0; 48],
    };
    owned(bpf(BPF_LINK_CREATE, &mut attr)?)
}

/// Attaches tc program `prog` first in interface `ifindex`'s tcx ingress
/// hook (Linux 6.6+) through a bpf_link: attached exactly as long as the
/// returned descriptor is open.
pub fn bpf_link_create_tcx_ingress(prog: &OwnedFd, ifindex: u32) -> io::Result<OwnedFd> {
    let mut attr = LinkCreateAttr {
        prog_fd: prog.as_raw_fd() as u32,
        target_ifindex: ifindex,
        attach_type: BPF_TCX_INGRESS,
        flags: 0,
        pad: [0; 48],
    };
    owned(bpf(BPF_LINK_CREATE, &mut attr)?)
}

#[repr(C)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    pad: u32,
}

/// `struct xdp_md` as a test run's input context.
#[repr(C)]
struct XdpMd {
    data: u32,
    data_end: u32,
    data_meta: u32,
    ingress_ifindex: u32,
    rx_queue_index: u32,
    egress_ifindex: u32,
}

const BPF_F_TEST_XDP_LIVE_FRAMES: u32 = 1 << 1;

/// Runs XDP program `prog` `repeat` times on copies of `frame` in
/// live-frames mode (`BPF_F_TEST_XDP_LIVE_FRAMES`, Linux 5.18+), as if
/// received on queue 0 of `ifindex`: what the program returns happens
/// for real (`XDP_TX` sends the frame out of `ifindex`).
pub fn bpf_prog_test_run_xdp_live(
    prog: &OwnedFd,
    frame: &[u8],
    ifindex: u32,
    repeat: u32,
) -> io::Result<()> {
    let ctx = XdpMd {
        data: 0,
        data_end: frame.len() as u32,
        data_meta: 0,
        ingress_ifindex: ifindex,
        rx_queue_index: 0,
        egress_ifindex: 0,
    };
    let mut attr = TestRunAttr {
        prog_fd: prog.as_raw_fd() as u32,
        retval: 0,
        data_size_in: frame.len() as u32,
        data_size_out: 0,
        data_in: frame.as_ptr() as u64,
        data_out: 0,
        repeat,
        duration: 0,
        ctx_size_in: std::mem::size_of::<XdpMd>() as u32,
        ctx_size_out: 0,
        ctx_in: &ctx as *const XdpMd as u64,
        ctx_out: 0,
        flags: BPF_F_TEST_XDP_LIVE_FRAMES,
        cpu: 0,
        batch_size: 0,
        pad: 0,
    };
    bpf(BPF_PROG_TEST_RUN, &mut attr).map(drop)
}

#[repr(C)]
struct GetFdByIdAttr {
    id: u32,
    next_id: u32,
    open_flags: u32,
    pad: [u8; 52],
}

/// A descriptor for the loaded program with id `id`.
pub fn bpf_prog_get_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = GetFdByIdAttr {
        id,
        next_id: 0,
        open_flags: 0,
        pad: [0; 52],
    };
    owned(bpf(BPF_PROG_GET_FD_BY_ID, &mut attr)?)
}

#[repr(C)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
    pad: [u8; 48],
}

/// The name a program was loaded with.
pub fn bpf_prog_name(prog: &OwnedFd) -> io::Result<String> {
    let mut info = [0u8; PROG_INFO_NAME.end];
    let mut attr = InfoAttr {
        bpf_fd: prog.as_raw_fd() as u32,
        info_len: info.len() as u32,
        info: info.as_mut_ptr() as u64,
        pad: [0; 48],
    };
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    let name = &info[PROG_INFO_NAME];
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    Ok(String::from_utf8_lossy(&name[..end]).into_owned())
}

#[repr(C)]
struct LinkDetachAttr {
    link_fd: u32,
    pad: [u8; 60],
}

/// Detaches a link now (`BPF_LINK_DETACH`), even if copies of its
/// descriptor live on elsewhere (a child between `fork` and `exec`).
pub fn bpf_link_detach(link: &OwnedFd) -> io::Result<()> {
    let mut attr = LinkDetachAttr {
        link_fd: link.as_raw_fd() as u32,
        pad: [0; 60],
    };
    bpf(BPF_LINK_DETACH, &mut attr).map(drop)
}
