//! Flow extraction against OVS's own test vectors
//! (`../shared/conformance/packets`): the 247 flowgen frames must yield the
//! fields listed in flowgen.tsv, the pcap must hold the same frames, every
//! frame must agree with etherparse where both parse, and the frames that
//! once crashed OVS's extractor must extract without panicking.

use std::path::PathBuf;

use dp_core::flow::key::VLAN_CFI;
use dp_core::flow::{FlowKey, extract, extract_frame, oracle};
use dp_core::packet::{OFS_NONE, PacketMetadata, PacketPool, PoolConfig};

fn conformance_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/packets")
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex frame"))
        .collect()
}

fn mac(s: &str) -> [u8; 6] {
    let v: Vec<u8> = s
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).expect("mac"))
        .collect();
    v.try_into().expect("6 bytes")
}

fn ipv4(s: &str) -> [u8; 4] {
    s.parse::<std::net::Ipv4Addr>().expect("ipv4").octets()
}

fn num(s: &str) -> u64 {
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).expect("hex number"),
        None => s.parse().expect("number"),
    }
}

struct Expected {
    n: usize,
    attributes: String,
    dl_src: [u8; 6],
    dl_dst: [u8; 6],
    dl_vlan: u16,
    dl_type: u16,
    nw_src: [u8; 4],
    nw_dst: [u8; 4],
    nw_proto: u8,
    nw_tos: u8,
    tp_src: u16,
    tp_dst: u16,
    frame: Vec<u8>,
}

fn load_expected() -> Vec<Expected> {
    let tsv = std::fs::read_to_string(conformance_dir().join("flowgen.tsv")).expect("flowgen.tsv");
    tsv.lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            Expected {
                n: f[0].parse().unwrap(),
                attributes: f[1].to_string(),
                dl_src: mac(f[2]),
                dl_dst: mac(f[3]),
                dl_vlan: num(f[4]) as u16,
                dl_type: num(f[5]) as u16,
                nw_src: ipv4(f[6]),
                nw_dst: ipv4(f[7]),
                nw_proto: num(f[8]) as u8,
                nw_tos: num(f[9]) as u8,
                tp_src: num(f[10]) as u16,
                tp_dst: num(f[11]) as u16,
                frame: unhex(f[13]),
            }
        })
        .collect()
}

#[test]
fn flowgen_frames_extract_the_expected_fields() {
    let expected = load_expected();
    assert_eq!(expected.len(), 247);
    let pcap = std::fs::read(conformance_dir().join("flowgen.pcap")).expect("flowgen.pcap");
    let frames: Vec<Vec<u8>> = dp_core::pcap::parse(&pcap)
        .expect("valid pcap")
        .into_iter()
        .map(|r| r.data)
        .collect();
    assert_eq!(frames.len(), expected.len());

    let pool = PacketPool::new("flowgen", PoolConfig::heap(4));
    let mut failures = Vec::new();
    for (exp, frame) in expected.iter().zip(&frames) {
        assert_eq!(
            &exp.frame, frame,
            "frame {} differs between tsv and pcap",
            exp.n
        );
        let mut packet = pool.alloc_from(frame).expect("buffer");
        packet.meta_mut().in_port = 1;
        let mut key = FlowKey::ZERO;
        extract(&mut packet, &mut key);

        let vlan = if key.vlans[0].tci & VLAN_CFI != 0 {
            key.vlans[0].vid()
        } else {
            0xffff
        };
        let got = (
            key.dl_src,
            key.dl_dst,
            vlan,
            key.dl_type,
            key.nw_src,
            key.nw_dst,
            key.nw_proto,
            key.nw_tos & 0xfc,
            key.tp_src,
            key.tp_dst,
        );
        let want = (
            exp.dl_src,
            exp.dl_dst,
            exp.dl_vlan,
            exp.dl_type,
            exp.nw_src,
            exp.nw_dst,
            exp.nw_proto,
            exp.nw_tos,
            exp.tp_src,
            exp.tp_dst,
        );
        if got != want {
            failures.push(format!(
                "frame {} ({}):\n  got  {got:?}\n  want {want:?}",
                exp.n, exp.attributes
            ));
        }
        if let Err(diff) = oracle::compare_with_etherparse(frame, &key) {
            failures.push(format!("frame {}: etherparse disagrees: {diff}", exp.n));
        }
        let offsets = packet.meta().offsets;
        if key.dl_type == 0x0800 && offsets.l3 == OFS_NONE {
            failures.push(format!("frame {}: IPv4 without an L3 offset", exp.n));
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(pool.in_use(), 0);
}

#[test]
fn ovs_fuzzer_regression_frames_do_not_panic() {
    let mut seen = 0;
    for entry in std::fs::read_dir(conformance_dir()).expect("conformance dir") {
        let path = entry.expect("dir entry").path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("flow_extract_fuzzer-") {
            continue;
        }
        seen += 1;
        let frame = std::fs::read(&path).expect("fuzzer frame");
        // Every prefix too: truncation is where extractors go wrong.
        for len in 0..=frame.len() {
            let mut key = FlowKey::ZERO;
            let offsets = extract_frame(&frame[..len], &PacketMetadata::new(1), &mut key);
            for ofs in [offsets.l2_5, offsets.l3, offsets.l4] {
                assert!(
                    ofs == OFS_NONE || usize::from(ofs) <= len,
                    "{name}: offset past the frame"
                );
            }
        }
    }
    assert_eq!(seen, 2, "expected the two OVS fuzzer frames");
}

/// Every committed fuzz seed (flowgen frames plus regressions the fuzzer
/// found) runs through the same checks as the fuzz target, so a fixed
/// finding stays fixed even where the fuzzer does not run.
#[test]
fn fuzz_seed_frames_pass_the_fuzz_checks() {
    let seeds = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/extract");
    let mut seen = 0;
    for entry in std::fs::read_dir(&seeds).expect("fuzz/seeds/extract") {
        let path = entry.expect("dir entry").path();
        let frame = std::fs::read(&path).expect("seed");
        let mut key = FlowKey::ZERO;
        let offsets = extract_frame(&frame, &PacketMetadata::new(1), &mut key);
        assert!(
            usize::from(offsets.l2_pad) <= frame.len(),
            "{}",
            path.display()
        );
        if let Err(diff) = oracle::compare_with_etherparse(&frame, &key) {
            panic!("{}: {diff}", path.display());
        }
        seen += 1;
    }
    assert!(seen >= 250, "seed corpus went missing ({seen} files)");
}
