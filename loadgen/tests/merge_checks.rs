//! `loadgen merge` adds only what belongs together: each report once, the shards of a
//! sharded run each once and all of them, and only counts a loadgen run can produce. A
//! shard given twice, or one shard alone, would otherwise read exactly like a complete
//! merge.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

fn shard_report(dir: &Path, url: &str, shard: &str) -> PathBuf {
    let json = dir.join(format!("shard-{}.json", shard.replace('/', "-")));
    let mut cmd = loadgen_bin();
    cmd.args([
        "--target",
        url,
        "--rps",
        "100",
        "--duration",
        "1s",
        "--shard",
        shard,
        "--no-progress",
        "--json",
        json.to_str().unwrap(),
    ]);
    let out = output_within(cmd, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    json
}

fn merge(inputs: &[&Path]) -> (Option<i32>, String) {
    let mut cmd = loadgen_bin();
    cmd.arg("merge").args(inputs);
    let out = output_within(cmd, Duration::from_secs(60));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn shards_merge_once_each_and_all_of_them() {
    let rt = server_runtime();
    let e = echo(&rt, "us", "v1", "");
    let dir = std::env::temp_dir().join(format!("loadgen-merge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("us=http://{}/", e.addr());
    let a = shard_report(&dir, &url, "0/2");
    let b = shard_report(&dir, &url, "1/2");

    // The whole run: exit 0.
    let (code, err) = merge(&[&a, &b]);
    assert_eq!(code, Some(0), "{err}");
    // The same file twice.
    let (code, err) = merge(&[&a, &a, &b]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("is given twice"), "{err}");
    // A copy of a shard under another name.
    let copy = dir.join("copy.json");
    std::fs::copy(&a, &copy).unwrap();
    let (code, err) = merge(&[&a, &copy]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("shard 0/2 is given twice"), "{err}");
    // One shard alone.
    let (code, err) = merge(&[&b]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("shard(s) 0/2 of this run are missing"),
        "{err}"
    );

    std::fs::remove_dir_all(&dir).ok();
    rt.block_on(e.shutdown()).unwrap();
}

#[test]
fn counts_no_loadgen_run_can_produce_are_refused() {
    let rt = server_runtime();
    let e = echo(&rt, "us", "v1", "");
    let dir = std::env::temp_dir().join(format!("loadgen-forged-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let real = shard_report(&dir, &format!("us=http://{}/", e.addr()), "0/1");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&real).unwrap()).unwrap();
    let forge = |name: &str, f: &dyn Fn(&mut serde_json::Value)| {
        let mut d = doc.clone();
        f(&mut d);
        let p = dir.join(name);
        std::fs::write(&p, d.to_string()).unwrap();
        p
    };
    // Every request answered, u64::MAX of them: the buckets sum, the count is impossible.
    let max = forge("max.json", &|d| {
        let a = &mut d["targets"][0]["accounting"];
        a["scheduled"] = u64::MAX.into();
        a["ok"] = u64::MAX.into();
    });
    let huge_rate = forge("rate.json", &|d| {
        d["targets"][0]["requested_rps"] = 1e308.into()
    });
    for forged in [&max, &huge_rate] {
        let (code, err) = merge(&[forged]);
        assert_ne!(code, Some(0), "{err}");
        assert!(err.contains("beyond any run loadgen makes"), "{err}");
    }
    std::fs::remove_dir_all(&dir).ok();
    rt.block_on(e.shutdown()).unwrap();
}

#[test]
fn a_report_whose_histograms_outgrow_any_run_is_refused_within_bounded_memory() {
    let rt = server_runtime();
    let e = echo(&rt, "us", "v1", "");
    let dir = std::env::temp_dir().join(format!("loadgen-wide-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let real = shard_report(&dir, &format!("us=http://{}/", e.addr()), "0/1");
    rt.block_on(e.shutdown()).unwrap();
    let mut doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&real).unwrap()).unwrap();
    // 3000 groups, each histogram holding one value near an hour: a few bytes on disk,
    // the widest range in memory (about 190 KiB each, 1.1 GB in all).
    let mut wide =
        hdrhistogram::Histogram::<u64>::new_with_bounds(1, loadgen::hist::HIGHEST_US, 3).unwrap();
    wide.record(3_500_000_000).unwrap();
    let hdr = loadgen::report::json::encode(&wide);
    let template = doc["groups"][0].clone();
    let groups: Vec<serde_json::Value> = (0..3000)
        .map(|i| {
            let mut g = template.clone();
            g["region"] = format!("r{i}").into();
            g["corrected"]["hdr"] = hdr.clone().into();
            g["service"]["hdr"] = hdr.clone().into();
            g
        })
        .collect();
    doc["groups"] = groups.into();
    let forged = dir.join("wide.json");
    std::fs::write(&forged, doc.to_string()).unwrap();
    let (code, err) = merge(&[&forged]);
    assert_ne!(code, Some(0), "{err}");
    assert!(err.contains("more than any run loadgen makes"), "{err}");
    #[cfg(target_os = "linux")]
    {
        // Every child of this process so far, this merge included: far below the 1.1 GB
        // the file asks for (ru_maxrss is in KiB on Linux).
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: getrusage fills the struct we pass.
        assert_eq!(
            unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) },
            0
        );
        assert!(usage.ru_maxrss < 1_000_000, "{} KiB", usage.ru_maxrss);
    }
    if std::env::var_os("KEEP_FORGED").is_none() {
        std::fs::remove_dir_all(&dir).ok();
    }
}
