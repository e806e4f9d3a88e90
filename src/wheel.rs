//! Hashed timing wheel (placeholder: being written).
