//! loadgen library (placeholder).
