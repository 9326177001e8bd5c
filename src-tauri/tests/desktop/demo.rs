//! Demo mode end to end, in the app's real webview under Xvfb (through
//! tauri-driver and WebKitWebDriver), with nothing but the app: it brings
//! its own server and contact.
//!
//! `--demo` with a real account saved (its server is a loopback port where
//! nothing listens: no DNS, no internet): online as demo-alice, demo-bob
//! online with his three samples; one click downloads the text file, byte
//! for byte bob's; a file shared through the drop handler's command is
//! fetched by bob, which the window says ("demo-bob downloaded ...");
//! settings and sign-out are refused; "Leave demo" returns to the real
//! account and leaves no demo server process and no demo folder, and the
//! real settings and password files byte for byte as they were.
//!
//! Then "Try a demo" on the first-run screen, left by quitting (`Api.exit`),
//! and once more left by SIGTERM: the app exits and leaves nothing either,
//! not even a settings file.
//!
//! The screenshot of the main window with the demo's content is saved to
//! `<target dir>/screenshots/desktop-demo.png`; with
//! `BITWEEN_README_SCREENSHOT=1` the test also refreshes the README's
//! `docs/screenshot.png` with it.
//!
//! Needs Prosody and what `e2e.rs` needs (scripts/test.sh installs them).
//! One app runs at a time (`harness::start_desktop`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use bitween_testkit::webdriver::Session;
use serde_json::{json, Value};

use crate::harness::{
    app_log, app_pids, open_app, open_view, processes_mentioning, shot, start_desktop, Desktop,
    WAIT,
};

const ALICE: &str = "demo-alice@localhost";
const BOB: &str = "demo-bob@localhost";
const REAL_JID: &str = "real-me@localhost";

/// What `dir` holds (nothing if it does not exist).
fn entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect()
}

/// The demo folder the app made under its `TMPDIR`.
fn demo_folders(home: &Path) -> Vec<PathBuf> {
    entries(&home.join("tmp"))
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("bitween-demo-"))
        })
        .collect()
}

/// The running demo's folder, checked: exactly one, with its Prosody
/// running (so that "no process left" later means something).
fn running_demo(home: &Path) -> Result<PathBuf> {
    let folders = demo_folders(home);
    ensure!(folders.len() == 1, "demo folders: {folders:?}");
    let dir = folders[0].clone();
    let procs = processes_mentioning(&dir.to_string_lossy());
    ensure!(
        procs.iter().any(|(_, cmd)| cmd.contains("prosody")),
        "no Prosody of the demo runs; processes mentioning {}: {procs:?}",
        dir.display()
    );
    Ok(dir)
}

