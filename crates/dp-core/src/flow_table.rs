//! Placeholder: filled by the caches/classifier issue (#4).
