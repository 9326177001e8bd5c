//! Connecting and logging in, with our own connector and reconnect loop.
//!
//! The connector ([`GuardedConnector`]) does STARTTLS with our own trusted
//! roots (`tls.rs`: the system's plus an optional CA bundle), or, for a
//! server on loopback only, plain TCP; what the server sends passes through
//! [`XmlGuard`], so one over-long name in a contact's item cannot end the
//! stream (see `guard.rs`).
//!
//! tokio-xmpp's stock reconnector only logs why a connection failed and
//! retries forever, even on a wrong password. This one reports every failure
//! as a [`ConnStatus`] (so the user sees "wrong password" or "connection
//! refused"), stops retrying when retrying cannot help (a wrong password, a
//! refused certificate), and starts its
//! backoff small so a restarted server is back within a second or two. A
//! connection that dies within [`STABLE_AFTER`] of logging in counts as a
//! failure: whatever kills it (a poisoned item the server pushes at every
//! login) cannot make us reconnect more than once every few seconds.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sasl::common::{ChannelBinding, Credentials};
use tokio::io::{AsyncRead, AsyncWrite, BufStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_xmpp::connect::{DnsConfig, ServerConnector};
use tokio_xmpp::error::{AuthError, Error as XmppError, ProtocolError};
use tokio_xmpp::jid::Jid;
use tokio_xmpp::parsers::ns;
use tokio_xmpp::stanzastream::Connection;
use tokio_xmpp::xmlstream::{initiate_stream, PendingFeaturesRecv, StreamHeader, Timeouts};

use super::guard::XmlGuard;
use super::tls::{self, TrustedRoots};
use crate::events::OfflineCause;

/// First retry delay after a failed or lost connection.
pub const FIRST_RETRY: Duration = Duration::from_millis(250);
/// Longest delay between two connection attempts.
pub const MAX_RETRY: Duration = Duration::from_secs(30);
/// A connection that lived shorter than this after logging in is a failure
/// for the backoff.
pub const STABLE_AFTER: Duration = Duration::from_secs(10);

/// A transport under the XML stream: TCP, or TLS over TCP.
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Transport for T {}

/// Connects over STARTTLS (`tls`: the roots the server's certificate is
/// checked against) or plain TCP (`None`), with [`XmlGuard`] under the XML
/// reader.
#[derive(Debug, Clone)]
pub struct GuardedConnector {
    pub dns: DnsConfig,
    pub tls: Option<TrustedRoots>,
}

impl ServerConnector for GuardedConnector {
    type Stream = BufStream<XmlGuard<Box<dyn Transport>>>;

    async fn connect(
        &self,
        jid: &Jid,
        ns: &'static str,
        timeouts: Timeouts,
    ) -> Result<(PendingFeaturesRecv<Self::Stream>, ChannelBinding), XmppError> {
        let header = || StreamHeader {
            to: Some(Cow::Owned(jid.domain().as_str().to_string())),
            from: None,
            id: None,
        };
        let tcp = self.dns.resolve().await?;
        let (transport, binding): (Box<dyn Transport>, _) = match &self.tls {
            Some(roots) => {
                let plain = initiate_stream(BufStream::new(tcp), ns, header(), timeouts).await?;
                let (features, plain) = plain.recv_features().await?;
                if !features.can_starttls() {
                    return Err(XmppError::Protocol(ProtocolError::NoTls));
                }
                let tcp = tls::starttls(plain).await?;
                let (tls, binding) = tls::handshake(tcp, jid.domain().as_str(), roots).await?;
                (Box::new(tls), binding)
            }
            None => (Box::new(tcp), ChannelBinding::None),
        };
        let guarded = BufStream::new(XmlGuard::new(transport));
        Ok((
            initiate_stream(guarded, ns, header(), timeouts).await?,
            binding,
        ))
    }
}

/// The reconnect loop's memory across connections.
#[derive(Debug)]
struct Backoff {
    /// The delay before the next attempt after a failure.
    delay: Duration,
    /// When the last login succeeded.
    online_since: Option<Instant>,
}

impl Backoff {
    /// The pause before reconnecting after a connection was lost: none if
    /// it had been up a while, else the grown delay.
    fn after_loss(&mut self) -> Duration {
        match self.online_since.take() {
            Some(t) if t.elapsed() >= STABLE_AFTER => {
                self.delay = FIRST_RETRY;
                Duration::ZERO
            }
            Some(_) => self.grow(),
            None => Duration::ZERO, // the first connection
        }
    }

    /// The current delay, doubling the next one (up to MAX_RETRY).
    fn grow(&mut self) -> Duration {
        let now = self.delay;
        self.delay = (self.delay * 2).min(MAX_RETRY);
        now
    }
}

/// What the reconnect loop reports to the session.
#[derive(Debug, Clone)]
pub struct ConnStatus {
    pub reason: String,
    /// False when we stopped trying (wrong password, no usable mechanism).
    pub retrying: bool,
    pub cause: OfflineCause,
}

/// A human-readable reason for a failed login, whether retrying can help,
/// and the kind of failure (from the typed error, never from its text).
fn describe(err: &XmppError, server: &str) -> (String, bool, OfflineCause) {
    if let Some(refused) = tls::certificate_rejected(err) {
        // The same certificate comes back on every attempt: only a change
        // of the settings (the trusted CAs, the server) can help.
        return (
            format!("cannot log in to {server}: {refused}"),
            false,
            OfflineCause::Tls,
        );
    }
    match err {
        XmppError::Auth(AuthError::Fail(cond)) => (
            format!("the server {server} refused the login ({cond:?}): check the JID and password"),
            false,
            OfflineCause::WrongLogin,
        ),
        XmppError::Auth(AuthError::NoMechanism) => (
            format!(
                "the server {server} offers no login mechanism we support; \
                 plaintext servers need the insecure-plaintext option (local test servers only)"
            ),
            false,
            OfflineCause::NoMechanism,
        ),
        XmppError::DnsProto(_) | XmppError::DnsNet(_) | XmppError::Idna => (
            format!("cannot find the server {server}: {err}"),
            true,
            OfflineCause::Dns,
        ),
        XmppError::Connection(e) => (
            format!("cannot make a secure connection to {server}: {e}"),
            true,
            OfflineCause::Tls,
        ),
        XmppError::Io(e) => {
            let cause = if e
                .get_ref()
                .is_some_and(|inner| inner.is::<tokio_xmpp::rustls::Error>())
            {
                OfflineCause::Tls
            } else {
                match e.kind() {
                    std::io::ErrorKind::ConnectionRefused => OfflineCause::Refused,
                    // getaddrinfo's failures carry no kind of their own.
                    _ if e.to_string().contains("lookup") => OfflineCause::Dns,
                    _ => OfflineCause::Other,
                }
            };
            (format!("cannot reach {server}: {e}"), true, cause)
        }
        other => (
            format!("cannot log in to {server}: {other}"),
            true,
            OfflineCause::Other,
        ),
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
    let backoff = Arc::new(Mutex::new(Backoff {
        delay: FIRST_RETRY,
        online_since: None,
    }));
    Box::new(move |_, slot: oneshot::Sender<Connection>| {
        let (connector, server, jid, password, status, backoff) = (
            connector.clone(),
            server.clone(),
            jid.clone(),
            password.clone(),
            status.clone(),
            backoff.clone(),
        );
        tokio::spawn(async move {
            let pause = backoff.lock().unwrap().after_loss();
            if !pause.is_zero() {
                tracing::info!(%jid, "the last connection died soon after login; reconnecting in {pause:?}");
                tokio::time::sleep(pause).await;
            }
            loop {
                if slot.is_closed() {
                    return;
                }
                tracing::debug!(%jid, %server, "connecting");
                match login(&connector, &jid, &password, timeouts).await {
                    Ok(conn) => {
                        backoff.lock().unwrap().online_since = Some(Instant::now());
                        let _ = slot.send(conn);
                        return;
                    }
                    Err(err) => {
                        let (reason, retrying, cause) = describe(&err, &server);
                        tracing::warn!(%jid, retrying, ?cause, "{reason}");
                        let _ = status.send(ConnStatus {
                            reason,
                            retrying,
                            cause,
                        });
                        if !retrying {
                            // Keep the slot (dropping it would make the
                            // stream worker treat this as a crash) until the
                            // session closes the stream.
                            let mut slot = slot;
                            slot.closed().await;
                            return;
                        }
                        let delay = backoff.lock().unwrap().grow();
                        tokio::time::sleep(delay).await;
                    }
                }
            }
        });
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_certificate_stops_the_retries_and_other_tls_errors_do_not() {
        let refused = tls::CertificateRejected {
            server: "lab.example".into(),
            reason: "it is made out for another name".into(),
            subject: Some("CN=other.example".into()),
            issuer: Some("CN=Lab CA".into()),
        };
        let err = XmppError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            refused,
        ));
        let (reason, retrying, cause) = describe(&err, "198.18.0.1:5222");
        assert!(!retrying);
        assert_eq!(cause, OfflineCause::Tls);
        assert!(
            reason.contains("CN=other.example") && reason.contains("CN=Lab CA"),
            "{reason}"
        );
        let handshake = XmppError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            tokio_xmpp::rustls::Error::HandshakeNotComplete,
        ));
        let (_, retrying, cause) = describe(&handshake, "198.18.0.1:5222");
        assert!(retrying);
        assert_eq!(cause, OfflineCause::Tls);
    }

    #[test]
    fn connections_that_die_at_once_back_off_and_stable_ones_do_not() {
        let mut b = Backoff {
            delay: FIRST_RETRY,
            online_since: None,
        };
        assert_eq!(b.after_loss(), Duration::ZERO, "the first connection");
        let mut pauses = Vec::new();
        for _ in 0..10 {
            b.online_since = Some(Instant::now() - Duration::from_millis(100));
            pauses.push(b.after_loss());
        }
        assert_eq!(pauses[0], FIRST_RETRY);
        assert!(pauses.windows(2).all(|w| w[1] >= w[0]), "{pauses:?}");
        assert!(pauses[5] >= Duration::from_secs(5), "{pauses:?}");
        assert_eq!(*pauses.last().unwrap(), MAX_RETRY);
        b.online_since = Some(Instant::now() - STABLE_AFTER - Duration::from_secs(1));
        assert_eq!(b.after_loss(), Duration::ZERO, "a stable connection");
        assert_eq!(b.grow(), FIRST_RETRY, "and the backoff starts over");
    }
}
