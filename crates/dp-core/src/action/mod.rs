//! Placeholder: datapath action types, filled by the ODP flow text issue (#3).
