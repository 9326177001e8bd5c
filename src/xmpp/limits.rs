//! How large our publishes may be, learned from the server.
//!
//! Servers cap what a client may send: Prosody's `c2s_stanza_size_limit`
//! (256 KiB by default, 10,000 bytes at the least), ejabberd's
//! `max_stanza_size` (262,144 in Debian's configuration; 65,536 is common)
//! and its PEP `max_payload_size` (250,000 bytes of the payload as an Erlang
//! term, which is larger than the XML). Too large a stanza is either
//! refused with an error (ejabberd's `<not-acceptable/><payload-too-big/>`)
//! or, for the stream limit, answered by closing the whole stream with a
//! `policy-violation` stream error, which our XMPP library reports only as
//! a lost connection.
//!
//! So the assumed limit starts at 256 KiB and follows what the server
//! tells:
//! - a limit the server announces (XEP-0478 stream limits, `max-bytes` in
//!   the stream features) caps it;
//! - a publish refused with a size error (`payload-too-big`,
//!   `policy-violation`, `resource-constraint`) halves it, until it is below
//!   what was refused;
//! - a connection that dies within [`LOSS_WINDOW`] of sending a publish
//!   that is still unanswered and larger than the smallest limit we use
//!   halves it the same way (a false alarm only costs smaller items and
//!   more chunks);
//!
//! and the refused list is published again at the new size. It never goes
//! below [`MIN_LIMIT`]; what is learned holds for the session's lifetime
//! (every reconnect to the same server).

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;
use tokio_xmpp::parsers::stanza_error::{DefinedCondition, StanzaError};
use tokio_xmpp::parsers::stream_features::StreamFeatures;

use crate::shares::chunks;

/// What we assume until the server says otherwise: Prosody's default and
/// Debian ejabberd's configured limit.
pub const DEFAULT_LIMIT: usize = 262_144;
/// The least we go down to: Prosody's smallest accepted setting.
pub const MIN_LIMIT: usize = 10_000;
/// How soon after a large publish a lost connection counts as a refusal.
pub const LOSS_WINDOW: Duration = Duration::from_secs(10);
/// The XEP-0060 application condition for a payload over the node's limit.
const PAYLOAD_TOO_BIG: &str = "payload-too-big";
const NS_PUBSUB_ERRORS: &str = "http://jabber.org/protocol/pubsub#errors";

#[derive(Debug)]
pub(super) struct StanzaBudget {
    /// The most bytes one stanza of ours may weigh.
    limit: usize,
    /// Publishes sent and not answered yet: IQ id -> (bytes, when).
    in_flight: HashMap<String, (usize, Instant)>,
    /// The size of the publish last answered.
    last_answered: Option<usize>,
}

impl Default for StanzaBudget {
    fn default() -> Self {
        StanzaBudget {
            limit: DEFAULT_LIMIT,
            in_flight: HashMap::new(),
            last_answered: None,
        }
    }
}

/// Whether a publish was refused for its size.
pub(super) fn too_big(error: &StanzaError) -> bool {
    let app = error
        .other
        .as_ref()
        .is_some_and(|e| e.is(PAYLOAD_TOO_BIG, NS_PUBSUB_ERRORS));
    app || matches!(
        error.defined_condition,
        DefinedCondition::PolicyViolation | DefinedCondition::ResourceConstraint
    )
}

/// Whether a failed publish may succeed if simply sent again: the server
/// had a passing problem (ejabberd's Mnesia aborts one of two PEP node
/// creations that run at the same moment, answering `item-not-found` or
/// `internal-server-error`), or asked us to wait.
pub(super) fn transient(error: &StanzaError) -> bool {
    use tokio_xmpp::parsers::stanza_error::ErrorType;
    error.type_ == ErrorType::Wait
        || matches!(
            error.defined_condition,
            DefinedCondition::ItemNotFound | DefinedCondition::InternalServerError
        )
}

