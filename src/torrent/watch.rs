//! Shared folders stay current (issue 17, item 2): every shared folder (and
//! the folder of every shared file) is watched with `notify` (inotify on
//! Linux, ReadDirectoryChangesW on Windows, FSEvents on macOS); a change
//! marks the share, and once its files have been quiet for [`QUIET`] it is
//! rebuilt and republished (`rebuild.rs`). Where watching is unavailable,
//! or the watcher lost events (an overflow), the periodic check of the
//! shares' stamps (`stats.rs`, every `SHARE_CHECK_EVERY`) notices the
//! change instead and marks the share the same way.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use notify::{EventKind, RecursiveMode, Watcher};

use super::rebuild::{remove_manifest, Rebuilt};
use super::{Engine, Kind, Record, Stamp};
use crate::events::Event;
use crate::shares::InfoHash;

/// How long a changed share's files must be quiet before it is rebuilt (a
/// copy of many files, a program saving in several steps, end first).
pub const QUIET: Duration = Duration::from_secs(3);
/// Tests shorten [`QUIET`] with this variable (milliseconds).
pub const QUIET_ENV: &str = "BITWEEN_TEST_WATCH_QUIET_MS";
/// How often marked shares are looked at.
const TICK: Duration = Duration::from_millis(250);
/// A rebuild that failed (a file vanished while it was read) is tried
/// again this many times before the share is withdrawn.
const RETRIES: u32 = 3;

/// A share whose files changed and that waits for them to be quiet.
struct Pending {
    /// The last change seen.
    since: Instant,
    /// The stamp the periodic check saw (a check that sees the same one
    /// again does not postpone the rebuild).
    seen: Option<Stamp>,
}

#[derive(Default)]
struct State {
    /// Shares (by path) waiting to be rebuilt.
    pending: HashMap<PathBuf, Pending>,
    rebuilding: HashSet<PathBuf>,
    failures: HashMap<PathBuf, u32>,
    /// Replaced versions still seeding for a contact who fetches them.
    retiring: HashSet<InfoHash>,
    /// Shared paths whose folder is watched (live shares).
    watched: HashSet<PathBuf>,
}

/// The watcher's state, kept by the engine.
pub(super) struct Watch {
    /// The data dir's torrent folder (where the files' stamps are kept).
    manifests: PathBuf,
    quiet: Duration,
    state: Mutex<State>,
}

impl Watch {
    pub(super) fn new(data_dir: &Path) -> Watch {
        let quiet = std::env::var(QUIET_ENV)
            .ok()
            .and_then(|v| v.parse().ok())
            .map_or(QUIET, Duration::from_millis);
        Watch {
            manifests: data_dir.join("torrents"),
            quiet,
            state: Mutex::default(),
        }
    }

    pub(super) fn manifests(&self) -> &Path {
        &self.manifests
    }

    pub(super) fn set_retiring(&self, hash: InfoHash, on: bool) {
        let mut state = self.state.lock().unwrap();
        if on {
            state.retiring.insert(hash);
        } else {
            state.retiring.remove(&hash);
        }
    }

    /// Whether `hash` is a replaced version still seeding.
    pub(super) fn is_retiring(&self, hash: &InfoHash) -> bool {
        self.state.lock().unwrap().retiring.contains(hash)
    }

    /// Whether the share of `path` is watched for changes (a live share).
    pub(super) fn is_watched(&self, path: &Path) -> bool {
        self.state.lock().unwrap().watched.contains(path)
    }

    /// Notes a change of the share of `path`; `seen`: the stamp the
    /// periodic check found (None: the watcher saw a change).
    pub(super) fn changed(&self, path: &Path, seen: Option<Stamp>) {
        let mut state = self.state.lock().unwrap();
        if seen.is_some() && state.rebuilding.contains(path) {
            return; // the stamp is renewed when the rebuild ends
        }
        match state.pending.get_mut(path) {
            Some(p) if seen.is_some() && p.seen == seen => {}
            Some(p) => {
                p.since = Instant::now();
                p.seen = seen;
            }
            None => {
                state.pending.insert(
                    path.to_path_buf(),
                    Pending {
                        since: Instant::now(),
                        seen,
                    },
                );
            }
        }
    }

