//! The paths we answer keep to a share's audience (issue 18): a contact's
//! request for a punched or relayed connection to a share for Family is
//! answered for bob, who is in Family, and refused for carol, who is not,
//! with the same words as for a torrent we do not have (she does not learn
//! that it exists); after bob leaves Family it is refused for him too.

use std::time::Duration;

use bitween::net::signal::Mode;
use bitween::net::Request;
use bitween::service::Service;
use bitween::shares::{Audience, InfoHash};
use bitween_testkit::{Prosody, ServerOptions, DOMAIN};

async fn device(server: &Prosody, user: &str, dir: &std::path::Path) -> Service {
    let config = bitween_testkit::service_config(server, user, dir, None);
    Service::start(config).await.expect("service starts")
}

/// alice's answer to `user`'s (resource `pc`) request for `hash`.
async fn ask(alice: &Service, user: &str, hash: InfoHash) -> Result<(), String> {
    let req = Request {
        sid: format!("test-{user}"),
        hash,
        mode: Mode::Punch,
        candidates: vec!["127.0.0.1:9".parse().unwrap()],
    };
    let from = format!("{user}@{DOMAIN}/pc");
    alice.engine.paths().answer(&from, req).await.map(|_| ())
}

/// Waits until `svc`'s catalog does (or does not) list `hash`.
async fn wait_listed(svc: &Service, hash: &InfoHash, listed: bool, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while svc.catalog.share(hash).is_some() != listed {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restricted_share_is_served_over_our_paths_only_to_its_audience() {
    let options = ServerOptions {
        roster_groups: vec![("alice".into(), "bob".into(), "Family".into())],
        ..ServerOptions::default()
    };
    let server = Prosody::start_opts(
        &["alice", "bob", "carol"],
        &[("alice", "bob"), ("alice", "carol")],
        &options,
    );
    let tmp = tempfile::tempdir().unwrap();
    let alice = device(&server, "alice", &tmp.path().join("alice")).await;
    let bob = device(&server, "bob", &tmp.path().join("bob")).await;
    let carol = device(&server, "carol", &tmp.path().join("carol")).await;
    let file = tmp.path().join("family.bin");
    std::fs::write(&file, vec![7u8; 100_000]).unwrap();
    let family = Audience::of_targets(&["Family".into()], &[]).unwrap();
    let share = alice.engine.share_for(&file, Some(family)).await.unwrap();
    let other = InfoHash([9; 20]);
    wait_listed(&bob, &share.hash, true, "bob never saw the Family share").await;
    // (carol is online at alice's: her public list came.)
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !alice.catalog.is_online(&format!("carol@{DOMAIN}"), "pc")
        || !alice.catalog.is_online(&format!("bob@{DOMAIN}"), "pc")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "bob or carol never came online at alice's"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // (Whether a punch can then be tried depends on the addresses here;
    // what matters is that the share is not hidden from him.)
    let for_bob = ask(&alice, "bob", share.hash).await;
    assert!(
        !for_bob
            .as_ref()
            .is_err_and(|e| e.contains("is not shared here")),
        "bob, in Family, was refused: {for_bob:?}"
    );
    let for_carol = ask(&alice, "carol", share.hash).await.unwrap_err();
    let unknown = ask(&alice, "carol", other).await.unwrap_err();
    assert_eq!(
        for_carol.replace(&share.hash.to_hex(), "HASH"),
        unknown.replace(&other.to_hex(), "HASH"),
        "carol's refusal tells the share apart from one that does not exist"
    );

    // bob leaves Family: his list loses it, and so does his access.
    alice
        .xmpp
        .set_groups(format!("bob@{DOMAIN}").parse().unwrap(), vec![])
        .await
        .unwrap();
    wait_listed(
        &bob,
        &share.hash,
        false,
        "bob kept the share after leaving Family",
    )
    .await;
    let refused = ask(&alice, "bob", share.hash).await.unwrap_err();
    assert!(refused.contains("is not shared here"), "{refused}");

    for svc in [alice, bob, carol] {
        svc.shutdown().await;
    }
}
