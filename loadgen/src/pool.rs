//! How one target's connection pool carried the load, in the recorder's counts: the
//! evidence `judge::limits` reads to say what limited a run.

use hdrhistogram::Histogram;

use crate::hist::new_histogram;

/// Connects that may be under way at once per target and worker, however small the pool
/// (the engine's opening pace, which the judge names when it limited a run).
pub const MIN_OPENING: usize = 64;
/// Descriptors kept for everything that is not a connection (stdio, timers, the runtime,
/// report files, the metrics listener); the pools get the rest of the open-files limit.
pub const FD_RESERVE: u64 = 64;

/// How one target's connection pool carried the load: the evidence for "the generator
/// limited this run" (see `judge::limits`). Measured requests only, like the latency
/// histograms; counts add up across workers and shards.
#[derive(Debug, Clone)]
pub struct PoolStats {
    /// Connections established.
    pub opened: u64,
    /// Most connection slots (open or opening) at once; across workers the sum of their
    /// peaks, an upper bound of the simultaneous peak.
    pub peak: u64,
    /// The pool's cap (sum of the workers' shares).
    pub cap: u64,
    /// Requests that found every connection busy and the pool at its cap, and waited.
    pub queued_at_cap: u64,
    /// Requests dropped at `--max-in-flight` while the pool was at its cap.
    pub dropped_at_cap: u64,
    /// Requests whose `--timeout` (from their due time) passed while they waited for a
    /// connection: never sent.
    pub expired_waiting: u64,
    /// Connects that failed because loadgen had no file descriptor left (its open-files
    /// limit), not because of the target.
    pub fd_exhausted: u64,
    /// The cap was lowered to fit loadgen's open-files limit.
    pub fd_limited: bool,
    /// Idle connections found holding bytes nobody asked for (an answer sent twice): each
    /// means the answer taken before on that connection may have been another's.
    pub unasked: u64,
    /// Time a request waited for a free connection, microseconds (0 when one was free
    /// or a new one could be opened at once).
    pub wait: Histogram<u64>,
    /// The target's name looked up again during the run (`--resolve-every`).
    pub lookups: u64,
    /// Of those, lookups that failed or found no address (the last addresses were kept).
    pub lookup_failures: u64,
    /// Lookups that found a different set of addresses: a DNS failover, seen by the client.
    pub address_changes: u64,
    /// TLS handshakes completed (one per connection opened to an `https://` target), and
    /// of those, the ones that resumed an earlier session.
    pub handshakes: u64,
    pub resumed: u64,
    /// The last TLS handshake error, for the report's line about it.
    pub tls_error: Option<String>,
    /// Bytes written for, and read in answer to, the measured requests that got a
    /// response (HTTP framing included, TLS records not): k6's `data_sent`/`data_received`.
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// What its HTTP/2 connections went through (all zero when it spoke HTTP/1.1).
    pub h2: H2Stats,
}

/// What one target's HTTP/2 connections went through. Measured and warm-up alike: a
/// server's GOAWAY or a lowered stream limit is news whenever it happens.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct H2Stats {
    /// Connections that spoke HTTP/2 (of `opened`; the rest spoke HTTP/1.1).
    pub conns: u64,
    /// Connections the server ended (a GOAWAY, or a close) while the pool held them.
    pub server_closed: u64,
    /// Requests the server refused unprocessed (above a GOAWAY's last stream id, or a
    /// REFUSED_STREAM reset): sent once more (RFC 9113 8.7); a second refusal counts as
    /// `reset`.
    pub refused: u64,
    /// Streams the server reset after taking them (RST_STREAM other than
    /// REFUSED_STREAM): counted as `reset`.
    pub resets: u64,
    /// Times a connection's stream limit fell below the streams it carried (a server
    /// lowering SETTINGS_MAX_CONCURRENT_STREAMS mid-connection).
    pub limit_lowered: u64,
    /// The least stream limit in use on a connection (the server's, or `--max-streams`);
    /// 0 when no HTTP/2 connection opened.
    pub least_limit: u64,
    /// Most streams in flight on one connection at once.
    pub peak_streams: u64,
    /// Request bodies that waited for the server's flow-control window.
    pub flow_stalls: u64,
}

