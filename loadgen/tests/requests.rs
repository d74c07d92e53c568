//! Requests files against echo-svc over real sockets: named requests become latency groups,
//! SLO scopes and the `name` column of `--out`; vegeta's plain format is read as it is; a
//! file that is too long, names a missing body or holds a line that is not a request is a
//! usage error that says where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use common::{assert_sums, run_against};

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("loadgen-requests-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn three_named_requests_make_three_latency_groups_scopes_and_row_names() {
    let dir = scratch("named");
    let file = dir.join("api.yaml");
    std::fs::write(
        &file,
        "requests:\n  - {name: home, path: /}\n  - {name: health, path: /healthz}\n  \
         - {name: echo, path: /echo, method: POST, body: hello}\n",
    )
    .unwrap();
    let csv = dir.join("rows.csv");
    let out = run_against(
        "us",
        "",
        &[
            "--requests",
            file.to_str().unwrap(),
            "--rps",
            "300",
            "--duration",
            "2s",
            "--out",
            &format!("csv={}", csv.display()),
            "--check",
            "status in 200-299",
            "--slo",
            "p99{target:us,name:echo}<2s",
            "--slo",
            "requests{name:health}>=150",
        ],
    );
    let r = &out.results;
    assert_sums(r);
    let a = &r.targets[0].accounts.measured;
    assert_eq!(
        a.ok, a.scheduled,
        "every request's path answered 2xx: {a:?}"
    );
    let mut per_name: BTreeMap<&str, u64> = BTreeMap::new();
    for (k, g) in &r.groups {
        *per_name.entry(k.name.as_str()).or_default() += g.corrected.len();
    }
    // In turn: each gets a third of the schedule.
    assert_eq!(per_name.len(), 3, "{per_name:?}");
    for (name, n) in &per_name {
        assert!(
            n.abs_diff(a.scheduled / 3) <= 1,
            "{name}: {n} of {}",
            a.scheduled
        );
    }
    assert_eq!(out.judgement.exit_code, 0, "{:?}", out.judgement.verdicts);
    // The rows say which request each was, matching the groups.
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut rows: BTreeMap<String, u64> = BTreeMap::new();
    for line in text.lines().skip(1) {
        *rows
            .entry(line.split(',').nth(5).unwrap().to_string())
            .or_default() += 1;
    }
    let want: BTreeMap<String, u64> = per_name.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    assert_eq!(rows, want);
    let text = loadgen::report::text::render(r, &out.judgement);
    assert!(
        text.contains("us echo") && text.contains("us health"),
        "{text}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_vegeta_targets_file_is_read_as_it_is_and_sent_in_turn() {
    let dir = scratch("vegeta");
    std::fs::write(dir.join("body.txt"), "hello").unwrap();
    let file = dir.join("targets.txt");
    // Recorded against another host: the paths go to the target.
    std::fs::write(
        &file,
        "# two requests\nGET http://somewhere.example:9090/healthz\nX-Trace: 1\n\n\
         POST http://somewhere.example/no-such-path\n@body.txt\n",
    )
    .unwrap();
    // Over HTTP/1.1 and over h2c alike.
    for http in ["1.1", "2"] {
        let f = file.to_str().unwrap();
        let words = [
            "--requests",
            f,
            "--rps",
            "200",
            "--duration",
            "1s",
            "--http",
            http,
        ];
        let out = run_against("eu", "", &words);
        assert_sums(&out.results);
        let a = &out.results.targets[0].accounts.measured;
        // One in two is the path echo-svc does not serve.
        assert_eq!(a.ok, a.scheduled / 2, "{http}: {a:?}");
        let not_found = a.http_errors.get(&404).copied();
        assert_eq!(not_found, Some(a.scheduled / 2), "{http}: {a:?}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn weights_share_the_schedule_between_requests() {
    let dir = scratch("weights");
    let file = dir.join("w.toml");
    std::fs::write(
        &file,
        "[[requests]]\nname = \"light\"\npath = \"/\"\nweight = 1\n\n\
         [[requests]]\nname = \"heavy\"\npath = \"/healthz\"\nweight = 3\n",
    )
    .unwrap();
    let out = run_against(
        "us",
        "",
        &[
            "--requests",
            file.to_str().unwrap(),
            "--pick",
            "weight",
            "--rps",
            "1000",
            "--duration",
            "2s",
        ],
    );
    let heavy: u64 = out
        .results
        .groups
        .iter()
        .filter(|(k, _)| k.name == "heavy")
        .map(|(_, g)| g.corrected.len())
        .sum();
    let share = heavy as f64 / out.results.targets[0].accounts.measured.scheduled as f64;
    assert!((share - 0.75).abs() < 0.05, "heavy share {share}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_requests_files_are_usage_errors_that_say_where() {
    let dir = scratch("bad");
    let long = dir.join("long.txt");
    // A million lines: over the 4 MiB input cap long before the request count is reached.
    std::fs::write(&long, "GET /\n".repeat(1_000_000)).unwrap();
    let many = dir.join("many.txt");
    std::fs::write(&many, "GET /\n".repeat(100_001)).unwrap();
    let missing = dir.join("missing.txt");
    std::fs::write(&missing, "POST /echo\n@nowhere.json\n").unwrap();
    let garbage = dir.join("garbage.txt");
    std::fs::write(&garbage, "GET /\n\nhello world, not a request\n").unwrap();
    let named_badly = dir.join("bad.yaml");
    std::fs::write(&named_badly, "requests:\n  - {name: 'a b', path: /}\n").unwrap();
    for (file, says) in [
        (&long, "MiB"),
        (&many, "more than 100000 requests"),
        (&missing, "line 2"),
        (&garbage, "line 3"),
        (&named_badly, "name \"a b\""),
    ] {
        common::assert_usage_error(&["--requests", file.to_str().unwrap()], says);
    }
    std::fs::remove_dir_all(&dir).ok();
}
