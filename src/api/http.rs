//! JSON-RPC 2.0 over HTTP (`POST /api`, as the original), the event
//! stream (`GET /events`, server-sent events) and the web UI (`GET /`, the
//! files of `ui/`, built into the binary), for `bitweend`.
//!
//! Every API request needs the token (`Authorization: Bearer …`; the event
//! stream also takes `?token=` because a browser's EventSource cannot set
//! headers). The Host header must name the bound address or localhost (no
//! DNS rebinding), a browser page of another origin is refused, and no CORS
//! headers are ever sent. The UI's files need no token (the page asks for
//! it, or takes it from the address's `#token=` fragment, which browsers
//! never send) but pass the same Host check, and carry a strict
//! Content-Security-Policy.

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use futures::StreamExt;
use tokio::sync::broadcast::error::RecvError;

use super::{Api, ApiError, ErrorKind};
use crate::events::{CatchUp, Event, Numbered};

#[derive(Clone)]
struct Ctx {
    api: Api,
    token: String,
    /// `host:port` spellings a legitimate client uses.
    hosts: Vec<String>,
}

/// A fresh random token (256 bits, hex).
pub fn new_token() -> String {
    (0..32)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

/// Serves the API on `listener` until `stop` is cancelled.
pub async fn serve(
    api: Api,
    listener: TcpListener,
    token: String,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    let port = addr.port();
    let mut hosts = vec![
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
    ];
    hosts.push(addr.to_string());
    let ctx = Ctx { api, token, hosts };
    let app = Router::new()
        .route("/api", post(rpc))
        .route("/events", get(events))
        .route("/", get(ui_file))
        .route("/{*file}", get(ui_file))
        .with_state(ctx);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
}

fn rpc_error(id: Value, e: &ApiError) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": e.code, "message": e.message, "data": {"kind": e.kind}}})
}

fn refuse(status: StatusCode, kind: ErrorKind, message: &str) -> Box<Response> {
    let body = rpc_error(Value::Null, &ApiError::new(kind, message));
    Box::new(
        (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response(),
    )
}

/// Compares without leaking where the first difference is.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The Host check: the request names this API's address (no DNS
/// rebinding).
fn check_host(ctx: &Ctx, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !ctx.hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            ErrorKind::Forbidden,
            &format!("Host {host:?} is not this API's address; connect to 127.0.0.1 or localhost"),
        ));
    }
    Ok(())
}

/// Host, Origin and token checks shared by both API endpoints.
fn check(ctx: &Ctx, headers: &HeaderMap, query_token: Option<&str>) -> Result<(), Box<Response>> {
    check_host(ctx, headers)?;
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let own = ctx
            .hosts
            .iter()
            .any(|h| same(origin, &format!("http://{h}")));
        if !own {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                ErrorKind::Forbidden,
                &format!("requests from web pages of {origin:?} are not allowed"),
            ));
        }
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "));
    match bearer.or(query_token) {
        None => Err(refuse(
            StatusCode::UNAUTHORIZED,
            ErrorKind::Unauthorized,
            "missing token: send Authorization: Bearer <the token from the data dir's api-token file>",
        )),
        Some(t) if !same(t, &ctx.token) => Err(refuse(StatusCode::UNAUTHORIZED, ErrorKind::Unauthorized, "wrong token")),
        Some(_) => Ok(()),
    }
}

async fn rpc(State(ctx): State<Ctx>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = check(&ctx, &headers, None) {
        return *r;
    }
    let reply = match serde_json::from_slice::<Value>(&body) {
        Err(e) => rpc_error(
            Value::Null,
            &ApiError::new(
                ErrorKind::Parse,
                format!("the request is not valid JSON: {e}"),
            ),
        ),
        Ok(req) => handle(&ctx.api, req).await,
    };
    (
        [(header::CONTENT_TYPE, "application/json")],
        reply.to_string(),
    )
        .into_response()
}

async fn handle(api: &Api, req: Value) -> Value {
    let id = req.get("id").cloned().unwrap_or(Value::Null);
    let invalid = |m: &str| rpc_error(id.clone(), &ApiError::new(ErrorKind::InvalidRequest, m));
    let Value::Object(obj) = &req else {
        return invalid("a request is a JSON object {\"jsonrpc\": \"2.0\", \"method\": ..., \"params\": ..., \"id\": ...} (batches are not supported)");
    };
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return invalid("\"jsonrpc\" must be \"2.0\"");
    }
    let Some(method) = obj.get("method").and_then(Value::as_str) else {
        return invalid("\"method\" must be a string");
    };
    let params = obj.get("params").cloned().unwrap_or(Value::Null);
    match api.call(method, params).await {
        Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
        Err(e) => rpc_error(id, &e),
    }
}

#[derive(serde::Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

