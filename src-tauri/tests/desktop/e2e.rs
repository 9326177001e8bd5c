//! The desktop app end to end, in its real webview: the built `bitween`
//! binary under Xvfb, driven through tauri-driver and WebKitWebDriver with
//! the project's own WebDriver client, against a real Prosody and a real
//! `bitweend` as bob.
//!
//! The account screen reports a missing keyring, a wrong password and a
//! server that is down; alice logs in; bob's file appears under bob with
//! its size; bob is put in a new roster group from his row, and the group
//! is renamed; one click downloads his file, the transfer completes and the
//! file is bob's byte for byte; a folder shared through the drop handler's
//! command reaches bob, and My shares says when it was last updated; bob
//! vanishing shows him offline, and a download of his other file says so.
//! A screenshot of each screen is saved to
//! `<target dir>/screenshots/desktop-*.png`. (The demo mode has its own
//! test, `demo.rs`; what both share is in `harness.rs`.)
//!
//! Needs `cargo build --bin bitweend --bin bitweenc` (scripts/test.sh
//! builds them before) and the Debian packages xvfb and webkit2gtk-driver
//! plus `tauri-driver` (scripts/test.sh installs them).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use bitween_testkit::bitweend::{random_bytes, Daemon};
use bitween_testkit::pages;
use bitween_testkit::webdriver::Session;
use bitween_testkit::{Prosody, DOMAIN, PASSWORD};
use serde_json::{json, Value};

use crate::harness::{self, open_app, open_view, shot, start_desktop, WAIT};

#[tokio::test(flavor = "multi_thread")]
async fn the_desktop_app_logs_in_downloads_and_shares() -> Result<()> {
    // Short hibernation: a killed bob is seen offline within seconds.
    let mut server = Prosody::start_with(
        &["alice", "bob"],
        &[("alice", "bob")],
        "smacks_hibernation_time = 1",
    );
    let tmp = tempfile::tempdir()?;
    let home = tmp.path().join("home");
    let downloads = tmp.path().join("downloads");
    // The app publishes 127.0.0.1 only and asks no what-is-my-IP service.
    let config = home.join("config/bitween");
    std::fs::create_dir_all(&config)?;
    std::fs::write(
        config.join("desktop.json"),
        json!({
            "download_dir": downloads,
            "ipv4": false, "ipv6": false, "lan": false, "upnp": false,
            "addresses": ["127.0.0.1"],
        })
        .to_string(),
    )?;

    // bob shares a 1 MiB random file, and a second one for later; he
    // uploads at 256 KiB/s, so the download lasts long enough to be seen.
    let bob = Daemon::start_with(
        &server,
        "bob",
        &tmp.path().join("bob"),
        &["--upload-limit", "262144"],
    );
    let (content, hash) = bob.share_random_file(&tmp.path().join("holiday 2026.mkv"), 1 << 20);
    let (_, later_hash) = bob.share_random_file(&tmp.path().join("later.iso"), 300_000);

    let desktop = start_desktop(&home).await?;
    let app = open_app(&desktop, &[]).await?;
    let outcome = drive(
        &app,
        &mut server,
        &home,
        bob,
        (&hash, &later_hash),
        &tmp.path().join("dropped photos"),
    )
    .await;
    if outcome.is_err() {
        let _ = shot(&app, "failure").await;
        eprintln!("the app's log:\n{}", harness::app_log(&home));
    }
    let _ = app.delete().await;
    drop(desktop);
    outcome?;

    let got = std::fs::read(downloads.join("holiday 2026.mkv"))?;
    ensure!(got == content, "the downloaded file differs from bob's");
    Ok(())
}

async fn submit_login(app: &Session, server: &str, password: &str) -> Result<()> {
    for (field, value) in [
        ("#login-jid", format!("alice@{DOMAIN}")),
        ("#login-password", password.to_string()),
        ("#login-server", server.to_string()),
    ] {
        let e = app.find(field).await?;
        e.clear().await?;
        e.send_keys(&value).await?;
    }
    app.click("#login-submit").await
}

