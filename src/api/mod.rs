//! The operations a front end needs, as one typed API: the desktop app's
//! commands, bitweend's JSON-RPC API (`rpc.rs`, a table from method names
//! to these methods) and bitweenc (which reads the same result types) all
//! go through [`Api`]. Every failure is an [`ApiError`] with a kind a UI
//! can act on and a message a person can read.
//!
//! Not here: HTTP, authentication and the event stream (`http.rs`).

mod error;
mod groups;
pub mod http;
pub mod rpc;
mod share_paths;

pub use error::{
    ApiError, ErrorKind, FORBIDDEN, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND,
    OPERATION_FAILED, PARSE_ERROR, UNAUTHORIZED,
};
pub use rpc::METHODS;
pub use share_paths::ShareOutcome;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::addresses::Diagnosis;
use crate::events::{EventBus, Transfer, TransferState};
use crate::service::Service;
use crate::shares::{Audience, Catalog, ContactView, InfoHash, SearchHit, Share};
use crate::xmpp::{contact_jid, ConnectionState, Contact};

/// `Api.versions`.
/// The outcome of checking one share's files against its hashes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verified {
    pub hash: InfoHash,
    pub name: String,
    /// Every piece matched; when not, the share is no longer shared.
    pub intact: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versions {
    pub bitween: String,
    pub api: u32,
    pub protocol: String,
}

/// `status`: who we are, whether we are online, where we can be reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub jid: String,
    pub connection: ConnectionState,
    pub bt_port: u16,
    pub addresses: Vec<SocketAddr>,
    /// Our port mappings at the router.
    #[serde(default)]
    pub natpmp: crate::addresses::MappingStatus,
    #[serde(default)]
    pub upnp: crate::addresses::MappingStatus,
    pub catalog: CatalogTotals,
    /// How our restricted lists (shares for some contacts only) stand.
    #[serde(default)]
    pub restricted: crate::restricted::RestrictedStatus,
}

/// How much the contacts' catalog holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogTotals {
    pub contacts: usize,
    pub shares: usize,
}

/// `diagnose`: one contact resource and whether we can reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResourceDiagnosis {
    pub resource: String,
    pub diagnosis: Diagnosis,
    /// Why the last connection to this device failed on every path
    /// (direct, punched, relayed), if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paths: Option<String>,
}

/// `xmpp.get_shares` (the original's shape): per contact, per resource.
pub type OriginalShares = BTreeMap<String, BTreeMap<String, OriginalResource>>;

/// One resource in the original's shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginalResource {
    pub ip_v4: Vec<(String, u16)>,
    pub ip_v6: Vec<(String, u16)>,
    pub shares: BTreeMap<String, Share>,
}

fn addr_pair(a: &SocketAddr) -> (String, u16) {
    (a.ip().to_string(), a.port())
}

/// The operations over one running backend.
#[derive(Clone)]
pub struct Api {
    svc: Service,
    exit: CancellationToken,
}

impl Api {
    /// `exit` is cancelled when a client calls `Api.exit`.
    pub fn new(svc: Service, exit: CancellationToken) -> Api {
        Api { svc, exit }
    }

    /// Runs one JSON-RPC method by name (see `rpc.rs`).
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, ApiError> {
        rpc::call(self, method, params).await
    }

    /// The backend's events.
    pub fn events(&self) -> &EventBus {
        &self.svc.events
    }

    /// A read handle on the contacts' catalog.
    pub fn catalog_handle(&self) -> Catalog {
        self.svc.catalog.clone()
    }

    pub fn versions(&self) -> Versions {
        Versions {
            bitween: env!("CARGO_PKG_VERSION").into(),
            api: 1,
            protocol: crate::NS_SHARES.into(),
        }
    }

    /// Asks the program to quit (`Api.exit`).
    pub fn exit(&self) {
        self.exit.cancel();
    }

    pub fn transfers(&self) -> Vec<Transfer> {
        self.svc.engine.transfers()
    }

    /// Hashes `path` in place and seeds it.
    pub async fn share(&self, path: &Path) -> Result<Share, ApiError> {
        self.svc.engine.share(path).await.map_err(ApiError::failed)
    }

    /// [`share`](Self::share) for the groups and contacts `to` names (none:
    /// everyone; a path already shared is then for them).
    pub async fn share_for(&self, path: &Path, to: &[String]) -> Result<Share, ApiError> {
        let audience = self.audience_of(to).await?;
        self.svc
            .engine
            .share_for(path, audience)
            .await
            .map_err(ApiError::failed)
    }

    /// Makes the share `hash` visible to the groups and contacts `to`
    /// names, or to everyone (none named).
    pub async fn set_audience(&self, hash: &InfoHash, to: &[String]) -> Result<(), ApiError> {
        let audience = self.audience_of(to).await?.unwrap_or_default();
        self.svc
            .engine
            .set_audience(hash, audience)
            .map_err(ApiError::failed)
    }

