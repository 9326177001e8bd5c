//! The engine's bookkeeping that makes many torrents cheap: each change
//! of the torrent list written as one journal line (`persist`, see
//! `store.rs`), running torrents found by the id librqbit knows them by
//! (`live`), and the count of shares being made (`is_sharing`), which lets
//! the publisher wait for the end of a burst.

use std::sync::atomic::{AtomicUsize, Ordering};

use librqbit::AddTorrentResponse;

use super::{store, Engine, ManagedTorrentHandle};
use crate::shares::InfoHash;

impl Engine {
    /// Records the current state of `hash`'s record (or that it is gone)
    /// in the store's journal. Calls are serialized, and each one reads the
    /// record once it has its turn, so the last line written for a torrent
    /// is always its newest state. Folds the journal into a new snapshot
    /// when it has grown larger than the list.
    pub(super) fn persist(&self, hash: &InfoHash) {
        let _turn = self.inner.saving.lock().unwrap();
        let (change, records) = {
            let state = self.inner.state.lock().unwrap();
            let change = match state.torrents.iter().find(|r| r.info_hash == *hash) {
                Some(r) => store::Change::Put(Box::new(r.clone())),
                None => store::Change::Drop(*hash),
            };
            (change, state.torrents.len())
        };
        match self.inner.store.append(&change, records) {
            Ok(false) => {}
            Ok(true) => {
                let state = self.inner.state.lock().unwrap().clone();
                if let Err(e) = self.inner.store.save(&state) {
                    tracing::error!("cannot save the torrent list: {e}");
                }
            }
            Err(e) => tracing::error!("cannot save the torrent list: {e}"),
        }
    }

    /// Whether a share is being made right now: the publisher holds a
    /// burst's publish until the shares are quiet (`Service`).
    pub fn is_sharing(&self) -> bool {
        self.inner.sharing.load(Ordering::SeqCst) > 0
    }

    /// Counts a share being made until the guard is dropped.
    pub(super) fn sharing(&self) -> Sharing<'_> {
        self.inner.sharing.fetch_add(1, Ordering::SeqCst);
        Sharing(&self.inner.sharing)
    }

    /// The running torrent of `hash`, if librqbit has it. Looked up by the
    /// id we gave it: librqbit's own lookup by info hash walks every
    /// torrent, which made each statistics tick cost O(N²).
    pub(super) fn live(&self, hash: &InfoHash) -> Option<ManagedTorrentHandle> {
        let id = *self.inner.ids.lock().unwrap().get(hash)?;
        self.inner
            .session
            .get(librqbit::api::TorrentIdOrHash::Id(id))
            .filter(|h| h.info_hash().0 == hash.0)
    }

    /// The running torrent librqbit answered an add with, if it is `hash`'s
    /// (remembering its id for [`live`](Self::live)).
    pub(super) fn handle_of(
        &self,
        added: AddTorrentResponse,
        hash: &InfoHash,
    ) -> Option<ManagedTorrentHandle> {
        let handle = added
            .into_handle()
            .filter(|handle| handle.info_hash().0 == hash.0)?;
        self.inner.ids.lock().unwrap().insert(*hash, handle.id());
        Some(handle)
    }
}

/// A share being made (see `Engine::is_sharing`).
pub(super) struct Sharing<'a>(&'a AtomicUsize);

impl Drop for Sharing<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
