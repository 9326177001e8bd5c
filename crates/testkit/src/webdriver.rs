//! A minimal W3C WebDriver client over reqwest, for end-to-end tests of the
//! UI: chromedriver drives a headless Chromium for the web UI, and the same
//! protocol drives the desktop app through tauri-driver.
//!
//! Sessions, navigation, elements found by CSS selector, clicks, keys,
//! text, attributes, scripts, window size and screenshots, plus waits that
//! poll with a timeout and fail naming what they waited for and what they
//! saw last.
//!
//! Why our own rather than fantoccini: WebKitWebDriver under Xvfb reports
//! elements near the window's bottom edge as not displayed and returns ""
//! for their text, so reading text falls back to the element's rendered
//! box and textContent (`Element::text`); and every wait here names what it
//! saw last when it fails, which is what makes a failed UI test readable.
//! Both would be wrappers around fantoccini of about the same size.

use std::future::Future;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

/// The key under which W3C WebDriver returns an element reference (and
/// takes one as a script argument: `json!({ELEMENT: e.id})`).
pub const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A WebDriver error as the driver reported it (`error` is the W3C code,
/// e.g. "no such element").
#[derive(Debug)]
pub struct DriverError {
    pub error: String,
    pub message: String,
}

impl std::fmt::Display for DriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebDriver error {:?}: {}", self.error, self.message)
    }
}

impl std::error::Error for DriverError {}

/// Whether `e` is the driver saying the element is not (or no longer) there.
pub fn is_missing(e: &anyhow::Error) -> bool {
    e.downcast_ref::<DriverError>()
        .is_some_and(|d| d.error == "no such element" || d.error == "stale element reference")
}

/// A driver process (chromedriver, tauri-driver, ...) on a loopback port,
/// in a process group of its own: dropping it kills the group, so the
/// browser it started goes too, even when a test panics before ending its
/// session.
pub struct DriverProcess {
    child: Child,
    pub url: String,
}

