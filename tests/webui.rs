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
//! Tauri shell (`tests/webui/stub_shell.js`).
//!
//! Screenshots of every screen (1000x700; 800x600, where nothing may
//! overflow sideways; dark theme) go to
//! `<cargo target dir>/screenshots/web-<screen>.png`.

#[path = "common/bitweend.rs"]
mod bitweend;
mod common;
#[path = "common/webdriver.rs"]
mod webdriver;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use bitweend::{random_bytes, Daemon};
use common::{Prosody, DOMAIN};
use serde_json::json;
use webdriver::{chrome_capabilities, DriverProcess, Session, ELEMENT};

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

/// Every visible control (button, input) has a name a screen reader can
/// say: its text, a label, or an aria-label.
async fn assert_controls_labelled(browser: &Session, screen: &str) -> Result<()> {
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

    let driver = DriverProcess::chromedriver(common::free_port()).await?;
    let profile = tempfile::tempdir()?;
    let browser = open_browser(&driver, profile.path()).await?;
    let outcome = drive(
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

async fn drive(
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
    let carol = common::Peer::login(server, "carol", "pc").await;
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

    // alice's own daemon stops: the page says it lost it.
    assert!(alice.cli(&["exit"]).status.success());
    browser
        .wait_text("#status-connection", "the lost daemon", WAIT, |t| {
            t.starts_with("Offline: lost the connection to bitweend")
        })
        .await?;
    Ok(())
}

/// Kills bob's daemon at once (SIGKILL), as a crash would.
fn bob_kill(bob: &Daemon) {
    let _ = std::process::Command::new("kill")
        .args(["-9", &bob.child.id().to_string()])
        .status();
}

/// A browser session on chromedriver, headless, 1000x700.
async fn open_browser(driver: &DriverProcess, profile: &std::path::Path) -> Result<Session> {
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
/// shell (tests/webui/stub_shell.js, injected before the page's own
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

    let driver = DriverProcess::chromedriver(common::free_port()).await?;
    let profile = tempfile::tempdir()?;
    let browser = open_browser(&driver, profile.path()).await?;
    let stub = include_str!("webui/stub_shell.js").replace("__TOKEN__", &token);
    browser
        .chromium_cdp(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({ "source": stub }),
        )
        .await?;
    let dropped = tmp.path().join("dropped photo.jpg");
    std::fs::write(&dropped, random_bytes(50_000))?;
    let outcome = drive_desktop(&browser, &api_addr, &hash, &dropped, &alice).await;
    if outcome.is_err() {
        let _ = shot(&browser, "desktop-failure").await;
    }
    let _ = browser.delete().await;
    outcome?;
    drop(bob);
    Ok(())
}

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

async fn drive_desktop(
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
    password.send_keys(common::PASSWORD).await?;
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
    browser
        .wait_text("#status-connection", "Online", WAIT, |t| {
            t.starts_with("Online")
        })
        .await?;

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
        shared[0]["paths"][0] == dropped.to_str().unwrap(),
        "{shared:?}"
    );
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