    /// The audience `to` names, each a contact's address or a group; none
    /// named, none given (everyone, or as it was).
    async fn audience_of(&self, to: &[String]) -> Result<Option<Audience>, ApiError> {
        if to.is_empty() {
            return Ok(None);
        }
        let contacts: Vec<String> = self.contacts().await?.into_iter().map(|c| c.jid).collect();
        Audience::of_targets(to, &contacts)
            .map(Some)
            .map_err(ApiError::params)
    }

    /// Shares each path in turn, reporting each outcome (the drop handler).
    pub async fn share_paths(&self, paths: &[PathBuf]) -> Vec<ShareOutcome> {
        share_paths::share_each(&self.svc.engine, paths, None).await
    }

    /// [`share_paths`](Self::share_paths) for the groups and contacts `to`
    /// names (none: everyone); a bad name refuses them all.
    pub async fn share_paths_for(
        &self,
        paths: &[PathBuf],
        to: &[String],
    ) -> Result<Vec<ShareOutcome>, ApiError> {
        let audience = self.audience_of(to).await?;
        Ok(share_paths::share_each(&self.svc.engine, paths, audience).await)
    }

    /// Downloads `hash` from every contact who has it, into `to` (default:
    /// the download folder).
    pub async fn download(&self, hash: InfoHash, to: Option<PathBuf>) -> Result<(), ApiError> {
        self.svc
            .engine
            .download(hash, to)
            .await
            .map_err(ApiError::failed)
    }

    pub async fn unshare(&self, hash: &InfoHash) -> Result<(), ApiError> {
        self.svc
            .engine
            .unshare(hash)
            .await
            .map_err(ApiError::failed)
    }

    /// Reads every piece of one share (`hash`) or of every share, one at
    /// a time, and checks it against the hashes. A share whose files no
    /// longer match is unshared (and `ShareBroken` says why).
    pub async fn verify(&self, hash: Option<&InfoHash>) -> Result<Vec<Verified>, ApiError> {
        let shares: Vec<Share> = match hash {
            Some(h) => {
                let share = self.shares().into_iter().find(|s| s.hash == *h);
                vec![share.ok_or_else(|| {
                    ApiError::params(format!(
                        "verify: {h} is not one of your shares (see `bitweenc shares`)"
                    ))
                })?]
            }
            // (Finished downloads are listed too: their pieces were checked
            // as they arrived.)
            None => {
                let own: std::collections::HashSet<InfoHash> = self
                    .transfers()
                    .into_iter()
                    .filter(|t| t.kind == crate::events::TransferKind::Share)
                    .map(|t| t.hash)
                    .collect();
                self.shares()
                    .into_iter()
                    .filter(|s| own.contains(&s.hash))
                    .collect()
            }
        };
        let mut out = Vec::new();
        for share in shares {
            let intact = self
                .svc
                .engine
                .verify(&share.hash)
                .await
                .map_err(ApiError::failed)?;
            out.push(Verified {
                hash: share.hash,
                name: share.name.to_string(),
                intact,
            });
        }
        Ok(out)
    }

    pub async fn pause(&self, hash: &InfoHash) -> Result<(), ApiError> {
        self.svc.engine.pause(hash).await.map_err(ApiError::failed)
    }

    pub async fn resume(&self, hash: &InfoHash) -> Result<(), ApiError> {
        self.svc.engine.resume(hash).await.map_err(ApiError::failed)
    }

    /// Cancels a download (or stops a share), deleting what the download
    /// wrote if `delete`.
    pub async fn cancel(&self, hash: &InfoHash, delete: bool) -> Result<(), ApiError> {
        self.svc
            .engine
            .cancel(hash, delete)
            .await
            .map_err(ApiError::failed)
    }

    /// Pauses every transfer that is not paused (the tray's Pause all).
    pub async fn pause_all(&self) {
        for t in self.transfers() {
            if t.state != TransferState::Paused {
                if let Err(e) = self.pause(&t.hash).await {
                    tracing::warn!("{}: {e}", t.name);
                }
            }
        }
    }

    /// Resumes every paused transfer (the tray's Resume all).
    pub async fn resume_all(&self) {
        for t in self.transfers() {
            if t.state == TransferState::Paused {
                if let Err(e) = self.resume(&t.hash).await {
                    tracing::warn!("{}: {e}", t.name);
                }
            }
        }
    }

    /// Changes the rate limits at once (bytes per second; None: none).
    pub fn set_limits(&self, upload: Option<NonZeroU32>, download: Option<NonZeroU32>) {
        self.svc.engine.set_upload_limit(upload);
        self.svc.engine.set_download_limit(download);
    }

    /// What Open (`folder`: Show in folder) of a transfer opens: its file
    /// or folder, or the folder that holds it.
    pub fn path_to_open(&self, hash: &InfoHash, folder: bool) -> Result<PathBuf, ApiError> {
        let t = self
            .transfers()
            .into_iter()
            .find(|t| t.hash == *hash)
            .ok_or_else(|| ApiError::failed(format!("no transfer {hash} here")))?;
        let target = if folder { t.folder } else { t.path };
        if !target.exists() {
            return Err(ApiError::failed(format!(
                "{} does not exist (yet)",
                target.display()
            )));
        }
        Ok(target)
    }

