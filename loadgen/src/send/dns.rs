//! Where a target's connections go, as a client in a cluster sees it.
//!
//! A name resolves to all its addresses, and new connections take them in turn, so a
//! headless Service or a multi-record name spreads the load the way kube-proxy-less
//! clients do. Once `--resolve-every` has passed since the last lookup, the next new
//! connection triggers another lookup in the background (the connection itself goes to
//! the addresses known now, so no request waits on DNS); a changed answer is used from
//! then on, which is how a DNS-based failover reaches the per-region table. A failed
//! lookup keeps the last addresses and is counted, never fatal. IP literals are never
//! looked up again.

use std::net::SocketAddr;
use std::time::Duration;

/// One target's addresses and lookup state.
#[derive(Debug)]
pub(super) struct Dns {
    host: String,
    port: u16,
    addrs: Vec<SocketAddr>,
    next: usize,
    looked_up_ns: u64,
    looking_up: bool,
    literal: bool,
}

impl Dns {
    /// `addrs` are the startup lookup's answers (none if it failed).
    pub(super) fn new(host: String, port: u16, mut addrs: Vec<SocketAddr>, now: u64) -> Dns {
        addrs.sort();
        addrs.dedup();
        let literal = host.parse::<std::net::IpAddr>().is_ok();
        Dns {
            host,
            port,
            addrs,
            next: 0,
            looked_up_ns: now,
            looking_up: false,
            literal,
        }
    }

    /// The address for the next new connection (round-robin), starting at `offset` so
    /// that workers do not all begin on the same one.
    pub(super) fn pick(&mut self, offset: usize) -> Option<SocketAddr> {
        let n = self.addrs.len();
        let a = *self.addrs.get((self.next + offset) % n.max(1))?;
        self.next = self.next.wrapping_add(1);
        Some(a)
    }

    /// If a lookup is due, marks one under way and returns what to look up.
    pub(super) fn start_lookup(&mut self, now: u64, every: Duration) -> Option<(String, u16)> {
        if !self.due(now, every) {
            return None;
        }
        self.looking_up = true;
        Some((self.host.clone(), self.port))
    }

    /// Whether a lookup should start now. A name with no address yet (it did not resolve
    /// at the start) is retried every [`RETRY_UNRESOLVED`], whatever `--resolve-every`
    /// says: its requests fail in the `dns` bucket until it resolves.
    fn due(&self, now: u64, every: Duration) -> bool {
        let every = if self.addrs.is_empty() {
            RETRY_UNRESOLVED
        } else {
            every
        };
        !self.literal
            && !self.looking_up
            && !every.is_zero()
            && now.saturating_sub(self.looked_up_ns) >= every.as_nanos() as u64
    }

    /// Takes a lookup's answer; returns whether the addresses changed. An empty answer
    /// keeps the old ones.
    pub(super) fn update(&mut self, now: u64, mut found: Vec<SocketAddr>) -> bool {
        self.looking_up = false;
        self.looked_up_ns = now;
        if found.is_empty() {
            return false;
        }
        found.sort();
        found.dedup();
        if found == self.addrs {
            return false;
        }
        self.addrs = found;
        self.next = 0;
        true
    }
}

/// How often a name that has no address at all is looked up again.
const RETRY_UNRESOLVED: Duration = Duration::from_secs(1);

/// Bound on one background lookup; a resolver that hangs counts as a failed lookup.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Looks `host` up; no answer (an error, a timeout, no records) is an empty list.
pub(super) async fn lookup(host: String, port: u16) -> Vec<SocketAddr> {
    match tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host((host, port))).await {
        Ok(Ok(it)) => it.collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn connections_take_every_address_in_turn() {
        let mut d = Dns::new(
            "echo.eu".into(),
            80,
            vec![a("10.0.0.2:80"), a("10.0.0.1:80"), a("10.0.0.2:80")],
            0,
        );
        let got: Vec<_> = (0..4).map(|_| d.pick(0).unwrap()).collect();
        assert_eq!(
            got,
            [
                a("10.0.0.1:80"),
                a("10.0.0.2:80"),
                a("10.0.0.1:80"),
                a("10.0.0.2:80")
            ]
        );
        assert_eq!(
            d.pick(1).unwrap(),
            a("10.0.0.2:80"),
            "offset spreads workers"
        );
    }

    #[test]
    fn lookups_are_due_after_the_interval_and_keep_addresses_on_failure() {
        let every = Duration::from_secs(5);
        let mut d = Dns::new("echo.eu".into(), 80, vec![a("10.0.0.1:80")], 0);
        assert!(!d.due(4_000_000_000, every));
        assert!(d.due(5_000_000_000, every));
        assert!(!d.due(5_000_000_000, Duration::ZERO), "0 means once");
        d.looking_up = true;
        assert!(!d.due(9_000_000_000, every), "one lookup at a time");
        assert!(
            !d.update(9_000_000_000, vec![]),
            "a failed lookup changes nothing"
        );
        assert_eq!(d.pick(0).unwrap(), a("10.0.0.1:80"));
        assert!(
            !d.due(10_000_000_000, every),
            "the interval restarts after a failure"
        );
        assert!(d.update(20_000_000_000, vec![a("10.1.0.9:80")]), "failover");
        assert_eq!(d.pick(0).unwrap(), a("10.1.0.9:80"));
        assert!(!d.update(30_000_000_000, vec![a("10.1.0.9:80")]));
        let lit = Dns::new("127.0.0.1".into(), 80, vec![a("127.0.0.1:80")], 0);
        assert!(!lit.due(u64::MAX, every), "IP literals are not looked up");
    }
}
