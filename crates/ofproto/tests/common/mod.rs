//! What the megaflow soundness property tests share.

use dp_core::flow::FlowKey;
use dp_core::flow::key::FLOW_U64S;

/// `p & mask | q & !mask`: a packet in `p`'s megaflow.
pub fn blend(p: &FlowKey, mask: &FlowKey, q: &FlowKey) -> FlowKey {
    let (pw, mw, qw) = (p.words(), mask.words(), q.words());
    let mut out = [0u64; FLOW_U64S];
    for i in 0..FLOW_U64S {
        out[i] = (pw[i] & mw[i]) | (qw[i] & !mw[i]);
    }
    FlowKey::from_words(out)
}
