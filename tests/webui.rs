//! The web UI end to end: `bitweend` serves `ui/` to a real headless
//! Chromium (the Debian packages chromium and chromium-driver, driven over
//! W3C WebDriver by chromedriver on a loopback port), on a real Prosody.
//!
//! bob is a daemon sharing a 1 MiB random file; alice is a daemon whose web
//! UI the browser opens with the address bitweend printed. Through the page
//! alice sees she is online, finds bob and his file (size included), finds
//! it by search, downloads it with one click and watches the transfer
//! finish (the file is byte-identical), shares a path of her own (bob's
//! catalog gets it), and, once bob's daemon is gone, sees him offline and
//! is told so when she asks for another of his files.
//!
//! Screenshots of every screen (1000x700, and 800x600 where nothing may
//! overflow) go to `<cargo target dir>/screenshots/web-<screen>.png`.

#[path = "common/bitweend.rs"]
mod bitweend;
mod common;
#[path = "common/webdriver.rs"]
mod webdriver;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use bitweend::Daemon;
use common::{Prosody, DOMAIN};
use serde_json::json;
use webdriver::{chrome_capabilities, DriverProcess, Session};

const WAIT: Duration = Duration::from_secs(30);

/// `<target dir>/screenshots`, next to the binaries under test.
fn screenshot_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_bitweend"))
        .parent()
        .and_then(|p| p.parent())
        .expect("the target dir")
        .join("screenshots")
}

