//! Completing partial TCP/UDP checksums in software.
//!
//! A Linux stack with tx checksum offload on (the default on a veth) hands
//! its packets down with `CHECKSUM_PARTIAL`: the L4 checksum field holds
//! only the folded pseudo-header sum, and the device is expected to finish
//! it. A switch port that reads such a packet from the kernel and forwards
//! it as bytes must finish it itself, or the receiving stack drops the
//! packet as corrupt (ping and UDP without a checksum survive, TCP does
//! not — not even the SYN). AF_PACKET says which packets these are
//! (`TP_STATUS_CSUMNOTREADY`); this module does what the kernel's
//! `skb_checksum_help` does for them: sum the L4 segment from its first
//! byte to the end of the IP payload, checksum field included (it already
//! carries the pseudo-header), and store the complement.
//!
//! The kernel gives `csum_start`/`csum_offset` only through a virtio-net
//! header, which this port does not use; the L4 header is found by parsing
//! (Ethernet, up to two VLAN tags, IPv4 or IPv6 with its common extension
//! headers), which is exact for the TCP and UDP packets the stack
//! offloads. Anything else is left alone and reported as such.
//!
//! AF_XDP gets no such flag: XDP sees packet bytes only (there is no rx
//! metadata for the checksum state), so an AF_XDP port cannot know that a
//! packet was left to offload. [`is_partial`] recognises one after the
//! fact, cheaply (the field equals the pseudo-header sum, and the whole
//! checksum does not verify), so the port can count and report the
//! misconfiguration instead of letting the receiver drop packets silently.
//!
//! Pure code: no I/O, no allocation; every read is bounds-checked, so any
//! byte sequence is safe to pass.

/// Why a frame was left as it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotCompleted {
    /// Not IPv4/IPv6 carrying TCP or UDP (or a fragment of it).
    NotTcpOrUdp,
    /// A header or the payload the IP header announces is cut short.
    Truncated,
}

const ETH_HLEN: usize = 14;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
/// TCP and UDP checksum field offsets inside their headers.
const TCP_CSUM: usize = 16;
const UDP_CSUM: usize = 6;

fn be16(frame: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]))
}

/// Where the headers of a TCP/UDP packet are.
#[derive(Clone, Copy, Debug)]
struct L4 {
    proto: u8,
    /// IP header start, and whether it is IPv6.
    l3: usize,
    v6: bool,
    /// L4 header start and the end of the IP payload.
    start: usize,
    end: usize,
}

/// Finds the L4 segment of an IP packet.
fn locate_l4(frame: &[u8]) -> Result<L4, NotCompleted> {
    use NotCompleted::*;
    let mut ethertype = be16(frame, 12).ok_or(Truncated)?;
    let mut l3 = ETH_HLEN;
    for _ in 0..2 {
        if ethertype != ETHERTYPE_VLAN && ethertype != ETHERTYPE_QINQ {
            break;
        }
        ethertype = be16(frame, l3 + 2).ok_or(Truncated)?;
        l3 += 4;
    }
    match ethertype {
        ETHERTYPE_IPV4 => {
            let ver_ihl = *frame.get(l3).ok_or(Truncated)?;
            let ihl = usize::from(ver_ihl & 0x0f) * 4;
            if ver_ihl >> 4 != 4 || ihl < 20 {
                return Err(NotTcpOrUdp);
            }
            let total = usize::from(be16(frame, l3 + 2).ok_or(Truncated)?);
            // More-fragments or a fragment offset: not a whole segment.
            if be16(frame, l3 + 6).ok_or(Truncated)? & 0x3fff != 0 {
                return Err(NotTcpOrUdp);
            }
            let proto = *frame.get(l3 + 9).ok_or(Truncated)?;
            if total < ihl {
                return Err(Truncated);
            }
            Ok(L4 {
                proto,
                l3,
                v6: false,
                start: l3 + ihl,
                end: l3 + total,
            })
        }
        ETHERTYPE_IPV6 => {
            let payload = usize::from(be16(frame, l3 + 4).ok_or(Truncated)?);
            let mut next = *frame.get(l3 + 6).ok_or(Truncated)?;
            let mut l4 = l3 + 40;
            let end = l4 + payload;
            // Hop-by-hop, routing and destination options (a handful at
            // most); a fragment header (44) means no whole segment.
            for _ in 0..4 {
                if !matches!(next, 0 | 43 | 60) {
                    break;
                }
                next = *frame.get(l4).ok_or(Truncated)?;
                l4 += (usize::from(*frame.get(l4 + 1).ok_or(Truncated)?) + 1) * 8;
            }
            if l4 > end {
                return Err(Truncated);
            }
            Ok(L4 {
                proto: next,
                l3,
                v6: true,
                start: l4,
                end,
            })
        }
        _ => Err(NotTcpOrUdp),
    }
}