    /// The shares whose files have been quiet long enough, marked as being
    /// rebuilt.
    fn due(&self) -> Vec<PathBuf> {
        let mut state = self.state.lock().unwrap();
        let quiet = self.quiet;
        let due: Vec<PathBuf> = state
            .pending
            .iter()
            .filter(|(_, p)| p.since.elapsed() >= quiet)
            .map(|(path, _)| path.clone())
            .filter(|path| !state.rebuilding.contains(path))
            .collect();
        for path in &due {
            state.pending.remove(path);
            state.rebuilding.insert(path.clone());
        }
        due
    }

    /// A rebuild ended; a failed one is retried (after the quiet time)
    /// until [`RETRIES`]. Returns whether to give up.
    fn ended(&self, path: &Path, failed: bool) -> bool {
        let mut state = self.state.lock().unwrap();
        state.rebuilding.remove(path);
        if !failed {
            state.failures.remove(path);
            return false;
        }
        let failures = state.failures.entry(path.to_path_buf()).or_default();
        *failures += 1;
        if *failures > RETRIES {
            state.failures.remove(path);
            return true;
        }
        state.pending.insert(
            path.to_path_buf(),
            Pending {
                since: Instant::now(),
                seen: None,
            },
        );
        false
    }

    /// Forgets a torrent that is no longer ours (`record`, if it was known).
    pub(super) fn forget(&self, hash: &InfoHash, record: Option<Record>) {
        if let Some(Kind::Share { path, .. }) = record.map(|r| r.kind) {
            let mut state = self.state.lock().unwrap();
            state.pending.remove(&path);
            state.failures.remove(&path);
            remove_manifest(&self.manifests, hash);
        }
    }

    /// A share whose files were added, removed or resized while the app was
    /// closed is rebuilt once the watcher runs, if its path still exists.
    pub(super) fn rebuild_later(&self, path: &Path) -> bool {
        let exists = std::fs::symlink_metadata(path).is_ok();
        if exists {
            self.changed(path, None);
        }
        exists
    }
}

/// What the watcher task keeps: the shares by path and what is watched.
struct Watched {
    watcher: Option<notify::RecommendedWatcher>,
    /// Shared paths: folders (whole trees) and files.
    shares: HashSet<PathBuf>,
    /// Folders watched, and how.
    folders: HashMap<PathBuf, RecursiveMode>,
}

impl Watched {
    /// Watches what the shares of `paths` need, and no more.
    fn sync(&mut self, paths: HashSet<PathBuf>) -> HashSet<PathBuf> {
        let mut wanted: HashMap<PathBuf, RecursiveMode> = HashMap::new();
        for path in &paths {
            if path.is_dir() {
                wanted.insert(path.clone(), RecursiveMode::Recursive);
            } else if let Some(parent) = path.parent() {
                // The folder, not the file: a file replaced by a program
                // saving it (write elsewhere, rename over) stays watched.
                wanted
                    .entry(parent.to_path_buf())
                    .or_insert(RecursiveMode::NonRecursive);
            }
        }
        let mut live = HashSet::new();
        if let Some(watcher) = self.watcher.as_mut() {
            for (folder, mode) in &self.folders {
                if wanted.get(folder) != Some(mode) {
                    let _ = watcher.unwatch(folder);
                }
            }
            let mut folders = HashMap::new();
            for (folder, mode) in wanted {
                if self.folders.get(&folder) == Some(&mode) {
                    folders.insert(folder, mode);
                    continue;
                }
                match watcher.watch(&folder, mode) {
                    Ok(()) => {
                        folders.insert(folder, mode);
                    }
                    Err(e) => tracing::warn!(
                        folder = %folder.display(),
                        "cannot watch it ({e}); its shares are checked every few seconds instead"
                    ),
                }
            }
            self.folders = folders;
            for path in &paths {
                let folder = if path.is_dir() {
                    Some(path.as_path())
                } else {
                    path.parent()
                };
                if folder.is_some_and(|f| self.folders.contains_key(f)) {
                    live.insert(path.clone());
                }
            }
        }
        self.shares = paths;
        live
    }

    /// The shares a changed path belongs to.
    fn shares_of(&self, changed: &Path) -> Vec<PathBuf> {
        changed
            .ancestors()
            .filter(|a| self.shares.contains(*a))
            .map(Path::to_path_buf)
            .collect()
    }
}

