//! Latency histograms: one shape for every histogram loadgen keeps, so any two add.

use hdrhistogram::Histogram;

/// Highest value kept, in microseconds (one hour; larger values count as one hour).
pub const HIGHEST_US: u64 = 3_600_000_000;
/// Significant decimal digits kept by every histogram.
pub const SIGFIG: u8 = 3;
/// What a new histogram covers before it grows, in microseconds.
const FIRST_RANGE_US: u64 = 2048;

/// A new empty latency histogram in microseconds. It covers 2 ms at first and grows with
/// the largest value recorded (see [`record_us`]): a histogram of sub-second latencies takes
/// about a third of the memory of one sized for an hour up front, and a run or a merge holds
/// thousands of them.
pub fn new_histogram() -> Histogram<u64> {
    match Histogram::new_with_bounds(1, FIRST_RANGE_US, SIGFIG) {
        Ok(mut h) => {
            h.auto(true);
            h
        }
        // The bounds are constants that hdrhistogram accepts; this arm cannot run.
        Err(e) => unreachable!("histogram bounds are valid constants: {e:?}"),
    }
}

/// Records `us` in `h`, a value over [`HIGHEST_US`] as that (the histogram's growth is
/// bounded by it).
#[inline]
pub fn record_us(h: &mut Histogram<u64>, us: u64) {
    // Growing is the only way a record can fail, and only past usize: not at HIGHEST_US.
    let _ = h.record(us.min(HIGHEST_US));
}

/// Memory a histogram's counts take, bytes.
pub fn histogram_bytes(h: &Histogram<u64>) -> usize {
    h.distinct_values() * std::mem::size_of::<u64>()
}
