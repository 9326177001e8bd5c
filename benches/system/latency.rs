//! Start-up (a `bitweend` until its API reports online) and publish to
//! receive (a change, and a large list in chunks, until the contact has it).

use std::path::Path;
use std::time::{Duration, Instant};

use bitween::shares::{ResourceShares, Share};
use bitween_testkit::{Peer, Prosody, DOMAIN};

use crate::daemon::{api_online, bitweend, shares};
use crate::{median, ms, row, thousands, Sizes};

/// `bitweend` started `runs` times, each with a fresh data dir: the time
/// from starting the process until its API reports it online.
pub async fn startup_row(server: &Prosody, http: &reqwest::Client, dir: &Path, runs: usize) {
    let mut times = Vec::new();
    for i in 0..runs {
        let data = dir.join(format!("startup{i}"));
        let t = Instant::now();
        let mut child = bitweend(server, "carol", &data, &[]).spawn().unwrap();
        api_online(http, &data, &mut child).await;
        times.push(t.elapsed());
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&data);
        let _ = std::fs::remove_dir_all(data.with_extension("downloads"));
    }
    let s = median(&times);
    row(
        &format!(
            "bitweend start until its API reports online (median of {runs}, each with a fresh data dir)"
        ),
        "< 500 ms",
        format!(
            "{} (runs {})",
            ms(s),
            times.iter().map(|t| ms(*t)).collect::<Vec<_>>().join(", ")
        ),
        Some(s < Duration::from_millis(500)),
    );
}

// ----- publish to receive ------------------------------------------------------

pub async fn latency_rows(server: &Prosody, sizes: &Sizes) {
    // Publish-to-receive on the local server.
    let alice_peer = Peer::login(server, "alice", "lat").await;
    let mut bob_peer = Peer::login(server, "bob", "lat").await;
    let mut lat = Vec::new();
    for i in 0..sizes.latency_runs as u32 {
        let list = shares(3, 1_000 + i);
        lat.push(publish_until_seen(&alice_peer, &mut bob_peer, &list, "the change").await);
    }
    let p50 = median(&lat);
    row(
        &format!("publish to receive, p50 of {}", sizes.latency_runs),
        "< 100 ms",
        ms(p50),
        Some(p50 < Duration::from_millis(100)),
    );

    // A large list (with chunks) until the contact has all of it.
    let big = shares(sizes.big_list, 7);
    let d = publish_until_seen(&alice_peer, &mut bob_peer, &big, "the large list").await;
    row(
        &format!(
            "{} shares at the contact after publish",
            thousands(sizes.big_list as u64)
        ),
        "< 2 s",
        ms(d),
        Some(d < Duration::from_secs(2)),
    );
    alice_peer.xmpp.shutdown().await;
    bob_peer.xmpp.shutdown().await;
}

/// alice (resource "lat") publishes `list`; the time until bob's catalog
/// holds exactly that list.
async fn publish_until_seen(alice: &Peer, bob: &mut Peer, list: &[Share], what: &str) -> Duration {
    let t = Instant::now();
    alice
        .xmpp
        .set_local(ResourceShares {
            shares: list.to_vec(),
            addresses: vec!["127.0.0.1:1".parse().unwrap()],
            more: None,
        })
        .unwrap();
    bob.wait_catalog(what, |c| {
        c.resource(&format!("alice@{DOMAIN}"), "lat")
            .is_some_and(|r| r.shares == list)
    })
    .await;
    t.elapsed()
}
