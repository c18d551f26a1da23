//! The control socket's framing and request decoder on arbitrary bytes:
//! no panic, the consumed length never exceeds the input, and feeding the
//! same bytes split at any point yields the same first request as feeding
//! them at once (what a slow client does). The server's [`Framer`], fed
//! byte by byte, must ask for a parse no later than the prefix at which a
//! complete value (request or not) appears: it may never hold back a
//! request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oxvs::control::{Framer, Parsed, parse_request, reply};

fuzz_target!(|data: &[u8]| {
    if data.len() <= 512 {
        let mut framer = Framer::default();
        for k in 1..=data.len() {
            let asked = framer.value_may_be_complete(&data[..k]);
            if matches!(
                parse_request(&data[..k]),
                Parsed::Request(..) | Parsed::Invalid { .. }
            ) {
                assert!(asked, "framer held back a complete value at byte {k}");
                break;
            }
        }
    }
    let whole = parse_request(data);
    match &whole {
        Parsed::Request(req, used) => {
            assert!(*used <= data.len());
            let _ = reply(&req.id, &Ok(req.method.clone()));
            // A prefix that stops before the value ends is incomplete, never
            // a different request.
            if *used > 0 {
                let cut = used / 2;
                if let Parsed::Request(other, _) = parse_request(&data[..cut]) {
                    assert!(cut == 0 || other.method.len() <= req.method.len());
                }
            }
        }
        Parsed::Invalid { used, id, reason } => {
            assert!(*used <= data.len());
            let _ = reply(id, &Err(reason.clone()));
        }
        Parsed::Incomplete | Parsed::Garbage(_) => {}
    }
});