impl H2Stats {
    fn merge(&mut self, o: &H2Stats) {
        let add = |a: &mut u64, b: u64| *a = a.saturating_add(b);
        add(&mut self.conns, o.conns);
        add(&mut self.server_closed, o.server_closed);
        add(&mut self.refused, o.refused);
        add(&mut self.resets, o.resets);
        add(&mut self.limit_lowered, o.limit_lowered);
        add(&mut self.flow_stalls, o.flow_stalls);
        self.least_limit = match (self.least_limit, o.least_limit) {
            (0, b) => b,
            (a, 0) => a,
            (a, b) => a.min(b),
        };
        self.peak_streams = self.peak_streams.max(o.peak_streams);
    }
}

impl Default for PoolStats {
    fn default() -> PoolStats {
        PoolStats {
            opened: 0,
            peak: 0,
            cap: 0,
            queued_at_cap: 0,
            dropped_at_cap: 0,
            expired_waiting: 0,
            fd_exhausted: 0,
            fd_limited: false,
            unasked: 0,
            wait: new_histogram(),
            lookups: 0,
            lookup_failures: 0,
            address_changes: 0,
            handshakes: 0,
            resumed: 0,
            tls_error: None,
            bytes_sent: 0,
            bytes_received: 0,
            h2: H2Stats::default(),
        }
    }
}

impl PoolStats {
    /// Adds another pool's counts; they saturate, since a merge may add counts read from
    /// files rather than counted here.
    pub fn merge(&mut self, o: &PoolStats) {
        let add = |a: &mut u64, b: u64| *a = a.saturating_add(b);
        add(&mut self.opened, o.opened);
        add(&mut self.peak, o.peak);
        add(&mut self.cap, o.cap);
        add(&mut self.queued_at_cap, o.queued_at_cap);
        add(&mut self.dropped_at_cap, o.dropped_at_cap);
        add(&mut self.expired_waiting, o.expired_waiting);
        add(&mut self.fd_exhausted, o.fd_exhausted);
        self.fd_limited |= o.fd_limited;
        add(&mut self.unasked, o.unasked);
        let _ = self.wait.add(&o.wait);
        add(&mut self.lookups, o.lookups);
        add(&mut self.lookup_failures, o.lookup_failures);
        add(&mut self.address_changes, o.address_changes);
        add(&mut self.handshakes, o.handshakes);
        add(&mut self.resumed, o.resumed);
        add(&mut self.bytes_sent, o.bytes_sent);
        add(&mut self.bytes_received, o.bytes_received);
        self.h2.merge(&o.h2);
        if o.tls_error.is_some() {
            self.tls_error.clone_from(&o.tls_error);
        }
    }
}

/// The protocol a target spoke, from its connections' counts: `h2` over TLS, `h2c` over
/// plain TCP, `http/1.1`, or both when its connections chose differently (a pool behind
/// servers that disagree).
pub fn protocol(p: &PoolStats, tls: bool) -> &'static str {
    match (p.h2.conns, tls) {
        (0, _) => "http/1.1",
        (n, true) if n >= p.opened => "h2",
        (n, false) if n >= p.opened => "h2c",
        _ => "h2 and http/1.1",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_protocol_follows_the_connections_counts() {
        let mut p = PoolStats {
            opened: 4,
            ..PoolStats::default()
        };
        assert_eq!(protocol(&p, true), "http/1.1");
        p.h2.conns = 4;
        assert_eq!(protocol(&p, true), "h2");
        assert_eq!(protocol(&p, false), "h2c");
        p.h2.conns = 1;
        assert_eq!(protocol(&p, true), "h2 and http/1.1");
    }

    #[test]
    fn h2_counts_add_up_and_keep_the_least_limit_and_the_highest_peak() {
        let a = H2Stats {
            conns: 2,
            refused: 3,
            least_limit: 100,
            peak_streams: 7,
            ..H2Stats::default()
        };
        let b = H2Stats {
            conns: 1,
            refused: 1,
            least_limit: 1,
            peak_streams: 3,
            ..H2Stats::default()
        };
        let mut m = PoolStats::default();
        m.h2.merge(&a);
        assert_eq!(m.h2, a, "0 stands for no limit seen");
        m.h2.merge(&b);
        assert_eq!((m.h2.conns, m.h2.refused), (3, 4));
        assert_eq!((m.h2.least_limit, m.h2.peak_streams), (1, 7));
    }
}
