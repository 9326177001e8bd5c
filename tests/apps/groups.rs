//! Roster groups managed through `bitweenc` (issue 18's "groups, managed in
//! the app"), on a real Prosody and a real ejabberd: a group the server
//! already held, a contact put in a group, a rename, a removal; the groups
//! are the account's XMPP roster groups, so another device of the same
//! account sees them; bad names and strangers are refused and change
//! nothing.

use std::time::{Duration, Instant};

use bitween_testkit::bitweend::Daemon;
use bitween_testkit::on_each_server;
use bitween_testkit::{Server, ServerKind, ServerOptions, DOMAIN};
use serde_json::Value;

on_each_server!(sync: roster_groups_are_managed_through_the_cli_and_other_clients_see_them);

fn jid(user: &str) -> String {
    format!("{user}@{DOMAIN}")
}

/// Each contact's groups, as `daemon` lists them.
fn groups(daemon: &Daemon) -> Vec<(String, Vec<String>)> {
    let contacts = daemon.json(&["contacts"]);
    let mut out: Vec<(String, Vec<String>)> = contacts
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let groups = c["groups"].as_array().unwrap().iter();
            let groups = groups.map(|g| g.as_str().unwrap().to_string()).collect();
            (c["jid"].as_str().unwrap().to_string(), groups)
        })
        .collect();
    out.sort();
    out
}

/// Waits until `daemon` lists exactly `want` (contact, groups).
fn wait_groups(daemon: &Daemon, want: &[(&str, &[&str])], what: &str) {
    let want: Vec<(String, Vec<String>)> = want
        .iter()
        .map(|(user, gs)| (jid(user), gs.iter().map(|g| g.to_string()).collect()))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen = groups(daemon);
        if seen == want {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {seen:?}, not {want:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs `bitweenc args`, which must fail; its error message.
fn refused(daemon: &Daemon, args: &[&str]) -> String {
    let out = daemon.cli(args);
    assert!(!out.status.success(), "bitweenc {args:?} was taken");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn roster_groups_are_managed_through_the_cli_and_other_clients_see_them(kind: ServerKind) {
    // carol is in alice's group Work from the start (another client put
    // her there).
    let options = ServerOptions {
        roster_groups: vec![("alice".into(), "carol".into(), "Work".into())],
        ..ServerOptions::default()
    };
    let server = Server::start_with(
        kind,
        &["alice", "bob", "carol"],
        &[("alice", "bob"), ("alice", "carol")],
        &options,
    );
    let tmp = tempfile::tempdir().unwrap();
    let laptop = Daemon::start(&server, "alice", &tmp.path().join("laptop"));
    wait_groups(
        &laptop,
        &[("bob", &[]), ("carol", &["Work"])],
        "the roster as the server keeps it",
    );
    let (bob, carol) = (jid("bob"), jid("carol"));

    assert_eq!(
        laptop.json(&["group-add", &bob, "Family"]),
        Value::Bool(true)
    );
    laptop.json(&["group-add", &carol, " Family "]);
    // Groups come back from the server at once: a second change right
    // after the first starts from it.
    wait_groups(
        &laptop,
        &[("bob", &["Family"]), ("carol", &["Family", "Work"])],
        "after adding bob and carol to Family, carol to Work",
    );
    let table = laptop.cli(&["contacts"]);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("GROUPS") && table.contains("Family, Work"),
        "{table}"
    );

    // Another device of alice's reads the same roster from the server.
    let phone = Daemon::start_device(&server, "alice", &tmp.path().join("phone"));
    wait_groups(
        &phone,
        &[("bob", &["Family"]), ("carol", &["Family", "Work"])],
        "alice's other device",
    );

    // A rename moves every member.
    assert_eq!(
        laptop.json(&["group-rename", "Family", "Famille"]),
        Value::from(2)
    );
    laptop.json(&["group-remove", &carol, "Work"]);
    let after: &[(&str, &[&str])] = &[("bob", &["Famille"]), ("carol", &["Famille"])];
    wait_groups(&laptop, after, "after the rename and carol leaving Work");
    wait_groups(&phone, after, "alice's other device, after the rename");

    // Bad input is refused with the reason, and changes nothing.
    assert!(refused(&laptop, &["group-add", &bob, "   "]).contains("empty"));
    assert!(refused(&laptop, &["group-add", &bob, "a\u{7}b"]).contains("control"));
    let stranger = jid("dave");
    assert!(refused(&laptop, &["group-add", &stranger, "Family"]).contains("not in your contacts"));
    assert!(refused(&laptop, &["group-rename", "Nobody", "Somebody"]).contains("no contact"));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        groups(&laptop),
        after
            .iter()
            .map(|(u, g)| (jid(u), g.iter().map(|s| s.to_string()).collect()))
            .collect::<Vec<_>>()
    );
    phone.terminate();
    laptop.terminate();
}
