//! One contact's whole backend (`Service`) on a test server, with its
//! events, and the waits the transfer tests use; plus random files and
//! their comparison.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bitween::events::Event;
use bitween::service::Service;
use bitween::shares::InfoHash;
use bitween::torrent::TransferState;
use bitween_testkit::XmppServer;
use rand::RngCore;
use tokio::sync::broadcast;

use super::jid;

pub struct Node {
    pub svc: Service,
    pub events: broadcast::Receiver<Event>,
    pub dir: PathBuf,
}

/// Starts `user`'s backend with its folders under `dir`.
pub async fn start(
    server: &impl XmppServer,
    user: &str,
    dir: &Path,
    upload_limit: Option<u32>,
) -> Node {
    let config = bitween_testkit::service_config(server, user, dir, upload_limit);
    let bus = bitween::events::EventBus::new();
    let events = bus.subscribe();
    let svc = Service::start_with(config, bus)
        .await
        .expect("service starts");
    Node {
        svc,
        events,
        dir: dir.to_path_buf(),
    }
}

impl Node {
    /// Waits until the share `hash` is withdrawn; returns the reason told.
    pub async fn wait_broken(&mut self, what: &str, hash: InfoHash, limit: Duration) -> String {
        let e = self
            .wait_for(
                what,
                limit,
                |e| matches!(e, Event::ShareBroken { hash: h, .. } if *h == hash),
            )
            .await;
        let Event::ShareBroken { reason, .. } = e else {
            unreachable!()
        };
        reason
    }

    /// Waits up to `limit` for an event matching `pred`; a failed
    /// download on the way fails the test.
    pub async fn wait_for(
        &mut self,
        what: &str,
        limit: Duration,
        pred: impl Fn(&Event) -> bool,
    ) -> Event {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Ok(e)) if pred(&e) => return e,
                Ok(Ok(Event::DownloadFailed { hash, reason })) => {
                    panic!("download {hash} failed while waiting for {what}: {reason}")
                }
                Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
                Ok(Err(e)) => panic!("event bus: {e}"),
                Err(_) => panic!(
                    "timed out after {limit:?} waiting for {what}; transfers: {:#?}",
                    self.svc.engine.transfers()
                ),
            }
        }
    }

    /// Waits until `user` publishes `hash` from an online resource.
    pub async fn wait_source(&mut self, user: &str, hash: InfoHash) {
        let catalog = self.svc.catalog.clone();
        let has = move || {
            catalog
                .sources(&hash)
                .iter()
                .any(|s| s.jid == jid(user) && s.online)
        };
        if has() {
            return;
        }
        self.wait_for(
            &format!("{user} as a source of {hash}"),
            Duration::from_secs(30),
            |_| has(),
        )
        .await;
    }

    /// Waits until the download of `hash` has finished (or is seeding).
    pub async fn wait_finished(&mut self, hash: InfoHash, limit: Duration) {
        if self
            .svc
            .engine
            .transfers()
            .iter()
            .any(|t| t.hash == hash && t.state == TransferState::Seeding)
        {
            return;
        }
        self.wait_for(
            &format!("download {hash} to finish"),
            limit,
            |e| matches!(e, Event::DownloadFinished { hash: h, .. } if *h == hash),
        )
        .await;
    }
}

/// Writes `bytes` random bytes to `path`.
pub fn random_file(path: &Path, bytes: usize) {
    let mut f = std::fs::File::create(path).unwrap();
    let mut rng = rand::rng();
    let mut buf = vec![0u8; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(buf.len());
        rng.fill_bytes(&mut buf[..n]);
        f.write_all(&buf[..n]).unwrap();
        left -= n;
    }
}

/// The two files hold the same bytes.
pub fn assert_same_file(a: &Path, b: &Path) {
    let (x, y) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
    assert!(
        x.len() == y.len() && x == y,
        "{} and {} differ",
        a.display(),
        b.display()
    );
}
