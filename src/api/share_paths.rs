//! Sharing a batch of paths (files dropped on the window, picked in a
//! dialog, or given to the `share_paths` command), shares out. Each path is shared
//! on its own, so one unreadable path does not stop the others; hashing
//! progress goes out as `Hashing`/`HashingDone` events.

use std::collections::HashSet;
use std::path::PathBuf;

use serde::Serialize;

use crate::shares::{Audience, Share};
use crate::torrent::Engine;

/// What became of one path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShareOutcome {
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub share: Option<Share>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Shares every path in turn (hashing is disk-bound: one at a time is
/// fastest), once each, in the order given, for `audience` (none: as
/// [`Engine::share_for`] says).
pub async fn share_each(
    engine: &Engine,
    paths: &[PathBuf],
    audience: Option<Audience>,
) -> Vec<ShareOutcome> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for path in paths {
        if path.as_os_str().is_empty() || !seen.insert(path.clone()) {
            continue;
        }
        let shown = path.display().to_string();
        let result = if path.is_relative() {
            Err(format!(
                "cannot share {shown}: not an absolute path (drop the file, or pick it in the dialog)"
            ))
        } else {
            engine
                .share_for(path, audience.clone())
                .await
                .map_err(|e| e.to_string())
        };
        out.push(match result {
            Ok(share) => ShareOutcome {
                path: shown,
                share: Some(share),
                error: None,
            },
            Err(error) => ShareOutcome {
                path: shown,
                share: None,
                error: Some(error),
            },
        });
    }
    out
}
