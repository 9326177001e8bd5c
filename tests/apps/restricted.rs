//! Shares for some contacts only (issue 18), with three `bitweend` on a
//! real Prosody: alice, bob in alice's group Family, carol not. A share for
//! Family reaches bob, who downloads it byte for byte and still sees it
//! with alice offline; carol's catalog and everything her server sends her
//! (logged by a Prosody module of this test) hold nothing of it, across
//! reconnects and a server restart; alice's public node lists only the
//! public share; moving bob out of Family takes it from him within 10 s,
//! moving carol in gives it to her. A server that ignores node
//! configuration gets nothing restricted, and `status` says why. The core
//! of the flow runs on ejabberd too.

use std::path::Path;
use std::time::{Duration, Instant};

use bitween::xmpp::pubsub_fetch_current;
use bitween_testkit::bitweend::Daemon;
use bitween_testkit::{Peer, Prosody, Server, ServerKind, ServerOptions, DOMAIN};
use serde_json::Value;

/// A Prosody module that writes every stanza sent to carol's sessions to
/// the file `spy_file`: her raw stream, as the server hands it over.
const SPY: &str = r#"
local file = module:get_option_string("spy_file");
module:hook("resource-bind", function (event)
	local session = event.session;
	if session.username ~= "carol" then return; end
	local send = session.send;
	session.send = function (t)
		local f = io.open(file, "a");
		f:write(tostring(t), "\n");
		f:close();
		return send(t);
	end
end);
"#;

/// A Prosody module that makes the server ignore node configuration: the
/// `<configure/>` and `<publish-options/>` of pubsub requests are dropped
/// before PEP sees them (docs/restricted-shares.md).
const IGNORE_CONFIG: &str = r#"
module:hook("iq/bare/http://jabber.org/protocol/pubsub:pubsub", function (event)
	event.stanza.tags[1]:maptags(function (tag)
		if tag.name == "configure" or tag.name == "publish-options" then return nil; end
		return tag;
	end);
end, 100);
"#;

fn jid(user: &str) -> String {
    format!("{user}@{DOMAIN}")
}

/// Whether `daemon`'s catalog lists `hash` (from an online contact or not).
fn lists(daemon: &Daemon, hash: &str) -> bool {
    daemon
        .json(&["catalog"])
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["resources"].as_array().unwrap().iter())
        .flat_map(|r| r["shares"].as_array().unwrap().iter())
        .any(|s| s["hash"] == hash)
}