impl Engine {
    /// Every shared path.
    fn shared_paths(&self) -> HashSet<PathBuf> {
        let state = self.inner.state.lock().unwrap();
        state
            .torrents
            .iter()
            .filter_map(|r| match &r.kind {
                Kind::Share { path, .. } => Some(path.clone()),
                _ => None,
            })
            .collect()
    }

    /// Watches the shares and rebuilds the changed ones once quiet.
    pub(super) fn spawn_watch(&self) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let watcher = notify::recommended_watcher(move |res| {
            let _ = tx.send(res);
        });
        let watcher = match watcher {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(
                    "cannot watch shared folders ({e}); they are checked every few seconds instead"
                );
                None
            }
        };
        let mut watched = Watched {
            watcher,
            shares: HashSet::new(),
            folders: HashMap::new(),
        };
        let engine = Arc::downgrade(&self.inner);
        let stop = self.inner.stop.clone();
        let mut events = self.inner.events.subscribe();
        let manifests = &self.inner.watch.manifests;
        let ignored = manifests.parent().unwrap_or(manifests).to_path_buf();
        let live = watched.sync(self.shared_paths());
        self.inner.watch.state.lock().unwrap().watched = live;
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                let mut tick = tokio::time::interval(TICK);
                loop {
                    let mut resync = false;
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        ev = events.recv() => match ev {
                            Ok(Event::LocalSharesChanged)
                            | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => resync = true,
                            Ok(_) => {}
                            Err(_) => break,
                        },
                        Some(res) = rx.recv() => {
                            let Some(inner) = engine.upgrade() else { break };
                            note(&inner.watch, &watched, &ignored, res);
                        }
                        _ = tick.tick() => {
                            let Some(inner) = engine.upgrade() else { break };
                            let e = Engine { inner };
                            for path in e.inner.watch.due() {
                                let e = e.clone();
                                tokio::spawn(async move { e.rebuild_and_retry(path).await });
                            }
                        }
                    }
                    if resync {
                        let Some(inner) = engine.upgrade() else { break };
                        let e = Engine { inner };
                        let paths = e.shared_paths();
                        // (Watching a large tree walks it.)
                        let multi = tokio::runtime::Handle::current().runtime_flavor()
                            == tokio::runtime::RuntimeFlavor::MultiThread;
                        let live = if multi {
                            tokio::task::block_in_place(|| watched.sync(paths))
                        } else {
                            watched.sync(paths)
                        };
                        e.inner.watch.state.lock().unwrap().watched = live;
                    }
                }
            },
            tracing::debug_span!("watch"),
        ));
    }

    async fn rebuild_and_retry(&self, path: PathBuf) {
        let outcome = self.rebuild(&path).await;
        let failed = match &outcome {
            Rebuilt::Skipped(Some(reason)) => {
                tracing::warn!(path = %path.display(), "cannot rebuild the share: {reason}");
                true
            }
            _ => false,
        };
        if self.inner.watch.ended(&path, failed) {
            if let (Some(r), Rebuilt::Skipped(Some(reason))) = (self.share_at(&path), outcome) {
                self.withdraw(
                    r.info_hash,
                    format!(
                        "{} changed and cannot be read again ({reason}); it is no longer shared",
                        path.display()
                    ),
                )
                .await;
            }
        }
    }
}

/// Marks the shares a watcher event touches (reads are not changes).
fn note(watch: &Watch, watched: &Watched, ignored: &Path, res: notify::Result<notify::Event>) {
    match res {
        Ok(event) if event.need_rescan() => {
            tracing::info!("the watcher lost events; every share is looked at again");
            for path in &watched.shares {
                watch.changed(path, None);
            }
        }
        Ok(event) => {
            if matches!(event.kind, EventKind::Access(_)) {
                return;
            }
            for changed in &event.paths {
                if changed.starts_with(ignored) {
                    continue; // our own data dir inside a shared folder
                }
                for share in watched.shares_of(changed) {
                    watch.changed(&share, None);
                }
            }
        }
        // The periodic check still sees what changed.
        Err(e) => tracing::debug!("watcher error: {e}"),
    }
}
