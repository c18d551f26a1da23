//! The data channel: one shared region per port queue holding four
//! single-producer/single-consumer rings over a frame area (see the table
//! in [`crate::contract`]).
//!
//! # Layout
//! ```text
//! 0            region header (magic, layout version, n_desc, n_frames, frame_size)
//! fill         ring: producer @+0, consumer @+64, flags @+128, u32 descs @+192
//! punt         ring: same header, 16-byte PuntDesc
//! inject       ring: same header, 32-byte InjectDesc
//! completion   ring: same header, u32 descs
//! frames       n_frames * frame_size, page aligned
//! ```
//! Indices are free-running u32s; slot = index & (n_desc - 1). Each side
//! keeps its own index privately and only *publishes* it; it never trusts
//! the copy in shared memory, so a peer cannot move our index. The peer's
//! index is checked on every read: `producer - consumer` above the ring
//! size is [`BadInput::RingIndexOutOfRange`].
//!
//! The producer/consumer types here are used by both sides (userspace in
//! the netdev, the shim in the emulator).

mod region;

pub use region::{Mapping, Region, heap_region};

use std::sync::atomic::Ordering;

use crate::bad_input::BadInput;
use crate::contract::{INJECT_MAX_PORTS, RING_LAYOUT_VERSION};

/// "OXWR" little-endian.
pub const REGION_MAGIC: u32 = u32::from_le_bytes(*b"OXWR");
const HEADER_SIZE: usize = 64;
const RING_PRODUCER: usize = 0;
const RING_CONSUMER: usize = 64;
const RING_FLAGS: usize = 128;
const RING_DESCS: usize = 192;
const PAGE: usize = 4096;

pub const PUNT_DESC_SIZE: usize = 16;
pub const INJECT_DESC_SIZE: usize = 32;
pub const INDEX_DESC_SIZE: usize = 4;

/// Where everything is inside a region; both sides compute it from the
/// three parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub n_desc: u32,
    pub n_frames: u32,
    pub frame_size: u32,
    pub fill: RingSpec,
    pub punt: RingSpec,
    pub inject: RingSpec,
    pub completion: RingSpec,
    pub frames: usize,
    pub size: usize,
}

/// One ring's position and shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingSpec {
    pub base: usize,
    pub n_desc: u32,
    pub desc_size: usize,
}

impl RingSpec {
    fn bytes(&self) -> usize {
        RING_DESCS + self.n_desc as usize * self.desc_size
    }

    fn slot(&self, index: u32) -> usize {
        self.base + RING_DESCS + (index & (self.n_desc - 1)) as usize * self.desc_size
    }
}

fn round_up(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}

impl Layout {
    /// The layout for these parameters; `BadRegion` when they are out of
    /// the contract's bounds (ring size a power of two in 8..=32768, frame
    /// size a power of two in 2048..=65536, 1..=1M frames).
    pub fn new(n_desc: u32, n_frames: u32, frame_size: u32) -> Result<Layout, BadInput> {
        let ok = n_desc.is_power_of_two()
            && (8..=32_768).contains(&n_desc)
            && frame_size.is_power_of_two()
            && (2048..=65_536).contains(&frame_size)
            && (1..=1 << 20).contains(&n_frames);
        if !ok {
            return Err(BadInput::BadRegion);
        }
        let mut at = HEADER_SIZE;
        let mut ring = |desc_size| {
            let spec = RingSpec {
                base: at,
                n_desc,
                desc_size,
            };
            at = round_up(at + spec.bytes(), 64);
            spec
        };
        let fill = ring(INDEX_DESC_SIZE);
        let punt = ring(PUNT_DESC_SIZE);
        let inject = ring(INJECT_DESC_SIZE);
        let completion = ring(INDEX_DESC_SIZE);
        let frames = round_up(at, PAGE);
        let size = frames + n_frames as usize * frame_size as usize;
        Ok(Layout {
            n_desc,
            n_frames,
            frame_size,
            fill,
            punt,
            inject,
            completion,
            frames,
            size,
        })
    }

