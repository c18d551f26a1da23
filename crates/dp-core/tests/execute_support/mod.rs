//! Shared harness for the action-execution tests: pools whose accounting
//! is checked when the harness is dropped, a recording sink with optional
//! capacity limits, fixture frames built with etherparse, and checksums
//! recomputed independently with etherparse.
#![allow(dead_code, reason = "each test file uses a different subset")]

use dp_core::action::{Action, Userspace};
use dp_core::execute::{ActionSink, DropReason, Executor};
use dp_core::flow::{FlowKey, extract};
use dp_core::packet::{Packet, PacketBatch, PacketPool, PoolConfig};
use etherparse::{
    Icmpv4Header, Icmpv6Header, Ipv4Header, Ipv6Header, PacketBuilder, TcpHeader, UdpHeader,
};

pub const MAC_A: [u8; 6] = [0x00, 0x11, 0x22, 0x33, 0x44, 0x55];
pub const MAC_B: [u8; 6] = [0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb];
pub const IP_A: [u8; 4] = [10, 0, 0, 1];
pub const IP_B: [u8; 4] = [10, 0, 0, 2];
pub const IP6_A: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
pub const IP6_B: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

/// Everything the sink was handed, in order.
#[derive(Default)]
pub struct RecordingSink {
    pub outputs: Vec<(u32, Packet)>,
    pub upcalls: Vec<(Packet, Userspace)>,
    pub recirculated: Vec<Packet>,
    /// Ports whose tx queue refuses everything.
    pub broken_ports: Vec<u32>,
    /// Most upcalls accepted.
    pub upcall_limit: Option<usize>,
    /// Most recirculated packets accepted.
    pub recirc_limit: Option<usize>,
    /// A port whose queue makes its own copies (`clone_for`), from this
    /// pool, as an AF_XDP queue copies into its UMEM.
    pub port_clones: Option<(u32, PacketPool)>,
}

impl ActionSink for RecordingSink {
    fn output(&mut self, port: u32, batch: &mut PacketBatch) {
        if self.broken_ports.contains(&port) {
            return;
        }
        for packet in batch.drain() {
            self.outputs.push((port, packet));
        }
    }

    fn clone_for(&mut self, port: u32, packet: &Packet) -> Option<Packet> {
        let (p, pool) = self.port_clones.as_ref()?;
        if *p != port {
            return None;
        }
        let mut copy = pool.alloc_from(packet.data())?;
        copy.meta_mut().clone_from(packet.meta());
        Some(copy)
    }

    fn userspace(&mut self, packet: Packet, action: &Userspace) -> Result<(), Packet> {
        if self.upcall_limit.is_some_and(|l| self.upcalls.len() >= l) {
            return Err(packet);
        }
        self.upcalls.push((packet, action.clone()));
        Ok(())
    }

    fn recirculate(&mut self, batch: &mut PacketBatch) {
        let packets: Vec<Packet> = batch.drain().collect();
        for p in packets {
            if self
                .recirc_limit
                .is_some_and(|l| self.recirculated.len() >= l)
            {
                let _ = batch.push(p);
            } else {
                self.recirculated.push(p);
            }
        }
    }
}

impl RecordingSink {
    /// Bytes sent on `port`, in order.
    pub fn sent(&self, port: u32) -> Vec<Vec<u8>> {
        self.outputs
            .iter()
            .filter(|(p, _)| *p == port)
            .map(|(_, pkt)| pkt.data().to_vec())
            .collect()
    }
}

/// Pools, executor and sink. Dropping it checks that every buffer went
/// back to its pool.
pub struct Harness {
    pub pool: PacketPool,
    pub clones: PacketPool,
    pub exec: Executor,
    pub sink: RecordingSink,
}

impl Harness {
    pub fn new() -> Harness {
        Harness::with_clone_capacity(256)
    }

    pub fn with_clone_capacity(capacity: usize) -> Harness {
        let clones = PacketPool::new("clones", PoolConfig::heap(capacity));
        Harness {
            pool: PacketPool::new("rx", PoolConfig::heap(256)),
            exec: Executor::new(clones.clone(), 0x5eed),
            clones,
            sink: RecordingSink::default(),
        }
    }

    /// A batch holding `frames`, extracted as the classifier would leave
    /// them (header offsets set), arriving on port 1.
    pub fn batch<T: AsRef<[u8]>>(&self, frames: &[T]) -> PacketBatch {
        let mut batch = PacketBatch::new();
        let mut key = FlowKey::ZERO;
        for f in frames {
            let mut p = self.pool.alloc_from(f.as_ref()).expect("pool has room");
            p.meta_mut().in_port = 1;
            extract(&mut p, &mut key);
            batch.push(p).expect("batch has room");
        }
        batch
    }

    /// Runs `actions` on `frames` at time 0.
    pub fn run<T: AsRef<[u8]>>(&mut self, actions: &[Action], frames: &[T]) {
        self.run_at(actions, frames, 0);
    }