impl StanzaBudget {
    /// The assumed stanza limit.
    #[cfg(test)]
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The most bytes our item may weigh: the limit less room for the IQ
    /// around it and for our estimate's error (a tenth, at most 12,144
    /// bytes: 250,000 at the default limit, as before there was a budget).
    pub fn item_bytes(&self) -> usize {
        Self::item_bytes_at(self.limit)
    }

    fn item_bytes_at(limit: usize) -> usize {
        limit - (limit / 10).min(12_144)
    }

    /// The most bytes one chunk of the rest of our list may weigh.
    pub fn chunk_bytes(&self) -> usize {
        self.item_bytes().min(chunks::CHUNK_BYTES)
    }

    /// A new stream's features: a limit it announces (XEP-0478) caps ours.
    pub fn on_features(&mut self, features: &StreamFeatures) {
        self.in_flight.clear();
        let announced = features
            .limits
            .as_ref()
            .and_then(|l| l.max_bytes)
            .map(|b| b.get() as usize);
        if let Some(max) = announced {
            let limit = max.clamp(MIN_LIMIT, self.limit);
            if limit != self.limit {
                tracing::info!(
                    announced = max,
                    "the server announces its stanza limit; publishing at most {limit} bytes a stanza"
                );
                self.limit = limit;
            }
        }
    }

    /// A publish of `bytes` went out as IQ `id`.
    pub fn sent(&mut self, id: &str, bytes: usize) {
        self.in_flight
            .insert(id.to_string(), (bytes, Instant::now()));
    }

    /// The IQ `id` was answered; the size of the publish it was, if one.
    pub fn answered(&mut self, id: &str) -> Option<usize> {
        self.last_answered = self.in_flight.remove(id).map(|(bytes, _)| bytes);
        self.last_answered
    }

    /// The publish answered last was refused for its size: see
    /// [`refused`](Self::refused).
    pub fn refused_last(&mut self) -> bool {
        let bytes = self.last_answered.unwrap_or_else(|| self.item_bytes());
        self.refused(bytes)
    }

    /// A publish of `bytes` was refused for its size: lowers the limit
    /// below it. False when it cannot go lower (then retrying is useless).
    pub fn refused(&mut self, bytes: usize) -> bool {
        let before = self.limit;
        while self.limit > MIN_LIMIT
            && (self.limit == before || Self::item_bytes_at(self.limit) >= bytes)
        {
            self.limit = (self.limit / 2).max(MIN_LIMIT);
        }
        if self.limit < before {
            tracing::warn!(
                refused = bytes,
                "the server refused a stanza for its size; publishing at most {} bytes a stanza from now on",
                self.limit
            );
            true
        } else {
            false
        }
    }

    /// The connection died. If it died right after a large publish that
    /// was never answered, that publish was probably too big (the server
    /// closes the stream over it): lowers the limit, and says so.
    pub fn connection_lost(&mut self) -> bool {
        self.connection_lost_at(Instant::now())
    }

    fn connection_lost_at(&mut self, now: Instant) -> bool {
        let suspect = self
            .in_flight
            .drain()
            .filter(|(_, (bytes, at))| {
                *bytes > Self::item_bytes_at(MIN_LIMIT) && now.duration_since(*at) < LOSS_WINDOW
            })
            .map(|(_, (bytes, _))| bytes)
            .max();
        match suspect {
            Some(bytes) => {
                tracing::warn!(
                    bytes,
                    "the connection died right after a large publish that was never answered"
                );
                self.refused(bytes)
            }
            None => false,
        }
    }
}

