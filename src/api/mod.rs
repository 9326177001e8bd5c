//! The operations a frontend needs, in one list: the JSON-RPC API of
//! `bitweend` and (later) the desktop shell's commands both call
//! [`Api::call`]. Method names and result shapes of the original are kept
//! (`Api.versions`, `bt.*`, `xmpp.*`) so scripts written for it still work.
//!
//! Not here: HTTP, authentication and the event stream (`http.rs`).

pub mod http;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::service::Service;
use crate::shares::InfoHash;
use crate::xmpp::contact_jid;

/// A JSON-RPC error: code and a message that says what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: i64,
    pub message: String,
}

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
/// The operation itself failed (a path that does not exist, ...).
pub const OPERATION_FAILED: i64 = -32000;
pub const UNAUTHORIZED: i64 = -32001;
pub const FORBIDDEN: i64 = -32002;

impl ApiError {
    fn params(message: impl Into<String>) -> ApiError {
        ApiError {
            code: INVALID_PARAMS,
            message: message.into(),
        }
    }
    fn failed(e: impl std::fmt::Display) -> ApiError {
        ApiError {
            code: OPERATION_FAILED,
            message: e.to_string(),
        }
    }
}

/// Every method, with its parameter names in positional order.
pub const METHODS: &[(&str, &[&str])] = &[
    ("Api.versions", &[]),
    ("Api.exit", &[]),
    ("bt.get_torrents", &[]),
    ("bt.add_path", &["path"]),
    ("bt.add_torrent_by_hash", &["hash", "save_path"]),
    ("bt.del_torrent", &["hash"]),
    ("xmpp.get_hashes", &[]),
    ("xmpp.get_shares", &[]),
    ("status", &[]),
    ("shares", &[]),
    ("share", &["path"]),
    ("unshare", &["hash"]),
    ("catalog", &["jid"]),
    ("search", &["text", "limit"]),
    ("download", &["hash", "to"]),
    ("transfers", &[]),
    ("pause", &["hash"]),
    ("resume", &["hash"]),
    ("cancel", &["hash", "delete"]),
    ("contacts", &[]),
    ("add_contact", &["jid"]),
    ("accept_contact", &["jid"]),
    ("decline_contact", &["jid"]),
    ("diagnose", &["jid"]),
];

/// Named parameters, from a JSON-RPC `params` array (positional) or object.
struct Params {
    method: &'static str,
    values: BTreeMap<&'static str, Value>,
}

impl Params {
    fn new(
        method: &'static str,
        names: &[&'static str],
        params: Value,
    ) -> Result<Params, ApiError> {
        let mut values = BTreeMap::new();
        match params {
            Value::Null => {}
            Value::Array(items) => {
                if items.len() > names.len() {
                    return Err(ApiError::params(format!(
                        "{method} takes at most {} parameters ({}), got {}",
                        names.len(),
                        names.join(", "),
                        items.len()
                    )));
                }
                values.extend(names.iter().copied().zip(items));
            }
            Value::Object(map) => {
                for (k, v) in map {
                    let Some(name) = names.iter().find(|n| **n == k) else {
                        return Err(ApiError::params(format!(
                            "{method} has no parameter {k:?} (it takes: {})",
                            names.join(", ")
                        )));
                    };
                    values.insert(*name, v);
                }
            }
            _ => return Err(ApiError::params("params must be an array or an object")),
        }
        Ok(Params { method, values })
    }

    fn opt_str(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.values.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ApiError::params(format!(
                "{}: {name} must be a string",
                self.method
            ))),
        }
    }

    fn str(&self, name: &str) -> Result<String, ApiError> {
        self.opt_str(name)?
            .ok_or_else(|| ApiError::params(format!("{}: missing parameter {name}", self.method)))
    }

    fn hash(&self) -> Result<InfoHash, ApiError> {
        let s = self.str("hash")?;
        s.parse()
            .map_err(|e| ApiError::params(format!("{}: {e}", self.method)))
    }

    fn bool(&self, name: &str) -> Result<bool, ApiError> {
        match self.values.get(name) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(ApiError::params(format!(
                "{}: {name} must be true or false",
                self.method
            ))),
        }
    }
}

/// The operations over one running backend.
#[derive(Clone)]
pub struct Api {
    svc: Service,
    exit: CancellationToken,
}

fn addr_pair(a: &SocketAddr) -> Value {
    json!([a.ip().to_string(), a.port()])
}

impl Api {
    /// `exit` is cancelled when a client calls `Api.exit`.
    pub fn new(svc: Service, exit: CancellationToken) -> Api {
        Api { svc, exit }
    }

    pub fn service(&self) -> &Service {
        &self.svc
    }

