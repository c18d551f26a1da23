use super::*;

fn region(layout: &Layout) -> Region {
    let r = heap_region(layout.size);
    layout.init_header(&r);
    r
}

#[test]
fn layout_bounds_and_alignment() {
    assert_eq!(Layout::new(100, 10, 2048), Err(BadInput::BadRegion));
    assert_eq!(Layout::new(64, 10, 1000), Err(BadInput::BadRegion));
    assert_eq!(Layout::new(64, 0, 2048), Err(BadInput::BadRegion));
    let l = Layout::new(64, 128, 2048).unwrap();
    for r in [l.fill, l.punt, l.inject, l.completion] {
        assert_eq!(r.base % 64, 0);
    }
    assert_eq!(l.frames % 4096, 0);
    assert_eq!(l.size, l.frames + 128 * 2048);
    let r = region(&l);
    assert_eq!(l.check_region(&r), Ok(()));
    let other = Layout::new(64, 64, 2048).unwrap();
    assert_eq!(other.check_region(&r), Err(BadInput::BadRegion));
    r.write(4, &9u32.to_le_bytes());
    assert_eq!(l.check_region(&r), Err(BadInput::BadVersion));
}

#[test]
fn descriptors_round_trip() {
    let p = PuntDesc {
        frame: 7,
        offset: 64,
        len: 1514,
        src_port: 3,
        meta: 1,
    };
    assert_eq!(PuntDesc::from_bytes(p.to_bytes()), p);
    let i = InjectDesc {
        frame: 9,
        offset: 0,
        len: 60,
        n_ports: 2,
        ports: [4, 5, 0, 0, 0],
    };
    assert_eq!(InjectDesc::from_bytes(i.to_bytes()), i);
    assert_eq!(i.port_list(), Ok(&[4u32, 5][..]));
    for n in [0, 6, u32::MAX] {
        let bad = InjectDesc { n_ports: n, ..i };
        assert_eq!(bad.port_list(), Err(BadInput::BadPortList));
    }
}

#[test]
fn produce_consume_wraps_and_fills() {
    let l = Layout::new(8, 16, 2048).unwrap();
    let r = region(&l);
    let mut prod = Producer::new(l.punt, &r);
    let mut cons = Consumer::new(l.punt, &r);
    let mut next = 0u32;
    for round in 0..10u32 {
        let n = prod.free(&r).unwrap().min(round % 8 + 1);
        for i in 0..n {
            let d = PuntDesc {
                frame: next + i,
                ..PuntDesc::default()
            };
            prod.put(&r, i, &d.to_bytes());
        }
        prod.submit(&r, n);
        assert_eq!(cons.available(&r), Ok(n));
        for i in 0..n {
            assert_eq!(PuntDesc::from_bytes(cons.get(&r, i)).frame, next + i);
        }
        cons.release(&r, n);
        next += n;
    }
    // Full ring: no free slot, exactly n_desc available.
    for i in 0..8 {
        prod.put(&r, i, &[0; PUNT_DESC_SIZE]);
    }
    prod.submit(&r, 8);
    assert_eq!(prod.free(&r), Ok(0));
    assert_eq!(cons.available(&r), Ok(8));
}

#[test]
fn peer_indices_out_of_range_are_counted_errors() {
    let l = Layout::new(8, 16, 2048).unwrap();
    let r = region(&l);
    let cons = Consumer::new(l.punt, &r);
    // A producer index 9 ahead of the consumer on an 8-slot ring.
    r.atomic_u32(l.punt.base).store(9, Ordering::Release);
    assert_eq!(cons.available(&r), Err(BadInput::RingIndexOutOfRange));
    r.atomic_u32(l.punt.base).store(u32::MAX, Ordering::Release);
    assert_eq!(cons.available(&r), Err(BadInput::RingIndexOutOfRange));
    let prod = Producer::new(l.fill, &r);
    // A consumer index ahead of what was produced.
    r.atomic_u32(l.fill.base + 64).store(3, Ordering::Release);
    assert_eq!(prod.free(&r), Err(BadInput::RingIndexOutOfRange));
}

#[test]
fn frame_references_are_checked() {
    let l = Layout::new(8, 16, 2048).unwrap();
    assert_eq!(l.check_frame(16, 0, 60), Err(BadInput::FrameOutOfRange));
    assert_eq!(
        l.check_frame(u32::MAX, 0, 60),
        Err(BadInput::FrameOutOfRange)
    );
    assert_eq!(l.check_frame(0, 2000, 60), Err(BadInput::FramePastSlot));
    assert_eq!(l.check_frame(0, 0, 2049), Err(BadInput::FramePastSlot));
    assert_eq!(l.check_frame(15, 48, 2000), Ok(l.frames + 15 * 2048 + 48));
}