/// Waits until nothing of the demo in `dir` is left: no process mentions
/// it, and the folder is gone.
async fn assert_nothing_left(dir: &Path) -> Result<()> {
    let deadline = Instant::now() + WAIT;
    loop {
        let procs = processes_mentioning(&dir.to_string_lossy());
        if procs.is_empty() && !dir.exists() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the demo left something behind: processes {procs:?}, folder there: {}",
                dir.exists()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_online_as(app: &Session, jid: &str) -> Result<()> {
    app.wait_text(
        "#status-connection",
        &format!("online as {jid}"),
        WAIT,
        |t| t.starts_with(&format!("Online as {jid}")),
    )
    .await
    .map(|_| ())
}

/// Runs `drive`; on failure keeps a screenshot and prints the app's log.
async fn with_app<F, Fut>(home: &Path, args: &[&str], drive: F) -> Result<()>
where
    F: FnOnce(Session, Desktop) -> Fut,
    Fut: std::future::Future<Output = (Result<()>, Session, Desktop)>,
{
    let desktop = start_desktop(home).await?;
    let app = open_app(&desktop, args).await?;
    let (outcome, app, desktop) = drive(app, desktop).await;
    if outcome.is_err() {
        let _ = shot(&app, "demo-failure").await;
        eprintln!("the app's log:\n{}", app_log(home));
    }
    let _ = app.delete().await;
    drop(desktop);
    outcome
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_shows_the_flow_and_leaves_nothing_behind() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let home = tmp.path().join("home");
    // A real account, saved with its password in a file. Its server is a
    // loopback port where nothing listens, and it publishes 127.0.0.1
    // only: after the demo it retries there, and asks nobody else.
    let config = home.join("config/bitween");
    std::fs::create_dir_all(&config)?;
    let settings = config.join("desktop.json");
    std::fs::write(
        &settings,
        serde_json::to_vec_pretty(&json!({
            "account": {"jid": REAL_JID, "server": format!("127.0.0.1:{}", bitween_testkit::free_port())},
            "secret_store": "file",
            "download_dir": tmp.path().join("real downloads"),
            "ipv4": false, "ipv6": false, "lan": false, "upnp": false,
            "addresses": ["127.0.0.1"],
        }))?,
    )?;
    let password = config.join("password");
    std::fs::write(&password, "the real password")?;
    let before = (std::fs::read(&settings)?, std::fs::read(&password)?);
    let mine = tmp.path().join("Shopping list.txt");
    std::fs::write(&mine, "milk, eggs, flour, lemons\n")?;

    let (home_ref, mine_ref) = (&home, &mine);
    with_app(&home, &["--demo"], |app, desktop| async move {
        let outcome = drive_demo(&app, home_ref, mine_ref).await;
        (outcome, app, desktop)
    })
    .await?;

    let after = (std::fs::read(&settings)?, std::fs::read(&password)?);
    ensure!(
        after.0 == before.0,
        "the real settings file changed:\n{}",
        String::from_utf8_lossy(&after.0)
    );
    ensure!(after.1 == before.1, "the real password file changed");
    // (The real account, back after the demo, made its download folder.)
    let real = entries(&tmp.path().join("real downloads"));
    ensure!(
        real.is_empty(),
        "the demo wrote into the real download folder: {real:?}"
    );
    Ok(())
}

async fn drive_demo(app: &Session, home: &Path, mine: &Path) -> Result<()> {
    // Online as demo-alice, in demo mode, on the contacts screen.
    wait_online_as(app, ALICE).await?;
    app.wait_for("#demo-badge", WAIT).await?;
    app.wait_for("#demo-banner", WAIT).await?;
    app.wait_for("#view-contacts", WAIT).await?;
    let dir = running_demo(home)?;

    // demo-bob is online with his three samples (his row starts open).
    let bob_row = format!("[data-jid=\"{BOB}\"]");
    app.wait_text(&format!("{bob_row} .presence"), "online", WAIT, |t| {
        t == "online"
    })
    .await?;
    if !app
        .find(&format!("{bob_row} .contact-body"))
        .await?
        .displayed()
        .await?
    {
        app.click(&format!("{bob_row} .expand")).await?;
    }
    let names: Vec<String> = app
        .wait_until("bob's three shares", WAIT, || async {
            let mut names = Vec::new();
            for e in app
                .find_all(&format!("{bob_row} [data-hash] .name"))
                .await?
            {
                names.push(e.text().await?);
            }
            let done = names.len() == 3;
            Ok((done.then(|| names.clone()), format!("{names:?}")))
        })
        .await?;
    let mut sorted = names.clone();
    sorted.sort();
    ensure!(
        sorted
            == [
                "Evening sky.png",
                "Family recipes",
                "Welcome to Bitween.txt"
            ],
        "bob shares {names:?}"
    );
    let welcome_hash: String = app
        .execute(
            "return [...document.querySelectorAll(arguments[0])]
               .find(li => li.querySelector('.name').textContent === 'Welcome to Bitween.txt')
               .dataset.hash;",
            json!([format!("{bob_row} [data-hash]")]),
        )
        .await?
        .as_str()
        .context("the text file's row")?
        .to_string();

    // One click downloads the text file; it is bob's, byte for byte.
    let row = format!("{bob_row} [data-hash=\"{welcome_hash}\"]");
    app.click(&format!("{row} button.download")).await?;
    open_view(app, "transfers").await?;
    app.wait_text(
        &format!("[data-transfer=\"{welcome_hash}\"] .state"),
        "Done",
        WAIT,
        |t| t == "Done",
    )
    .await?;
    let got = std::fs::read(dir.join("demo-alice/downloads/Welcome to Bitween.txt"))?;
    let bobs = std::fs::read(dir.join("demo-bob/shared/Welcome to Bitween.txt"))?;
    ensure!(got == bobs, "the downloaded text file differs from bob's");

    // A file shared through the drop handler's command: bob fetches it,
    // and the window says so.
    open_view(app, "contacts").await?;
    let out = app
        .execute(
            "return window.__TAURI__.core.invoke('share_paths', {paths: [arguments[0]]});",
            json!([mine.to_str().unwrap()]),
        )
        .await?;
    ensure!(
        out[0]["share"]["hash"].is_string(),
        "share_paths gave {out}"
    );
    app.wait_text("#toast", "bob's download", WAIT, |t| {
        t.contains("demo-bob downloaded Shopping list.txt")
    })
    .await?;
    ensure!(
        std::fs::read(dir.join("demo-bob/downloads/Shopping list.txt"))? == std::fs::read(mine)?,
        "bob's copy differs"
    );

    // The main window with content, for the README.
    app.wait_text(
        &format!("{row} button.download"),
        "the downloaded state",
        WAIT,
        |t| !t.is_empty() && t != "Download",
    )
    .await?;
    let path = shot(app, "demo").await?;
    if std::env::var_os("BITWEEN_README_SCREENSHOT").is_some_and(|v| v == "1") {
        let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshot.png");
        std::fs::copy(&path, &readme)?;
        eprintln!("README screenshot refreshed: {}", readme.display());
    }

    // Settings and sign-out leave the real account alone: refused.
    open_view(app, "settings").await?;
    app.wait_for("#settings-demo-note", WAIT).await?;
    shot(app, "demo-settings").await?;
    ensure!(
        !app.find("#settings-save").await?.enabled().await?,
        "the settings can be saved in the demo"
    );
    ensure!(
        !app.find("#logout").await?.displayed().await?,
        "Sign out is offered in the demo"
    );
    for (command, args) in [
        ("logout", json!({})),
        (
            "login",
            json!({"jid": "x@localhost", "password": "x", "server": "127.0.0.1:1", "useFile": true}),
        ),
    ] {
        let refused: Value = app
            .execute(
                "return window.__TAURI__.core.invoke(arguments[0], arguments[1]).then(() => null, e => e);",
                json!([command, args]),
            )
            .await?;
        ensure!(
            refused["kind"] == "demo",
            "{command} in the demo gave {refused}"
        );
    }
    let settings = app
        .execute(
            "return window.__TAURI__.core.invoke('get_settings');",
            json!([]),
        )
        .await?;
    let refused = app
        .execute(
            "return window.__TAURI__.core.invoke('save_settings', {settings: arguments[0]}).then(() => null, e => e);",
            json!([settings]),
        )
        .await?;
    ensure!(
        refused["kind"] == "demo",
        "save_settings in the demo gave {refused}"
    );

    // Leave the demo: back to the real account (its server is down).
    app.click("#leave-demo").await?;
    app.wait_text("#me-jid", "the real account", WAIT, |t| t == REAL_JID)
        .await?;
    app.wait_text("#status-connection", "offline", WAIT, |t| {
        t.starts_with("Offline")
    })
    .await?;
    ensure!(
        !app.find("#demo-banner").await?.displayed().await?,
        "the demo banner is still shown"
    );
    assert_nothing_left(&dir).await?;
    ensure!(demo_folders(home).is_empty(), "{:?}", demo_folders(home));
    Ok(())
}

/// "Try a demo" on the first-run screen, then leaves by `how`: the app
/// exits and nothing of the demo is left, not even a settings file.
async fn try_then_quit(how: &str) -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let home = tmp.path().join("home");
    let how = how.to_string();
    let home2 = home.clone();
    with_app(&home, &[], |app, desktop| async move {
        let outcome = async {
            app.wait_for("#try-demo", WAIT).await?;
            if how == "Api.exit" {
                shot(&app, "first-run-demo-offer").await?;
            }
            app.click("#try-demo").await?;
            wait_online_as(&app, ALICE).await?;
            let dir = running_demo(&home2)?;
            let pids = app_pids(&home2);
            ensure!(pids.len() == 1, "app processes: {pids:?}");
            match how.as_str() {
                "Api.exit" => {
                    // (The app is gone before it could answer.)
                    app.execute(
                        "window.__TAURI__.core.invoke('api', {method: 'Api.exit', params: null}); return true;",
                        json!([]),
                    )
                    .await?;
                }
                _ => {
                    let ok = std::process::Command::new("kill")
                        .args(["-TERM", &pids[0].to_string()])
                        .status()?
                        .success();
                    ensure!(ok, "kill -TERM {}", pids[0]);
                }
            }
            assert_nothing_left(&dir).await?;
            let deadline = Instant::now() + WAIT;
            while !app_pids(&home2).is_empty() {
                ensure!(Instant::now() < deadline, "the app did not exit after {how}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(())
        }
        .await;
        (outcome, app, desktop)
    })
    .await?;
    let config = home.join("config/bitween");
    let left = entries(&config);
    ensure!(
        left.is_empty(),
        "the demo wrote to the real configuration: {left:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn quitting_the_demo_with_api_exit_leaves_nothing() -> Result<()> {
    try_then_quit("Api.exit").await
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_in_the_demo_leaves_nothing() -> Result<()> {
    try_then_quit("SIGTERM").await
}
