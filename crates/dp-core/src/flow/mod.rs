//! The flow key: its layout ([`key`]), how it is extracted from a packet
//! ([`extract`](mod@extract)), how it is hashed ([`hash`]), how runs of
//! packets of one flow share one extraction ([`same`]), and the few
//! fields a simple-match lookup reads without it ([`simple`]).

pub mod extract;
pub mod hash;
pub mod key;
#[cfg(feature = "etherparse-oracle")]
pub mod oracle;
pub mod same;
pub mod simple;

pub use extract::{extract, extract_frame, extract_frame_mapped, extract_mapped, extract_reusing};
pub use key::{FLOW_U64S, FlowKey, VlanHeader};
