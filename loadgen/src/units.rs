//! Units shared by every stage that prints a number for people (reports, SLO verdicts,
//! the generator-limit explanation), in one place so they all say the same thing.

/// Formats microseconds for people.
pub fn fmt_us(us: f64) -> String {
    if us >= 1e6 {
        format!("{:.2}s", us / 1e6)
    } else if us >= 1e3 {
        format!("{:.2}ms", us / 1e3)
    } else {
        format!("{us:.0}µs")
    }
}