impl DriverProcess {
    /// Starts `command` (which must listen on `port`) and waits until its
    /// `/status` says it is ready.
    pub async fn spawn(mut command: Command, port: u16) -> Result<DriverProcess> {
        command.stdin(Stdio::null());
        // Its own process group, so that stopping it stops its children
        // (WebKitWebDriver under tauri-driver) too.
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command
            .spawn()
            .with_context(|| format!("cannot start the WebDriver server {command:?}"))?;
        let mut driver = DriverProcess {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = driver.child.try_wait()? {
                bail!("the WebDriver server {command:?} exited with {status}");
            }
            if let Ok(r) = http.get(format!("{}/status", driver.url)).send().await {
                let v: Value = serde_json::from_str(&r.text().await.unwrap_or_default())
                    .unwrap_or(Value::Null);
                if v["value"]["ready"] == true {
                    return Ok(driver);
                }
            }
            if Instant::now() > deadline {
                let _ = driver.child.kill();
                bail!("the WebDriver server {command:?} was not ready within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The driver's process id (the leader of its process group, when the
    /// command was started in a group of its own).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// chromedriver on `port` (the Debian package's /usr/bin/chromedriver).
    pub async fn chromedriver(port: u16) -> Result<DriverProcess> {
        let mut cmd = Command::new("chromedriver");
        cmd.arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        DriverProcess::spawn(cmd, port).await
    }
}

impl Drop for DriverProcess {
    fn drop(&mut self) {
        // The group's id is the driver's pid (process_group(0)).
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Capabilities for a headless Chromium with these extra arguments.
pub fn chrome_capabilities(binary: Option<&str>, args: &[&str]) -> Value {
    let mut options = json!({ "args": args });
    if let Some(b) = binary {
        options["binary"] = json!(b);
    }
    json!({ "browserName": "chrome", "goog:chromeOptions": options })
}

/// One browser session. Cheap to clone; [`Session::delete`] ends it.
#[derive(Clone)]
pub struct Session {
    http: reqwest::Client,
    /// `<driver>/session/<id>`
    base: String,
    pub id: String,
}

/// An element of the current page.
#[derive(Clone)]
pub struct Element {
    session: Session,
    pub id: String,
    /// How it was found, for error messages.
    pub selector: String,
}

/// Sends one command and returns its `value`, or the driver's error.
async fn command(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> Result<Value> {
    let mut req = http.request(method.clone(), url);
    if let Some(b) = body {
        req = req
            .header("Content-Type", "application/json")
            .body(b.to_string());
    }
    let resp = req
        .send()
        .await
        .with_context(|| format!("WebDriver {method} {url}"))?;
    let status = resp.status();
    let text = resp.text().await?;
    let v: Value = serde_json::from_str(&text)
        .with_context(|| format!("WebDriver {method} {url} answered {status}: {text}"))?;
    if !status.is_success() || v["value"]["error"].is_string() {
        return Err(DriverError {
            error: v["value"]["error"].as_str().unwrap_or("unknown").into(),
            message: v["value"]["message"].as_str().unwrap_or(&text).into(),
        }
        .into());
    }
    Ok(v["value"].clone())
}

fn element_id(v: &Value) -> Option<String> {
    v.get(ELEMENT).and_then(Value::as_str).map(String::from)
}

impl Session {
    /// Opens a session on the driver at `driver_url` with these
    /// capabilities (`alwaysMatch`).
    pub async fn new(driver_url: &str, capabilities: Value) -> Result<Session> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;
        let v = command(
            &http,
            reqwest::Method::POST,
            &format!("{driver_url}/session"),
            Some(json!({ "capabilities": { "alwaysMatch": capabilities } })),
        )
        .await
        .context("new WebDriver session")?;
        let id = v["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow!("no sessionId in {v}"))?
            .to_string();
        Ok(Session {
            http,
            base: format!("{driver_url}/session/{id}"),
            id,
        })
    }

    async fn get(&self, path: &str) -> Result<Value> {
        command(
            &self.http,
            reqwest::Method::GET,
            &format!("{}{path}", self.base),
            None,
        )
        .await
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value> {
        command(
            &self.http,
            reqwest::Method::POST,
            &format!("{}{path}", self.base),
            Some(body),
        )
        .await
    }

    /// Ends the session (the browser closes).
    pub async fn delete(&self) -> Result<()> {
        command(&self.http, reqwest::Method::DELETE, &self.base, None).await?;
        Ok(())
    }

    pub async fn goto(&self, url: &str) -> Result<()> {
        self.post("/url", json!({ "url": url })).await?;
        Ok(())
    }

    pub async fn current_url(&self) -> Result<String> {
        Ok(self.get("/url").await?.as_str().unwrap_or_default().into())
    }

    pub async fn title(&self) -> Result<String> {
        Ok(self
            .get("/title")
            .await?
            .as_str()
            .unwrap_or_default()
            .into())
    }

    /// The first element matching `css`.
    pub async fn find(&self, css: &str) -> Result<Element> {
        let v = self
            .post("/element", json!({ "using": "css selector", "value": css }))
            .await
            .with_context(|| format!("find {css:?}"))?;
        let id = element_id(&v).ok_or_else(|| anyhow!("no element reference in {v}"))?;
        Ok(Element {
            session: self.clone(),
            id,
            selector: css.into(),
        })
    }

    /// Every element matching `css` (possibly none).
    pub async fn find_all(&self, css: &str) -> Result<Vec<Element>> {
        let v = self
            .post(
                "/elements",
                json!({ "using": "css selector", "value": css }),
            )
            .await
            .with_context(|| format!("find all {css:?}"))?;
        Ok(v.as_array()
            .into_iter()
            .flatten()
            .filter_map(element_id)
            .map(|id| Element {
                session: self.clone(),
                id,
                selector: css.into(),
            })
            .collect())
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) and
    /// returns what it returns.
    pub async fn execute(&self, script: &str, args: Value) -> Result<Value> {
        self.post("/execute/sync", json!({ "script": script, "args": args }))
            .await
            .with_context(|| format!("execute {script:?}"))
    }

    /// Resizes the window (outer size, in CSS pixels).
    pub async fn set_window_size(&self, width: u32, height: u32) -> Result<()> {
        self.post("/window/rect", json!({ "width": width, "height": height }))
            .await?;
        Ok(())
    }

    /// Resizes the window so that the page itself (the viewport) gets
    /// `width` x `height` CSS pixels, whatever the browser's frame takes.
    pub async fn set_viewport_size(&self, width: u32, height: u32) -> Result<()> {
        self.set_window_size(width, height).await?;
        let v = self
            .execute(
                "return [window.outerWidth - window.innerWidth, window.outerHeight - window.innerHeight];",
                json!([]),
            )
            .await?;
        let frame = |i: usize| v[i].as_u64().unwrap_or(0) as u32;
        if frame(0) > 0 || frame(1) > 0 {
            self.set_window_size(width + frame(0), height + frame(1))
                .await?;
        }
        Ok(())
    }

    /// A Chrome DevTools Protocol command (chromedriver only), e.g.
    /// `Emulation.setEmulatedMedia` to try the dark theme.
    pub async fn chromium_cdp(&self, cmd: &str, params: Value) -> Result<Value> {
        self.post("/goog/cdp/execute", json!({ "cmd": cmd, "params": params }))
            .await
            .with_context(|| format!("CDP {cmd}"))
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Result<Vec<u8>> {
        let v = self.get("/screenshot").await?;
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .context("the screenshot is not base64")
    }

    /// Saves a PNG of the viewport to `path` (creating its folder).
    pub async fn save_screenshot(&self, path: &Path) -> Result<()> {
        let png = self.screenshot().await?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, png).with_context(|| format!("write {}", path.display()))
    }

    /// Clicks the first element matching `css`.
    pub async fn click(&self, css: &str) -> Result<()> {
        self.find(css).await?.click().await
    }

    /// The text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> Result<String> {
        self.find(css).await?.text().await
    }

    /// Polls `probe` every 100 ms until it returns `Some`, for up to
    /// `timeout`; then fails with `what` and the last thing `probe` said
    /// (its error, or the description it returned with `None`).
    pub async fn wait_until<T, F, Fut>(
        &self,
        what: &str,
        timeout: Duration,
        mut probe: F,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(Option<T>, String)>>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match probe().await {
                Ok((Some(v), _)) => return Ok(v),
                Ok((None, seen)) => seen,
                Err(e) => format!("{e:#}"),
            };
            if Instant::now() > deadline {
                bail!("timed out after {timeout:?} waiting for {what}; last seen: {last}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until an element matching `css` exists and is displayed.
    pub async fn wait_for(&self, css: &str, timeout: Duration) -> Result<Element> {
        self.wait_until(&format!("{css:?} to be displayed"), timeout, || async {
            match self.find(css).await {
                Ok(e) if e.displayed().await? => Ok((Some(e), String::new())),
                Ok(_) => Ok((None, format!("{css:?} exists but is hidden"))),
                Err(e) if is_missing(&e) => Ok((None, format!("no {css:?}"))),
                Err(e) => Err(e),
            }
        })
        .await
    }

    /// Waits until the text of the first element matching `css` satisfies
    /// `pred`, and returns it.
    pub async fn wait_text(
        &self,
        css: &str,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Result<String> {
        self.wait_until(&format!("{css:?} to show {what}"), timeout, || async {
            match self.find(css).await {
                Ok(e) => {
                    let t = e.text().await?;
                    if pred(&t) {
                        Ok((Some(t), String::new()))
                    } else {
                        Ok((None, format!("{css:?} shows {t:?}")))
                    }
                }
                Err(e) if is_missing(&e) => Ok((None, format!("no {css:?}"))),
                Err(e) => Err(e),
            }
        })
        .await
    }

    /// Waits until no element matches `css` or none is displayed.
    pub async fn wait_gone(&self, css: &str, timeout: Duration) -> Result<()> {
        self.wait_until(&format!("{css:?} to go away"), timeout, || async {
            for e in self.find_all(css).await? {
                match e.displayed().await {
                    Ok(true) => return Ok((None, format!("{css:?} is still displayed"))),
                    Ok(false) => {}
                    Err(e) if is_missing(&e) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok((Some(()), String::new()))
        })
        .await
    }
}

impl Element {
    fn path(&self, rest: &str) -> String {
        format!("/element/{}{rest}", self.id)
    }

    pub async fn click(&self) -> Result<()> {
        self.session
            .post(&self.path("/click"), json!({}))
            .await
            .with_context(|| format!("click {:?}", self.selector))?;
        Ok(())
    }

    /// Types `text` into the element (W3C key codes such as "\u{E007}"
    /// (Enter) work too).
    pub async fn send_keys(&self, text: &str) -> Result<()> {
        self.session
            .post(&self.path("/value"), json!({ "text": text }))
            .await
            .with_context(|| format!("type into {:?}", self.selector))?;
        Ok(())
    }

    pub async fn clear(&self) -> Result<()> {
        self.session.post(&self.path("/clear"), json!({})).await?;
        Ok(())
    }

    /// The rendered text (what a user sees).
    pub async fn text(&self) -> Result<String> {
        let text: String = self
            .session
            .get(&self.path("/text"))
            .await?
            .as_str()
            .unwrap_or_default()
            .into();
        if !text.is_empty() {
            return Ok(text);
        }
        // WebKitWebDriver counts elements near the bottom of the window
        // (the status bar) as not displayed and answers "" for them; the
        // page's own rendering says better: a box with a size is shown.
        let v = self
            .session
            .execute(
                "const e = arguments[0]; const r = e.getBoundingClientRect();
                 return r.width > 0 && r.height > 0 ? e.innerText : '';",
                json!([{ ELEMENT: self.id }]),
            )
            .await?;
        Ok(v.as_str().unwrap_or_default().trim().to_string())
    }

    /// An attribute as written in the document (`None` when absent).
    pub async fn attr(&self, name: &str) -> Result<Option<String>> {
        let v = self
            .session
            .get(&self.path(&format!("/attribute/{name}")))
            .await?;
        Ok(v.as_str().map(String::from))
    }

    /// A DOM property (e.g. `value` of a progress bar or an input).
    pub async fn property(&self, name: &str) -> Result<Value> {
        self.session
            .get(&self.path(&format!("/property/{name}")))
            .await
    }

    pub async fn displayed(&self) -> Result<bool> {
        Ok(self.session.get(&self.path("/displayed")).await? == json!(true))
    }

    pub async fn enabled(&self) -> Result<bool> {
        Ok(self.session.get(&self.path("/enabled")).await? == json!(true))
    }

    /// The first descendant matching `css`.
    pub async fn find(&self, css: &str) -> Result<Element> {
        let v = self
            .session
            .post(
                &self.path("/element"),
                json!({ "using": "css selector", "value": css }),
            )
            .await
            .with_context(|| format!("find {css:?} in {:?}", self.selector))?;
        let id = element_id(&v).ok_or_else(|| anyhow!("no element reference in {v}"))?;
        Ok(Element {
            session: self.session.clone(),
            id,
            selector: format!("{} {css}", self.selector),
        })
    }
}
