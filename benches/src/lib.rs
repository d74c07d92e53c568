//! benches (placeholder).