/// Waits up to `limit` until `daemon`'s catalog does (or does not) list
/// `hash`.
fn wait_listed(daemon: &Daemon, hash: &str, listed: bool, limit: Duration, what: &str) {
    let deadline = Instant::now() + limit;
    while lists(daemon, hash) != listed {
        assert!(
            Instant::now() < deadline,
            "{what}: after {} s the catalog {} it: {}",
            limit.as_secs(),
            if listed { "still lacks" } else { "still lists" },
            daemon.json(&["catalog"])
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until `daemon`'s `status` says its restricted lists are `state`.
fn wait_restricted(daemon: &Daemon, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = daemon.json(&["status"]);
        if status["restricted"]["state"] == state {
            return status["restricted"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "the restricted lists never became {state}: {}",
            status["restricted"]
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn share(daemon: &Daemon, path: &Path, content: &[u8], to: &[&str]) -> String {
    std::fs::write(path, content).unwrap();
    let mut args = vec!["share"];
    for t in to {
        args.extend(["--to", t]);
    }
    args.push(path.to_str().unwrap());
    daemon.json(&args)[0]["hash"].as_str().unwrap().to_string()
}

/// What carol's server has sent her so far.
fn carols_stream(spy: &Path) -> String {
    std::fs::read_to_string(spy).unwrap_or_default()
}

#[test]
fn a_share_for_family_reaches_only_family_and_follows_the_group() {
    let tmp = tempfile::tempdir().unwrap();
    let spy = tmp.path().join("carol-stream.xml");
    let options = ServerOptions {
        roster_groups: vec![("alice".into(), "bob".into(), "Family".into())],
        prosody_plugins: vec![("spy".into(), SPY.into())],
        prosody_extra: format!("spy_file = {:?}", spy.display().to_string()),
        ..ServerOptions::default()
    };
    let mut server = Prosody::start_opts(
        &["alice", "bob", "carol"],
        &[("alice", "bob"), ("alice", "carol")],
        &options,
    );
    let alice = Daemon::start(&server, "alice", &tmp.path().join("alice"));
    let bob = Daemon::start(&server, "bob", &tmp.path().join("bob"));
    let carol = Daemon::start(&server, "carol", &tmp.path().join("carol"));

    let public = share(
        &alice,
        &tmp.path().join("holiday-public.txt"),
        b"for everyone",
        &[],
    );
    let secret: Vec<u8> = (0..2_000_000u32).map(|i| (i * 13 % 251) as u8).collect();
    let family = share(
        &alice,
        &tmp.path().join("grandma-secret.bin"),
        &secret,
        &["Family"],
    );
    // Both are alice's shares; the restricted one is for Family.
    let shares = alice.json(&["shares"]);
    assert_eq!(shares.as_array().unwrap().len(), 2, "{shares}");
    let transfers = alice.json(&["transfers"]);
    let row = |h: &str| {
        transfers
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["hash"] == h)
            .unwrap()["audience"]
            .clone()
    };
    assert_eq!(row(&public), "everyone");
    assert_eq!(row(&family)["only"]["groups"][0], "Family");
    let status = wait_restricted(&alice, "published");
    assert_eq!(status["readers"], 1, "{status}");

    // bob sees both, carol the public share only.
    only_family_sees(&bob, &carol, &family, &public);
    wait_listed(&bob, &public, true, Duration::from_secs(20), "bob");

    // bob downloads the restricted one, byte for byte.
    bob.json(&["download", &family]);
    let out = bob.cli(&["wait", &family]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = std::fs::read(tmp.path().join("bob/downloads/grandma-secret.bin")).unwrap();
    assert!(got == secret, "bob's copy differs");
    // What reached him in a restricted list he does not pass on.
    let bobs = bob.json(&["transfers"]);
    assert_eq!(bobs[0]["audience"]["only"]["groups"], Value::Array(vec![]));

    // carol's stream never named the Family share.
    let stream = carols_stream(&spy);
    assert!(
        stream.contains(&public),
        "the spy saw nothing of carol's stream: {stream}"
    );
    assert!(
        !stream.contains(&family) && !stream.contains("grandma"),
        "{stream}"
    );

    // The original's view of alice's public node: only the public share.
    let node = fetch_public_node(&server, "carol", &jid("alice"));
    assert!(
        node.contains(&public) && node.contains("holiday-public.txt"),
        "{node}"
    );
    assert!(
        !node.contains(&family) && !node.contains("grandma"),
        "{node}"
    );
    assert_eq!(node.matches("<share_item ").count(), 1, "{node}");
    assert_eq!(node.matches("<resource ").count(), 1, "{node}");

    // alice offline (her public entry goes with her: a clean exit retracts
    // it), the server restarted: bob still browses the restricted share
    // (the server answers for alice), carol still sees nothing of it.
    assert!(alice.terminate().success());
    server.stop();
    server.start_again();
    wait_online(&bob);
    wait_online(&carol);
    wait_listed(
        &bob,
        &family,
        true,
        Duration::from_secs(20),
        "bob after the restart",
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(!lists(&carol, &family));
    let stream = carols_stream(&spy);
    assert!(
        !stream.contains(&family) && !stream.contains("grandma"),
        "{stream}"
    );

    // alice back: bob out of Family loses it within 10 s, carol in gets it.
    let alice = Daemon::start(&server, "alice", &tmp.path().join("alice"));
    wait_restricted(&alice, "published");
    move_bob_out_and_carol_in(&alice, &bob, &carol, &family, &public);
    // (From now on carol may see it: her stream names it.)

    // Everyone again: the share moves to the public list.
    alice.json(&["audience", &family, "--everyone"]);
    wait_listed(
        &bob,
        &family,
        true,
        Duration::from_secs(10),
        "bob, the share for everyone",
    );
    assert!(fetch_public_node(&server, "carol", &jid("alice")).contains(&family));
}

/// Waits until `daemon` is online (again).
fn wait_online(daemon: &Daemon) {
    let deadline = Instant::now() + Duration::from_secs(40);
    while daemon.json(&["status"])["connection"]
        .get("Online")
        .is_none()
    {
        assert!(Instant::now() < deadline, "never back online");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `of`'s public share node as any contact reads it (the original's
/// view): the XML of its current item, fetched by a session of `user`'s.
fn fetch_public_node(server: &Prosody, user: &str, of: &str) -> String {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let peer = Peer::login(server, user, "raw").await;
        let answer = peer
            .xmpp
            .iq(
                of.parse().unwrap(),
                true,
                pubsub_fetch_current(bitween::NS_SHARES),
                Duration::from_secs(10),
            )
            .await
            .expect("alice's public node");
        let xml = answer.map(|a| String::from(&a)).unwrap_or_default();
        peer.xmpp.shutdown().await;
        xml
    })
}

#[test]
fn a_server_that_ignores_node_configuration_gets_nothing_restricted() {
    let tmp = tempfile::tempdir().unwrap();
    let options = ServerOptions {
        roster_groups: vec![("alice".into(), "bob".into(), "Family".into())],
        prosody_plugins: vec![("ignore_node_config".into(), IGNORE_CONFIG.into())],
        ..ServerOptions::default()
    };
    let server = Prosody::start_opts(&["alice", "bob"], &[("alice", "bob")], &options);
    let alice = Daemon::start(&server, "alice", &tmp.path().join("alice"));
    let bob = Daemon::start(&server, "bob", &tmp.path().join("bob"));
    let public = share(&alice, &tmp.path().join("open.txt"), b"open", &[]);
    let family = share(
        &alice,
        &tmp.path().join("closed.txt"),
        b"closed",
        &["Family"],
    );

    let status = wait_restricted(&alice, "refused");
    let reason = status["reason"].as_str().unwrap();
    assert!(
        reason.contains(
            "your server cannot restrict who sees a share; restricted shares stay unpublished"
        ),
        "{reason}"
    );
    assert!(reason.contains("access model"), "{reason}");
    let out = alice.cli(&["status"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("your server cannot restrict"));

    // The public list still goes out; the restricted share nowhere.
    wait_listed(&bob, &public, true, Duration::from_secs(20), "bob");
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !lists(&bob, &family),
        "bob got a share the server would not restrict"
    );
    let node = fetch_node_as(
        &server,
        "bob",
        &jid("alice"),
        &bitween::shares::reader_node(&jid("bob")),
    );
    assert!(node.is_err(), "bob's node holds {node:?}");
    assert!(!fetch_public_node(&server, "bob", &jid("alice")).contains(&family));
}

/// `node` of `of` as `user` fetches it: its XML, or the error.
fn fetch_node_as(server: &Prosody, user: &str, of: &str, node: &str) -> Result<String, String> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let peer = Peer::login(server, user, "raw").await;
        let answer = peer
            .xmpp
            .iq(
                of.parse().unwrap(),
                true,
                pubsub_fetch_current(node),
                Duration::from_secs(10),
            )
            .await;
        peer.xmpp.shutdown().await;
        answer.map(|a| a.map(|a| String::from(&a)).unwrap_or_default())
    })
}

/// The same flow on ejabberd, which pushes no `whitelist` items to members:
/// bob gets the share by the notice and his fetch, carol never; moving bob
/// out of Family takes it from him within 10 s, moving carol in gives it.
#[test]
fn on_ejabberd_a_share_for_family_reaches_only_family() {
    let tmp = tempfile::tempdir().unwrap();
    let options = ServerOptions {
        roster_groups: vec![("alice".into(), "bob".into(), "Family".into())],
        ..ServerOptions::default()
    };
    let server = Server::start_with(
        ServerKind::Ejabberd,
        &["alice", "bob", "carol"],
        &[("alice", "bob"), ("alice", "carol")],
        &options,
    );
    let alice = Daemon::start(&server, "alice", &tmp.path().join("alice"));
    let bob = Daemon::start(&server, "bob", &tmp.path().join("bob"));
    let carol = Daemon::start(&server, "carol", &tmp.path().join("carol"));
    let public = share(&alice, &tmp.path().join("open.txt"), b"for everyone", &[]);
    let family = share(
        &alice,
        &tmp.path().join("family.txt"),
        b"for Family",
        &["Family"],
    );
    wait_restricted(&alice, "published");
    only_family_sees(&bob, &carol, &family, &public);
    move_bob_out_and_carol_in(&alice, &bob, &carol, &family, &public);
}

/// bob (in Family) gets the share `family`; carol gets `public` and, 2 s
/// later still, nothing of `family`.
fn only_family_sees(bob: &Daemon, carol: &Daemon, family: &str, public: &str) {
    wait_listed(bob, family, true, Duration::from_secs(20), "bob, in Family");
    wait_listed(carol, public, true, Duration::from_secs(20), "carol");
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !lists(carol, family),
        "carol's catalog lists the Family share"
    );
}

/// alice moves bob out of Family and carol in: bob's list loses the share
/// `family` (not `public`) within 10 s, carol's gains it within 10 s.
fn move_bob_out_and_carol_in(
    alice: &Daemon,
    bob: &Daemon,
    carol: &Daemon,
    family: &str,
    public: &str,
) {
    alice.json(&["group-remove", &jid("bob"), "Family"]);
    let moved = Instant::now();
    wait_listed(
        bob,
        family,
        false,
        Duration::from_secs(10),
        "bob, out of Family",
    );
    eprintln!(
        "bob's list lost the share {:.1} s after the move",
        moved.elapsed().as_secs_f64()
    );
    assert!(lists(bob, public), "bob lost the public share too");
    alice.json(&["group-add", &jid("carol"), "Family"]);
    wait_listed(
        carol,
        family,
        true,
        Duration::from_secs(10),
        "carol, in Family",
    );
}

/// The web UI says why restricted shares stay unpublished (the same page
/// as the desktop app's), and the audience of each share.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_ui_says_when_the_server_refuses() -> anyhow::Result<()> {
    use bitween_testkit::webdriver::DriverProcess;
    let tmp = tempfile::tempdir()?;
    let options = ServerOptions {
        roster_groups: vec![("alice".into(), "bob".into(), "Family".into())],
        prosody_plugins: vec![("ignore_node_config".into(), IGNORE_CONFIG.into())],
        ..ServerOptions::default()
    };
    let server = Prosody::start_opts(&["alice", "bob"], &[("alice", "bob")], &options);
    let alice = Daemon::start(&server, "alice", &tmp.path().join("alice"));
    let family = share(
        &alice,
        &tmp.path().join("closed.txt"),
        b"closed",
        &["Family"],
    );
    tokio::task::block_in_place(|| wait_restricted(&alice, "refused"));

    let driver = DriverProcess::chromedriver(bitween_testkit::free_port()).await?;
    let profile = tempfile::tempdir()?;
    let browser = super::webui::open_browser(&driver, profile.path()).await?;
    let outcome = async {
        browser.goto(&alice.web_ui_url()).await?;
        let limit = Duration::from_secs(20);
        browser
            .wait_text(
                "#restricted-note",
                "why nothing restricted is published",
                limit,
                |t| {
                    t.contains("your server cannot restrict who sees a share")
                        && t.contains("access model")
                },
            )
            .await?;
        browser
            .wait_text(
                &format!("[data-share=\"{family}\"] .audience"),
                "the share's audience",
                limit,
                |t| t == "Only Family",
            )
            .await?;
        super::webui::shot(&browser, "restricted-refused").await
    }
    .await;
    let _ = browser.delete().await;
    outcome
}
