//! Kernel-facing ports, polled by the non-PMD thread (`is_pmd() ==
//! false`): `tap` and `internal` (TUN/TAP) and `system` (AF_PACKET).

pub mod packet_ring;
pub mod system;
pub mod tap;