    /// Writes the header of a fresh (zeroed) region (the shim's job).
    pub fn init_header(&self, region: &Region) {
        let mut h = [0u8; 20];
        h[0..4].copy_from_slice(&REGION_MAGIC.to_le_bytes());
        h[4..8].copy_from_slice(&RING_LAYOUT_VERSION.to_le_bytes());
        h[8..12].copy_from_slice(&self.n_desc.to_le_bytes());
        h[12..16].copy_from_slice(&self.n_frames.to_le_bytes());
        h[16..20].copy_from_slice(&self.frame_size.to_le_bytes());
        region.write(0, &h);
    }

    /// Checks that `region` is big enough and its header agrees with this
    /// layout (userspace, after mapping what the shim granted).
    pub fn check_region(&self, region: &Region) -> Result<(), BadInput> {
        if region.len() < self.size {
            return Err(BadInput::BadRegion);
        }
        let h: [u8; 20] = region.read(0);
        let word = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        if word(0) != REGION_MAGIC || word(4) != RING_LAYOUT_VERSION {
            return Err(BadInput::BadVersion);
        }
        if (word(8), word(12), word(16)) != (self.n_desc, self.n_frames, self.frame_size) {
            return Err(BadInput::BadRegion);
        }
        Ok(())
    }

    /// Offset of frame `index`.
    pub fn frame_offset(&self, index: u32) -> usize {
        self.frames + index as usize * self.frame_size as usize
    }

    /// Checks a frame reference read from a descriptor: the frame exists
    /// and `offset + len` stays inside it. Returns the data's offset.
    pub fn check_frame(&self, frame: u32, offset: u16, len: u16) -> Result<usize, BadInput> {
        if frame >= self.n_frames {
            return Err(BadInput::FrameOutOfRange);
        }
        if usize::from(offset) + usize::from(len) > self.frame_size as usize {
            return Err(BadInput::FramePastSlot);
        }
        Ok(self.frame_offset(frame) + usize::from(offset))
    }
}

/// The producing side of one ring.
#[derive(Debug)]
pub struct Producer {
    spec: RingSpec,
    prod: u32,
}

impl Producer {
    /// Starts at the index currently published (0 in a fresh region).
    pub fn new(spec: RingSpec, region: &Region) -> Producer {
        let prod = region
            .atomic_u32(spec.base + RING_PRODUCER)
            .load(Ordering::Acquire);
        Producer { spec, prod }
    }

    /// Free slots; the consumer's index is checked.
    pub fn free(&self, region: &Region) -> Result<u32, BadInput> {
        let cons = region
            .atomic_u32(self.spec.base + RING_CONSUMER)
            .load(Ordering::Acquire);
        let used = self.prod.wrapping_sub(cons);
        if used > self.spec.n_desc {
            return Err(BadInput::RingIndexOutOfRange);
        }
        Ok(self.spec.n_desc - used)
    }

    /// Writes descriptor `i` (counted from the next free slot).
    pub fn put(&self, region: &Region, i: u32, desc: &[u8]) {
        debug_assert_eq!(desc.len(), self.spec.desc_size);
        region.write(self.spec.slot(self.prod.wrapping_add(i)), desc);
    }

    /// Publishes `n` written descriptors.
    pub fn submit(&mut self, region: &Region, n: u32) {
        self.prod = self.prod.wrapping_add(n);
        region
            .atomic_u32(self.spec.base + RING_PRODUCER)
            .store(self.prod, Ordering::Release);
    }

    /// The ring's flags word (written by the consumer).
    pub fn flags(&self, region: &Region) -> u32 {
        region
            .atomic_u32(self.spec.base + RING_FLAGS)
            .load(Ordering::Acquire)
    }
}

/// The consuming side of one ring.
#[derive(Debug)]
pub struct Consumer {
    spec: RingSpec,
    cons: u32,
}

impl Consumer {
    pub fn new(spec: RingSpec, region: &Region) -> Consumer {
        let cons = region
            .atomic_u32(spec.base + RING_CONSUMER)
            .load(Ordering::Acquire);
        Consumer { spec, cons }
    }

    /// Descriptors ready; the producer's index is checked.
    pub fn available(&self, region: &Region) -> Result<u32, BadInput> {
        let prod = region
            .atomic_u32(self.spec.base + RING_PRODUCER)
            .load(Ordering::Acquire);
        let n = prod.wrapping_sub(self.cons);
        if n > self.spec.n_desc {
            return Err(BadInput::RingIndexOutOfRange);
        }
        Ok(n)
    }

