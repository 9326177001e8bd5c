//! A new version of a folder we downloaded before, downloaded into the same
//! place (issue 17, item 2): when a contact's shared folder changed and was
//! republished under a new info hash, downloading the new version reuses our
//! earlier download's folder, so librqbit's initial check finds the
//! unchanged files' pieces and only the changed ones travel.
//!
//! The safety rule holds: only files our earlier download created (the
//! files of its torrent, under the folder it created) are opened again;
//! every other file of the new version must not exist yet, and is created.
//! Files the new version no longer has are left where they are.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use librqbit::ValidatedTorrentMetaV1Info;
use librqbit_core::torrent_metainfo::torrent_from_bytes;

use super::{Engine, Kind};
use crate::shares::InfoHash;

/// Our earlier download that a new download updates.
pub(super) struct Earlier {
    pub hash: InfoHash,
    /// The folder it created.
    pub top: PathBuf,
    /// Its files' paths inside the torrent: the only ones reopened.
    pub ours: Arc<HashSet<PathBuf>>,
}

/// The relative paths of a folder torrent's files (padding left out).
fn torrent_files(torrent: &[u8]) -> Option<HashSet<PathBuf>> {
    let meta = torrent_from_bytes(torrent).ok()?;
    let files = meta.info.data.files.as_ref()?;
    files
        .iter()
        .filter(|f| !f.attr.as_ref().is_some_and(|a| a.as_ref().contains(&b'p')))
        .map(|f| {
            let mut path = PathBuf::new();
            for part in &f.path {
                path.push(std::str::from_utf8(part.as_ref()).ok()?);
            }
            Some(path)
        })
        .collect()
}

impl Engine {
    /// The finished folder download of ours that the download of `hash`
    /// (named `name`, into `folder`) is a new version of: the same name,
    /// the same folder, from a contact who no longer lists it but lists
    /// `hash`; and none of the new version's files exists there unless our
    /// download created it.
    pub(super) fn earlier_version(
        &self,
        hash: &InfoHash,
        folder: &Path,
        name: &str,
        info: &ValidatedTorrentMetaV1Info<librqbit::ByteBufOwned>,
    ) -> Option<Earlier> {
        info.info().files.as_ref()?;
        let offering: HashSet<String> = self
            .inner
            .catalog
            .sources(hash)
            .into_iter()
            .map(|s| s.jid)
            .collect();
        let candidates: Vec<_> = {
            let state = self.inner.state.lock().unwrap();
            state
                .torrents
                .iter()
                .filter(|r| {
                    r.info_hash != *hash
                        && r.finished
                        && r.name == name
                        && r.multi == Some(true)
                        && matches!(&r.kind, Kind::Download { folder: f } if f == folder)
                })
                .filter_map(|r| Some((r.info_hash, r.target.clone()?)))
                .collect()
        };
        for (old, top) in candidates {
            let replaced_by_its_source = {
                let old_sources = self.inner.catalog.sources(&old);
                !offering.is_empty() && old_sources.iter().all(|s| !offering.contains(&s.jid))
            };
            if !replaced_by_its_source || !top.is_dir() {
                continue;
            }
            let Some(ours) = self
                .inner
                .store
                .load_torrent(&old)
                .and_then(|t| torrent_files(&t))
            else {
                continue;
            };
            let clash = info.iter_file_details().any(|f| {
                !f.attrs().padding && {
                    let relative = f.filename.to_pathbuf();
                    !ours.contains(&relative)
                        && std::fs::symlink_metadata(top.join(&relative)).is_ok()
                }
            });
            if clash {
                tracing::info!(
                    "{} holds files our download did not create; the new version goes to a new folder",
                    top.display()
                );
                continue;
            }
            return Some(Earlier {
                hash: old,
                top,
                ours: Arc::new(ours),
            });
        }
        None
    }
}
