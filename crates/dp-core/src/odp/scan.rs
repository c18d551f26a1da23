//! A byte cursor with the scanning primitives ODP text needs (C `%i`,
//! `%x`, dotted IPv4, colon MACs, IPv6), plus the error type.
//!
//! Every scanning method either consumes exactly what it recognised and
//! returns `Some`, or leaves the cursor where it was and returns `None`,
//! like `ovs_scan`. Nothing here can panic on any input.

use std::fmt;

/// Why a line of ODP text was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OdpError {
    /// The text does not follow the grammar; says where and what.
    Syntax(String),
    /// Well-formed, but a value is out of range or inconsistent.
    Invalid(String),
    /// A field family oxvs does not implement (NSH, SRv6, ...).
    Unsupported(String),
    /// Nesting deeper than [`super::MAX_NESTING`].
    TooDeep,
}

impl fmt::Display for OdpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OdpError::Syntax(m) => write!(f, "syntax error: {m}"),
            OdpError::Invalid(m) => write!(f, "invalid: {m}"),
            OdpError::Unsupported(m) => write!(f, "unsupported: {m}"),
            OdpError::TooDeep => write!(f, "nesting deeper than {} levels", super::MAX_NESTING),
        }
    }
}

impl std::error::Error for OdpError {}

/// Result alias for this module.
pub type Result<T> = std::result::Result<T, OdpError>;

/// Characters that separate actions or key attributes.
pub const DELIMITERS: &[u8] = b", \t\r\n";