    /// Every info hash a contact lists, with the addresses of its online
    /// sources (`xmpp.get_hashes`, the original's shape).
    pub fn hashes(&self) -> BTreeMap<String, Vec<(String, u16)>> {
        let catalog = &self.svc.catalog;
        catalog
            .hashes()
            .into_iter()
            .map(|h| {
                let online = catalog.sources(&h).into_iter().filter(|s| s.online);
                (h.to_hex(), online.map(|s| addr_pair(&s.address)).collect())
            })
            .collect()
    }

    /// Every contact's resources and shares (`xmpp.get_shares`, the
    /// original's shape).
    pub fn original_shares(&self) -> OriginalShares {
        let mut out = OriginalShares::new();
        for jid in self.svc.catalog.contacts() {
            let Some(c) = self.svc.catalog.contact(&jid) else {
                continue;
            };
            let resources = c
                .resources
                .into_iter()
                .map(|r| {
                    let (v4, v6): (Vec<_>, Vec<_>) = r.addresses.iter().partition(|a| a.is_ipv4());
                    let resource = OriginalResource {
                        ip_v4: v4.into_iter().map(addr_pair).collect(),
                        ip_v6: v6.into_iter().map(addr_pair).collect(),
                        shares: r.shares.into_iter().map(|s| (s.hash.to_hex(), s)).collect(),
                    };
                    (r.resource, resource)
                })
                .collect();
            out.insert(jid, resources);
        }
        out
    }

    pub fn status(&self) -> Status {
        let own = self.svc.own_addresses();
        let (contacts, shares) = self.svc.catalog.totals();
        Status {
            jid: self.svc.xmpp.jid(),
            connection: self.svc.xmpp.state(),
            bt_port: self.svc.engine.listen_port(),
            addresses: own.addresses,
            natpmp: own.natpmp,
            upnp: own.upnp,
            catalog: CatalogTotals { contacts, shares },
            restricted: self.svc.restricted(),
        }
    }

    /// What we share (and the downloads we re-share).
    pub fn shares(&self) -> Vec<Share> {
        let mut all = self.svc.engine.local_shares();
        all.extend(
            self.svc
                .engine
                .restricted_shares()
                .into_iter()
                .map(|(s, _)| s),
        );
        all
    }

    /// Every contact we know anything about.
    pub fn catalog(&self) -> Vec<ContactView> {
        let catalog = &self.svc.catalog;
        catalog
            .contacts()
            .iter()
            .filter_map(|c| catalog.contact(c))
            .collect()
    }

    /// One contact (the UI refreshes only the one that changed).
    pub fn contact(&self, jid: &str) -> Option<ContactView> {
        self.svc.catalog.contact(jid)
    }

    /// The first `limit` shares whose name contains `text`.
    pub fn search(&self, text: &str, limit: usize) -> Vec<SearchHit> {
        self.svc.catalog.search_first(text, limit)
    }

    /// The roster.
    pub async fn contacts(&self) -> Result<Vec<Contact>, ApiError> {
        self.svc.xmpp.roster().await.map_err(ApiError::failed)
    }

    /// Asks `jid` to become a contact.
    pub fn add_contact(&self, jid: &str) -> Result<(), ApiError> {
        let jid = contact_jid(jid).map_err(|e| ApiError::params(e.to_string()))?;
        self.svc.xmpp.add_contact(jid).map_err(ApiError::failed)
    }

    pub fn accept_contact(&self, jid: &str) -> Result<(), ApiError> {
        let jid = contact_jid(jid).map_err(|e| ApiError::params(e.to_string()))?;
        self.svc.xmpp.accept_contact(jid).map_err(ApiError::failed)
    }

    pub fn decline_contact(&self, jid: &str) -> Result<(), ApiError> {
        let jid = contact_jid(jid).map_err(|e| ApiError::params(e.to_string()))?;
        self.svc.xmpp.decline_contact(jid).map_err(ApiError::failed)
    }

    /// Whether we can reach each resource of `jid`, and why not.
    pub async fn diagnose(&self, jid: &str) -> Result<Vec<ResourceDiagnosis>, ApiError> {
        let jid = contact_jid(jid).map_err(|e| ApiError::params(e.to_string()))?;
        let own = self.svc.own_addresses();
        let mut out = Vec::new();
        if let Some(c) = self.svc.catalog.contact(&jid.to_string()) {
            for r in c.resources {
                let diagnosis =
                    crate::addresses::diagnose(&r.addresses, &own, Duration::from_secs(3)).await;
                let paths = self
                    .svc
                    .engine
                    .paths()
                    .last_failure(&jid.to_string(), &r.resource);
                out.push(ResourceDiagnosis {
                    resource: r.resource,
                    diagnosis,
                    paths,
                });
            }
        }
        Ok(out)
    }
}
