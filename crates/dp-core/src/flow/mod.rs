//! The flow key: its layout ([`key`]), how it is extracted from a packet
//! ([`extract`](mod@extract)) and how it is hashed ([`hash`]).

pub mod extract;
pub mod hash;
pub mod key;
#[cfg(feature = "etherparse-oracle")]
pub mod oracle;

pub use extract::{extract, extract_frame, extract_frame_mapped, extract_mapped};
pub use key::{FLOW_U64S, FlowKey, VlanHeader};
