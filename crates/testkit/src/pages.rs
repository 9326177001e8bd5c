//! Checks of the UI's pages that hold in both front ends: the web UI
//! served by `bitweend` (in Chromium, `tests/frontends/webui/`) and the
//! desktop app's webview (`src-tauri/tests/desktop/`) load the same `ui/`, so
//! going to a screen, seeing a contact online with a file, a download
//! finishing and an offline contact's file asked for are the same steps,
//! written once here.
//!
//! Each step waits (up to [`WAIT`]) for what a user would see, and fails
//! naming it.

use std::path::PathBuf;

use anyhow::{ensure, Result};

use crate::webdriver::{is_missing, Session};

/// How long a step of the UI may take.
pub const WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// `<target dir>/screenshots`: the test's executable is in
/// `<target>/<profile>/deps/`.
pub fn screenshot_dir() -> PathBuf {
    std::env::current_exe()
        .expect("the test's own path")
        .parent()
        .and_then(|deps| deps.parent())
        .and_then(|profile| profile.parent())
        .expect("the target dir")
        .join("screenshots")
}

/// Saves a screenshot to `<target dir>/screenshots/NAME.png` and returns
/// its path.
pub async fn save_shot(page: &Session, name: &str) -> Result<PathBuf> {
    let path = screenshot_dir().join(format!("{name}.png"));
    page.save_screenshot(&path).await?;
    eprintln!("screenshot: {}", path.display());
    Ok(path)
}

/// Closes every message in the corner (they may cover a button), as a user
/// would. A message that went away meanwhile is fine.
pub async fn dismiss_toasts(page: &Session) -> Result<()> {
    for button in page.find_all("#toast .dismiss").await? {
        match button.click().await {
            Err(e) if !is_missing(&e) => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Opens one of the main screens through its button in the sidebar.
pub async fn open_view(page: &Session, view: &str) -> Result<()> {
    page.click(&format!("[data-nav=\"{view}\"]")).await?;
    page.wait_for(&format!("#view-{view}"), WAIT)
        .await
        .map(|_| ())
}

/// The status bar says the account is online.
pub async fn wait_online(page: &Session) -> Result<()> {
    page.wait_text("#status-connection", "Online", WAIT, |t| {
        t.starts_with("Online")
    })
    .await
    .map(|_| ())
}

/// The selector of `jid`'s row on the contacts screen.
pub fn contact_row(jid: &str) -> String {
    format!("[data-jid=\"{jid}\"]")
}

/// The selector of the row of `jid`'s share `hash` on the contacts screen.
pub fn contact_share_row(jid: &str, hash: &str) -> String {
    format!("{} [data-hash=\"{hash}\"]", contact_row(jid))
}

/// The selector of the transfer of `hash` on the transfers screen.
pub fn transfer_row(hash: &str) -> String {
    format!("[data-transfer=\"{hash}\"]")
}

/// `jid`'s row says `presence` ("online" or "offline").
pub async fn wait_presence(page: &Session, jid: &str, presence: &str) -> Result<()> {
    page.wait_text(
        &format!("{} .presence", contact_row(jid)),
        presence,
        WAIT,
        |t| t == presence,
    )
    .await
    .map(|_| ())
}

/// Opens `jid`'s row to show their shares, unless it is open already.
pub async fn expand_contact(page: &Session, jid: &str) -> Result<()> {
    let expand = page.find(&format!("{} .expand", contact_row(jid))).await?;
    if expand.attr("aria-expanded").await?.as_deref() != Some("true") {
        expand.click().await?;
    }
    Ok(())
}

/// On the contacts screen (open already): `jid`'s row shows their share
/// `hash` with its `name` and `size` as the page writes it ("1.0 MiB").
pub async fn check_contact_share(
    page: &Session,
    jid: &str,
    hash: &str,
    name: &str,
    size: &str,
) -> Result<()> {
    expand_contact(page, jid).await?;
    let row = contact_share_row(jid, hash);
    page.wait_text(&format!("{row} .name"), "the name", WAIT, |t| t == name)
        .await?;
    let shown = page.text(&format!("{row} .size")).await?;
    ensure!(
        shown == size,
        "{name} shows the size {shown:?}, not {size:?}"
    );
    Ok(())
}

/// On the transfers screen (open already): the transfer of `hash`
/// finishes, its bar full at `size` bytes.
pub async fn wait_transfer_done(page: &Session, hash: &str, size: u64) -> Result<()> {
    let row = transfer_row(hash);
    page.wait_text(&format!("{row} .state"), "Done", WAIT, |t| t == "Done")
        .await?;
    let bar = page.find(&format!("{row} progress")).await?;
    let max = bar.attr("max").await?;
    ensure!(
        max.as_deref() == Some(size.to_string().as_str()),
        "the bar's max is {max:?}, not {size}"
    );
    let value = bar.property("value").await?;
    ensure!(
        value.as_f64() == Some(size as f64),
        "the bar stands at {value}, not {size}"
    );
    Ok(())
}

/// On the contacts screen: `jid` has gone offline; asking for their file
/// `hash` says they are offline (`told` is the message's expected text,
/// in full or in part).
pub async fn download_from_offline_contact(
    page: &Session,
    jid: &str,
    hash: &str,
    told: &str,
) -> Result<()> {
    wait_presence(page, jid, "offline").await?;
    expand_contact(page, jid).await?;
    dismiss_toasts(page).await?;
    page.click(&format!("{} button.download", contact_share_row(jid, hash)))
        .await?;
    page.wait_text("#toast", "the offline message", WAIT, |t| t.contains(told))
        .await
        .map(|_| ())
}
