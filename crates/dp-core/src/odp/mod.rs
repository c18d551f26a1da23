//! Placeholder: filled by the ODP flow text issue (#3).
