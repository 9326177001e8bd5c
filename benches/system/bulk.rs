//! Many small shares added at once (issue 17, item 4): alice's `bitweend`
//! shares thousands of small files through `bitweenc share`, a few hundred
//! paths per call, as a user selecting a whole library would; bob, her
//! contact, runs a `bitweend` too. Figures: the wall time of all the calls,
//! the time until bob's catalog holds every share (after the last call
//! returned), and alice's RSS afterwards, idle.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bitween_testkit::Prosody;
use serde_json::json;

use crate::daemon::{api_online, bitweend, proc_mib, Api};
use crate::{row, secs, thousands, Sizes};

/// Small files of a few hundred bytes each, all different, in `dir`.
fn small_files(dir: &Path, n: usize) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    (0..n)
        .map(|i| {
            let f = dir.join(format!("photo {i:05}.jpg"));
            std::fs::write(&f, format!("small file {i}\n").repeat(20)).unwrap();
            f
        })
        .collect()
}

/// Shares `files` in alice's daemon (data dir `data`) with `bitweenc
/// share`, `per_call` paths per call, one call after the other: each
/// call's time, or how many files were shared before a call failed and
/// why.
fn share_with_cli(
    data: &Path,
    files: &[PathBuf],
    per_call: usize,
) -> Result<Vec<Duration>, (usize, String)> {
    let mut calls = Vec::new();
    for batch in files.chunks(per_call) {
        let t = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_bitweenc"))
            .arg("--data-dir")
            .arg(data)
            .arg("--json")
            .arg("share")
            .args(batch)
            .stdout(Stdio::null())
            .output()
            .expect("bitweenc runs");
        if !out.status.success() {
            // One line, without the table's separator: it goes in a row.
            let why = String::from_utf8_lossy(&out.stderr)
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .replace('|', "/");
            return Err((calls.len() * per_call, why));
        }
        calls.push(t.elapsed());
    }
    Ok(calls)
}

/// Stops the `daemons`.
fn stop(daemons: &mut [std::process::Child]) {
    for daemon in daemons {
        let _ = daemon.kill();
        let _ = daemon.wait();
    }
}

pub async fn bulk_rows(server: &Prosody, http: &reqwest::Client, dir: &Path, sizes: &Sizes) {
    let n = sizes.bulk_files;
    let files = small_files(&dir.join("library"), n);
    let (alice_data, bob_data) = (dir.join("bulk-alice"), dir.join("bulk-bob"));
    let mut alice = bitweend(server, "alice", &alice_data, &[]).spawn().unwrap();
    let mut bob = bitweend(server, "bob", &bob_data, &[]).spawn().unwrap();
    let _alice_api = api_online(http, &alice_data, &mut alice).await;
    let bob_api: Api = api_online(http, &bob_data, &mut bob).await;

    let start = Instant::now();
    let calls = {
        let (data, files, per_call) = (alice_data.clone(), files.clone(), sizes.bulk_per_call);
        tokio::task::spawn_blocking(move || share_with_cli(&data, &files, per_call))
            .await
            .unwrap()
    };
    let wall = start.elapsed();
    let wall_row = format!(
        "{} small files shared with bitweenc share, {} paths a call: total wall time",
        thousands(n as u64),
        sizes.bulk_per_call
    );
    let calls = match calls {
        Ok(calls) => calls,
        Err((shared, why)) => {
            // A row that says so, and the other benchmarks still run.
            stop(&mut [alice, bob]);
            row(
                &wall_row,
                "< 60 s",
                format!(
                    "a call failed after {} files and {}: {why}",
                    thousands(shared as u64),
                    secs(wall)
                ),
                Some(false),
            );
            return;
        }
    };
    let returned = Instant::now();
    let deadline = returned + Duration::from_secs(300);
    let mut in_catalog = 0;
    while in_catalog < n {
        let status = bob_api.call("status", json!([])).await.unwrap_or_default();
        in_catalog = status["catalog"]["shares"].as_u64().unwrap_or(0) as usize;
        assert!(
            Instant::now() < deadline,
            "bob's catalog holds {in_catalog} of {n} shares 300 s after the last share"
        );
        if in_catalog < n {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let caught_up = returned.elapsed();
    tokio::time::sleep(Duration::from_secs(5)).await; // idle
    let rss = proc_mib(alice.id(), "VmRSS:");
    stop(&mut [alice, bob]);
    let (first, last) = (calls[0], calls[calls.len() - 1]);
    row(
        &wall_row,
        "< 60 s",
        format!(
            "{} (first call {}, last call {})",
            secs(wall),
            secs(first),
            secs(last)
        ),
        Some(wall < Duration::from_secs(60)),
    );
    row(
        &format!(
            "{} small files shared: until the contact's catalog holds all, after the last call",
            thousands(n as u64)
        ),
        "< 5 s",
        secs(caught_up),
        Some(caught_up < Duration::from_secs(5)),
    );
    row(
        &format!(
            "bitweend idle after sharing {} small files: RSS",
            thousands(n as u64)
        ),
        "< 150 MiB",
        format!("{rss:.0} MiB"),
        Some(rss < 150.0),
    );
}
