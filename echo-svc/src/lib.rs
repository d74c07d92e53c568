//! echo-svc library (placeholder until issue 2 lands).
