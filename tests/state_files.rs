//! The engine's state file (`torrents.json`) under concurrent changes
//! (issue 13, item 8): many shares, downloads, unshares and cancels at once,
//! then a restart. Every change made is still there after the restart, and
//! no temporary file is left behind. Today's single fixed temporary name let
//! two saves race (one rename failed, or an older list replaced a newer one).

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use bitween::events::{EventBus, TransferKind, TransferState};
use bitween::shares::{Catalog, InfoHash};
use bitween::torrent::{Engine, EngineConfig, EngineError};

async fn start(dir: &Path) -> Engine {
    common::init_logging();
    let (catalog, _writer) = Catalog::new();
    Engine::start(
        EngineConfig {
            data_dir: dir.join("data"),
            download_dir: dir.join("downloads"),
            relay: false,
            ..EngineConfig::default()
        },
        catalog,
        EventBus::new(),
    )
    .await
    .expect("engine starts")
}

/// `(kind, hash)` of every torrent the engine holds.
fn records(engine: &Engine) -> BTreeSet<(&'static str, InfoHash)> {
    engine
        .transfers()
        .into_iter()
        .map(|t| {
            let kind = match t.kind {
                TransferKind::Share => "share",
                TransferKind::Download => "download",
            };
            (kind, t.hash)
        })
        .collect()
}

/// Waits until every share is seeding again after a restart.
async fn wait_until_seeding(engine: &Engine) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let transfers = engine.transfers();
        if transfers
            .iter()
            .all(|t| t.kind != TransferKind::Share || t.state == TransferState::Seeding)
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "shares not seeding again: {transfers:#?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

fn random_bytes(n: usize) -> Vec<u8> {
    (0..n).map(|_| rand::random::<u8>()).collect()
}

/// A hash no contact has: its download stays a record, waiting for sources.
fn nobody_has(round: u8, i: u8) -> InfoHash {
    let mut h = [0xb1; 20];
    h[0] = round;
    h[1] = i;
    InfoHash(h)
}

/// Every file under `dir` whose name says it is a temporary file.
fn temporary_files(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(temporary_files(&path));
        } else if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().contains(".tmp"))
        {
            found.push(path.display().to_string());
        }
    }
    found
}

type Change = tokio::task::JoinHandle<Result<Option<(&'static str, InfoHash)>, EngineError>>;

/// Waits for every change; returns the records they added.
async fn settle(changes: Vec<Change>) -> Vec<(&'static str, InfoHash)> {
    let mut added = Vec::new();
    for c in changes {
        if let Some(r) = c.await.unwrap().expect("every change succeeds") {
            added.push(r);
        }
    }
    added
}

/// Eight rounds of changes at once, each followed by a restart that must
/// find exactly what the engine held before it stopped, with no temporary
/// file left in the data dir. A round is two waves: 20 new shares with 10
/// unshares, then 20 new downloads with 10 cancels started on one signal
/// (a burst of saves, where a race shows).
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_changes_all_survive_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let files = tmp.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    let mut engine = start(tmp.path()).await;
    // What the engine must hold.
    let mut expected = BTreeSet::new();
    // What the next round removes: 10 shares and 10 downloads.
    let mut old_shares = Vec::new();
    let mut old_downloads = Vec::new();
    for i in 0..10u8 {
        let f = files.join(format!("first{i}.bin"));
        std::fs::write(&f, random_bytes(1000 + i as usize)).unwrap();
        old_shares.push(engine.share(&f).await.unwrap().hash);
        let h = nobody_has(0, i);
        engine.download(h, None).await.unwrap();
        old_downloads.push(h);
    }
    expected.extend(old_shares.iter().map(|h| ("share", *h)));
    expected.extend(old_downloads.iter().map(|h| ("download", *h)));
    for round in 1..=8u8 {
        let mut wave: Vec<Change> = Vec::new();
        for i in 0..20u8 {
            let f = files.join(format!("r{round}-{i}.bin"));
            std::fs::write(&f, random_bytes(2000 + i as usize)).unwrap();
            let e = engine.clone();
            wave.push(tokio::spawn(async move {
                e.share(&f).await.map(|s| Some(("share", s.hash)))
            }));
        }
        for h in old_shares.drain(..) {
            expected.remove(&("share", h));
            let e = engine.clone();
            wave.push(tokio::spawn(
                async move { e.unshare(&h).await.map(|_| None) },
            ));
        }
        let mut added = settle(wave).await;
        // The second wave starts together, on a signal.
        let go = Arc::new(tokio::sync::Barrier::new(30));
        let mut wave: Vec<Change> = Vec::new();
        for i in 0..20u8 {
            let (e, h, go) = (engine.clone(), nobody_has(round, i), go.clone());
            wave.push(tokio::spawn(async move {
                go.wait().await;
                e.download(h, None).await.map(|_| Some(("download", h)))
            }));
        }
        for h in old_downloads.drain(..) {
            expected.remove(&("download", h));
            let (e, go) = (engine.clone(), go.clone());
            wave.push(tokio::spawn(async move {
                go.wait().await;
                e.cancel(&h, false).await.map(|_| None)
            }));
        }
        added.extend(settle(wave).await);
        expected.extend(added.iter().copied());
        assert_eq!(
            records(&engine),
            expected,
            "round {round}: before the restart"
        );
        engine.shutdown().await;
        drop(engine);
        // Every write has ended: none may have left its temporary file.
        let stray = temporary_files(&tmp.path().join("data"));
        assert!(
            stray.is_empty(),
            "round {round}: stray temporary files {stray:?}"
        );

        engine = start(tmp.path()).await;
        let after = records(&engine);
        let lost: Vec<_> = expected.difference(&after).collect();
        let back: Vec<_> = after.difference(&expected).collect();
        assert!(
            lost.is_empty() && back.is_empty(),
            "round {round}: after the restart {} records are lost and {} removed ones came back: lost {lost:?}, back {back:?}",
            lost.len(),
            back.len()
        );
        // Let the restart re-add every share before they are changed again.
        wait_until_seeding(&engine).await;
        // Half of this round's records are the next round's to remove.
        for (kind, h) in added {
            match kind {
                "share" if old_shares.len() < 10 => old_shares.push(h),
                "download" if old_downloads.len() < 10 => old_downloads.push(h),
                _ => {}
            }
        }
    }
    engine.shutdown().await;
}
