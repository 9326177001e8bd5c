//! The web UI end to end: `bitweend` serves `ui/` to a real headless
//! Chromium (the Debian packages chromium and chromium-driver, driven over
//! W3C WebDriver by chromedriver on a loopback port), on a real Prosody.
//!
//! bob is a daemon sharing a 1 MiB random file; alice is a daemon whose web
//! UI the browser opens with the address bitweend printed. Through the page
//! alice sees she is online, finds bob and his file (size included), finds
//! it by search, downloads it with one click and watches the transfer
//! finish (the file is byte-identical), shares a path of her own (bob's
//! catalog gets it), copies its magnet link and removes it, pauses and
//! resumes, accepts carol's contact request and asks dave, is told when bob
//! shares something new, and, once bob's daemon is gone, sees him offline
//! and is told so when she asks for another of his files; then her own
//! daemon stops and the page says so.
//!
//! A second test runs the page's desktop paths against a stand-in for the
//! Tauri shell (`stub_shell.js`), in `desktop_paths.rs`; the first test's
//! steps are in `browser.rs`.
//!
//! Screenshots of every screen (1000x700; 800x600, where nothing may
//! overflow sideways; dark theme) go to
//! `<cargo target dir>/screenshots/web-<screen>.png`.

mod browser;
mod desktop_paths;

use anyhow::{ensure, Result};
use bitween_testkit::bitweend::{random_bytes, Daemon};
use bitween_testkit::pages::save_shot;
use bitween_testkit::webdriver::{chrome_capabilities, DriverProcess, Session};
use bitween_testkit::{free_port, Prosody};
use serde_json::json;

/// Saves a screenshot as `<target dir>/screenshots/web-NAME.png`.
pub(crate) async fn shot(browser: &Session, name: &str) -> Result<()> {
    save_shot(browser, &format!("web-{name}")).await.map(|_| ())
}

/// Every visible control (button, input) has a name a screen reader can
/// say: its text, a label, or an aria-label.
pub(super) async fn assert_controls_labelled(browser: &Session, screen: &str) -> Result<()> {
    let v = browser
        .execute(
            r#"const bad = [];
               for (const e of document.querySelectorAll('button, input, select, textarea, progress')) {
                 if (!e.offsetParent) continue;
                 const name = (e.getAttribute('aria-label') || '').trim()
                   || (e.labels && [...e.labels].map(l => l.textContent).join(' ').trim())
                   || (e.tagName === 'BUTTON' && e.textContent.trim())
                   || (e.getAttribute('aria-labelledby') || '').trim();
                 if (!name) bad.push(e.outerHTML.slice(0, 120));
               }
               return bad;"#,
            json!([]),
        )
        .await?;
    ensure!(
        v.as_array().is_some_and(|a| a.is_empty()),
        "controls without a name on the {screen} screen: {v}"
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
        html.contains(r#"<script type="module" src="app.js"></script>"#),
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
        ("/screens.css", "text/css; charset=utf-8"),
        ("/logo.svg", "image/svg+xml"),
    ] {
        let r = http.get(format!("http://{api_addr}{path}")).send().await?;
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["content-type"], ty, "{path}");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff", "{path}");
    }
    // The page's scripts are ES modules (app.js imports the others): each
    // is served as JavaScript, or the browser would not run it.
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/ui"))? {
        let name = entry?.file_name().into_string().unwrap();
        if !name.ends_with(".js") {
            continue;
        }
        let r = http.get(format!("http://{api_addr}/{name}")).send().await?;
        assert_eq!(r.status(), 200, "{name}");
        assert_eq!(
            r.headers()["content-type"],
            "text/javascript; charset=utf-8",
            "{name}"
        );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_ui_finds_downloads_and_shares() -> Result<()> {
    // A client that dies shows offline after a second, not after ten
    // minutes of stream-management hibernation.
    let server = Prosody::start_with(
        &["alice", "bob", "carol", "dave"],
        &[("alice", "bob")],
        "smacks_hibernation_time = 1",
    );
    let tmp = tempfile::tempdir()?;

    // bob shares a 1 MiB random file, and a second one alice leaves for
    // later.
    let bob = Daemon::start(&server, "bob", &tmp.path().join("bob"));
    let (content, hash) = bob.share_random_file(&tmp.path().join("holiday 2026.mkv"), 1 << 20);
    let (_, later_hash) = bob.share_random_file(&tmp.path().join("later.iso"), 300_000);

    let alice_dir = tmp.path().join("alice");
    let alice = Daemon::start(&server, "alice", &alice_dir);
    let url = alice.web_ui_url();
    let (api_addr, token) = alice.api();
    assert_eq!(url, format!("http://{api_addr}/#token={token}"));
    check_static_files(&api_addr).await?;

    let driver = DriverProcess::chromedriver(free_port()).await?;
    let profile = tempfile::tempdir()?;
    let browser = open_browser(&driver, profile.path()).await?;
    let outcome = browser::drive(
        &browser,
        &server,
        &url,
        (&alice, &bob),
        (&hash, &later_hash),
        &content,
    )
    .await;
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

/// A browser session on chromedriver, headless, 1000x700.
pub(crate) async fn open_browser(
    driver: &DriverProcess,
    profile: &std::path::Path,
) -> Result<Session> {
    let profile_arg = format!("--user-data-dir={}", profile.display());
    Session::new(
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
                // Tests never reach the internet: none of Chromium's own
                // background traffic either.
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-default-apps",
                "--disable-domain-reliability",
                "--no-pings",
                "--disable-features=Translate,OptimizationHints,MediaRouter",
                &profile_arg,
            ],
        ),
    )
    .await
}

/// The desktop app's screens, in Chromium with a stand-in for the Tauri
/// shell (stub_shell.js, injected before the page's own
/// script): the same page takes its desktop paths (account screen with
/// its errors and the keyring fallback, native drop, hashing, open
/// buttons, the settings form, sign-out) against the shell's command
/// contract, with a real bitweend behind `api` and the events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_desktop_screens_against_a_stub_shell() -> Result<()> {
    let server = Prosody::start(&["alice", "bob"], &[("alice", "bob")]);
    let tmp = tempfile::tempdir()?;
    let bob = Daemon::start(&server, "bob", &tmp.path().join("bob"));
    let file = tmp.path().join("song.flac");
    let content = random_bytes(200_000);
    std::fs::write(&file, &content)?;
    let hash = bob.json(&["share", file.to_str().unwrap()])[0]["hash"]
        .as_str()
        .unwrap()
        .to_string();
    let alice = Daemon::start(&server, "alice", &tmp.path().join("alice"));
    let (api_addr, token) = alice.api();

    let driver = DriverProcess::chromedriver(free_port()).await?;
    let profile = tempfile::tempdir()?;
    let browser = open_browser(&driver, profile.path()).await?;
    let stub = include_str!("stub_shell.js").replace("__TOKEN__", &token);
    browser
        .chromium_cdp(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({ "source": stub }),
        )
        .await?;
    let dropped = tmp.path().join("dropped photo.jpg");
    std::fs::write(&dropped, random_bytes(50_000))?;
    let outcome = desktop_paths::drive(&browser, &api_addr, &hash, &dropped, &alice).await;
    if outcome.is_err() {
        let _ = shot(&browser, "desktop-failure").await;
    }
    let _ = browser.delete().await;
    outcome?;
    drop(bob);
    Ok(())
}
