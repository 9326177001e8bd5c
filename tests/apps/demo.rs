//! Demo mode without the GUI: `Demo::start` brings up a private Prosody and
//! demo-bob sharing his three samples; the app's backend logs in as
//! demo-alice from `Demo::alice_config`, sees and downloads bob's files,
//! and bob fetches what alice shares, saying so on the app's event bus.
//! Stopping (or dropping) the demo leaves no server process and no folder;
//! folders of apps that are gone are removed at the next start.

use std::path::Path;
use std::time::Duration;

use bitween::desktop::demo::{self, Demo, FOLDER, PICTURE, WELCOME};
use bitween::desktop::Backend;
use bitween::events::{Event, EventBus};
use bitween_testkit::{next_event, next_event_within};
use tokio_util::sync::CancellationToken;

/// Whether a process runs whose command line mentions `dir`.
fn process_mentions(dir: &Path) -> Option<String> {
    let needle = dir.to_string_lossy().into_owned();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        if !entry
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            continue;
        }
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        if cmdline.contains(&needle) {
            return Some(format!(
                "{}: {cmdline}",
                entry.file_name().to_string_lossy()
            ));
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_shows_the_whole_flow_and_leaves_nothing() {
    bitween_testkit::init_logging();
    let base = tempfile::tempdir().unwrap();
    let bus = EventBus::new();
    let mut events = bus.subscribe();
    let demo = Demo::start_in(base.path(), bus.clone()).await.unwrap();
    let dir = demo.dir().to_path_buf();
    assert!(dir.starts_with(base.path()) && dir.is_dir());
    assert!(
        process_mentions(&dir).is_some_and(|p| p.contains("prosody")),
        "no demo prosody runs"
    );
    let names: Vec<String> = demo
        .bob_shares()
        .iter()
        .map(|s| s.name.to_string())
        .collect();
    assert_eq!(names, [WELCOME, PICTURE, FOLDER]);

    // The app logs in as demo-alice and sees bob's three shares.
    let backend = Backend::new(bus.clone(), CancellationToken::new());
    let api = backend.start(demo.alice_config(), true).await.unwrap();
    let bob = demo.bob_jid();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while api.contact(&bob).map_or(0, |c| {
        c.resources.iter().map(|r| r.shares.len()).sum::<usize>()
    }) < 3
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "alice never saw bob's shares"
        );
        let _ = tokio::time::timeout_at(deadline, events.recv()).await;
    }

    // One download: bob's text file, byte for byte.
    let welcome = demo.bob_shares()[0].hash;
    api.download(welcome, None).await.unwrap();
    next_event(
        &mut events,
        "the download of the text file",
        |e| matches!(e, Event::DownloadFinished { hash, .. } if *hash == welcome),
    )
    .await;
    let got = std::fs::read(dir.join(demo::ALICE).join("downloads").join(WELCOME)).unwrap();
    assert_eq!(got, std::fs::read(&demo.samples()[0]).unwrap());

    // Alice shares a file of her own: bob fetches it and says so.
    let mine = base.path().join("Shopping list.txt");
    std::fs::write(&mine, "milk, eggs, flour\n").unwrap();
    api.share(&mine).await.unwrap();
    next_event(&mut events, "bob starting his download", |e| {
        matches!(e, Event::DemoActivity { text } if text == "demo-bob started downloading Shopping list.txt")
    })
    .await;
    next_event_within(&mut events, "bob's download", Duration::from_secs(60), |e| {
        matches!(e, Event::DemoActivity { text } if text == "demo-bob downloaded Shopping list.txt")
    })
    .await;

    // Leaving: alice signs out, then the demo stops; nothing is left.
    backend.stop().await;
    demo.stop().await;
    assert!(!dir.exists(), "the demo folder is still there");
    assert_eq!(
        process_mentions(&dir),
        None,
        "a demo process is still running"
    );
    assert!(mine.exists(), "alice's own file must stay where it was");
}

#[tokio::test(flavor = "multi_thread")]
async fn dropping_a_demo_stops_its_server_and_removes_its_folder() {
    bitween_testkit::init_logging();
    let base = tempfile::tempdir().unwrap();
    let demo = Demo::start_in(base.path(), EventBus::new()).await.unwrap();
    let dir = demo.dir().to_path_buf();
    let pid = demo.server_pid().unwrap();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    drop(demo);
    assert!(!dir.exists(), "the demo folder is still there");
    assert_eq!(process_mentions(&dir), None, "the demo server still runs");
}

#[test]
fn folders_of_apps_that_are_gone_are_removed() {
    let base = tempfile::tempdir().unwrap();
    // A pid that no process has any more: a child that exited.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    child.wait().unwrap();
    let gone = base
        .path()
        .join(format!("bitween-demo-{}-0badf00d", child.id()));
    let mine = base
        .path()
        .join(format!("bitween-demo-{}-12345678", std::process::id()));
    let live = base.path().join("bitween-demo-1-abcdef01");
    let other = base.path().join("bitween-something-else");
    for d in [&gone, &mine, &live, &other] {
        std::fs::create_dir_all(d.join("data")).unwrap();
    }
    assert_eq!(demo::remove_stale(base.path()), vec![gone.clone()]);
    assert!(!gone.exists());
    assert!(mine.exists() && live.exists() && other.exists());
}
