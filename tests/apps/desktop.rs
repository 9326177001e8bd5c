//! The desktop app's core, without the GUI: the drop handler (paths in,
//! shares out, one outcome per path, hashing events, the contact sees the
//! shares) and the login verdicts the account screen shows (wrong
//! password, server down, success), against a real Prosody and librqbit.

use std::path::PathBuf;

use bitween::desktop::{Account, Backend, DesktopSettings, LoginError};
use bitween::events::{Event, EventBus};
use bitween_testkit::{next_event, Peer, Prosody, DOMAIN, PASSWORD};
use tokio_util::sync::CancellationToken;

fn settings(dir: &std::path::Path) -> DesktopSettings {
    DesktopSettings {
        download_dir: dir.join("downloads"),
        ipv4: false,
        ipv6: false,
        lan: false,
        upnp: false,
        addresses: vec!["127.0.0.1".parse().unwrap()],
        ..Default::default()
    }
}

fn account(server: &Prosody, user: &str) -> Account {
    Account {
        jid: format!("{user}@{DOMAIN}"),
        server: Some(server.server()),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dropped_paths_become_shares_the_contact_sees() {
    let server = Prosody::start(&["alice", "bob"], &[("alice", "bob")]);
    let dir = tempfile::tempdir().unwrap();
    let bus = EventBus::new();
    let mut events = bus.subscribe();
    let backend = Backend::new(bus, CancellationToken::new());
    let s = settings(dir.path());
    let api = backend
        .start(
            s.service_config(
                &account(&server, "alice"),
                PASSWORD.into(),
                dir.path().join("data"),
            ),
            true,
        )
        .await
        .expect("alice logs in");
    let mut bob = Peer::login(&server, "bob", "pc").await;

    let files = dir.path().join("files");
    std::fs::create_dir_all(files.join("album")).unwrap();
    std::fs::write(files.join("notes.txt"), b"hello bob").unwrap();
    std::fs::write(files.join("album/one.jpg"), vec![7u8; 70_000]).unwrap();
    std::fs::write(files.join("album/two.jpg"), vec![9u8; 30_000]).unwrap();
    let paths = vec![
        files.join("notes.txt"),
        files.join("album"),
        files.join("notes.txt"), // dropped twice: shared once
        files.join("missing.bin"),
        PathBuf::from("relative/path"),
        PathBuf::new(),
    ];
    let out = api.share_paths(&paths).await;
    assert_eq!(out.len(), 4, "{out:#?}");
    let notes = out[0].share.clone().expect("notes.txt shared");
    assert_eq!((notes.name.as_str(), notes.size), ("notes.txt", 9));
    let album = out[1].share.clone().expect("album shared");
    assert_eq!((album.name.as_str(), album.size), ("album", 100_000));
    let missing = out[2].error.as_deref().expect("missing file refused");
    assert!(missing.contains("missing.bin"), "{missing}");
    let relative = out[3].error.as_deref().expect("relative path refused");
    assert!(relative.contains("not an absolute path"), "{relative}");

    // Hashing was announced with the size, and its end.
    let started = next_event(
        &mut events,
        "Hashing of the album",
        |e| matches!(e, Event::Hashing { path, .. } if path.ends_with("album")),
    )
    .await;
    assert!(
        matches!(started, Event::Hashing { size: 100_000, .. }),
        "{started:?}"
    );
    next_event(
        &mut events,
        "HashingDone of the album",
        |e| matches!(e, Event::HashingDone { path, error: None } if path.ends_with("album")),
    )
    .await;

    let alice = format!("alice@{DOMAIN}");
    bob.wait_catalog("alice's two shares at bob", |c| {
        c.contact(&alice).is_some_and(|v| {
            let hashes: Vec<_> = v
                .resources
                .iter()
                .flat_map(|r| &r.shares)
                .map(|s| s.hash)
                .collect();
            hashes.contains(&notes.hash) && hashes.contains(&album.hash)
        })
    })
    .await;
    backend.stop().await;
    assert!(backend.api().await.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn login_verdicts_name_the_problem() {
    let mut server = Prosody::start(&["alice"], &[]);
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::new(EventBus::new(), CancellationToken::new());
    let s = settings(dir.path());
    let acct = account(&server, "alice");

    let wrong = backend
        .start(
            s.service_config(&acct, "not the password".into(), dir.path().join("data")),
            true,
        )
        .await
        .err()
        .expect("a wrong password is refused");
    assert!(matches!(wrong, LoginError::Refused(_)), "{wrong:?}");
    assert!(
        wrong.to_string().contains("check the JID and password"),
        "{wrong}"
    );
    assert!(backend.api().await.is_none(), "nothing left running");

    server.stop();
    let down = backend
        .start(
            s.service_config(&acct, PASSWORD.into(), dir.path().join("data")),
            true,
        )
        .await
        .err()
        .expect("a stopped server cannot be reached");
    assert!(matches!(down, LoginError::Unreachable(_)), "{down:?}");
    assert!(down.to_string().contains("is the server running"), "{down}");
    assert!(backend.api().await.is_none(), "nothing left running");

    server.start_again();
    let api = backend
        .start(
            s.service_config(&acct, PASSWORD.into(), dir.path().join("data")),
            true,
        )
        .await
        .expect("the right password on a running server logs in");
    let status = api.call("status", serde_json::Value::Null).await.unwrap();
    assert_eq!(
        status["connection"]["Online"]["jid"]
            .as_str()
            .map(|j| j.starts_with("alice@")),
        Some(true),
        "{status}"
    );
    backend.stop().await;
}
