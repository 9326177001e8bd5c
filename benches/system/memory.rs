//! The memory of an idle `bitweend` holding a large catalog.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bitween::shares::ResourceShares;
use bitween_testkit::{Peer, Prosody};
use serde_json::{json, Value};

use crate::daemon::{bitweend, proc_mib, shares, Api};
use crate::{row, thousands, Sizes};

/// Memory: a `bitweend` process sharing 100 files and holding a large
/// catalog (the lists travelling in chunks), idle: its peak and current
/// RSS, and what the current one is made of.
pub async fn memory_row(http: &reqwest::Client, dir: &Path, sizes: &Sizes) {
    let users: Vec<String> = (0..sizes.contacts).map(|i| format!("c{i}")).collect();
    let mut all: Vec<&str> = users.iter().map(String::as_str).collect();
    all.push("dave");
    let pairs: Vec<(&str, &str)> = users.iter().map(|u| ("dave", u.as_str())).collect();
    let server = Prosody::start(&all, &pairs);
    let files = dir.join("own");
    std::fs::create_dir_all(&files).unwrap();
    let mut args = vec![];
    for i in 0..100 {
        let f = files.join(format!("file{i}.txt"));
        std::fs::write(&f, format!("own file {i}\n").repeat(100)).unwrap();
        args.push("--share".to_string());
        args.push(f.display().to_string());
    }
    let data = dir.join("dave");
    // BITWEEN_BENCH_WRAP="heaptrack -o /tmp/dave" runs the daemon under a
    // profiler (its RSS figure is then the profiler's, not the daemon's).
    let wrap: Vec<String> = std::env::var("BITWEEN_BENCH_WRAP")
        .map(|w| w.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    let mut child = bitweend(&server, "dave", &data, &wrap)
        .args(&args)
        .spawn()
        .unwrap();
    let mut peers = Vec::new();
    for (i, u) in users.iter().enumerate() {
        let p = Peer::login(&server, u, "pc").await;
        p.xmpp
            .set_local(ResourceShares {
                shares: shares(sizes.per_contact, 50_000 + i as u32),
                addresses: vec!["127.0.0.1:1".parse().unwrap()],
                more: None,
            })
            .unwrap();
        peers.push(p);
    }
    // Wait until dave's catalog holds all of it (asking its API).
    let total = u64::from(sizes.contacts) * u64::from(sizes.per_contact);
    let patience = if wrap.is_empty() { 300 } else { 3600 };
    let deadline = Instant::now() + Duration::from_secs(patience);
    loop {
        let (status, own) = match Api::find(http, &data) {
            Some(api) => (
                api.call("status", json!([])).await.unwrap_or_default(),
                api.call("shares", json!([])).await.unwrap_or_default(),
            ),
            None => (Value::Null, Value::Null),
        };
        if status["catalog"]["shares"] == total && own.as_array().is_some_and(|a| a.len() == 100) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "dave's catalog never filled: {status}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await; // idle
    let pid = child.id();
    let (peak, now) = (proc_mib(pid, "VmHWM:"), proc_mib(pid, "VmRSS:"));
    // What the resident memory is now: the heap and stacks (anonymous) or
    // the program's own code and data (file-backed).
    let (anon, file) = (proc_mib(pid, "RssAnon:"), proc_mib(pid, "RssFile:"));
    if wrap.is_empty() {
        let _ = child.kill();
    } else {
        // A profiler writes its report when the daemon ends cleanly: Ctrl-C
        // to the daemon (the wrapper's child, or the wrapper itself when it
        // runs the daemon in its own process, as valgrind does).
        let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", child.id()))
            .unwrap_or_default();
        let target = children
            .split_whitespace()
            .find(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains("bitweend"))
            })
            .map_or(child.id().to_string(), str::to_string);
        let _ = Command::new("kill").args(["-INT", &target]).status();
    }
    let _ = child.wait();
    for p in &peers {
        p.xmpp.shutdown().await;
    }
    row(
        &format!(
            "bitweend idle, 100 own shares, {} shares from {} contacts: peak RSS",
            thousands(total),
            sizes.contacts
        ),
        "< 80 MB",
        format!(
            "{peak:.0} MiB (idle now {now:.0} MiB: {anon:.0} MiB heap and stacks, {file:.0} MiB code and files)"
        ),
        Some(peak * 1.048_576 < 80.0),
    );
}