    /// Reads descriptor `i` (counted from the oldest unconsumed).
    pub fn get<const N: usize>(&self, region: &Region, i: u32) -> [u8; N] {
        debug_assert_eq!(N, self.spec.desc_size);
        region.read(self.spec.slot(self.cons.wrapping_add(i)))
    }

    /// Gives `n` consumed slots back to the producer.
    pub fn release(&mut self, region: &Region, n: u32) {
        self.cons = self.cons.wrapping_add(n);
        region
            .atomic_u32(self.spec.base + RING_CONSUMER)
            .store(self.cons, Ordering::Release);
    }

    /// Sets or clears `flag` in the ring's flags word.
    pub fn set_flag(&self, region: &Region, flag: u32, on: bool) {
        let word = region.atomic_u32(self.spec.base + RING_FLAGS);
        if on {
            word.fetch_or(flag, Ordering::SeqCst);
        } else {
            word.fetch_and(!flag, Ordering::SeqCst);
        }
    }
}

/// A punted frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PuntDesc {
    pub frame: u32,
    pub offset: u16,
    pub len: u16,
    pub src_port: u32,
    /// Bit 0: the NIC verified the L4 checksum. Other bits are zero.
    pub meta: u32,
}

impl PuntDesc {
    pub fn to_bytes(&self) -> [u8; PUNT_DESC_SIZE] {
        let mut b = [0u8; PUNT_DESC_SIZE];
        b[0..4].copy_from_slice(&self.frame.to_le_bytes());
        b[4..6].copy_from_slice(&self.offset.to_le_bytes());
        b[6..8].copy_from_slice(&self.len.to_le_bytes());
        b[8..12].copy_from_slice(&self.src_port.to_le_bytes());
        b[12..16].copy_from_slice(&self.meta.to_le_bytes());
        b
    }

    pub fn from_bytes(b: [u8; PUNT_DESC_SIZE]) -> PuntDesc {
        PuntDesc {
            frame: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            offset: u16::from_le_bytes([b[4], b[5]]),
            len: u16::from_le_bytes([b[6], b[7]]),
            src_port: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
            meta: u32::from_le_bytes([b[12], b[13], b[14], b[15]]),
        }
    }
}

/// A frame to inject, with its destination ports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InjectDesc {
    pub frame: u32,
    pub offset: u16,
    pub len: u16,
    pub n_ports: u32,
    pub ports: [u32; INJECT_MAX_PORTS],
}

impl InjectDesc {
    pub fn to_bytes(&self) -> [u8; INJECT_DESC_SIZE] {
        let mut b = [0u8; INJECT_DESC_SIZE];
        b[0..4].copy_from_slice(&self.frame.to_le_bytes());
        b[4..6].copy_from_slice(&self.offset.to_le_bytes());
        b[6..8].copy_from_slice(&self.len.to_le_bytes());
        b[8..12].copy_from_slice(&self.n_ports.to_le_bytes());
        for (i, p) in self.ports.iter().enumerate() {
            b[12 + 4 * i..16 + 4 * i].copy_from_slice(&p.to_le_bytes());
        }
        b
    }

    pub fn from_bytes(b: [u8; INJECT_DESC_SIZE]) -> InjectDesc {
        let w = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        InjectDesc {
            frame: w(0),
            offset: u16::from_le_bytes([b[4], b[5]]),
            len: u16::from_le_bytes([b[6], b[7]]),
            n_ports: w(8),
            ports: std::array::from_fn(|i| w(12 + 4 * i)),
        }
    }

    /// The destination list; `BadPortList` when `n_ports` is 0 or above
    /// [`INJECT_MAX_PORTS`].
    pub fn port_list(&self) -> Result<&[u32], BadInput> {
        let n = self.n_ports as usize;
        if n == 0 || n > INJECT_MAX_PORTS {
            return Err(BadInput::BadPortList);
        }
        Ok(&self.ports[..n])
    }
}

/// Reads an index descriptor (fill and completion rings).
pub fn index_from_bytes(b: [u8; INDEX_DESC_SIZE]) -> u32 {
    u32::from_le_bytes(b)
}

#[cfg(test)]
mod tests;