    /// Runs one method. Unknown methods and bad parameters get JSON-RPC
    /// errors whose message says what is wrong; nothing changes then.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, ApiError> {
        let Some((name, names)) = METHODS.iter().find(|(n, _)| *n == method) else {
            return Err(ApiError {
                code: METHOD_NOT_FOUND,
                message: format!("unknown method {method:?}"),
            });
        };
        let p = Params::new(name, names, params)?;
        let engine = &self.svc.engine;
        Ok(match *name {
            "Api.versions" => json!({
                "bitween": env!("CARGO_PKG_VERSION"),
                "api": 1,
                "protocol": crate::NS_SHARES,
            }),
            "Api.exit" => {
                self.exit.cancel();
                json!(true)
            }
            "bt.get_torrents" | "transfers" => to_json(&engine.transfers()),
            "bt.add_path" | "share" => {
                let path = PathBuf::from(p.str("path")?);
                to_json(&engine.share(&path).await.map_err(ApiError::failed)?)
            }
            "bt.add_torrent_by_hash" | "download" => {
                let hash = p.hash()?;
                let to = p.opt_str(if *name == "download" {
                    "to"
                } else {
                    "save_path"
                })?;
                engine
                    .download(hash, to.map(PathBuf::from))
                    .await
                    .map_err(ApiError::failed)?;
                json!(true)
            }
            "bt.del_torrent" | "unshare" => {
                engine.unshare(&p.hash()?).await.map_err(ApiError::failed)?;
                json!(true)
            }
            "xmpp.get_hashes" => self.get_hashes(),
            "xmpp.get_shares" => self.get_shares(),
            "status" => {
                let own = self.svc.own_addresses();
                let (contacts, shares) = self.svc.catalog.totals();
                json!({
                    "jid": self.svc.xmpp.jid(),
                    "connection": self.svc.xmpp.state(),
                    "bt_port": engine.listen_port(),
                    "addresses": own.addresses,
                    "catalog": { "contacts": contacts, "shares": shares },
                })
            }
            "shares" => to_json(&engine.local_shares()),
            "catalog" => match p.opt_str("jid")? {
                // One contact (the UI refreshes only the one that changed).
                Some(jid) => to_json(&self.svc.catalog.contact(&jid)),
                None => {
                    let contacts: Vec<_> = self
                        .svc
                        .catalog
                        .contacts()
                        .iter()
                        .filter_map(|c| self.svc.catalog.contact(c))
                        .collect();
                    to_json(&contacts)
                }
            },
            "search" => {
                let limit = match p.values.get("limit") {
                    None | Some(Value::Null) => usize::MAX,
                    Some(v) => v.as_u64().map(|n| n as usize).ok_or_else(|| {
                        ApiError::params("search: limit must be a whole number of hits")
                    })?,
                };
                to_json(&self.svc.catalog.search_first(&p.str("text")?, limit))
            }
            "pause" => {
                engine.pause(&p.hash()?).await.map_err(ApiError::failed)?;
                json!(true)
            }
            "resume" => {
                engine.resume(&p.hash()?).await.map_err(ApiError::failed)?;
                json!(true)
            }
            "cancel" => {
                engine
                    .cancel(&p.hash()?, p.bool("delete")?)
                    .await
                    .map_err(ApiError::failed)?;
                json!(true)
            }
            "contacts" => to_json(&self.svc.xmpp.roster().await.map_err(ApiError::failed)?),
            "add_contact" | "accept_contact" | "decline_contact" => {
                let jid =
                    contact_jid(&p.str("jid")?).map_err(|e| ApiError::params(e.to_string()))?;
                let x = &self.svc.xmpp;
                match *name {
                    "add_contact" => x.add_contact(jid),
                    "accept_contact" => x.accept_contact(jid),
                    _ => x.decline_contact(jid),
                }
                .map_err(ApiError::failed)?;
                json!(true)
            }
            "diagnose" => {
                let jid =
                    contact_jid(&p.str("jid")?).map_err(|e| ApiError::params(e.to_string()))?;
                let own = self.svc.own_addresses();
                let mut out = Vec::new();
                if let Some(c) = self.svc.catalog.contact(&jid.to_string()) {
                    for r in c.resources {
                        let d =
                            crate::addresses::diagnose(&r.addresses, &own, Duration::from_secs(3))
                                .await;
                        out.push(json!({"resource": r.resource, "diagnosis": d}));
                    }
                }
                json!(out)
            }
            other => unreachable!("method {other} is listed but not handled"),
        })
    }

    /// `{hash: [[addr, port], ...]}` over every online source.
    fn get_hashes(&self) -> Value {
        let catalog = &self.svc.catalog;
        let out: serde_json::Map<String, Value> = catalog
            .hashes()
            .into_iter()
            .map(|h| {
                let online = catalog.sources(&h).into_iter().filter(|s| s.online);
                (h.to_hex(), online.map(|s| addr_pair(&s.address)).collect())
            })
            .collect();
        Value::Object(out)
    }

    /// `{jid: {resource: {ip_v4, ip_v6, shares: {hash: {hash, name, size}}}}}`.
    fn get_shares(&self) -> Value {
        let mut out = serde_json::Map::new();
        for jid in self.svc.catalog.contacts() {
            let Some(c) = self.svc.catalog.contact(&jid) else {
                continue;
            };
            let mut resources = serde_json::Map::new();
            for r in c.resources {
                let (v4, v6): (Vec<_>, Vec<_>) = r.addresses.iter().partition(|a| a.is_ipv4());
                let shares: serde_json::Map<String, Value> = r
                    .shares
                    .iter()
                    .map(|s| {
                        (
                            s.hash.to_hex(),
                            json!({"hash": s.hash.to_hex(), "name": s.name.as_str(), "size": s.size}),
                        )
                    })
                    .collect();
                resources.insert(
                    r.resource,
                    json!({
                        "ip_v4": v4.into_iter().map(addr_pair).collect::<Vec<_>>(),
                        "ip_v6": v6.into_iter().map(addr_pair).collect::<Vec<_>>(),
                        "shares": shares,
                    }),
                );
            }
            out.insert(jid, Value::Object(resources));
        }
        Value::Object(out)
    }
}

fn to_json<T: serde::Serialize + ?Sized>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}