/// A position in the input text.
#[derive(Clone, Debug)]
pub struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(s: &'a str) -> Cursor<'a> {
        Cursor {
            s: s.as_bytes(),
            pos: 0,
        }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn set_pos(&mut self, pos: usize) {
        self.pos = pos.min(self.s.len());
    }

    pub fn rest(&self) -> &'a [u8] {
        &self.s[self.pos.min(self.s.len())..]
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    pub fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    /// Consumes and returns one byte.
    pub fn bump(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    pub fn starts(&self, lit: &str) -> bool {
        self.rest().starts_with(lit.as_bytes())
    }

    /// Consumes `lit` if the input continues with it.
    pub fn eat(&mut self, lit: &str) -> bool {
        if self.starts(lit) {
            self.pos += lit.len();
            true
        } else {
            false
        }
    }

    /// Consumes `lit` or fails with a syntax error naming `ctx`.
    pub fn expect(&mut self, lit: &str, ctx: &str) -> Result<()> {
        if self.eat(lit) {
            Ok(())
        } else {
            Err(self.err(&format!("{ctx}: expected '{lit}'")))
        }
    }

    pub fn skip_delims(&mut self) {
        while self.peek().is_some_and(|c| DELIMITERS.contains(&c)) {
            self.pos += 1;
        }
    }

    /// A syntax error quoting (a bounded amount of) the text at the cursor.
    pub fn err(&self, what: &str) -> OdpError {
        let rest = self.rest();
        let shown = String::from_utf8_lossy(&rest[..rest.len().min(40)]);
        let ell = if rest.len() > 40 { "..." } else { "" };
        if rest.is_empty() {
            OdpError::Syntax(format!("{what} at end of input"))
        } else {
            OdpError::Syntax(format!("{what} at '{shown}{ell}'"))
        }
    }

    /// The identifier at the cursor (for error messages).
    pub fn word(&self) -> String {
        let r = self.rest();
        let n = r
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
            .count();
        String::from_utf8_lossy(&r[..n]).into_owned()
    }

    fn digits(&self, from: usize, radix: u32) -> usize {
        self.s[from.min(self.s.len())..]
            .iter()
            .take_while(|c| (**c as char).is_digit(radix))
            .count()
    }

    fn value(&self, from: usize, n: usize, radix: u32) -> Option<u64> {
        let text = std::str::from_utf8(&self.s[from..from + n]).ok()?;
        u64::from_str_radix(text, radix).ok()
    }

    /// C `%i`: decimal, `0x` hex or leading-zero octal. Negative numbers
    /// are not accepted.
    pub fn int_i(&mut self) -> Option<u64> {
        let start = self.pos;
        let mut p = self.pos;
        if self.s.get(p) == Some(&b'+') {
            p += 1;
        }
        let (radix, from) = if self.s.get(p) == Some(&b'0')
            && matches!(self.s.get(p + 1), Some(b'x' | b'X'))
            && self.s.get(p + 2).is_some_and(|c| c.is_ascii_hexdigit())
        {
            (16, p + 2)
        } else if self.s.get(p) == Some(&b'0') {
            (8, p)
        } else {
            (10, p)
        };
        let n = self.digits(from, radix);
        if n == 0 {
            self.pos = start;
            return None;
        }
        let v = self.value(from, n, radix);
        if v.is_some() {
            self.pos = from + n;
        }
        v
    }

    /// C `%u`: decimal only.
    pub fn int_u(&mut self) -> Option<u64> {
        let n = self.digits(self.pos, 10);
        if n == 0 {
            return None;
        }
        let v = self.value(self.pos, n, 10)?;
        self.pos += n;
        Some(v)
    }

    /// C `%x`: hex digits with an optional `0x` prefix.
    pub fn int_x(&mut self) -> Option<u64> {
        let mut from = self.pos;
        if (self.starts("0x") || self.starts("0X"))
            && self.s.get(from + 2).is_some_and(|c| c.is_ascii_hexdigit())
        {
            from += 2;
        }
        let n = self.digits(from, 16);
        if n == 0 {
            return None;
        }
        let v = self.value(from, n, 16)?;
        self.pos = from + n;
        Some(v)
    }

    /// `%i` that must fit in `max`.
    pub fn int_max(&mut self, max: u64) -> Option<u64> {
        let start = self.pos;
        match self.int_i() {
            Some(v) if v <= max => Some(v),
            _ => {
                self.pos = start;
                None
            }
        }
    }

    pub fn u8_i(&mut self) -> Option<u8> {
        self.int_max(u8::MAX.into()).map(|v| v as u8)
    }
    pub fn u16_i(&mut self) -> Option<u16> {
        self.int_max(u16::MAX.into()).map(|v| v as u16)
    }
    pub fn u32_i(&mut self) -> Option<u32> {
        self.int_max(u32::MAX.into()).map(|v| v as u32)
    }
    pub fn u64_i(&mut self) -> Option<u64> {
        self.int_i()
    }

    /// Dotted-quad IPv4 address.
    pub fn ipv4(&mut self) -> Option<[u8; 4]> {
        let start = self.pos;
        let mut out = [0u8; 4];
        for (i, b) in out.iter_mut().enumerate() {
            if i > 0 && !self.eat(".") {
                self.pos = start;
                return None;
            }
            match self.int_u() {
                Some(v) if v <= 255 => *b = v as u8,
                _ => {
                    self.pos = start;
                    return None;
                }
            }
        }
        Some(out)
    }

    /// Colon-separated Ethernet address (1 or 2 hex digits per byte).
    pub fn mac(&mut self) -> Option<[u8; 6]> {
        let start = self.pos;
        let mut out = [0u8; 6];
        for (i, b) in out.iter_mut().enumerate() {
            if i > 0 && !self.eat(":") {
                self.pos = start;
                return None;
            }
            let n = self.digits(self.pos, 16);
            match (n, self.value(self.pos, n.min(2), 16)) {
                (1..=2, Some(v)) => {
                    *b = v as u8;
                    self.pos += n;
                }
                _ => {
                    self.pos = start;
                    return None;
                }
            }
        }
        Some(out)
    }

    /// IPv6 address (the characters OVS's `IPV6_SCAN_FMT` accepts).
    pub fn ipv6(&mut self) -> Option<[u8; 16]> {
        let r = self.rest();
        let n = r
            .iter()
            .take(46)
            .take_while(|c| c.is_ascii_hexdigit() || **c == b':' || **c == b'.')
            .count();
        let text = std::str::from_utf8(&r[..n]).ok()?;
        let addr: std::net::Ipv6Addr = text.parse().ok()?;
        self.pos += n;
        Some(addr.octets())
    }

    /// A hex or decimal integer written into a big-endian field of `width`
    /// bytes (OVS `parse_int_string`): `0x...` may be up to `2 * width`
    /// digits, decimal must fit 64 bits.
    pub fn int_string(&mut self, width: usize) -> Option<Vec<u8>> {
        let start = self.pos;
        let mut out = vec![0u8; width];
        if (self.starts("0x") || self.starts("0X"))
            && self
                .s
                .get(self.pos + 2)
                .is_some_and(|c| c.is_ascii_hexdigit())
        {
            let from = self.pos + 2;
            let n = self.digits(from, 16);
            let digits = &self.s[from..from + n];
            // Leading zeros do not count against the width.
            let sig: Vec<u8> = digits.iter().copied().skip_while(|&c| c == b'0').collect();
            if sig.len() > 2 * width {
                self.pos = start;
                return None;
            }
            for (i, c) in sig.iter().rev().enumerate() {
                let v = (*c as char).to_digit(16).unwrap_or(0) as u8;
                let byte = width - 1 - i / 2;
                out[byte] |= if i % 2 == 0 { v } else { v << 4 };
            }
            self.pos = from + n;
            Some(out)
        } else {
            let v = self.int_u()?;
            let bytes = v.to_be_bytes();
            for (i, b) in bytes.iter().rev().enumerate() {
                if i < width {
                    out[width - 1 - i] = *b;
                } else if *b != 0 {
                    self.pos = start;
                    return None;
                }
            }
            Some(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_parse_ints() {
        let mut c = Cursor::new("0x1f,017,42)");
        assert_eq!(c.int_i(), Some(0x1f));
        assert!(c.eat(","));
        assert_eq!(c.int_i(), Some(0o17));
        assert!(c.eat(","));
        assert_eq!(c.u8_i(), Some(42));
        assert_eq!(c.peek(), Some(b')'));
        let mut c = Cursor::new("300");
        assert_eq!(c.u8_i(), None);
        assert_eq!(c.pos(), 0);
    }

    #[test]
    fn test_parse_addresses() {
        let mut c = Cursor::new("10.1.2.3/255.0.0.0");
        assert_eq!(c.ipv4(), Some([10, 1, 2, 3]));
        assert!(c.eat("/"));
        assert_eq!(c.ipv4(), Some([255, 0, 0, 0]));
        let mut c = Cursor::new("00:0a:0B:c:0d:0e,");
        assert_eq!(c.mac(), Some([0, 10, 11, 12, 13, 14]));
        let mut c = Cursor::new("fe80::1)");
        assert_eq!(c.ipv6().map(|a| a[15]), Some(1));
        let mut c = Cursor::new("0xa/");
        assert_eq!(c.int_string(4), Some(vec![0, 0, 0, 0xa]));
    }

    #[test]
    fn test_parse_truncated_never_panics() {
        for s in ["", "0x", "1.2.3", "00:11", "::g", "0x123456789"] {
            let mut c = Cursor::new(s);
            let _ = (
                c.int_i(),
                c.ipv4(),
                c.mac(),
                c.ipv6(),
                c.int_string(2),
                c.int_x(),
            );
        }
    }
}
