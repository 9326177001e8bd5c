//! The web UI's whole flow in Chromium, as alice uses it: bob's files
//! found, searched and downloaded, a path of hers shared and removed, a
//! download paused and resumed, contact requests, every screen at a small
//! size and in the dark theme, bob's news and his going offline, and her
//! own daemon stopping.

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use bitween_testkit::bitweend::Daemon;
use bitween_testkit::pages::{self, dismiss_toasts, open_view, WAIT};
use bitween_testkit::webdriver::{Session, ELEMENT};
use bitween_testkit::{Prosody, DOMAIN};
use serde_json::json;

use super::{assert_controls_labelled, shot};

/// Drives the page at `url` (alice's daemon, with its token) through the
/// whole flow.
pub(super) async fn drive(
    browser: &Session,
    server: &Prosody,
    url: &str,
    (alice, bob): (&Daemon, &Daemon),
    (hash, later_hash): (&str, &str),
    content: &[u8],
) -> Result<()> {
    let bob_jid = format!("bob@{DOMAIN}");
    browser.goto(url).await?;
    browser.wait_for("#app", WAIT).await?;
    ensure!(
        browser
            .execute("return document.compatMode;", json!([]))
            .await?
            == "CSS1Compat",
        "the page renders in quirks mode"
    );
    // The token left the address bar (it stays in the tab's session).
    let now = browser.current_url().await?;
    ensure!(
        !now.contains("token"),
        "the token is still in the address: {now}"
    );

    // Online, with the addresses published.
    pages::wait_online(browser).await?;
    browser
        .wait_text("#status-addresses", "127.0.0.1", WAIT, |t| {
            t.contains("127.0.0.1:")
        })
        .await?;
    shot(browser, "shares-empty").await?;

    // bob is a contact, online, with his two shares.
    open_view(browser, "contacts").await?;
    let bob_row = pages::contact_row(&bob_jid);
    pages::wait_presence(browser, &bob_jid, "online").await?;
    browser
        .wait_text(&format!("{bob_row} .share-count"), "2 shares", WAIT, |t| {
            t == "2 shares"
        })
        .await?;
    // The page reads one contact's view at a time: `catalog` with a jid
    // (null for someone the catalog does not know).
    let view = alice.rpc("catalog", json!({ "jid": bob_jid }));
    ensure!(
        view["jid"] == bob_jid.as_str()
            && view["resources"][0]["shares"].as_array().map(Vec::len) == Some(2),
        "bob's view: {view}"
    );
    ensure!(alice
        .rpc("catalog", json!({ "jid": format!("nobody@{DOMAIN}") }))
        .is_null());
    pages::check_contact_share(browser, &bob_jid, hash, "holiday 2026.mkv", "1.0 MiB").await?;
    let share_row = pages::contact_share_row(&bob_jid, hash);
    assert_eq!(
        browser
            .text(&format!("{share_row} button.download"))
            .await?,
        "Download"
    );
    shot(browser, "contacts").await?;

    // One search box across every contact's shares.
    let search = browser.find("#contact-search").await?;
    search.send_keys("HOLIDAY").await?;
    let hit = format!("#search-results [data-hash=\"{hash}\"]");
    browser
        .wait_text(&format!("{hit} .holders"), "1 contact", WAIT, |t| {
            t == "1 contact"
        })
        .await?;
    assert_eq!(browser.text(&format!("{hit} .size")).await?, "1.0 MiB");
    assert_eq!(
        browser.text(&format!("{hit} .name")).await?,
        "holiday 2026.mkv"
    );
    ensure!(
        browser
            .find_all(&format!("#search-results [data-hash=\"{later_hash}\"]"))
            .await?
            .is_empty(),
        "the search lists a file that does not match"
    );
    shot(browser, "search").await?;

    // One click downloads; the button then says so.
    dismiss_toasts(browser).await?;
    browser.click(&format!("{hit} button.download")).await?;
    browser
        .wait_text(
            &format!("{hit} button.download"),
            "Downloading or Downloaded",
            WAIT,
            |t| t == "Downloading" || t == "Downloaded",
        )
        .await?;
    search.clear().await?;
    search.send_keys("\u{E00C}").await?; // Escape
    browser.wait_gone("#search-results", WAIT).await?;

    // The transfer: a progress bar that fills, then done.
    open_view(browser, "transfers").await?;
    pages::wait_transfer_done(browser, hash, 1 << 20).await?;
    let row = pages::transfer_row(hash);
    for part in [".speed", ".peers"] {
        browser.find(&format!("{row} {part}")).await?;
    }
    browser.find(&format!("{row} .eta")).await?;
    browser.find(&format!("{row} .pause")).await?;
    browser.find(&format!("{row} .cancel")).await?;
    // No opening of files on the daemon's computer from a browser.
    ensure!(
        !browser
            .find(&format!("{row} .open-file"))
            .await?
            .displayed()
            .await?
            && !browser
                .find(&format!("{row} .open-folder"))
                .await?
                .displayed()
                .await?,
        "open file/folder buttons show in the browser"
    );
    let got = std::fs::read(
        alice
            .data
            .with_file_name("downloads")
            .join("holiday 2026.mkv"),
    )?;
    ensure!(got == content, "the downloaded file differs from bob's");
    shot(browser, "transfers").await?;

    // alice shares a path on her daemon's computer from the page; it shows
    // in her list and reaches bob's catalog.
    let mine = alice.data.with_file_name("notes for bob.txt");
    std::fs::write(&mine, b"see you on Sunday\n".repeat(1000))?;
    open_view(browser, "shares").await?;
    let field = browser.wait_for("#share-path", WAIT).await?;
    field.send_keys(mine.to_str().unwrap()).await?;
    browser.click("#share-path-submit").await?;
    let new_row = browser
        .wait_until("the new share in alice's list", WAIT, || async {
            for row in browser.find_all("#shares-list [data-share]").await? {
                if row.find(".name").await?.text().await? == "notes for bob.txt" {
                    return Ok((Some(row), String::new()));
                }
            }
            Ok((None, "not listed yet".into()))
        })
        .await?;
    let mine_hash = new_row.attr("data-share").await?.unwrap();
    assert_eq!(new_row.find(".size").await?.text().await?, "17.6 KiB");
    // A live share (its files are watched, a change is published as a new
    // version) says when its current version was made.
    browser
        .wait_text(
            &format!("[data-share=\"{mine_hash}\"] .updated"),
            "when the share was updated",
            WAIT,
            |t| {
                t.strip_prefix("updated ")
                    .and_then(|t| t.strip_suffix(" s ago"))
                    .is_some_and(|n| n.parse::<u32>().is_ok_and(|n| n < 60))
            },
        )
        .await?;
    browser
        .wait_text("#toast", "a confirmation", WAIT, |t| {
            t.contains("Sharing notes for bob.txt")
        })
        .await?;
    let deadline = Instant::now() + WAIT;
    while !bob_sees(bob, &mine_hash) {
        ensure!(
            Instant::now() < deadline,
            "bob's catalog never listed the file alice shared from the browser"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A path that does not exist gets a clear error, and nothing is shared.
    let field = browser.find("#share-path").await?;
    field.send_keys("/no/such/file.txt").await?;
    browser.click("#share-path-submit").await?;
    browser
        .wait_text("#share-path-error", "the path in an error", WAIT, |t| {
            t.contains("/no/such/file.txt")
        })
        .await?;
    field.clear().await?;
    shot(browser, "shares").await?;

    // Its magnet link can be copied; removing it asks first.
    browser
        .click(&format!("[data-share=\"{mine_hash}\"] .copy-magnet"))
        .await?;
    browser
        .wait_text("#toast", "the magnet link", WAIT, |t| {
            t.contains("Magnet link of notes for bob.txt copied")
                || t.contains(&format!(
                    "magnet:?xt=urn:btih:{mine_hash}&dn=notes%20for%20bob.txt&xl=18000"
                ))
        })
        .await?;
    dismiss_toasts(browser).await?;
    browser
        .click(&format!("[data-share=\"{mine_hash}\"] .unshare"))
        .await?;
    browser.wait_for("#confirm", WAIT).await?;
    browser.click("#confirm-ok").await?;
    browser
        .wait_gone(&format!("[data-share=\"{mine_hash}\"]"), WAIT)
        .await?;
    ensure!(
        !alice
            .json(&["shares"])
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["hash"] == mine_hash.as_str()),
        "the share is still there after Remove"
    );

    // A finished download pauses and resumes.
    open_view(browser, "transfers").await?;
    dismiss_toasts(browser).await?;
    browser.click(&format!("{row} .pause")).await?;
    browser
        .wait_text(&format!("{row} .state"), "Paused", WAIT, |t| t == "Paused")
        .await?;
    browser.click(&format!("{row} .resume")).await?;
    browser
        .wait_text(&format!("{row} .state"), "Done", WAIT, |t| t == "Done")
        .await?;

    // carol asks to become alice's contact: alice accepts from the page.
    // alice asks dave, who has not answered yet.
    let carol = bitween_testkit::Peer::login(server, "carol", "pc").await;
    carol
        .xmpp
        .add_contact(bitween::xmpp::contact_jid(&format!("alice@{DOMAIN}")).unwrap())
        .unwrap();
    open_view(browser, "contacts").await?;
    let request = format!("[data-request=\"carol@{DOMAIN}\"]");
    browser.wait_for(&request, WAIT).await?;
    ensure!(
        browser.text("#badge-contacts").await? == "1",
        "no badge for the request"
    );
    dismiss_toasts(browser).await?;
    browser.click(&format!("{request} .accept")).await?;
    browser.wait_gone(&request, WAIT).await?;
    browser
        .wait_for(&format!("[data-jid=\"carol@{DOMAIN}\"]"), WAIT)
        .await?;
    let add = browser.find("#add-contact-jid").await?;
    add.send_keys("not an address").await?;
    browser.click("#add-contact-submit").await?;
    browser
        .wait_text("#add-contact-error", "the format", WAIT, |t| {
            t.contains("friend@example.org")
        })
        .await?;
    add.clear().await?;
    add.send_keys(&format!("dave@{DOMAIN}")).await?;
    browser.click("#add-contact-submit").await?;
    browser
        .wait_text(
            &format!("[data-jid=\"dave@{DOMAIN}\"] .subscription"),
            "the pending request",
            WAIT,
            |t| t.contains("waiting for them to accept"),
        )
        .await?;
    shot(browser, "contacts-requests").await?;
    carol.xmpp.shutdown().await;

    // Settings are read-only here and say where to change them.
    open_view(browser, "settings").await?;
    let note = browser.text("#settings-readonly").await?;
    ensure!(
        note.contains("bitweend") && note.contains(&format!("alice@{DOMAIN}")),
        "{note}"
    );
    shot(browser, "settings").await?;

    check_small_window(browser).await?;

    // The keyboard alone: a nav button takes Enter.
    let nav = browser.find("[data-nav=\"transfers\"]").await?;
    browser
        .execute("arguments[0].focus();", json!([{ELEMENT: nav.id}]))
        .await?;
    nav.send_keys("\u{E007}").await?;
    browser.wait_for("#view-transfers", WAIT).await?;

    // bob shares something new: one message says so.
    let third = alice.data.with_file_name("third.txt");
    std::fs::write(&third, b"three")?;
    bob.json(&["share", third.to_str().unwrap()]);
    browser
        .wait_text("#toast", "the news", WAIT, |t| {
            t.contains(&format!("{bob_jid} shared a new file: third.txt"))
        })
        .await?;

    // bob's daemon dies (no sign-out): alice sees him offline, his files
    // are marked offline, and asking for one says it will wait for him.
    bob_kill(bob);
    open_view(browser, "contacts").await?;
    pages::wait_presence(browser, &bob_jid, "offline").await?;
    let later_row = pages::contact_share_row(&bob_jid, later_hash);
    browser
        .wait_text(
            &format!("{later_row} .availability"),
            "offline",
            WAIT,
            |t| t == "offline",
        )
        .await?;
    assert_eq!(
        browser
            .text(&format!("{bob_row} [data-hash=\"{hash}\"] button.download"))
            .await?,
        "Downloaded"
    );
    pages::download_from_offline_contact(
        browser,
        &bob_jid,
        later_hash,
        &format!("{bob_jid} is offline: the download will start when they come back"),
    )
    .await?;
    browser
        .wait_text(
            &format!("{later_row} button.download"),
            "Downloading",
            WAIT,
            |t| t == "Downloading",
        )
        .await?;
    shot(browser, "contacts-offline").await?;
    open_view(browser, "transfers").await?;
    browser
        .wait_text(
            &format!("[data-transfer=\"{later_hash}\"] .state"),
            "waiting",
            WAIT,
            |t| t == "Waiting for a source",
        )
        .await?;
    shot(browser, "transfers-waiting").await?;

    // alice's own daemon stops: the page says it lost it.
    assert!(alice.cli(&["exit"]).status.success());
    browser
        .wait_text("#status-connection", "the lost daemon", WAIT, |t| {
            t.starts_with("Offline: lost the connection to bitweend")
        })
        .await?;
    Ok(())
}

/// Whether `bob`'s catalog (through his API) lists `hash` from alice.
fn bob_sees(bob: &Daemon, hash: &str) -> bool {
    bob.rpc("catalog", json!([]))
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["jid"] == format!("alice@{DOMAIN}"))
        .flat_map(|c| c["resources"].as_array().cloned().unwrap_or_default())
        .flat_map(|r| r["shares"].as_array().cloned().unwrap_or_default())
        .any(|s| s["hash"] == hash)
}

