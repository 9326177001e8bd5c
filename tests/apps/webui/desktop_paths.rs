//! The page's desktop paths in Chromium, against a stand-in for the Tauri
//! shell (`stub_shell.js`) that records every command the page invokes and
//! emits the events a test hands it.

use std::time::Duration;

use anyhow::{ensure, Result};
use bitween_testkit::bitweend::Daemon;
use bitween_testkit::pages::{self, dismiss_toasts, open_view, WAIT};
use bitween_testkit::webdriver::Session;
use bitween_testkit::{DOMAIN, PASSWORD};
use serde_json::json;

use super::{assert_controls_labelled, shot};

async fn calls_to(browser: &Session, command: &str) -> Result<Vec<serde_json::Value>> {
    let v = browser
        .execute(
            "return window.__TAURI__.__test.calls.filter(c => c[0] === arguments[0]).map(c => c[1]);",
            json!([command]),
        )
        .await?;
    Ok(v.as_array().cloned().unwrap_or_default())
}

async fn emit(browser: &Session, name: &str, payload: serde_json::Value) -> Result<()> {
    browser
        .execute(
            "window.__TAURI__.__test.emit(arguments[0], arguments[1]);",
            json!([name, payload]),
        )
        .await?;
    Ok(())
}

/// Drives the page as the desktop app shows it: first-run account screen,
/// drop, hashing, events, downloads, settings and sign-out.
pub(super) async fn drive(
    browser: &Session,
    api_addr: &str,
    hash: &str,
    dropped: &std::path::Path,
    alice: &Daemon,
) -> Result<()> {
    let jid = format!("alice@{DOMAIN}");
    browser.goto(&format!("http://{api_addr}/")).await?;

    // First run: the account screen. A wrong password says so.
    browser.wait_for("#login-jid", WAIT).await?;
    ensure!(
        !browser.find("#login-use-file").await?.displayed().await?,
        "the file option shows although the keyring was not refused"
    );
    assert_controls_labelled(browser, "account").await?;
    shot(browser, "desktop-login").await?;
    // "Try a demo" without Prosody: back on this screen, with the fix.
    browser.click("#try-demo").await?;
    browser
        .wait_text("#demo-error", "why the demo cannot start", WAIT, |t| {
            t.starts_with("The demo needs Prosody") && t.contains("apt install prosody")
        })
        .await?;
    ensure!(browser.find("#login-jid").await?.displayed().await?);
    browser.find("#login-jid").await?.send_keys(&jid).await?;
    browser
        .find("#login-password")
        .await?
        .send_keys("wrong")
        .await?;
    // The download folder comes filled in from the shell's settings.
    let dir = browser.find("#login-download-dir").await?;
    ensure!(dir.property("value").await? == json!("/home/alice/Downloads/Bitween"));
    dir.clear().await?;
    dir.send_keys("/home/alice/Bitween").await?;
    browser.click("#login-submit").await?;
    browser
        .wait_text("#login-error", "the wrong password", WAIT, |t| {
            t.contains("Wrong password")
        })
        .await?;
    // The right one, but no keyring: the page offers the file, and the
    // retry with it signs in.
    let password = browser.find("#login-password").await?;
    password.clear().await?;
    password.send_keys(PASSWORD).await?;
    browser.click("#login-submit").await?;
    browser
        .wait_text("#login-error", "the keyring problem", WAIT, |t| {
            t.contains("No keyring available")
        })
        .await?;
    browser
        .wait_for("#login-use-file", WAIT)
        .await?
        .click()
        .await?;
    shot(browser, "desktop-login-keyring").await?;
    browser.click("#login-submit").await?;
    browser.wait_for("#app", WAIT).await?;
    let logins = calls_to(browser, "login").await?;
    let last = logins.last().unwrap();
    ensure!(
        last["jid"] == jid.as_str()
            && last["useFile"] == true
            && last["downloadDir"] == "/home/alice/Bitween"
            && last["server"].is_null(),
        "login arguments: {last}"
    );
    pages::wait_online(browser).await?;

    // My shares: the drop zone, no path field; a native drop shares.
    browser.wait_for("#drop-zone", WAIT).await?;
    assert_controls_labelled(browser, "desktop shares").await?;
    ensure!(!browser.find("#share-form").await?.displayed().await?);
    emit(
        browser,
        "tauri://drag-enter",
        json!({"paths": [], "position": {"x": 5, "y": 5}}),
    )
    .await?;
    let zone = browser.find("#drop-zone").await?;
    ensure!(
        zone.attr("class")
            .await?
            .unwrap_or_default()
            .contains("dragging"),
        "the drop zone is not highlighted while dragging"
    );
    // What is dropped is for bob only, as "Share with" says.
    let bob_option = format!("#share-audience option[value=\"bob@{DOMAIN}\"]");
    browser.click("#share-audience").await?;
    browser.wait_for(&bob_option, WAIT).await?;
    browser.click(&bob_option).await?;
    emit(
        browser,
        "tauri://drag-drop",
        json!({"paths": [dropped.to_str().unwrap()], "position": {"x": 5, "y": 5}}),
    )
    .await?;
    browser
        .wait_text("#shares-list", "the dropped file", WAIT, |t| {
            t.contains("dropped photo.jpg")
        })
        .await?;
    ensure!(
        !zone
            .attr("class")
            .await?
            .unwrap_or_default()
            .contains("dragging"),
        "the drop zone stays highlighted after the drop"
    );
    let shared = calls_to(browser, "share_paths").await?;
    ensure!(
        shared[0]["paths"][0] == dropped.to_str().unwrap()
            && shared[0]["to"] == json!([format!("bob@{DOMAIN}")]),
        "{shared:?}"
    );
    browser
        .wait_text(
            "#shares-list .audience",
            "the dropped file for bob",
            WAIT,
            |t| t == format!("Only bob@{DOMAIN}"),
        )
        .await?;
    // (Back to everyone for what is shared next; the list closed.)
    browser
        .execute(
            "const s = document.querySelector('#share-audience'); s.value = ''; s.blur();",
            json!([]),
        )
        .await?;
    // Hashing of a large file shows while it lasts; its failure is told.
    emit(
        browser,
        "bitween-event",
        json!({"type": "Hashing", "path": "/data/big.iso", "size": 5_000_000_000u64}),
    )
    .await?;
    browser
        .wait_text("#hashing-list", "the hashing file", WAIT, |t| {
            t.contains("big.iso") && t.contains("4.7 GiB")
        })
        .await?;
    // Its progress fills the bar.
    emit(
        browser,
        "bitween-event",
        json!({"type": "HashingProgress", "path": "/data/big.iso", "done": 1_250_000_000u64, "size": 5_000_000_000u64}),
    )
    .await?;
    browser
        .wait_text("#hashing-list", "the hashing progress", WAIT, |t| {
            t.contains("1.2 GiB of 4.7 GiB")
        })
        .await?;
    let filled = browser
        .execute(
            "return document.querySelector('#hashing-list progress').position",
            json!([]),
        )
        .await?;
    ensure!(filled == json!(0.25), "the hashing bar shows {filled}");
    tokio::time::sleep(Duration::from_millis(600)).await; // the bar's fill animates
    shot(browser, "desktop-shares").await?;
    emit(
        browser,
        "bitween-event",
        json!({"type": "HashingDone", "path": "/data/big.iso", "error": "disk full"}),
    )
    .await?;
    browser.wait_gone("#hashing-list", WAIT).await?;
    browser
        .wait_text("#toast", "the hashing error", WAIT, |t| {
            t.contains("Cannot share big.iso: disk full")
        })
        .await?;
    // Unknown and shell-only events do no harm.
    emit(
        browser,
        "bitween-event",
        json!({"type": "SomethingNew", "x": 1}),
    )
    .await?;
    emit(
        browser,
        "bitween-event",
        json!({"type": "DemoActivity", "text": "carol shared 3 photos"}),
    )
    .await?;
    browser
        .wait_text("#toast", "the demo activity", WAIT, |t| {
            t.contains("carol shared 3 photos")
        })
        .await?;
    // Events were lost (the shell fell behind): the page reads everything
    // again, the whole catalog included.
    let reads = || async {
        let calls = calls_to(browser, "api").await?;
        Ok::<_, anyhow::Error>(
            ["status", "shares", "transfers", "contacts", "catalog"].map(|m| {
                calls
                    .iter()
                    .filter(|c| c["method"] == m && c["params"].is_null())
                    .count()
            }),
        )
    };
    let before = reads().await?;
    emit(browser, "bitween-event", json!({"type": "Resync"})).await?;
    browser
        .wait_until("everything read again", WAIT, || async {
            let now = reads().await?;
            let all = now.iter().zip(before).all(|(n, b)| *n > b);
            Ok((all.then_some(()), format!("reads {before:?} -> {now:?}")))
        })
        .await?;
    // A change of one contact: the page reads that contact's view alone.
    let bob = format!("bob@{DOMAIN}");
    emit(
        browser,
        "bitween-event",
        json!({"type": "ContactSharesChanged", "jid": bob}),
    )
    .await?;
    browser
        .wait_until("bob's view read", WAIT, || async {
            let calls = calls_to(browser, "api").await?;
            let n = calls
                .iter()
                .filter(|c| c["method"] == "catalog" && c["params"]["jid"] == bob.as_str())
                .count();
            Ok(((n > 0).then_some(()), format!("{n} reads of bob's view")))
        })
        .await?;

    // Download bob's file; the finished transfer offers open file/folder.
    dismiss_toasts(browser).await?;
    open_view(browser, "contacts").await?;
    let bob_row = format!("[data-jid=\"bob@{DOMAIN}\"]");
    browser
        .wait_text(&format!("{bob_row} .share-count"), "1 share", WAIT, |t| {
            t == "1 share"
        })
        .await?;
    browser.click(&format!("{bob_row} .expand")).await?;
    let button = format!("{bob_row} [data-hash=\"{hash}\"] button.download");
    browser.wait_for(&button, WAIT).await?.click().await?;
    open_view(browser, "transfers").await?;
    let row = format!("[data-transfer=\"{hash}\"]");
    browser
        .wait_text(&format!("{row} .state"), "Done", WAIT, |t| t == "Done")
        .await?;
    browser.click(&format!("{row} .open-file")).await?;
    browser.click(&format!("{row} .open-folder")).await?;
    let opened = calls_to(browser, "open_path").await?;
    ensure!(
        opened
            == vec![
                json!({"hash": hash, "folder": false}),
                json!({"hash": hash, "folder": true})
            ],
        "open_path calls: {opened:?}"
    );
    let got = std::fs::read(alice.data.with_file_name("downloads").join("song.flac"))?;
    ensure!(got.len() == 200_000, "the download is incomplete");

    // A download that failed for good shows with its reason, until removed.
    let failed = "ab".repeat(20);
    emit(
        browser,
        "bitween-event",
        json!({"type": "DownloadFailed", "hash": failed, "reason": "its metadata names a file outside the folder"}),
    )
    .await?;
    let failed_row = format!("[data-transfer=\"{failed}\"]");
    browser
        .wait_text(&format!("{failed_row} .state"), "Failed", WAIT, |t| {
            t == "Failed"
        })
        .await?;
    let reason = browser.text(&format!("{failed_row} .reason")).await?;
    ensure!(reason.contains("outside the folder"), "{reason}");
    browser
        .wait_text("#toast", "the failure", WAIT, |t| {
            t.contains("failed: its metadata names a file outside the folder")
        })
        .await?;
    shot(browser, "desktop-transfers").await?;
    dismiss_toasts(browser).await?;
    browser.click(&format!("{failed_row} .cancel")).await?;
    browser.wait_gone(&failed_row, WAIT).await?;

    // Settings: the form, its validation, and what is saved.
    open_view(browser, "settings").await?;
    let port = browser.wait_for("#set-bt-port", WAIT).await?;
    ensure!(port.property("value").await? == json!("0"));
    port.clear().await?;
    port.send_keys("70000").await?;
    dismiss_toasts(browser).await?;
    browser.click("#settings-save").await?;
    browser
        .wait_text("#settings-error", "the bad port", WAIT, |t| {
            t.contains("0 to 65535")
        })
        .await?;
    port.clear().await?;
    port.send_keys("6881").await?;
    browser
        .find("#set-upload-limit")
        .await?
        .send_keys("512")
        .await?;
    browser.click("#set-upnp").await?;
    dismiss_toasts(browser).await?;
    browser.click("#settings-save").await?;
    browser
        .wait_text("#toast", "the confirmation", WAIT, |t| {
            t.contains("Settings saved")
        })
        .await?;
    let saved = calls_to(browser, "save_settings").await?;
    let s = &saved.last().unwrap()["settings"];
    ensure!(
        s["bt_port"] == 6881
            && s["upload_limit_kib"] == 512
            && s["download_limit_kib"].is_null()
            && s["upnp"] == false
            && s["ipv6"] == true,
        "saved settings: {s}"
    );
    let account = browser.text("#account-facts").await?;
    ensure!(
        account.contains(&jid) && account.contains("a file readable only by you"),
        "{account}"
    );
    assert_controls_labelled(browser, "desktop settings").await?;
    shot(browser, "desktop-settings").await?;

    // Sign out asks first, then shows the account screen again.
    browser.click("#logout").await?;
    browser.wait_for("#confirm", WAIT).await?;
    shot(browser, "desktop-confirm").await?;
    browser.click("#confirm-ok").await?;
    browser.wait_for("#login-jid", WAIT).await?;
    ensure!(calls_to(browser, "logout").await?.len() == 1);
    Ok(())
}
