//! Round trips and malformed-message fixtures.

use super::*;

fn vport() -> VportInfo {
    VportInfo {
        port_no: 3,
        kind: PortKind::VmNic,
        origin: PortOrigin::Switch,
        name: "OVS-vm1".into(),
        mac: [2, 0, 0, 0, 0, 3],
        mtu: 1500,
        link_up: true,
        n_queues: 2,
    }
}

fn genl(bytes: &[u8]) -> Message<'_> {
    match decode(bytes).expect("decodes") {
        (Decoded::Genl(m), rest) => {
            assert!(rest.is_empty());
            m
        }
        other => panic!("not genl: {other:?}"),
    }
}

#[test]
fn test_emit_hello_fixture() {
    let bytes = Builder::new(FAMILY_CTRL, CTRL_CMD_HELLO, NLM_F_REQUEST, 7, 0)
        .u32(ATTR_CTRL_VERSION, 0x0001_0000)
        .finish();
    #[rustfmt::skip]
    let fixture: [u8; 32] = [
        32, 0, 0, 0,  0x11, 0,  1, 0,  7, 0, 0, 0,  0, 0, 0, 0, // nlmsghdr
        2, 1, 0, 0,                                             // genl: cmd, version
        0, 0, 0, 0,                                             // dp_ifindex
        8, 0, 2, 0,  0, 0, 1, 0,                                // ATTR_CTRL_VERSION
    ];
    assert_eq!(bytes, fixture);
    let m = genl(&fixture);
    assert_eq!(
        (m.family(), m.cmd, m.version, m.header.seq),
        (FAMILY_CTRL, 2, 1, 7)
    );
    assert_eq!(m.u32(ATTR_CTRL_VERSION), Ok(VERSION));
}

#[test]
fn vport_round_trip() {
    let bytes = vport()
        .write(Builder::new(FAMILY_VPORT, VPORT_CMD_GET, 0, 9, 5))
        .finish();
    let m = genl(&bytes);
    assert_eq!(check_command(m.family(), m.cmd), Ok(()));
    assert_eq!(VportInfo::read(&m), Ok(vport()));
}

#[test]
fn ring_grant_round_trip_both_locations() {
    for location in [
        RegionLocation::ShmPath("/dev/shm/x".into()),
        RegionLocation::UserAddr(0x7fff_0000_1000),
    ] {
        let grant = RingGrant {
            ring_id: 42,
            port_no: 1,
            queue: 0,
            n_desc: 1024,
            n_frames: 2048,
            frame_size: 2048,
            region_size: 1 << 22,
            location,
        };
        let bytes = grant
            .write(Builder::new(FAMILY_PACKET, PACKET_CMD_RING_ATTACH, 0, 1, 1))
            .finish();
        assert_eq!(RingGrant::read(&genl(&bytes)), Ok(grant));
    }
}

#[test]
fn error_and_done_and_multi_message_buffers() {
    let mut buf = vport()
        .write(Builder::new(FAMILY_VPORT, VPORT_CMD_GET, NLM_F_MULTI, 1, 1))
        .finish();
    buf.extend(error_msg(1, 1, ENOENT));
    buf.extend(done_msg(1, 1));
    let all = decode_all(&buf).unwrap();
    assert_eq!(all.len(), 3);
    assert!(matches!(all[1], Decoded::Error { errno: ENOENT, .. }));
    assert!(matches!(all[2], Decoded::Done { .. }));
}

#[test]
fn u32_list_and_unknown_attrs_are_skipped() {
    let bytes = Builder::new(FAMILY_PACKET, PACKET_CMD_EXECUTE, 0, 1, 1)
        .bytes(999, b"x")
        .u32_list(ATTR_PACKET_OUT_PORTS, &[1, 2, 3])
        .finish();
    let m = genl(&bytes);
    assert_eq!(m.u32_list(ATTR_PACKET_OUT_PORTS), Ok(vec![1, 2, 3]));
    assert_eq!(m.attrs().count(), 2);
}

#[test]
fn test_parse_truncated_header() {
    let bytes = Builder::new(FAMILY_CTRL, CTRL_CMD_GET_PID, 0, 1, 0).finish();
    for cut in 0..NLMSG_HDRLEN {
        assert_eq!(
            decode(&bytes[..cut]),
            Err(BadInput::TruncatedHeader),
            "{cut}"
        );
    }
    // A header that claims only the netlink part: no genl header.
    let mut short = bytes[..NLMSG_HDRLEN + 2].to_vec();
    short[..4].copy_from_slice(&((NLMSG_HDRLEN + 2) as u32).to_le_bytes());
    assert_eq!(decode(&short), Err(BadInput::TruncatedHeader));
    // An error message without its errno.
    let mut err = error_msg(1, 1, 5);
    err.truncate(NLMSG_HDRLEN);
    err[..4].copy_from_slice(&(NLMSG_HDRLEN as u32).to_le_bytes());
    assert_eq!(decode(&err), Err(BadInput::TruncatedHeader));
}