/// Kills bob's daemon at once (SIGKILL), as a crash would.
fn bob_kill(bob: &Daemon) {
    let _ = std::process::Command::new("kill")
        .args(["-9", &bob.child.id().to_string()])
        .status();
}

/// Every screen at 800x600: screenshot, no sideways overflow, every
/// control named; then each in the dark theme.
async fn check_small_window(browser: &Session) -> Result<()> {
    dismiss_toasts(browser).await?;
    browser.set_viewport_size(800, 600).await?;
    for view in ["shares", "contacts", "transfers", "settings"] {
        open_view(browser, view).await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_no_overflow(browser, view).await?;
        assert_controls_labelled(browser, view).await?;
        shot(browser, &format!("{view}-800x600")).await?;
    }
    browser.set_window_size(1000, 700).await?;
    set_dark(browser, true).await?;
    for view in ["shares", "contacts", "transfers", "settings"] {
        open_view(browser, view).await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        shot(browser, &format!("{view}-dark")).await?;
    }
    set_dark(browser, false).await
}

/// Makes the page see `prefers-color-scheme: dark` (or light).
async fn set_dark(browser: &Session, dark: bool) -> Result<()> {
    let value = if dark { "dark" } else { "light" };
    browser
        .chromium_cdp(
            "Emulation.setEmulatedMedia",
            json!({ "features": [{ "name": "prefers-color-scheme", "value": value }] }),
        )
        .await?;
    let seen = browser
        .execute(
            "return matchMedia('(prefers-color-scheme: dark)').matches;",
            json!([]),
        )
        .await?;
    ensure!(
        seen == json!(dark),
        "the page does not see the {value} theme"
    );
    Ok(())
}

/// Nothing sticks out sideways: neither the page nor its three parts
/// scroll horizontally.
async fn assert_no_overflow(browser: &Session, screen: &str) -> Result<()> {
    let v = browser
        .execute(
            r#"const bad = [];
               const doc = document.documentElement;
               if (doc.scrollWidth > window.innerWidth) bad.push(`page ${doc.scrollWidth} > ${window.innerWidth}`);
               for (const sel of ['.sidebar', '.content', '.statusbar', '.view:not([hidden])']) {
                 const e = document.querySelector(sel);
                 if (e && e.scrollWidth > e.clientWidth + 1) bad.push(`${sel} ${e.scrollWidth} > ${e.clientWidth}`);
               }
               return bad;"#,
            json!([]),
        )
        .await?;
    ensure!(
        v.as_array().is_some_and(|a| a.is_empty()),
        "the {screen} screen overflows sideways: {v}"
    );
    Ok(())
}
