//! Frames shared by the benchmarks (not a bench target itself).

/// A 60-byte Ethernet + IPv4 + UDP frame (TTL 64, 18 bytes of zero
/// payload, checksums left zero: the datapath under test does not check
/// them).
pub fn udp4_frame(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src_ip: [u8; 4],
    dst_ip: [u8; 4],
    sport: u16,
    dport: u16,
) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[..6].copy_from_slice(&dst_mac);
    f[6..12].copy_from_slice(&src_mac);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[16..18].copy_from_slice(&46u16.to_be_bytes());
    f[22] = 64;
    f[23] = 17;
    f[26..30].copy_from_slice(&src_ip);
    f[30..34].copy_from_slice(&dst_ip);
    f[34..36].copy_from_slice(&sport.to_be_bytes());
    f[36..38].copy_from_slice(&dport.to_be_bytes());
    f[38..40].copy_from_slice(&26u16.to_be_bytes());
    f
}

/// The plain 10.0.0.1:1000 → 10.0.0.2:2000 frame most cases use.
#[allow(
    dead_code,
    reason = "each bench target uses its own subset of this module"
)]
pub fn udp4_60() -> Vec<u8> {
    udp4_frame(
        [0, 1, 2, 3, 4, 5],
        [6, 7, 8, 9, 10, 11],
        [10, 0, 0, 1],
        [10, 0, 0, 2],
        1000,
        2000,
    )
}
