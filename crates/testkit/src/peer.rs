//! One logged-in client of ours on a test server: its handle, catalog and
//! events, and waits on them that fail naming what they waited for.

use std::time::Duration;

use bitween::events::{Event, EventBus};
use bitween::shares::Catalog;
use bitween::xmpp::{self, XmppConfig, XmppHandle};
use tokio::sync::broadcast;

use crate::server::XmppServer;
use crate::{init_logging, next_event_within, DOMAIN, PASSWORD};

/// One logged-in client of ours: its handle, catalog and events.
pub struct Peer {
    pub xmpp: XmppHandle,
    pub catalog: Catalog,
    pub events: broadcast::Receiver<Event>,
    pub bus: EventBus,
}

impl Peer {
    /// Logs `user` in with `resource`, and waits until it is online.
    pub async fn login(server: &impl XmppServer, user: &str, resource: &str) -> Peer {
        let peer = Peer::start(server, user, resource, PASSWORD);
        let mut peer = peer;
        peer.wait_for("Connected", |e| matches!(e, Event::Connected { .. }))
            .await;
        peer
    }

    /// Starts the session without waiting for anything.
    pub fn start(server: &impl XmppServer, user: &str, resource: &str, password: &str) -> Peer {
        init_logging();
        let bus = EventBus::new();
        let events = bus.subscribe();
        let (catalog, writer) = Catalog::new();
        let xmpp = xmpp::start(
            XmppConfig {
                jid: format!("{user}@{DOMAIN}"),
                password: password.into(),
                resource: Some(resource.into()),
                server: Some(server.server()),
                insecure_plaintext: true,
                tls_ca: None,
            },
            bus.clone(),
            writer,
        )
        .expect("valid config");
        Peer {
            xmpp,
            catalog,
            events,
            bus,
        }
    }

    /// Waits (up to 20 s, generous: tests bound waits, benchmarks time them)
    /// for an event matching `pred` and returns it.
    pub async fn wait_for(&mut self, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
        self.wait_for_within(what, Duration::from_secs(20), pred)
            .await
    }

    pub async fn wait_for_within(
        &mut self,
        what: &str,
        limit: Duration,
        pred: impl Fn(&Event) -> bool,
    ) -> Event {
        next_event_within(&mut self.events, what, limit, pred).await
    }

    /// Waits until the catalog satisfies `check`, re-checking on every
    /// catalog or presence event (no polling).
    pub async fn wait_catalog(&mut self, what: &str, check: impl Fn(&Catalog) -> bool) {
        self.wait_catalog_within(what, Duration::from_secs(20), check)
            .await
    }

    pub async fn wait_catalog_within(
        &mut self,
        what: &str,
        limit: Duration,
        check: impl Fn(&Catalog) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + limit;
        while !check(&self.catalog) {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Ok(_)) => {}
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
                Ok(Err(broadcast::error::RecvError::Closed)) => panic!("event bus closed"),
                Err(_) => {
                    let seen: Vec<_> = self
                        .catalog
                        .contacts()
                        .iter()
                        .map(|c| self.catalog.contact(c))
                        .collect();
                    panic!(
                        "timed out after {limit:?} waiting for {what}; the catalog holds {seen:#?}"
                    )
                }
            }
        }
    }
}