#[test]
fn test_parse_bad_message_length() {
    let mut bytes = Builder::new(FAMILY_CTRL, CTRL_CMD_GET_PID, 0, 1, 0).finish();
    for bad in [0u32, 3, 15, bytes.len() as u32 + 1, u32::MAX] {
        bytes[..4].copy_from_slice(&bad.to_le_bytes());
        assert_eq!(decode(&bytes), Err(BadInput::BadMessageLength), "{bad}");
    }
}

#[test]
fn test_parse_attr_past_end() {
    let good = Builder::new(FAMILY_VPORT, VPORT_CMD_GET, 0, 1, 0)
        .str(ATTR_VPORT_NAME, "OVS-a")
        .finish();
    // Attribute length past the message end.
    let mut bytes = good.clone();
    bytes[MSG_HDRLEN..MSG_HDRLEN + 2].copy_from_slice(&200u16.to_le_bytes());
    assert_eq!(decode(&bytes), Err(BadInput::AttrPastEnd));
    // Attribute length below its own header.
    bytes[MSG_HDRLEN..MSG_HDRLEN + 2].copy_from_slice(&2u16.to_le_bytes());
    assert_eq!(decode(&bytes), Err(BadInput::AttrPastEnd));
    // Two stray bytes after the last attribute.
    let mut bytes = good.clone();
    bytes.extend_from_slice(&[1, 0]);
    let len = bytes.len() as u32;
    bytes[..4].copy_from_slice(&len.to_le_bytes());
    assert_eq!(decode(&bytes), Err(BadInput::AttrPastEnd));
}

#[test]
fn test_parse_unknown_family_and_command() {
    assert_eq!(check_command(0x99, 1), Err(BadInput::UnknownFamily));
    assert_eq!(
        check_command(FAMILY_VPORT, 77),
        Err(BadInput::UnknownCommand)
    );
    // They still decode: unknown is the caller's decision, not a crash.
    let bytes = Builder::new(0x99, 1, 0, 1, 0).finish();
    assert!(matches!(decode(&bytes), Ok((Decoded::Genl(_), _))));
}

#[test]
fn typed_getters_reject_bad_sizes_and_strings() {
    let bytes = Builder::new(FAMILY_VPORT, VPORT_CMD_GET, 0, 1, 0)
        .bytes(ATTR_VPORT_PORT_NO, &[1, 2, 3])
        .bytes(ATTR_VPORT_NAME, b"no-nul")
        .bytes(ATTR_VPORT_MAC, &[1, 2, 3])
        .bytes(ATTR_VPORT_MTU, b"a\0b\0")
        .bytes(ATTR_VPORT_N_QUEUES, &[0xff, 0xfe, 0])
        .finish();
    let m = genl(&bytes);
    assert_eq!(m.u32(ATTR_VPORT_PORT_NO), Err(BadInput::BadAttr));
    assert_eq!(m.str(ATTR_VPORT_NAME), Err(BadInput::BadAttr));
    assert_eq!(m.str(ATTR_VPORT_MTU), Err(BadInput::BadAttr));
    assert_eq!(m.str(ATTR_VPORT_N_QUEUES), Err(BadInput::BadAttr));
    assert_eq!(m.mac(ATTR_VPORT_MAC), Err(BadInput::BadAttr));
    assert_eq!(m.u32(ATTR_VPORT_KIND), Err(BadInput::MissingAttr));
    assert_eq!(m.u32_list(ATTR_VPORT_PORT_NO), Err(BadInput::BadAttr));
    assert_eq!(VportInfo::read(&m), Err(BadInput::MissingAttr));
}

#[test]
fn every_prefix_and_every_byte_flip_is_an_error_or_a_message_never_a_panic() {
    let buf = vport()
        .write(Builder::new(FAMILY_VPORT, VPORT_CMD_GET, 0, 1, 1))
        .finish();
    for cut in 0..buf.len() {
        let _ = decode_all(&buf[..cut]);
    }
    for i in 0..buf.len() {
        for v in [0u8, 1, 3, 0x7f, 0xff] {
            let mut b = buf.clone();
            b[i] = v;
            if let Ok(all) = decode_all(&b) {
                for m in all {
                    if let Decoded::Genl(m) = m {
                        let _ = VportInfo::read(&m);
                        let _ = RingGrant::read(&m);
                        let _ = m.attrs().count();
                    }
                }
            }
        }
    }
}

/// Found by the windows_msg fuzz target: an error message whose errno is
/// i32::MIN overflowed the negation.
#[test]
fn test_parse_error_message_with_extreme_errno() {
    let mut msg = Vec::new();
    msg.extend_from_slice(&20u32.to_le_bytes()); // length: header + errno
    msg.extend_from_slice(&NLMSG_ERROR.to_le_bytes());
    msg.extend_from_slice(&0u16.to_le_bytes()); // flags
    msg.extend_from_slice(&7u32.to_le_bytes()); // seq
    msg.extend_from_slice(&9u32.to_le_bytes()); // pid
    msg.extend_from_slice(&0x8000_0000u32.to_le_bytes());
    let (decoded, rest) = decode(&msg).expect("a well-formed error message");
    assert!(rest.is_empty());
    assert!(
        matches!(
            decoded,
            Decoded::Error {
                errno: i32::MIN,
                ..
            }
        ),
        "{decoded:?}"
    );
}
