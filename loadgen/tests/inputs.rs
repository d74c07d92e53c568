//! Files and times the user names are read and bounded before anything is run: a pipe
//! no one writes or a device that never ends is refused at once, not waited on or read
//! for ever; every lab time is at most a run's longest; a scenario's steps and delays
//! are bounded; a targets file is counted before its body files are read, each body
//! file is read once, and all of them together are bounded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("loadgen-inputs-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn fifo(dir: &Path) -> PathBuf {
    let path = dir.join("fifo");
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid C string; mkfifo only creates the node.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    path
}

/// Runs loadgen with `args`; it must exit 2 (bad input) well within the bound, saying
/// `want`.
fn refused(args: &[&str], want: &str) {
    refused_with(2, args, want);
}

fn refused_with(code: i32, args: &[&str], want: &str) {
    let mut cmd = loadgen_bin();
    cmd.args(args);
    let out = output_within(cmd, Duration::from_secs(30));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
    assert!(err.contains(want), "{args:?}: {err}");
}

#[test]
fn a_pipe_no_one_writes_is_refused_not_waited_on() {
    let dir = scratch("fifo");
    let p = fifo(&dir);
    let p = p.to_str().unwrap();
    let t = "us=http://127.0.0.1:9/";
    refused(&["--target", t, "--slo-file", p], "not a regular file");
    refused(&["--target", t, "--body-file", p], "not a regular file");
    refused(&["lab", "--scenario-file", p], "not a regular file");
    // merge's unreadable report is its exit 1 (see `loadgen merge --help`).
    refused_with(1, &["merge", p], "not a regular file");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_device_that_never_ends_is_refused_at_once() {
    refused(
        &["lab", "--scenario-file", "/dev/zero"],
        "not a regular file",
    );
    refused(
        &[
            "--target",
            "us=http://127.0.0.1:9/",
            "--slo-file",
            "/dev/zero",
        ],
        "not a regular file",
    );
}

#[test]
fn lab_times_are_bounded_before_the_run() {
    for flag in [
        "--fail-at",
        "--step-every",
        "--chaos-for",
        "--restart-after",
        "--chaos-latency",
    ] {
        refused(&["lab", flag, "18446744073709551615s"], "at most 7 days");
    }
}

#[test]
fn scenario_files_have_bounded_times_steps_and_delays() {
    let dir = scratch("scenario");
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let far = write(
        "far.yaml",
        "name: x\nsteps:\n  - { at: 18446744073709551615s, do: stop, pods: us }\n",
    );
    refused(&["lab", "--scenario-file", &far], "at most 7 days");
    let slow = write(
        "slow.yaml",
        "name: x\nsteps:\n  - { at: 1s, do: latency, pods: eu, delay: 18446744073709551615s, jitter: 1s }\n",
    );
    refused(
        &["lab", "--scenario-file", &slow],
        "a delay with its jitter at most 1h",
    );
    let mut many = String::from("name: x\nsteps:\n");
    for i in 0..20_000 {
        let on = i % 2 == 0;
        many.push_str(&format!(
            "  - {{ at: 1s, do: fault, pods: eu-v2, on: {on} }}\n"
        ));
    }
    let many = write("many.yaml", &many);
    refused(
        &["lab", "--scenario-file", &many],
        "20000 steps: at most 1000",
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_targets_file_is_counted_before_its_body_files_are_read() {
    let dir = scratch("targets");
    let mut text = String::new();
    for i in 0..1025 {
        text.push_str(&format!(
            "[t{i}]\nurl = \"http://127.0.0.1:9/\"\nbody_file = \"missing.bin\"\n"
        ));
    }
    let file = dir.join("targets.toml");
    std::fs::write(&file, text).unwrap();
    // The count fails first; reading 1025 bodies first would have said the file is missing.
    refused(
        &["--targets-file", file.to_str().unwrap()],
        "1025 targets; at most 1024",
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn body_files_are_read_once_and_bounded_together() {
    let dir = scratch("bodies");
    // Two distinct 3 MiB files named by many targets: 6 MiB read, well within the bound.
    for name in ["a.bin", "b.bin"] {
        std::fs::write(dir.join(name), vec![b'x'; 3 << 20]).unwrap();
    }
    let mut text = String::new();
    for i in 0..200 {
        let f = if i % 2 == 0 { "a.bin" } else { "b.bin" };
        text.push_str(&format!(
            "[t{i}]\nurl = \"http://127.0.0.1:9/\"\nbody_file = \"{f}\"\n"
        ));
    }
    std::fs::write(dir.join("shared.toml"), &text).unwrap();
    let targets = loadgen::configured::targets_file::load_file(&dir.join("shared.toml")).unwrap();
    let bodies: Vec<_> = targets
        .values()
        .map(|t| t.request.body.clone().unwrap())
        .collect();
    assert_eq!(bodies.len(), 200);
    // One allocation per file, shared by every target that names it.
    assert!(std::sync::Arc::ptr_eq(
        &bodies[0],
        &targets["t2"].request.body.clone().unwrap()
    ));
    // 22 distinct 3 MiB files pass 64 MiB together.
    let mut text = String::new();
    for i in 0..22 {
        std::fs::write(dir.join(format!("{i}.bin")), vec![b'y'; 3 << 20]).unwrap();
        text.push_str(&format!(
            "[t{i}]\nurl = \"http://127.0.0.1:9/\"\nbody_file = \"{i}.bin\"\n"
        ));
    }
    std::fs::write(dir.join("many.toml"), &text).unwrap();
    let err = loadgen::configured::targets_file::load_file(&dir.join("many.toml")).unwrap_err();
    assert!(err.to_string().contains("together exceed 64 MiB"), "{err}");
    std::fs::remove_dir_all(dir).ok();
}