/// The ones'-complement sum of `bytes` as big-endian 16-bit words (an odd
/// last byte padded with zero), folded to 16 bits.
pub fn ones_complement_sum(bytes: &[u8]) -> u16 {
    let mut sum: u64 = 0;
    let mut words = bytes.chunks_exact(4);
    for w in &mut words {
        sum += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    let rest = words.remainder();
    let mut tail = [0u8; 4];
    tail[..rest.len()].copy_from_slice(rest);
    sum += u64::from(u32::from_be_bytes(tail));
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Completes the TCP or UDP checksum of `frame` (an Ethernet frame whose
/// L4 checksum field holds the partial, pseudo-header-only sum). On error
/// the frame is unchanged.
pub fn complete_partial_checksum(frame: &mut [u8]) -> Result<(), NotCompleted> {
    let L4 {
        proto,
        start: l4,
        end,
        ..
    } = locate_l4(frame)?;
    let (field, header) = match proto {
        IPPROTO_TCP => (l4 + TCP_CSUM, 20),
        IPPROTO_UDP => (l4 + UDP_CSUM, 8),
        _ => return Err(NotCompleted::NotTcpOrUdp),
    };
    if end > frame.len() || end < l4 + header {
        return Err(NotCompleted::Truncated);
    }
    let folded = !ones_complement_sum(&frame[l4..end]);
    // As the kernel does: a computed 0 goes out as 0xffff (the same value
    // in ones' complement; for UDP, 0 would mean "no checksum").
    let value = if folded == 0 { 0xffff } else { folded };
    frame[field..field + 2].copy_from_slice(&value.to_be_bytes());
    Ok(())
}

/// The folded (not complemented) pseudo-header sum of `l4`'s packet.
fn pseudo_header_sum(frame: &[u8], l4: &L4) -> u16 {
    let len = (l4.end - l4.start) as u64;
    let addrs = if l4.v6 {
        &frame[l4.l3 + 8..l4.l3 + 40]
    } else {
        &frame[l4.l3 + 12..l4.l3 + 20]
    };
    let mut sum = u64::from(ones_complement_sum(addrs)) + u64::from(l4.proto) + len;
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// True when `frame` is a TCP or UDP packet whose checksum field holds
/// only the pseudo-header sum (a sender relied on checksum offload) and so
/// does not verify. Cheap for ordinary packets: the whole checksum is
/// summed only when the field equals the pseudo-header sum.
pub fn is_partial(frame: &[u8]) -> bool {
    let Ok(l4) = locate_l4(frame) else {
        return false;
    };
    let field = match l4.proto {
        IPPROTO_TCP if l4.end >= l4.start + 20 => l4.start + TCP_CSUM,
        IPPROTO_UDP if l4.end >= l4.start + 8 => l4.start + UDP_CSUM,
        _ => return false,
    };
    if l4.end > frame.len() {
        return false;
    }
    let stored = u16::from_be_bytes([frame[field], frame[field + 1]]);
    // UDP checksum 0: none was computed (IPv4), not a partial one.
    if stored == 0 || stored != pseudo_header_sum(frame, &l4) {
        return false;
    }
    let mut sum = u32::from(pseudo_header_sum(frame, &l4))
        + u32::from(ones_complement_sum(&frame[l4.start..l4.end]));
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum != 0xffff
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checksum a sender computes from scratch over pseudo-header and
    /// segment (independent of the code under test's shortcut).
    fn full_checksum(pseudo: &[u8], segment: &[u8]) -> u16 {
        let mut all = pseudo.to_vec();
        all.extend_from_slice(segment);
        if all.len() % 2 == 1 {
            all.push(0);
        }
        let mut sum: u32 = all
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        let c = !(sum as u16);
        if c == 0 { 0xffff } else { c }
    }

    fn fold(pseudo: &[u8]) -> u16 {
        let mut sum: u32 = pseudo
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum as u16
    }

    /// Ethernet (+ `vlan` tags) + IPv4 + L4 header of `proto` + payload,
    /// with the L4 checksum in partial form; returns the frame, the L4
    /// offset, and the expected complete checksum.
    fn ipv4(proto: u8, vlans: usize, payload: &[u8]) -> (Vec<u8>, usize, u16) {
        let l4_len = if proto == IPPROTO_TCP { 20 } else { 8 } + payload.len();
        let mut f = vec![0u8; 12];
        for _ in 0..vlans {
            f.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
        }
        f.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        let l3 = f.len();
        f.extend_from_slice(&[0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, proto, 0, 0]);
        f.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        let total = (20 + l4_len) as u16;
        f[l3 + 2..l3 + 4].copy_from_slice(&total.to_be_bytes());
        let l4 = f.len();
        let mut seg = vec![0u8; l4_len - payload.len()];
        seg[0..2].copy_from_slice(&1234u16.to_be_bytes());
        seg[2..4].copy_from_slice(&80u16.to_be_bytes());
        if proto == IPPROTO_TCP {
            seg[12] = 5 << 4;
            seg[13] = 0x18;
        } else {
            seg[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
        }
        seg.extend_from_slice(payload);
        let mut pseudo = vec![10, 0, 0, 1, 10, 0, 0, 2, 0, proto];
        pseudo.extend_from_slice(&(l4_len as u16).to_be_bytes());
        let expected = full_checksum(&pseudo, &seg);
        let field = if proto == IPPROTO_TCP {
            TCP_CSUM
        } else {
            UDP_CSUM
        };
        seg[field..field + 2].copy_from_slice(&fold(&pseudo).to_be_bytes());
        f.extend_from_slice(&seg);
        (f, l4, expected)
    }

    fn csum_at(frame: &[u8], at: usize) -> u16 {
        u16::from_be_bytes([frame[at], frame[at + 1]])
    }

    #[test]
    fn tcp_ipv4_partial_checksum_is_completed() {
        for len in [0, 1, 7, 1448] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let (mut f, l4, expected) = ipv4(IPPROTO_TCP, 0, &payload);
            complete_partial_checksum(&mut f).unwrap();
            assert_eq!(csum_at(&f, l4 + TCP_CSUM), expected, "payload {len}");
        }
    }

    #[test]
    fn udp_behind_two_vlan_tags_with_ethernet_padding() {
        let (mut f, l4, expected) = ipv4(IPPROTO_UDP, 2, b"hello");
        // Padding after the IP payload is not summed.
        f.extend_from_slice(&[0xaa; 9]);
        complete_partial_checksum(&mut f).unwrap();
        assert_eq!(csum_at(&f, l4 + UDP_CSUM), expected);
    }

    #[test]
    fn tcp_ipv6_with_a_hop_by_hop_header() {
        let payload = b"some tcp payload";
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
        let tcp_len = 20 + payload.len();
        let mut ip = vec![0x60, 0, 0, 0];
        ip.extend_from_slice(&((8 + tcp_len) as u16).to_be_bytes());
        ip.extend_from_slice(&[0, 64]); // next header: hop-by-hop
        let (src, dst) = ([0xfdu8; 16], [0xfeu8; 16]);
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&dst);
        f.extend_from_slice(&ip);
        f.extend_from_slice(&[IPPROTO_TCP, 0, 1, 4, 0, 0, 0, 0]); // HBH, PadN
        let l4 = f.len();
        let mut seg = vec![0u8; 20];
        seg[12] = 5 << 4;
        seg.extend_from_slice(payload);
        let mut pseudo = src.to_vec();
        pseudo.extend_from_slice(&dst);
        pseudo.extend_from_slice(&(tcp_len as u32).to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, IPPROTO_TCP]);
        let expected = full_checksum(&pseudo, &seg);
        seg[TCP_CSUM..TCP_CSUM + 2].copy_from_slice(&fold(&pseudo).to_be_bytes());
        f.extend_from_slice(&seg);
        complete_partial_checksum(&mut f).unwrap();
        assert_eq!(csum_at(&f, l4 + TCP_CSUM), expected);
    }

    #[test]
    fn what_is_not_a_whole_tcp_or_udp_packet_is_left_alone() {
        let (f, _, _) = ipv4(IPPROTO_TCP, 0, b"payload");
        // Every truncation: an error, never a panic, frame unchanged.
        for cut in 0..f.len() {
            let mut short = f[..cut].to_vec();
            assert!(complete_partial_checksum(&mut short).is_err(), "cut {cut}");
            assert_eq!(short, f[..cut]);
        }
        // ICMP, ARP, a fragment.
        let (mut icmp, _, _) = ipv4(1, 0, b"ping");
        assert_eq!(
            complete_partial_checksum(&mut icmp),
            Err(NotCompleted::NotTcpOrUdp)
        );
        let mut arp = vec![0u8; 42];
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        assert_eq!(
            complete_partial_checksum(&mut arp),
            Err(NotCompleted::NotTcpOrUdp)
        );
        let (mut frag, _, _) = ipv4(IPPROTO_UDP, 0, b"frag");
        frag[14 + 6] = 0x20; // more fragments
        let before = frag.clone();
        assert_eq!(
            complete_partial_checksum(&mut frag),
            Err(NotCompleted::NotTcpOrUdp)
        );
        assert_eq!(frag, before);
    }

    #[test]
    fn partial_checksums_are_recognised_and_complete_ones_are_not() {
        for (proto, vlans) in [(IPPROTO_TCP, 0), (IPPROTO_UDP, 1), (IPPROTO_TCP, 2)] {
            let (mut f, _, _) = ipv4(proto, vlans, b"offloaded payload");
            assert!(is_partial(&f), "proto {proto} vlans {vlans}");
            complete_partial_checksum(&mut f).unwrap();
            assert!(!is_partial(&f), "completed: proto {proto}");
            // A corrupt but not partial checksum is not called partial.
            let last = f.len() - 1;
            f[last] ^= 0x40;
            assert!(!is_partial(&f));
        }
        let (mut udp, l4, _) = ipv4(IPPROTO_UDP, 0, b"no checksum");
        udp[l4 + UDP_CSUM..l4 + UDP_CSUM + 2].fill(0);
        assert!(!is_partial(&udp));
        let (icmp, _, _) = ipv4(1, 0, b"ping");
        assert!(!is_partial(&icmp));
        let (f, _, _) = ipv4(IPPROTO_TCP, 0, b"payload");
        for cut in 0..f.len() {
            assert!(!is_partial(&f[..cut]), "cut {cut}");
        }
    }

    #[test]
    fn sum_matches_the_word_by_word_definition() {
        let bytes: Vec<u8> = (0..1001u32).map(|i| (i * 131 + 17) as u8).collect();
        for len in [0, 1, 2, 3, 4, 5, 63, 1000, 1001] {
            let mut padded = bytes[..len].to_vec();
            if len % 2 == 1 {
                padded.push(0);
            }
            assert_eq!(
                ones_complement_sum(&bytes[..len]),
                fold(&padded),
                "len {len}"
            );
        }
    }
}
