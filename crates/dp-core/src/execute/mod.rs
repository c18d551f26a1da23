//! Placeholder: action execution on batches, filled by issue #5.
