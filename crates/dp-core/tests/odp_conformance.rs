//! OVS ODP text conformance: the data under `../shared/conformance/odp/`
//! (taken from OVS's own test suite) must parse and print back exactly as
//! OVS does. Lines for families oxvs does not implement must be rejected
//! with an "unsupported" error and are listed here, so the gap is visible.

use dp_core::odp::{self, OdpError};

fn data(name: &str) -> Vec<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/conformance/odp/"
    );
    let text = std::fs::read_to_string(format!("{path}{name}"))
        .unwrap_or_else(|e| panic!("reading {path}{name}: {e}"));
    text.lines().map(str::to_owned).collect()
}

/// Checks every line; returns the 1-based numbers of the lines rejected as
/// unsupported. Any other mismatch fails the test.
fn check(
    name: &str,
    expected: &[String],
    f: impl Fn(&str) -> Result<String, OdpError>,
) -> Vec<usize> {
    let input = data(name);
    let mut unsupported = Vec::new();
    let mut failures = Vec::new();
    for (i, line) in input.iter().enumerate() {
        match f(line) {
            Ok(out) if out == expected[i] => {}
            Ok(out) => failures.push(format!(
                "{name}:{}:\n  in:   {line}\n  want: {}\n  got:  {out}",
                i + 1,
                expected[i]
            )),
            Err(OdpError::Unsupported(why)) => {
                eprintln!("{name}:{}: unsupported: {why}", i + 1);
                unsupported.push(i + 1);
            }
            Err(e) => failures.push(format!("{name}:{}: {e}\n  in: {line}", i + 1)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!(
        "{name}: {} lines, {} pass, {} unsupported",
        input.len(),
        input.len() - unsupported.len(),
        unsupported.len()
    );
    unsupported
}

#[test]
fn masked_keys_round_trip() {
    let lines = data("masked-keys.txt");
    let unsupported = check("masked-keys.txt", &lines, odp::normalize_masked_key);
    assert_eq!(unsupported, Vec::<usize>::new());
}

#[test]
fn keys_normalize_like_ovs() {
    let expected = data("keys.expected.txt");
    let unsupported = check("keys.txt", &expected, odp::normalize_key);
    assert_eq!(unsupported, Vec::<usize>::new());
}

#[test]
fn actions_round_trip() {
    let lines = data("actions.txt");
    let unsupported = check("actions.txt", &lines, odp::normalize_actions);
    assert_eq!(unsupported, Vec::<usize>::new());
}

#[test]
fn invalid_actions_are_rejected() {
    for line in data("actions-invalid.txt") {
        match odp::normalize_actions(&line) {
            Ok(out) => panic!("accepted invalid actions {line:?} as {out:?}"),
            Err(e) => eprintln!("rejected {line:?}: {e}"),
        }
    }
}

/// More of OVS's "valid forms" for actions (tests/odp.at), beyond the
/// shared conformance file: each must print back unchanged.
#[test]
fn more_ovs_action_forms_round_trip() {
    let forms = [
        "userspace(pid=6633,sFlow(vid=9,pcp=7,output=10),actions)",
        "userspace(pid=9765,slow_path(0))",
        "userspace(pid=1234567,userdata(0102030405060708090a0b0c0d0e0f),actions)",
        "userspace(pid=6633,flow_sample(probability=123,collector_set_id=1234,obs_domain_id=2345,obs_point_id=3456,output_port=10))",
        "userspace(pid=6633,ipfix(output_port=10))",
        "userspace(pid=6633,controller(reason=1,dont_send=0,continuation=1,recirc_id=4444,rule_cookie=0x5555,controller_id=0,max_len=65535))",
        "set(in_port(2))",
        "set(eth(src=00:01:02:03:04:05,dst=10:11:12:13:14:15/ff:ff:ff:00:00:00))",
        "set(ipv4(src=35.8.2.41,dst=172.16.0.20,proto=5,tos=0x80,ttl=128,frag=no))",
        "set(ipv4(tos=0/0x3))",
        "set(tcp(src=80,dst=8080))",
        "set(sctp(src=82))",
        "set(icmp(type=1,code=2))",
        "set(ipv6(src=::1,dst=::2))",
        "set(ipv6(label=0,proto=10,hlimit=128))",
        "set(vlan(vid=5))",
        "set(vlan(vid=3,pcp=5,cfi=0))",
        "set(vlan(vid=5/0x1)),3",
        "push_vlan(vid=13,pcp=5,cfi=0)",
        "push_vlan(tpid=0x9100,vid=13,pcp=5,cfi=0)",
        "sample(sample=9.7%,actions(1,2,3,push_vlan(vid=1,pcp=2)))",
        "set(tunnel(tun_id=0xabcdef1234567890,src=1.1.1.1,dst=2.2.2.2,ttl=64,flags(key)))",
        "tnl_push(tnl_port(4),header(size=42,type=3,eth(dst=f8:bc:12:44:34:b6,src=f8:bc:12:46:58:e0,dl_type=0x0800),ipv4(src=1.1.2.88,dst=1.1.2.92,proto=47,tos=0,ttl=64,frag=0x4000),gre((flags=0x2000,proto=0x6558),key=0x1e241)),out_port(1))",
        "tnl_push(tnl_port(6),header(size=50,type=4,eth(dst=f8:bc:12:44:34:b6,src=f8:bc:12:46:58:e0,dl_type=0x0800),ipv4(src=1.1.2.88,dst=1.1.2.92,proto=17,tos=0,ttl=64,frag=0x4000),udp(src=0,dst=4789,csum=0x0),vxlan(flags=0x8000000,vni=0x1c7)),out_port(1))",
        "tnl_push(tnl_port(6),header(size=78,type=5,eth(dst=f8:bc:12:44:34:b6,src=f8:bc:12:46:58:e0,dl_type=0x86dd),ipv6(src=2001:cafe::88,dst=2001:cafe::92,label=0,proto=17,tclass=0x0,hlimit=64),udp(src=0,dst=6081,csum=0x0),geneve(crit,vni=0x1c7,options({class=0xffff,type=0x80,len=4,0xa}))),out_port(1))",
        "tnl_push(tnl_port(4),header(size=62,type=109,eth(dst=f8:bc:12:44:34:b6,src=f8:bc:12:46:58:e0,dl_type=0x86dd),ipv6(src=2001:cafe::88,dst=2001:cafe::92,label=0,proto=47,tclass=0x0,hlimit=64),gre((flags=0x2000,proto=0x6558),key=0x1e241)),out_port(1))",
        "ct",
        "ct(commit,zone=5)",
        "ct(commit,label=0x1234567890abcdef1234567890abcdef/0xf1f2f3f4f5f6f7f8f9f0fafbfcfdfeff)",
        "ct(commit,helper=tftp)",
        "ct(nat)",
        "ct(commit,nat(src=10.0.0.240:32768-65535,random))",
        "ct(commit,nat(src=10.0.0.240-10.0.0.254:32768-65535,persistent))",
        "ct(commit,nat(src=fe80::20c:29ff:fe88:1-fe80::20c:29ff:fe88:a18b,random))",
        "ct(commit,helper=ftp,nat(src=10.1.1.240-10.1.1.255))",
        "ct(force_commit,zone=5)",
        "trunc(100)",
        "clone(clone(push_vlan(vid=12,pcp=0),2),1)",
        "set(tunnel(tun_id=0x1,dst=1.1.1.1,ttl=64,erspan(ver=2,dir=1,hwid=0x1),flags(df|key)))",
        "push_mpls(label=100,tc=3,ttl=64,bos=1,eth_type=0x8847)",
        "pop_mpls(eth_type=0x800)",
        "hash(l4(0)),recirc(0x2a)",
        "hash(sym_l4(1))",
        "meter(0)",
        "check_pkt_len(size=200,gt(drop),le(clone(1)))",
        "push_eth(src=00:01:02:03:04:05,dst=10:11:12:13:14:15),pop_eth",
    ];
    let bad: Vec<String> = forms
        .iter()
        .filter_map(|f| match odp::normalize_actions(f) {
            Ok(out) if out == *f => None,
            Ok(out) => Some(format!("{f}\n  got {out}")),
            Err(e) => Some(format!("{f}\n  error {e}")),
        })
        .collect();
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// OVS rejects userdata that would not fit one netlink message, and keys
/// nested deeper than 32.
#[test]
fn oversized_and_overnested_input_is_rejected() {
    let ud = |n: usize, tail: &str| {
        format!(
            "userspace(pid=1234567,userdata({}){tail})",
            "a".repeat(2 * n)
        )
    };
    assert!(odp::normalize_actions(&ud(65512, ",actions")).is_ok());
    assert!(odp::normalize_actions(&ud(65513, ",actions")).is_err());
    assert!(odp::normalize_actions(&ud(65508, ",tunnel_out_port=10")).is_ok());
    assert!(odp::normalize_actions(&ud(65509, ",tunnel_out_port=10")).is_err());
    let encap33 = format!("{}{}", "encap(".repeat(33), ")".repeat(33));
    assert!(odp::normalize_key(&encap33).is_err());
}