/// The page's scripts are ES modules (ui/app.js imports the others): each
/// file of ui/ that is one loads in the webview, from the app's own files.
async fn check_modules(app: &Session) -> Result<()> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../ui"))? {
        let name = entry?.file_name().into_string().unwrap();
        if name.ends_with(".js") {
            names.push(name);
        }
    }
    ensure!(names.len() > 1, "ui/ has no modules: {names:?}");
    let loaded = app
        .execute(
            "return Promise.all(arguments[0].map(n => import('./' + n).then(\
               m => [n, Object.keys(m).length], e => [n, String(e)])));",
            json!([names]),
        )
        .await?;
    let loaded = loaded.as_array().cloned().unwrap_or_default();
    ensure!(loaded.len() == names.len(), "import gave {loaded:?}");
    for module in &loaded {
        ensure!(
            module[1].is_number(),
            "{} did not load: {}",
            module[0],
            module[1]
        );
    }
    Ok(())
}

async fn drive(
    app: &Session,
    server: &mut Prosody,
    home: &Path,
    bob: Daemon,
    (hash, later_hash): (&str, &str),
    dropped: &Path,
) -> Result<()> {
    // First run: the account screen.
    app.wait_for("#login-jid", WAIT).await?;
    check_modules(app).await?;
    shot(app, "account").await?;
    let address = server.server();

    // No keyring here: the screen says so and offers the file.
    submit_login(app, &address, "not the password").await?;
    app.wait_text("#login-error", "no keyring", WAIT, |t| {
        t.to_lowercase().contains("no usable keyring")
    })
    .await?;
    app.click("#login-use-file").await?;

    // A wrong password.
    submit_login(app, &address, "not the password").await?;
    app.wait_text("#login-error", "the wrong password", WAIT, |t| {
        t.contains("check the JID and password")
    })
    .await?;
    shot(app, "account-error").await?;

    // The server down.
    server.stop();
    submit_login(app, &address, PASSWORD).await?;
    app.wait_text("#login-error", "the server down", WAIT, |t| {
        t.contains("is the server running")
    })
    .await?;
    server.start_again();

    // The right password: the main window, online.
    submit_login(app, &address, PASSWORD).await?;
    pages::wait_online(app).await?;
    let password_file = home.join("config/bitween/password");
    ensure!(
        std::fs::read_to_string(&password_file)? == PASSWORD,
        "the password was not kept in {}",
        password_file.display()
    );
    let mode = std::fs::metadata(&password_file)?.permissions();
    ensure!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o077 == 0,
        "the password file is readable by others"
    );

    // bob, online, with his file and its size; one click downloads it.
    open_view(app, "contacts").await?;
    let bob_jid = format!("bob@{DOMAIN}");
    pages::wait_presence(app, &bob_jid, "online").await?;
    pages::check_contact_share(app, &bob_jid, hash, "holiday 2026.mkv", "1.0 MiB").await?;
    shot(app, "contacts").await?;
    // bob goes in a new roster group, from his row.
    let bob_row = pages::contact_row(&bob_jid);
    app.find(&format!("{bob_row} .group-input"))
        .await?
        .send_keys("Family")
        .await?;
    app.click(&format!("{bob_row} .group-add button")).await?;
    app.wait_text(
        &format!("{bob_row} .groups"),
        "the group Family",
        WAIT,
        |t| t == "Family",
    )
    .await?;
    // The group is renamed with the form below the list.
    app.find("#rename-group-to")
        .await?
        .send_keys("Family & friends")
        .await?;
    app.click("#rename-group-submit").await?;
    app.wait_text(
        &format!("{bob_row} .groups"),
        "the renamed group",
        WAIT,
        |t| t == "Family & friends",
    )
    .await?;
    shot(app, "contacts-groups").await?;
    app.click(&format!(
        "{} button.download",
        pages::contact_share_row(&bob_jid, hash)
    ))
    .await?;

    // The transfer shows progress, its source and the path to it, and
    // completes.
    open_view(app, "transfers").await?;
    let row = pages::transfer_row(hash);
    let source = format!("bob@{DOMAIN}/pc (direct)");
    app.wait_text(&format!("{row} .peers"), &source, WAIT, |t| {
        t.contains(&source)
    })
    .await?;
    shot(app, "transfers-active").await?;
    pages::wait_transfer_done(app, hash, 1 << 20).await?;
    shot(app, "transfers").await?;

    // A folder shared through the drop handler's command reaches bob.
    std::fs::create_dir_all(dropped)?;
    std::fs::write(dropped.join("beach.jpg"), random_bytes(50_000))?;
    std::fs::write(dropped.join("dunes.jpg"), random_bytes(20_000))?;
    let out = app
        .execute(
            "return window.__TAURI__.core.invoke('share_paths', {paths: [arguments[0]]});",
            json!([dropped.to_str().unwrap()]),
        )
        .await?;
    let dropped_hash = out[0]["share"]["hash"]
        .as_str()
        .with_context(|| format!("share_paths gave {out}"))?
        .to_string();
    open_view(app, "shares").await?;
    app.wait_for(&format!("[data-share=\"{dropped_hash}\"]"), WAIT)
        .await?;
    // The folder is watched (kept current): the row says when the share
    // was last updated.
    app.wait_text(
        &format!("[data-share=\"{dropped_hash}\"] .updated"),
        "\"updated … ago\"",
        WAIT,
        |t| t.starts_with("updated ") && t.ends_with(" ago"),
    )
    .await?;
    // It shows as a folder.
    app.wait_for(
        &format!("[data-share=\"{dropped_hash}\"] .file-icon[data-folder=\"true\"]"),
        WAIT,
    )
    .await?;
    shot(app, "shares").await?;
    let deadline = Instant::now() + WAIT;
    loop {
        let catalog: Value = bob.rpc("xmpp.get_hashes", json!([]));
        if catalog.get(&dropped_hash).is_some() {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "bob never saw the dropped folder; his catalog: {catalog}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The folder becomes for the group bob is in only, from its row.
    let share_row = format!("[data-share=\"{dropped_hash}\"]");
    app.click(&format!("{share_row} .audience-edit")).await?;
    app.click("#audience-choices input[value=\"Family & friends\"]")
        .await?;
    shot(app, "shares-audience-dialog").await?;
    app.click("#audience-save").await?;
    app.wait_text(
        &format!("{share_row} .audience"),
        "for Family & friends only",
        WAIT,
        |t| t == "Only Family & friends",
    )
    .await?;
    shot(app, "shares-audience").await?;
    // bob sees it, now through his restricted list of alice's: it has
    // left her public list and is in the one for him.
    let deadline = Instant::now() + WAIT;
    loop {
        let status = app
            .execute(
                "return window.__TAURI__.core.invoke('api', {method: 'status', params: null});",
                json!([]),
            )
            .await?;
        let restricted = &status["restricted"];
        let catalog: Value = bob.rpc("xmpp.get_hashes", json!([]));
        if catalog.get(&dropped_hash).is_some()
            && restricted["state"] == "published"
            && restricted["readers"] == 1
        {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "bob lost the folder for his group; his catalog: {catalog}; alice's restricted lists: {restricted}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    open_view(app, "settings").await?;
    app.wait_until("the settings filled in", WAIT, || async {
        let v = app
            .find("#set-download-dir")
            .await?
            .property("value")
            .await?;
        let v = v.as_str().unwrap_or_default().to_string();
        Ok((
            v.ends_with("downloads").then_some(()),
            format!("download folder {v:?}"),
        ))
    })
    .await?;
    shot(app, "settings").await?;

    // bob vanishes: shown offline, and a download of his other file says so.
    bob.kill();
    open_view(app, "contacts").await?;
    pages::download_from_offline_contact(app, &bob_jid, later_hash, "is offline").await?;
    shot(app, "contact-offline").await?;

    // A second start brings up the running app instead of a second engine.
    let second = Command::new(env!("CARGO_BIN_EXE_bitween"))
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env_remove("DISPLAY")
        .output()?;
    let said = String::from_utf8_lossy(&second.stderr);
    ensure!(
        second.status.success() && said.contains("already running"),
        "a second instance said {said:?} ({})",
        second.status
    );
    Ok(())
}
