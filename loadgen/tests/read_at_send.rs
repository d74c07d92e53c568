//! Answers read by the dispatcher in the wake-up that sends (`send::reap`), over real
//! loopback sockets. At a rate where the worker holds its sleeps, a whole answer is read
//! there, timed by its kernel stamp, and its connection's task is never woken; an answer
//! that is not whole in one read (a body that comes later, chunks, an interim head, body
//! checks, a close) is finished by the task from what was read. Either way every answer
//! is counted once, with all its bytes. Linux only: elsewhere reads carry no arrival
//! stamps, sleeps are never held, and every answer is its task's.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

/// The load tests here run one at a time: each needs the worker to keep its pace.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn alone() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// 1000 rps on one worker: gaps of 1 ms, so the worker holds its sleeps.
fn run(addr: std::net::SocketAddr, extra: &[&str]) -> loadgen::RunOutcome {
    let t = format!("t=http://{addr}/");
    let mut words = vec![
        "--target",
        t.as_str(),
        "--rps",
        "1000",
        "--duration",
        "1500ms",
        "--threads",
        "1",
    ];
    words.extend_from_slice(extra);
    loadgen::execute(config(&words), false).unwrap()
}

#[test]
fn whole_answers_are_read_where_the_next_requests_are_sent() {
    let _alone = alone();
    let out = run_against(
        "us",
        "",
        &["--rps", "2000", "--duration", "2s", "--threads", "1"],
    );
    let r = &out.results;
    assert_sums(r);
    let t = &r.targets[0].accounts;
    assert_eq!(t.measured.ok, t.measured.scheduled, "{:?}", t.measured);
    // Most, not all: an answer that arrives before the reactor's turn after the sends
    // wakes its task as before.
    let s = &t.stamps;
    assert!(
        s.read_at_send * 2 > t.measured.ok,
        "{} of {} answers read at send: {s:?}",
        s.read_at_send,
        t.measured.ok
    );
    // Read there, they keep their labels and their kernel stamps.
    assert!(r
        .groups
        .keys()
        .all(|k| k.region == "us" && k.version == "v1"));
    assert!(s.late * 10 < s.checked, "{s:?}");
}

/// Each shape of answer that one read cannot finish, on kept connections at a held
/// rate: every answer ok, each counted with all its bytes, none taken whole too early.
#[test]
fn answers_not_whole_in_one_read_are_finished_by_their_task() {
    let _alone = alone();
    let interim = b"HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n".to_vec();
    let ok = response("200 OK", &["x-echo-version: v1"], "0123456789");
    let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    let cases: Vec<(&str, Vec<u8>, Vec<&str>, usize)> = vec![
        ("chunked", chunked.to_vec(), vec![], chunked.len()),
        (
            "an interim head first",
            [interim.as_slice(), &ok].concat(),
            vec![],
            interim.len() + ok.len(),
        ),
        (
            "a body check",
            ok.clone(),
            vec!["--check", "body contains 345"],
            ok.len(),
        ),
    ];
    for (what, answer, flags, len) in cases {
        let addr = scripted_server(move |_| answer.clone(), None);
        let out = run(addr, &flags);
        assert_whole(what, &out, len as u64);
    }
    // The body's second half 20 ms after the head and the first half.
    let addr = scripted_server(
        |_| {
            let mut a = response("200 OK", &["x-echo-version: v1"], "0123456789");
            a.truncate(a.len() - 5);
            a
        },
        Some(|_| b"56789".to_vec()),
    );
    let out = run(addr, &[]);
    assert_whole("a body in two parts", &out, ok.len() as u64);
    // The split answers never came whole in one read.
    assert_eq!(out.results.targets[0].accounts.stamps.read_at_send, 0);
    // An interim head alone, the final answer 20 ms later: the interim one is no answer.
    let addr = scripted_server(
        |_| b"HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n".to_vec(),
        Some(|_| response("200 OK", &["x-echo-version: v1"], "0123456789")),
    );
    let out = run(addr, &[]);
    assert_whole(
        "an interim head alone",
        &out,
        (interim.len() + ok.len()) as u64,
    );
}

/// Every 4th answer closes its connection: the close is the task's to act on.
#[test]
fn an_answer_that_closes_its_connection_is_left_to_its_task() {
    let _alone = alone();
    let addr = scripted_server(
        |n| {
            let close = if n % 4 == 3 {
                "connection: close"
            } else {
                "x-keep: 123456789"
            };
            response("200 OK", &["x-echo-version: v1", close], "ok")
        },
        None,
    );
    let out = run(addr, &[]);
    let len = response("200 OK", &["x-echo-version: v1", "x-keep: 123456789"], "ok").len();
    let a = &out.results.targets[0].accounts;
    assert_eq!(a.measured.ok, a.measured.scheduled, "{:?}", a.measured);
    // The closing answer is as long as the others.
    assert_eq!(
        a.pool.bytes_received,
        (a.measured.scheduled + a.warmup.scheduled) * len as u64
    );
    // A connection for about every 4th answer: the closes were seen.
    assert!(
        a.pool.opened * 5 >= a.measured.scheduled,
        "opened {} for {}",
        a.pool.opened,
        a.measured.scheduled
    );
}

/// All of `out`'s answers ok, each `len` bytes read.
fn assert_whole(what: &str, out: &loadgen::RunOutcome, len: u64) {
    let r = &out.results;
    assert_sums(r);
    let a = &r.targets[0].accounts;
    assert_eq!(
        a.measured.ok, a.measured.scheduled,
        "{what}: {:?}",
        a.measured
    );
    let answers = a.measured.scheduled + a.warmup.scheduled;
    assert_eq!(a.pool.bytes_received, answers * len, "{what}");
    // The connections were kept: requests were written ahead on them.
    assert!(
        a.pool.opened * 4 < answers,
        "{what}: opened {}",
        a.pool.opened
    );
}

/// Four targets on one worker, as the SLO bench runs them: the dispatcher's pass after a
/// held sleep reads several targets' answers before anything else, and no stamp may then
/// come out earlier than its request's send. The clocks' offset was once read against a
/// monotonic reading taken before those reads, which moved every stamp earlier by their
/// time; in a debug build a quarter of the answers were stamped before their sends, and
/// timed when read, up to three ticks late.
#[test]
fn no_answer_is_stamped_before_its_request_was_sent() {
    let _alone = alone();
    let rt = server_runtime();
    let fleet: Vec<_> = [("us", "v1"), ("us", "v2"), ("eu", "v1"), ("eu", "v2")]
        .into_iter()
        .map(|(region, version)| echo(&rt, region, version, ""))
        .collect();
    let targets: Vec<String> = fleet
        .iter()
        .enumerate()
        .map(|(i, e)| format!("t{i}=http://{}/", e.addr()))
        .collect();
    let mut words = vec![];
    for t in &targets {
        words.extend(["--target", t.as_str()]);
    }
    words.extend([
        "--rps",
        "3000",
        "--duration",
        "2s",
        "--threads",
        "1",
        "--connections",
        "16",
    ]);
    let out = loadgen::execute(config(&words), false).unwrap();
    for e in fleet {
        rt.block_on(e.shutdown()).unwrap();
    }
    let r = &out.results;
    assert_sums(r);
    for t in &r.targets {
        let a = &t.accounts;
        assert_eq!(
            a.measured.ok, a.measured.scheduled,
            "{}: {:?}",
            t.name, a.measured
        );
        assert!(a.stamps.read_at_send > 0, "{}: {:?}", t.name, a.stamps);
        assert_eq!(a.stamps.before_send, 0, "{}: {:?}", t.name, a.stamps);
    }
}