    pub fn run_at<T: AsRef<[u8]>>(&mut self, actions: &[Action], frames: &[T], now_ns: u64) {
        let mut batch = self.batch(frames);
        self.exec
            .execute(actions, &mut batch, &mut self.sink, now_ns);
        assert!(batch.is_empty(), "execute left packets in the batch");
    }

    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.exec.drops().get(reason)
    }

    /// Forgets what the sink holds (returning the buffers) and checks the
    /// pools are back to zero.
    pub fn assert_no_leak(&mut self) {
        self.sink = RecordingSink {
            broken_ports: std::mem::take(&mut self.sink.broken_ports),
            upcall_limit: self.sink.upcall_limit,
            recirc_limit: self.sink.recirc_limit,
            ..RecordingSink::default()
        };
        assert_eq!(self.pool.in_use(), 0, "rx pool leaked");
        assert_eq!(self.clones.in_use(), 0, "clone pool leaked");
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.assert_no_leak();
        }
    }
}

/// Ethernet + IPv4 + TCP with `payload`.
pub fn tcp4(payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(IP_A, IP_B, 64)
        .tcp(1000, 80, 0x0102_0304, 8192)
        .write(&mut v, payload)
        .unwrap();
    v
}

/// Ethernet + IPv4 + UDP with `payload`.
pub fn udp4(payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(IP_A, IP_B, 64)
        .udp(5000, 53)
        .write(&mut v, payload)
        .unwrap();
    v
}

pub fn icmp4_echo(payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(IP_A, IP_B, 64)
        .icmpv4_echo_request(7, 1)
        .write(&mut v, payload)
        .unwrap();
    v
}

pub fn tcp6(payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv6(IP6_A, IP6_B, 64)
        .tcp(1000, 80, 1, 8192)
        .write(&mut v, payload)
        .unwrap();
    v
}

pub fn udp6(payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv6(IP6_A, IP6_B, 64)
        .udp(5000, 53)
        .write(&mut v, payload)
        .unwrap();
    v
}

pub fn icmp6_echo(payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv6(IP6_A, IP6_B, 64)
        .icmpv6_echo_request(7, 1)
        .write(&mut v, payload)
        .unwrap();
    v
}

/// Offset of the L3 header of an Ethernet frame (skipping VLAN tags).
pub fn l3_offset(frame: &[u8]) -> usize {
    let mut pos = 12;
    while matches!(
        u16::from_be_bytes([frame[pos], frame[pos + 1]]),
        0x8100 | 0x88a8
    ) {
        pos += 4;
    }
    pos + 2
}

/// Recomputes, with etherparse, every checksum of an Ethernet/IP frame
/// from scratch: the IPv4 header checksum and the TCP, UDP, ICMP or
/// ICMPv6 checksum. A zero UDP checksum over IPv4 is left zero ("none").
pub fn fix_checksums(frame: &mut [u8]) {
    let l3 = l3_offset(frame);
    let ethertype = u16::from_be_bytes([frame[l3 - 2], frame[l3 - 1]]);
    match ethertype {
        0x0800 => {
            let (ip, _) = Ipv4Header::from_slice(&frame[l3..]).unwrap();
            let csum = ip.calc_header_checksum();
            frame[l3 + 10..l3 + 12].copy_from_slice(&csum.to_be_bytes());
            let l4 = l3 + ip.header_len();
            let end = l3 + usize::from(ip.total_len);
            let (at, csum) = match ip.protocol.0 {
                6 => {
                    let (tcp, payload) = TcpHeader::from_slice(&frame[l4..end]).unwrap();
                    (16, tcp.calc_checksum_ipv4(&ip, payload).unwrap())
                }
                17 => {
                    let (udp, payload) = UdpHeader::from_slice(&frame[l4..end]).unwrap();
                    if udp.checksum == 0 {
                        return;
                    }
                    (6, udp.calc_checksum_ipv4(&ip, payload).unwrap())
                }
                1 => {
                    let (icmp, payload) = Icmpv4Header::from_slice(&frame[l4..end]).unwrap();
                    (2, icmp.icmp_type.calc_checksum(payload))
                }
                _ => return,
            };
            frame[l4 + at..l4 + at + 2].copy_from_slice(&csum.to_be_bytes());
        }
        0x86dd => {
            let (ip, _) = Ipv6Header::from_slice(&frame[l3..]).unwrap();
            let l4 = l3 + 40;
            let end = l4 + usize::from(ip.payload_length);
            let (at, csum) = match ip.next_header.0 {
                6 => {
                    let (tcp, payload) = TcpHeader::from_slice(&frame[l4..end]).unwrap();
                    (16, tcp.calc_checksum_ipv6(&ip, payload).unwrap())
                }
                17 => {
                    let (udp, payload) = UdpHeader::from_slice(&frame[l4..end]).unwrap();
                    (6, udp.calc_checksum_ipv6(&ip, payload).unwrap())
                }
                58 => {
                    let (icmp, payload) = Icmpv6Header::from_slice(&frame[l4..end]).unwrap();
                    (
                        2,
                        icmp.icmp_type
                            .calc_checksum(ip.source, ip.destination, payload)
                            .unwrap(),
                    )
                }
                _ => return,
            };
            frame[l4 + at..l4 + at + 2].copy_from_slice(&csum.to_be_bytes());
        }
        _ => {}
    }
}

/// `frame` with `edit` applied and its checksums recomputed from scratch.
pub fn expect_edited(frame: &[u8], edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut v = frame.to_vec();
    edit(&mut v);
    fix_checksums(&mut v);
    v
}