async fn events(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    Query(q): Query<TokenQuery>,
) -> Response {
    if let Err(r) = check(&ctx, &headers, q.token.as_deref()) {
        return *r;
    }
    let bus = ctx.api.events().clone();
    // Subscribed before looking back, so nothing falls between the two.
    let rx = bus.subscribe_numbered();
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let (first, last_sent) = match last.map(|l| (l, bus.since(l))) {
        None => (vec![], 0),
        Some((_, CatchUp::Resync)) => (vec![resync()], 0),
        Some((last, CatchUp::Events(missed))) => {
            let newest = missed.last().map_or(last, |n| n.id);
            (missed.iter().map(numbered).collect(), newest)
        }
    };
    let live = futures::stream::unfold((rx, last_sent), |(mut rx, last_sent)| async move {
        loop {
            match rx.recv().await {
                Ok(n) if n.id <= last_sent => continue, // replayed already
                Ok(n) => return Some((numbered(&n), (rx, last_sent))),
                // Fell behind: the client reloads rather than miss a change.
                Err(RecvError::Lagged(_)) => return Some((resync(), (rx, last_sent))),
                Err(RecvError::Closed) => return None,
            }
        }
    });
    let stream = futures::stream::iter(first)
        .chain(live)
        .map(Ok::<_, Infallible>);
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// An event for the stream, with its number as the SSE id (a client that
/// reconnects sends it back as `Last-Event-ID`).
fn numbered(n: &Numbered) -> SseEvent {
    SseEvent::default()
        .id(n.id.to_string())
        .data(serde_json::to_string(&n.event).unwrap_or_default())
}

fn resync() -> SseEvent {
    SseEvent::default().data(serde_json::to_string(&Event::Resync).unwrap_or_default())
}

/// The web UI's files (the same ones the desktop app loads), built in so the
/// binary is self-contained: (path, content type, body) for every file under
/// `ui/`, listed by `build.rs`.
const UI_FILES: &[(&str, &str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/ui_files.rs"));

/// What the UI's pages may load and run: only this server's own files (no
/// inline scripts or styles, nothing from elsewhere).
pub const UI_CSP: &str = "default-src 'self'; connect-src 'self'; img-src 'self' data:; \
                          style-src 'self'; script-src 'self'";

/// `GET /` and the UI's files; anything else is 404.
async fn ui_file(State(ctx): State<Ctx>, headers: HeaderMap, uri: Uri) -> Response {
    if let Err(r) = check_host(&ctx, &headers) {
        return *r;
    }
    let path = match uri.path() {
        "/" => "/index.html",
        p => p,
    };
    let Some((_, content_type, body)) = UI_FILES.iter().find(|(p, _, _)| *p == path) else {
        return (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("no such file: {path}"),
        )
            .into_response();
    };
    let mut response = (StatusCode::OK, *body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(UI_CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Never inside another site's frame; no address (nor token) leaks in a
    // Referer; a new binary's files are used at once.
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// The address to open in a browser: the UI, with the token in the
/// fragment (never sent to the server, read by the page and then removed
/// from the address bar). An unspecified bind address is reached through
/// loopback.
pub fn browser_url(addr: SocketAddr, token: &str) -> String {
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    format!("http://{addr}/#token={token}")
}

/// Where `bitweend` writes the API's address and token in its data dir.
pub fn address_file(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("api-address")
}

pub fn token_file(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("api-token")
}

/// Writes the address and the token (readable by the user only: mode 0600,
/// or an owner-only security descriptor on Windows) for clients to find.
pub fn write_discovery(
    data_dir: &std::path::Path,
    addr: SocketAddr,
    token: &str,
) -> std::io::Result<()> {
    std::fs::create_dir_all(data_dir)?;
    crate::fsutil::write_private(&token_file(data_dir), token.as_bytes())?;
    crate::fsutil::write_atomic(&address_file(data_dir), addr.to_string().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_browser_url_carries_the_token_in_the_fragment() {
        let t = "00ff";
        assert_eq!(
            browser_url("127.0.0.1:8080".parse().unwrap(), t),
            "http://127.0.0.1:8080/#token=00ff"
        );
        assert_eq!(
            browser_url("0.0.0.0:8080".parse().unwrap(), t),
            "http://127.0.0.1:8080/#token=00ff"
        );
        assert_eq!(
            browser_url("[::]:8080".parse().unwrap(), t),
            "http://[::1]:8080/#token=00ff"
        );
    }

    #[test]
    fn every_file_of_the_ui_is_served_with_its_type() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
        for entry in std::fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if name.starts_with('.') || name.ends_with(".md") {
                continue;
            }
            let path = format!("/{name}");
            assert!(UI_FILES.iter().any(|f| f.0 == path), "{path} is not served");
        }
        let types = [
            (".html", "text/html; charset=utf-8"),
            (".js", "text/javascript; charset=utf-8"),
            (".css", "text/css; charset=utf-8"),
            (".svg", "image/svg+xml"),
        ];
        for (path, content_type, body) in UI_FILES {
            for (ext, want) in types {
                if path.ends_with(ext) {
                    assert_eq!(content_type, &want, "{path}");
                }
            }
            if !path.ends_with(".js") {
                continue;
            }
            // Every module a script imports is served too.
            let base = &path[..path.rfind('/').unwrap() + 1];
            let text = std::str::from_utf8(body).unwrap();
            for import in text.split(" from './").skip(1) {
                let file = &import[..import.find('\'').unwrap()];
                let want = format!("{base}{file}");
                assert!(
                    UI_FILES.iter().any(|f| f.0 == want),
                    "{path} imports {file}, which is not served"
                );
            }
        }
    }

    #[test]
    fn the_ui_files_are_built_in_and_load_nothing_inline() {
        let index = UI_FILES.iter().find(|f| f.0 == "/index.html").unwrap();
        let html = std::str::from_utf8(index.2).unwrap();
        // The CSP allows no inline script or style: everything is a file.
        assert!(html.contains(r#"<script type="module" src="app.js"></script>"#));
        assert!(
            !html.contains("<script>") && !html.contains("<style") && !html.contains(" style=")
        );
        for (path, _, body) in UI_FILES {
            assert!(!body.is_empty(), "{path} is empty");
            // Nothing from elsewhere (XML namespaces are names, not loads).
            let text = String::from_utf8_lossy(body).replace("http://www.w3.org/", "");
            assert!(
                !text.contains("http://")
                    && !text.contains("https://")
                    && !text.contains("@import"),
                "{path} refers to another site"
            );
        }
    }
}