/// The bytes `el` takes when written.
pub(super) fn wire_bytes(el: &minidom::Element) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    let _ = el.write_to(&mut count);
    count.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_xmpp::parsers::stanza_error::ErrorType;

    #[test]
    fn the_default_budget_is_what_prosody_and_debian_ejabberd_accept() {
        let b = StanzaBudget::default();
        assert_eq!(b.limit(), 262_144);
        assert_eq!(b.item_bytes(), 250_000);
        assert_eq!(b.chunk_bytes(), chunks::CHUNK_BYTES);
    }

    #[test]
    fn an_announced_limit_caps_the_budget() {
        let mut b = StanzaBudget::default();
        let features: StreamFeatures = minidom::Element::from_reader(
            &br#"<stream:features xmlns:stream='http://etherx.jabber.org/streams'><limits xmlns='urn:xmpp:stream-limits:0'><max-bytes>65536</max-bytes></limits></stream:features>"#[..],
        )
        .ok()
        .and_then(|el| el.try_into().ok())
        .expect("features with limits");
        b.on_features(&features);
        assert_eq!(b.limit(), 65_536);
        assert!(b.item_bytes() < 65_536 && b.item_bytes() > 55_000);
        assert_eq!(b.chunk_bytes(), b.item_bytes());
        // A larger announcement later does not raise it above what we know.
        let mut bigger = features.clone();
        bigger.limits.as_mut().unwrap().max_bytes = std::num::NonZeroU32::new(1 << 20);
        b.on_features(&bigger);
        assert_eq!(b.limit(), 65_536);
        // A tiny one is held at the floor.
        bigger.limits.as_mut().unwrap().max_bytes = std::num::NonZeroU32::new(100);
        b.on_features(&bigger);
        assert_eq!(b.limit(), MIN_LIMIT);
    }

    #[test]
    fn refusals_halve_the_budget_below_what_was_refused_down_to_a_floor() {
        let mut b = StanzaBudget::default();
        assert!(b.refused(250_000));
        assert_eq!(b.limit(), 131_072);
        // A small refused stanza takes the limit down far enough at once.
        assert!(b.refused(20_000));
        assert!(b.item_bytes() < 20_000, "{}", b.item_bytes());
        while b.refused(1) {}
        assert_eq!(b.limit(), MIN_LIMIT);
        assert!(!b.refused(5_000), "nothing lower to try");
    }

    #[test]
    fn a_connection_lost_right_after_a_large_unanswered_publish_lowers_the_budget() {
        let mut b = StanzaBudget::default();
        // Small or answered publishes say nothing.
        b.sent("a", 500);
        b.sent("b", 200_000);
        assert_eq!(b.answered("b"), Some(200_000));
        assert!(!b.connection_lost());
        assert_eq!(b.limit(), DEFAULT_LIMIT);
        // An unanswered large one does.
        b.sent("c", 200_000);
        assert!(b.connection_lost());
        assert_eq!(b.limit(), 131_072);
        // Each loss counts once.
        assert!(!b.connection_lost());
    }

    #[test]
    fn an_old_unanswered_publish_is_not_blamed_for_a_lost_connection() {
        let mut b = StanzaBudget::default();
        b.sent("c", 200_000);
        let later = Instant::now() + LOSS_WINDOW + Duration::from_secs(1);
        assert!(!b.connection_lost_at(later));
        assert_eq!(b.limit(), DEFAULT_LIMIT);
    }

    #[test]
    fn size_errors_and_passing_errors_are_told_apart() {
        let err = |cond, other: Option<&str>| {
            let mut e = StanzaError::new(ErrorType::Modify, cond, "en", "");
            e.other = other.map(|name| minidom::Element::builder(name, NS_PUBSUB_ERRORS).build());
            e
        };
        assert!(too_big(&err(
            DefinedCondition::NotAcceptable,
            Some("payload-too-big")
        )));
        assert!(too_big(&err(DefinedCondition::PolicyViolation, None)));
        assert!(!too_big(&err(DefinedCondition::NotAcceptable, None)));
        assert!(!too_big(&err(DefinedCondition::Forbidden, None)));
        assert!(transient(&err(DefinedCondition::ItemNotFound, None)));
        assert!(!transient(&err(DefinedCondition::Forbidden, None)));
        let mut wait = err(DefinedCondition::Conflict, None);
        wait.type_ = ErrorType::Wait;
        assert!(transient(&wait));
    }
}
