//! Many small shares at once (issue 17, item 4): 1,000 small files shared
//! through the API in batches, as `bitweenc share` does (1,000, not more:
//! in an unoptimized build every running torrent's announce walks all the
//! others inside librqbit, so each share costs more than the last). Every one reaches
//! the contact's catalog and survives a restart, and the burst is published
//! in a few publishes, not one per share. Counts are asserted, not times.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bitween::api::Api;
use bitween::events::{Event, EventBus};
use bitween::service::{Service, PUBLISH_AT_LEAST_EVERY};
use bitween::shares::InfoHash;
use bitween_testkit::Prosody;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

const FILES: usize = 1_000;
const PER_CALL: usize = 250;

/// `user`'s backend on `server`, with its data under `dir`.
async fn start(server: &Prosody, user: &str, dir: &Path, bus: EventBus) -> Service {
    Service::start_with(
        bitween_testkit::service_config(server, user, dir, None),
        bus,
    )
    .await
    .expect("service starts")
}

/// Counts the publishes of our item the server confirmed on `bus`; the
/// flag is set if the counter fell behind the events (and so may have
/// missed some).
fn count_publishes(bus: &EventBus) -> (Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let mut rx = bus.subscribe();
    let (count, missed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (c, m) = (count.clone(), missed.clone());
    tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(Event::OwnItemPublished { .. }) => {
                    c.fetch_add(1, Ordering::SeqCst);
                }
                Ok(_) => {}
                Err(RecvError::Lagged(n)) => {
                    m.fetch_add(n as usize, Ordering::SeqCst);
                }
                Err(RecvError::Closed) => return,
            }
        }
    });
    (count, missed)
}

/// Waits until `svc`'s catalog lists every hash of `wanted`.
async fn wait_catalog(svc: &Service, wanted: &HashSet<InfoHash>, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    loop {
        let listed: HashSet<InfoHash> = svc.catalog.hashes().into_iter().collect();
        let missing = wanted.difference(&listed).count();
        if missing == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: bob's catalog still misses {missing} of alice's {} shares",
            wanted.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thousands_of_shares_reach_the_contact_in_few_publishes_and_survive_a_restart() {
    let server = Prosody::start(&["alice", "bob"], &[("alice", "bob")]);
    let tmp = tempfile::tempdir().unwrap();
    let (alice_dir, bob_dir) = (tmp.path().join("alice"), tmp.path().join("bob"));
    let library = tmp.path().join("library");
    std::fs::create_dir_all(&library).unwrap();
    let files: Vec<PathBuf> = (0..FILES)
        .map(|i| {
            let f = library.join(format!("photo {i:05}.jpg"));
            std::fs::write(&f, format!("small file {i}\n").repeat(10)).unwrap();
            f
        })
        .collect();

    let bus = EventBus::new();
    let (publishes, missed) = count_publishes(&bus);
    let alice = start(&server, "alice", &alice_dir, bus).await;
    let bob = start(&server, "bob", &bob_dir, EventBus::new()).await;
    let api = Api::new(alice.clone(), CancellationToken::new());

    let before = publishes.load(Ordering::SeqCst);
    let started = std::time::Instant::now();
    let mut hashes = HashSet::new();
    for batch in files.chunks(PER_CALL) {
        for outcome in api.share_paths(batch).await {
            let share = outcome
                .share
                .unwrap_or_else(|| panic!("{} not shared: {:?}", outcome.path, outcome.error));
            hashes.insert(share.hash);
        }
    }
    assert_eq!(hashes.len(), FILES, "every file is its own share");
    let shared_in = started.elapsed();
    wait_catalog(&bob, &hashes, "after sharing").await;
    let during = publishes.load(Ordering::SeqCst) - before;
    assert_eq!(
        missed.load(Ordering::SeqCst),
        0,
        "the test's event reader fell behind: the publish count is incomplete"
    );
    // One publish per burst, and one every PUBLISH_AT_LEAST_EVERY while it
    // lasts (however slow this machine is), not one per share: the count
    // the publisher's rule allows for the time the batch took, plus the
    // one at its end.
    let allowed = 2 + (shared_in.as_secs_f64() / PUBLISH_AT_LEAST_EVERY.as_secs_f64()) as usize;
    assert!(
        (1..=allowed.min(FILES / 4)).contains(&during),
        "{during} publishes for {FILES} shares made in {shared_in:?} (at most {allowed})"
    );

    // A restart: every share is still there, and published again.
    alice.shutdown().await;
    drop(alice);
    let journal = alice_dir.join("data/torrents.journal");
    assert!(journal.exists(), "the changes were journaled");
    let alice = start(&server, "alice", &alice_dir, EventBus::new()).await;
    let own: HashSet<InfoHash> = alice
        .engine
        .local_shares()
        .into_iter()
        .map(|s| s.hash)
        .collect();
    assert_eq!(own, hashes, "alice's shares after the restart");
    // The start folded the journal into torrents.json.
    assert_eq!(std::fs::metadata(&journal).unwrap().len(), 0);
    let saved = std::fs::read_to_string(alice_dir.join("data/torrents.json")).unwrap();
    assert_eq!(saved.matches("\"info_hash\"").count(), FILES);
    wait_catalog(&bob, &hashes, "after alice's restart").await;

    alice.shutdown().await;
    bob.shutdown().await;
}
