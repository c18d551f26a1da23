//! The classic pcap file format (libpcap 2.4, Ethernet link type), read
//! from and written to byte buffers. No I/O here: callers read or write
//! the files.
//!
//! Reading accepts both byte orders and both the microsecond and the
//! nanosecond magic; writing produces little-endian microsecond files,
//! which every tool reads. Records whose captured length runs past the
//! end of the file end the read with an error naming the record, never a
//! panic.

use std::fmt;

const MAGIC_USEC: u32 = 0xa1b2_c3d4;
const MAGIC_NSEC: u32 = 0xa1b2_3c4d;
const GLOBAL_HEADER_LEN: usize = 24;
const RECORD_HEADER_LEN: usize = 16;
/// Link type Ethernet (`LINKTYPE_ETHERNET`).
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Snapshot length written into new files.
pub const SNAPLEN: u32 = 65_535;

/// One captured frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PcapRecord {
    /// Capture time, nanoseconds since the Unix epoch.
    pub timestamp_ns: u64,
    /// Length of the frame on the wire (may exceed `data.len()`).
    pub orig_len: u32,
    pub data: Vec<u8>,
}

/// Why a pcap file could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PcapError {
    /// Shorter than the 24-byte global header.
    TooShort,
    /// The first four bytes are not a pcap magic number.
    BadMagic(u32),
    /// A link type other than Ethernet.
    UnsupportedLinkType(u32),
    /// Record `index` (0-based) claims more bytes than the file holds.
    TruncatedRecord { index: usize },
}

impl fmt::Display for PcapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PcapError::TooShort => write!(f, "pcap: file shorter than the global header"),
            PcapError::BadMagic(m) => write!(f, "pcap: bad magic number {m:#010x}"),
            PcapError::UnsupportedLinkType(t) => {
                write!(f, "pcap: link type {t} is not Ethernet (1)")
            }
            PcapError::TruncatedRecord { index } => {
                write!(f, "pcap: record {index} runs past the end of the file")
            }
        }
    }
}

impl std::error::Error for PcapError {}

/// Parses a whole pcap file.
pub fn parse(bytes: &[u8]) -> Result<Vec<PcapRecord>, PcapError> {
    if bytes.len() < GLOBAL_HEADER_LEN {
        return Err(PcapError::TooShort);
    }
    let head: [u8; 4] = bytes[..4].try_into().expect("4 bytes");
    let (little_endian, nanos) = match (u32::from_le_bytes(head), u32::from_be_bytes(head)) {
        (MAGIC_USEC, _) => (true, false),
        (MAGIC_NSEC, _) => (true, true),
        (_, MAGIC_USEC) => (false, false),
        (_, MAGIC_NSEC) => (false, true),
        (m, _) => return Err(PcapError::BadMagic(m)),
    };
    let u32_at = |at: usize| {
        let b: [u8; 4] = bytes[at..at + 4].try_into().expect("4 bytes");
        if little_endian {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }
    };
    let link_type = u32_at(20);
    if link_type != LINKTYPE_ETHERNET {
        return Err(PcapError::UnsupportedLinkType(link_type));
    }
    let mut records = Vec::new();
    let mut at = GLOBAL_HEADER_LEN;
    while at < bytes.len() {
        let index = records.len();
        if bytes.len() - at < RECORD_HEADER_LEN {
            return Err(PcapError::TruncatedRecord { index });
        }
        let secs = u64::from(u32_at(at));
        let frac = u64::from(u32_at(at + 4));
        let caplen = u32_at(at + 8) as usize;
        let orig_len = u32_at(at + 12);
        let start = at + RECORD_HEADER_LEN;
        if bytes.len() - start < caplen {
            return Err(PcapError::TruncatedRecord { index });
        }
        let timestamp_ns = secs * 1_000_000_000 + if nanos { frac } else { frac * 1000 };
        records.push(PcapRecord {
            timestamp_ns,
            orig_len,
            data: bytes[start..start + caplen].to_vec(),
        });
        at = start + caplen;
    }
    Ok(records)
}

/// Appends the global header of a new little-endian microsecond file.
pub fn write_header(out: &mut Vec<u8>) {
    out.extend_from_slice(&MAGIC_USEC.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&SNAPLEN.to_le_bytes());
    out.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
}

/// Appends one record holding `frame` captured at `timestamp_ns`.
pub fn write_record(out: &mut Vec<u8>, timestamp_ns: u64, frame: &[u8]) {
    let caplen = frame.len().min(SNAPLEN as usize);
    let secs = (timestamp_ns / 1_000_000_000) as u32;
    let usecs = ((timestamp_ns % 1_000_000_000) / 1000) as u32;
    out.extend_from_slice(&secs.to_le_bytes());
    out.extend_from_slice(&usecs.to_le_bytes());
    out.extend_from_slice(&(caplen as u32).to_le_bytes());
    out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    out.extend_from_slice(&frame[..caplen]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_parse_round_trips() {
        let mut file = Vec::new();
        write_header(&mut file);
        write_record(&mut file, 1_500_000_123_000, &[1, 2, 3]);
        write_record(&mut file, 2_000_000_000, &[]);
        let records = parse(&file).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].data, vec![1, 2, 3]);
        assert_eq!(records[0].timestamp_ns, 1_500_000_123_000);
        assert_eq!(records[1].orig_len, 0);
    }

    #[test]
    fn test_parse_truncated_and_bad_files() {
        assert_eq!(parse(&[0; 10]), Err(PcapError::TooShort));
        assert_eq!(parse(&[0; 24]), Err(PcapError::BadMagic(0)));
        let mut file = Vec::new();
        write_header(&mut file);
        write_record(&mut file, 0, &[9; 20]);
        file.truncate(file.len() - 1);
        assert_eq!(parse(&file), Err(PcapError::TruncatedRecord { index: 0 }));
        let mut file = Vec::new();
        write_header(&mut file);
        file[20] = 101;
        assert_eq!(parse(&file), Err(PcapError::UnsupportedLinkType(101)));
    }

    #[test]
    fn test_parse_big_endian_nanosecond_file() {
        let mut file = Vec::new();
        file.extend_from_slice(&MAGIC_NSEC.to_be_bytes());
        file.extend_from_slice(&[
            0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 1,
        ]);
        file.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 5, 0, 0, 0, 2, 0, 0, 0, 2, 0xaa, 0xbb]);
        let records = parse(&file).unwrap();
        assert_eq!(records[0].timestamp_ns, 1_000_000_005);
        assert_eq!(records[0].data, vec![0xaa, 0xbb]);
    }

    #[test]
    fn parses_the_flowgen_conformance_capture() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/conformance/packets/flowgen.pcap"
        );
        let bytes = std::fs::read(path).expect("flowgen.pcap beside the checkout");
        assert_eq!(parse(&bytes).unwrap().len(), 247);
    }
}
