//! The desktop backend's life cycle: at most one [`Service`] at a time, all
//! on one event bus that the shell forwards to the window for the app's
//! whole life. Logging in waits for the server's verdict so the account
//! screen can say what is wrong (wrong password, server unreachable, no
//! PEP) before anything is saved.

use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::api::{Api, ApiError, ErrorKind};
use crate::events::{Event, EventBus, OfflineCause};
use crate::service::{Service, ServiceConfig};

/// How long a login may take before the account screen gives up on it.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(20);
/// After logging in, how long we wait for the server to accept our first
/// publish (which tells whether it has PEP).
const PEP_CHECK: Duration = Duration::from_secs(5);

/// Why a login did not succeed; the message names the problem and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    /// The account settings cannot be used (a malformed JID, ...).
    #[error("{0}")]
    Config(String),
    /// The server refused the JID and password.
    #[error("{0}")]
    Refused(String),
    /// The server could not be found or reached, or TLS failed.
    #[error("{0}")]
    Unreachable(String),
    /// Logged in, but the server does not let us publish our list.
    #[error("{0}")]
    NoPep(String),
}

/// Puts a connection failure into words a user can act on, by its kind.
pub fn explain(reason: &str, retrying: bool, cause: OfflineCause) -> LoginError {
    match cause {
        OfflineCause::WrongLogin | OfflineCause::NoMechanism => {
            LoginError::Refused(reason.to_string())
        }
        _ if !retrying => LoginError::Refused(reason.to_string()),
        OfflineCause::Dns => LoginError::Unreachable(format!(
            "{reason} — the server's name was not found: check the domain of the JID, or enter the server as host:port"
        )),
        OfflineCause::Tls => LoginError::Unreachable(format!(
            "{reason} — the secure (TLS) connection failed: the server's certificate may be invalid or for another name"
        )),
        OfflineCause::Refused => LoginError::Unreachable(format!(
            "{reason} — nothing answers there: is the server running, and are host and port right?"
        )),
        _ => LoginError::Unreachable(reason.to_string()),
    }
}

impl From<LoginError> for ApiError {
    fn from(e: LoginError) -> ApiError {
        let kind = match e {
            LoginError::Config(_) => ErrorKind::Config,
            LoginError::Refused(_) => ErrorKind::Refused,
            LoginError::Unreachable(_) => ErrorKind::Unreachable,
            LoginError::NoPep(_) => ErrorKind::NoPep,
        };
        ApiError::new(kind, e.to_string())
    }
}

struct Running {
    service: Service,
    api: Api,
}

/// Owns the running backend, if any.
pub struct Backend {
    events: EventBus,
    exit: CancellationToken,
    running: Mutex<Option<Running>>,
}

impl Backend {
    /// `exit` is cancelled when a client asks the app to quit (`Api.exit`).
    pub fn new(events: EventBus, exit: CancellationToken) -> Backend {
        Backend {
            events,
            exit,
            running: Mutex::new(None),
        }
    }

    pub fn events(&self) -> &EventBus {
        &self.events
    }

    /// The operations of the running backend.
    pub async fn api(&self) -> Option<Api> {
        self.running.lock().await.as_ref().map(|r| r.api.clone())
    }

    /// Starts the backend with `config`, stopping a running one first.
    /// With `wait`, returns only once logged in and our first publish was
    /// accepted, or with the reason it failed (and nothing left running).
    /// Without, returns at once; the backend keeps trying to connect and
    /// reports through events.
    pub async fn start(&self, config: ServiceConfig, wait: bool) -> Result<Api, LoginError> {
        let mut running = self.running.lock().await;
        if let Some(old) = running.take() {
            old.service.shutdown().await;
        }
        let mut rx = self.events.subscribe();
        let service = Service::start_with(config, self.events.clone())
            .await
            .map_err(|e| LoginError::Config(e.to_string()))?;
        if wait {
            let verdict = tokio::time::timeout(LOGIN_TIMEOUT, async {
                loop {
                    match rx.recv().await {
                        Ok(Event::Connected { .. }) => break,
                        Ok(Event::Disconnected {
                            reason,
                            retrying,
                            cause,
                        }) => return Err(explain(&reason, retrying, cause)),
                        Ok(_) | Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => {
                            return Err(LoginError::Config("the backend stopped".into()))
                        }
                    }
                }
                tokio::time::timeout(PEP_CHECK, async {
                    loop {
                        match rx.recv().await {
                            Ok(Event::OwnItemPublished { .. }) | Err(RecvError::Closed) => {
                                return Ok(())
                            }
                            Ok(Event::PublishFailed { reason }) => {
                                return Err(LoginError::NoPep(format!(
                                    "logged in, but the server refused to publish our share list ({reason}): \
                                     Bitween needs a server with PEP (XEP-0163); ask its admin or use another account"
                                )))
                            }
                            _ => {}
                        }
                    }
                })
                .await
                .unwrap_or(Ok(()))
            })
            .await
            .unwrap_or_else(|_| {
                Err(LoginError::Unreachable(format!(
                    "no answer from the server within {} s: check the server address and your network",
                    LOGIN_TIMEOUT.as_secs()
                )))
            });
            if let Err(e) = verdict {
                service.shutdown().await;
                return Err(e);
            }
        }
        let api = Api::new(service.clone(), self.exit.clone());
        *running = Some(Running {
            service,
            api: api.clone(),
        });
        Ok(api)
    }

    /// Stops the backend (our entry is retracted); nothing is running then.
    pub async fn stop(&self) {
        if let Some(old) = self.running.lock().await.take() {
            old.service.shutdown().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explanations() {
        assert!(matches!(
            explain(
                "the server x refused the login",
                false,
                OfflineCause::WrongLogin
            ),
            LoginError::Refused(_)
        ));
        let e = explain("cannot reach x", true, OfflineCause::Dns);
        assert!(e.to_string().contains("not found"), "{e}");
        let e = explain("cannot reach x", true, OfflineCause::Refused);
        assert!(e.to_string().contains("is the server running"), "{e}");
        let e = explain("cannot log in to x", true, OfflineCause::Tls);
        assert!(e.to_string().contains("certificate"), "{e}");
    }
}
