//! Formatting primitives that reproduce the C formats OVS uses (`%#x`,
//! glibc `inet_ntop`, `ds_put_hex`, `format_flags`), so output is
//! byte-identical.

use std::fmt::Write;

/// C `%#x`: `0` for zero, `0x..` otherwise.
pub fn hexp(v: u128) -> String {
    if v == 0 {
        "0".to_string()
    } else {
        format!("{v:#x}")
    }
}

pub fn mac(out: &mut String, m: &[u8; 6]) {
    let _ = write!(
        out,
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    );
}

pub fn ipv4(out: &mut String, a: &[u8; 4]) {
    let _ = write!(out, "{}.{}.{}.{}", a[0], a[1], a[2], a[3]);
}

/// IPv6 text exactly as glibc's `inet_ntop` writes it (RFC 5952 style,
/// dotted tail for IPv4-mapped and -compatible addresses).
pub fn ipv6(out: &mut String, a: &[u8; 16]) {
    let words: Vec<u16> = (0..8)
        .map(|i| u16::from_be_bytes([a[2 * i], a[2 * i + 1]]))
        .collect();
    // Longest run of zero words (length >= 2), first one wins.
    let (mut best_base, mut best_len) = (usize::MAX, 0usize);
    let mut i = 0;
    while i < 8 {
        if words[i] == 0 {
            let start = i;
            while i < 8 && words[i] == 0 {
                i += 1;
            }
            if i - start > best_len {
                best_base = start;
                best_len = i - start;
            }
        } else {
            i += 1;
        }
    }
    if best_len < 2 {
        best_base = usize::MAX;
    }
    let mut i = 0;
    while i < 8 {
        if i == best_base {
            if i == 0 {
                out.push(':');
            }
            out.push(':');
            i += best_len;
            continue;
        }
        if i == 6 && best_base == 0 && (best_len == 6 || (best_len == 5 && words[5] == 0xffff)) {
            let _ = write!(out, "{}.{}.{}.{}", a[12], a[13], a[14], a[15]);
            return;
        }
        let _ = write!(out, "{:x}", words[i]);
        if i < 7 {
            out.push(':');
        }
        i += 1;
    }
}

/// OVS `ds_put_hex`: `0x` and the bytes without leading zero bytes (the
/// first printed byte without its leading zero digit), or `0`.
pub fn put_hex(out: &mut String, bytes: &[u8]) {
    let mut printed = false;
    for &b in bytes {
        if b != 0 || printed {
            if printed {
                let _ = write!(out, "{b:02x}");
            } else {
                let _ = write!(out, "0x{b:x}");
            }
            printed = true;
        }
    }
    if !printed {
        out.push('0');
    }
}

/// Removes one trailing `c`, like `ds_chomp`.
pub fn chomp(out: &mut String, c: char) {
    if out.ends_with(c) {
        out.pop();
    }
}

/// A function naming single flag bits.
pub type BitName = fn(u32) -> Option<&'static str>;

/// OVS `format_flags`: names of the set bits joined by `del`, unknown bits
/// as hex, `0` when none.
pub fn flags(out: &mut String, name: BitName, mut v: u32, del: char) {
    if v == 0 {
        out.push('0');
        return;
    }
    let mut bad = 0u32;
    while v != 0 {
        let bit = v & v.wrapping_neg();
        match name(bit) {
            Some(s) => {
                out.push_str(s);
                out.push(del);
            }
            None => bad |= bit,
        }
        v &= !bit;
    }
    if bad != 0 {
        let _ = write!(out, "{bad:#x}{del}");
    }
    chomp(out, del);
}

/// OVS `format_flags_masked`: `+name`/`-name` for each masked bit, the
/// plain form when everything is masked, `0/0` when nothing is.
pub fn flags_masked(out: &mut String, name: BitName, v: u32, mut mask: u32, max: u32) {
    if mask == max {
        flags(out, name, v, '|');
        return;
    }
    if mask == 0 {
        out.push_str("0/0");
        return;
    }
    while mask != 0 {
        let bit = mask & mask.wrapping_neg();
        out.push(if v & bit != 0 { '+' } else { '-' });
        out.push_str(name(bit).unwrap_or("[Unknown]"));
        mask &= !bit;
    }
}

pub fn tcp_flag_name(bit: u32) -> Option<&'static str> {
    Some(match bit {
        0x001 => "fin",
        0x002 => "syn",
        0x004 => "rst",
        0x008 => "psh",
        0x010 => "ack",
        0x020 => "urg",
        0x040 => "ece",
        0x080 => "cwr",
        0x100 => "ns",
        0x200 => "[200]",
        0x400 => "[400]",
        0x800 => "[800]",
        _ => return None,
    })
}

pub fn ct_state_name(bit: u32) -> Option<&'static str> {
    Some(match bit {
        0x01 => "new",
        0x02 => "est",
        0x04 => "rel",
        0x08 => "rpl",
        0x10 => "inv",
        0x20 => "trk",
        0x40 => "snat",
        0x80 => "dnat",
        _ => return None,
    })
}

pub fn tun_flag_name(bit: u32) -> Option<&'static str> {
    Some(match bit {
        0x1 => "oam",
        0x2 => "df",
        0x4 => "csum",
        0x8 => "key",
        _ => return None,
    })
}

pub fn slow_path_name(bit: u32) -> Option<&'static str> {
    Some(match bit {
        0x01 => "cfm",
        0x02 => "bfd",
        0x04 => "lacp",
        0x08 => "stp",
        0x10 => "lldp",
        0x20 => "action",
        0x40 => "match",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v6(s: &str) -> String {
        let a: std::net::Ipv6Addr = s.parse().unwrap();
        let mut out = String::new();
        ipv6(&mut out, &a.octets());
        out
    }

    #[test]
    fn test_emit_ipv6_like_inet_ntop() {
        assert_eq!(v6("::1"), "::1");
        assert_eq!(v6("::"), "::");
        assert_eq!(v6("::250"), "::250");
        assert_eq!(v6("2001:cafe::88"), "2001:cafe::88");
        assert_eq!(v6("fe80::20c:29ff:fe88:a18b"), "fe80::20c:29ff:fe88:a18b");
        assert_eq!(v6("::ffff:1.2.3.4"), "::ffff:1.2.3.4");
        assert_eq!(v6("::1.2.3.4"), "::1.2.3.4");
        assert_eq!(v6("1:0:0:2::3"), "1:0:0:2::3");
        assert_eq!(v6("1:0:0:2:0:0:0:3"), "1:0:0:2::3");
        assert_eq!(v6("1:0:2:0:3:0:4:0"), "1:0:2:0:3:0:4:0");
    }

    #[test]
    fn test_emit_hex_and_flags() {
        let mut s = String::new();
        put_hex(&mut s, &[0, 0, 1, 2]);
        assert_eq!(s, "0x102");
        s.clear();
        flags(&mut s, tun_flag_name, 0xe, '|');
        assert_eq!(s, "df|csum|key");
        s.clear();
        flags_masked(&mut s, tun_flag_name, 0xc, 0xe, 0xf);
        assert_eq!(s, "-df+csum+key");
    }
}
