//! Connecting and logging in, with our own reconnect loop.
//!
//! tokio-xmpp's stock reconnector only logs why a connection failed and
//! retries forever, even on a wrong password. This one reports every failure
//! as a [`ConnStatus`] (so the user sees "wrong password" or "connection
//! refused"), stops retrying when retrying cannot help, and starts its
//! backoff small so a restarted server is back within a second or two.

use std::borrow::Cow;
use std::time::Duration;

use sasl::common::Credentials;
use tokio::sync::{mpsc, oneshot};
use tokio_xmpp::connect::ServerConnector;
use tokio_xmpp::error::{AuthError, Error as XmppError};
use tokio_xmpp::jid::Jid;
use tokio_xmpp::parsers::ns;
use tokio_xmpp::stanzastream::Connection;
use tokio_xmpp::xmlstream::{StreamHeader, Timeouts};

/// First retry delay after a failed or lost connection.
pub const FIRST_RETRY: Duration = Duration::from_millis(250);
/// Longest delay between two connection attempts.
pub const MAX_RETRY: Duration = Duration::from_secs(30);

/// What the reconnect loop reports to the session.
#[derive(Debug, Clone)]
pub struct ConnStatus {
    pub reason: String,
    /// False when we stopped trying (wrong password, no usable mechanism).
    pub retrying: bool,
}

/// A human-readable reason for a failed login, and whether retrying can
/// help.
fn describe(err: &XmppError, server: &str) -> (String, bool) {
    match err {
        XmppError::Auth(AuthError::Fail(cond)) => (
            format!("the server {server} refused the login ({cond:?}): check the JID and password"),
            false,
        ),
        XmppError::Auth(AuthError::NoMechanism) => (
            format!(
                "the server {server} offers no login mechanism we support; \
                 plaintext servers need the insecure-plaintext option (local test servers only)"
            ),
            false,
        ),
        XmppError::Io(e) => (format!("cannot reach {server}: {e}"), true),
        other => (format!("cannot log in to {server}: {other}"), true),
    }
}

async fn login<C: ServerConnector>(
    connector: &C,
    jid: &Jid,
    password: &str,
    timeouts: Timeouts,
) -> Result<Connection, XmppError> {
    let username = jid.node().map(|n| n.as_str()).unwrap_or_default();
    let (pending, channel_binding) = connector.connect(jid, ns::JABBER_CLIENT, timeouts).await?;
    let (features, stream) = pending.recv_features().await?;
    let creds = Credentials::default()
        .with_username(username)
        .with_password(password)
        .with_channel_binding(channel_binding);
    let stream = tokio_xmpp::client_login(stream, features.sasl_mechanisms, creds).await?;
    let stream = stream
        .send_header(StreamHeader {
            to: Some(Cow::Borrowed(jid.domain().as_str())),
            from: None,
            id: None,
        })
        .await?;
    let (mut features, stream) = stream.recv_features().await?;
    // No stream management (XEP-0198), even where the server offers it:
    // tokio-xmpp 6 cannot read a `<failed/>` without `h` (what Prosody
    // answers to a resumption once the session is gone, e.g. after it closed
    // the stream over a too-large stanza) and tries to resume again forever.
    // Every reconnect starts a fresh session, which the session task
    // re-syncs anyway (docs/PROTOCOL.md, "Server notes").
    features.stream_management = None;
    Ok(Connection {
        stream: stream.box_stream(),
        features,
        identity: jid.clone(),
    })
}

/// The reconnect callback handed to `StanzaStream::new`.
#[allow(clippy::type_complexity)]
pub fn reconnector<C: ServerConnector + Sync>(
    connector: C,
    server: String,
    jid: Jid,
    password: String,
    timeouts: Timeouts,
    status: mpsc::UnboundedSender<ConnStatus>,
) -> Box<dyn FnMut(Option<String>, oneshot::Sender<Connection>) + Send + 'static> {
    Box::new(move |_, slot: oneshot::Sender<Connection>| {
        let (connector, server, jid, password, status) = (
            connector.clone(),
            server.clone(),
            jid.clone(),
            password.clone(),
            status.clone(),
        );
        tokio::spawn(async move {
            let mut delay = FIRST_RETRY;
            loop {
                if slot.is_closed() {
                    return;
                }
                tracing::debug!(%jid, %server, "connecting");
                match login(&connector, &jid, &password, timeouts).await {
                    Ok(conn) => {
                        let _ = slot.send(conn);
                        return;
                    }
                    Err(err) => {
                        let (reason, retrying) = describe(&err, &server);
                        tracing::warn!(%jid, retrying, "{reason}");
                        let _ = status.send(ConnStatus { reason, retrying });
                        if !retrying {
                            // Keep the slot (dropping it would make the
                            // stream worker treat this as a crash) until the
                            // session closes the stream.
                            let mut slot = slot;
                            slot.closed().await;
                            return;
                        }
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(MAX_RETRY);
                    }
                }
            }
        });
    })
}