async fn shot(browser: &Session, name: &str) -> Result<()> {
    let path = screenshot_dir().join(format!("web-{name}.png"));
    browser.save_screenshot(&path).await?;
    eprintln!("screenshot: {}", path.display());
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

/// Closes every message in the corner (they may cover a button), as a
/// user would.
async fn dismiss_toasts(browser: &Session) -> Result<()> {
    for button in browser.find_all("#toast .dismiss").await? {
        match button.click().await {
            Err(e) if !webdriver::is_missing(&e) => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

async fn open_view(browser: &Session, view: &str) -> Result<()> {
    browser.click(&format!("[data-nav=\"{view}\"]")).await?;
    browser
        .wait_for(&format!("#view-{view}"), WAIT)
        .await
        .map(|_| ())
}

/// Every screen at 800x600: screenshot, and no sideways overflow; then
/// each in the dark theme.
async fn check_small_window(browser: &Session) -> Result<()> {
    dismiss_toasts(browser).await?;
    browser.set_viewport_size(800, 600).await?;
    for view in ["shares", "contacts", "transfers", "settings"] {
        open_view(browser, view).await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_no_overflow(browser, view).await?;
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

/// The UI's files: served without a token, with their types and a strict
/// CSP; other hosts refused; unknown files 404.
async fn check_static_files(api_addr: &str) -> Result<()> {
    let http = reqwest::Client::new();
    let index = http.get(format!("http://{api_addr}/")).send().await?;
    assert_eq!(index.status(), 200);
    let h = index.headers().clone();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    assert_eq!(
        h["content-security-policy"],
        "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'"
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    let html = index.text().await?;
    assert!(
        html.contains(r#"<script src="app.js" defer></script>"#),
        "{html}"
    );
    assert!(
        !html.contains("<script>") && !html.contains("<style") && !html.contains(" style="),
        "index.html has inline scripts or styles, which the CSP blocks"
    );
    for (path, ty) in [
        ("/index.html", "text/html; charset=utf-8"),
        ("/app.js", "text/javascript; charset=utf-8"),
        ("/style.css", "text/css; charset=utf-8"),
        ("/logo.svg", "image/svg+xml"),
    ] {
        let r = http.get(format!("http://{api_addr}{path}")).send().await?;
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["content-type"], ty, "{path}");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff", "{path}");
    }
    let r = http
        .get(format!("http://{api_addr}/no-such-file.js"))
        .send()
        .await?;
    assert_eq!(r.status(), 404);
    let r = http
        .get(format!("http://{api_addr}/"))
        .header("Host", "evil.example")
        .send()
        .await?;
    assert_eq!(
        r.status(),
        403,
        "a foreign Host gets no page (DNS rebinding)"
    );
    let r = http.get(format!("http://{api_addr}/events")).send().await?;
    assert_eq!(r.status(), 401, "the event stream still needs the token");
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

fn random_bytes(n: usize) -> Vec<u8> {
    (0..n).map(|_| rand::random::<u8>()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_ui_finds_downloads_and_shares() -> Result<()> {
    // A client that dies shows offline after a second, not after ten
    // minutes of stream-management hibernation.
    let server = Prosody::start_with(
        &["alice", "bob"],
        &[("alice", "bob")],
        "smacks_hibernation_time = 1",
    );
    let tmp = tempfile::tempdir()?;

    // bob shares a 1 MiB random file, and a second one alice leaves for
    // later.
    let bob = Daemon::start(&server, "bob", &tmp.path().join("bob"));
    let content = random_bytes(1 << 20);
    let file = tmp.path().join("holiday 2026.mkv");
    std::fs::write(&file, &content)?;
    let hash = bob.json(&["share", file.to_str().unwrap()])[0]["hash"]
        .as_str()
        .unwrap()
        .to_string();
    let later = tmp.path().join("later.iso");
    std::fs::write(&later, random_bytes(300_000))?;
    let later_hash = bob.json(&["share", later.to_str().unwrap()])[0]["hash"]
        .as_str()
        .unwrap()
        .to_string();

    let alice_dir = tmp.path().join("alice");
    let alice = Daemon::start(&server, "alice", &alice_dir);
    let url = alice.web_ui_url();
    let (api_addr, token) = alice.api();
    assert_eq!(url, format!("http://{api_addr}/#token={token}"));
    check_static_files(&api_addr).await?;

    let driver = DriverProcess::chromedriver(common::free_port()).await?;
    let profile = tempfile::tempdir()?;
    let profile_arg = format!("--user-data-dir={}", profile.path().display());
    let browser = Session::new(
        &driver.url,
        chrome_capabilities(
            Some("/usr/bin/chromium"),
            &[
                "--headless=new",
                "--no-sandbox",
                "--window-size=1000,700",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                &profile_arg,
            ],
        ),
    )
    .await?;
    let outcome = drive(&browser, &url, &alice, &bob, &hash, &later_hash, &content).await;
    if outcome.is_err() {
        let _ = shot(&browser, "failure").await;
    }
    let _ = browser.delete().await;
    outcome?;

    // The downloaded file is bob's, byte for byte.
    let got = std::fs::read(alice_dir.join("downloads/holiday 2026.mkv"))?;
    assert!(got == content, "the downloaded file differs from bob's");
    drop(server);
    Ok(())
}

async fn drive(
    browser: &Session,
    url: &str,
    alice: &Daemon,
    bob: &Daemon,
    hash: &str,
    later_hash: &str,
    content: &[u8],
) -> Result<()> {
    let bob_jid = format!("bob@{DOMAIN}");
    browser.goto(url).await?;
    browser.wait_for("#app", WAIT).await?;
    // The token left the address bar (it stays in the tab's session).
    let now = browser.current_url().await?;
    ensure!(
        !now.contains("token"),
        "the token is still in the address: {now}"
    );

    // Online, with the addresses published.
    browser
        .wait_text("#status-connection", "Online", WAIT, |t| {
            t.starts_with("Online")
        })
        .await?;
    browser
        .wait_text("#status-addresses", "127.0.0.1", WAIT, |t| {
            t.contains("127.0.0.1:")
        })
        .await?;
    shot(browser, "shares-empty").await?;

    // bob is a contact, online, with his two shares.
    open_view(browser, "contacts").await?;
    let bob_row = format!("[data-jid=\"{bob_jid}\"]");
    browser
        .wait_text(&format!("{bob_row} .presence"), "online", WAIT, |t| {
            t == "online"
        })
        .await?;
    browser
        .wait_text(&format!("{bob_row} .share-count"), "2 shares", WAIT, |t| {
            t == "2 shares"
        })
        .await?;
    browser.click(&format!("{bob_row} .expand")).await?;
    let share_row = format!("{bob_row} [data-hash=\"{hash}\"]");
    browser
        .wait_text(&format!("{share_row} .name"), "the name", WAIT, |t| {
            t == "holiday 2026.mkv"
        })
        .await?;
    assert_eq!(
        browser.text(&format!("{share_row} .size")).await?,
        "1.0 MiB"
    );
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
    let row = format!("[data-transfer=\"{hash}\"]");
    browser
        .wait_text(&format!("{row} .state"), "Done", WAIT, |t| t == "Done")
        .await?;
    let bar = browser.find(&format!("{row} progress")).await?;
    assert_eq!(bar.attr("max").await?.as_deref(), Some("1048576"));
    assert_eq!(bar.property("value").await?.as_f64(), Some(1048576.0));
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

    // Settings are read-only here and say where to change them.
    open_view(browser, "settings").await?;
    let note = browser.text("#settings-readonly").await?;
    ensure!(
        note.contains("bitweend") && note.contains(&format!("alice@{DOMAIN}")),
        "{note}"
    );
    shot(browser, "settings").await?;

    check_small_window(browser).await?;

    // bob's daemon dies (no sign-out): alice sees him offline, his files
    // are marked offline, and asking for one says it will wait for him.
    bob_kill(bob);
    open_view(browser, "contacts").await?;
    browser
        .wait_text(&format!("{bob_row} .presence"), "offline", WAIT, |t| {
            t == "offline"
        })
        .await?;
    let later_row = format!("{bob_row} [data-hash=\"{later_hash}\"]");
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
    dismiss_toasts(browser).await?;
    browser
        .click(&format!("{later_row} button.download"))
        .await?;
    browser
        .wait_text("#toast", "the offline message", WAIT, |t| {
            t.contains(&format!(
                "{bob_jid} is offline: the download will start when they come back"
            ))
        })
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
    Ok(())
}

/// Kills bob's daemon at once (SIGKILL), as a crash would.
fn bob_kill(bob: &Daemon) {
    let _ = std::process::Command::new("kill")
        .args(["-9", &bob.child.id().to_string()])
        .status();
}
