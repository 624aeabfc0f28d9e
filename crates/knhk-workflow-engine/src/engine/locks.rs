//! The per-case locks, each holding the case in memory while it runs.
//!
//! A step of a case runs under its case's lock, so that steps of one case are decided, committed
//! and have their effects performed one after the other. The lock's cell caches the replayed
//! case between steps. The rule for keeping an entry is explicit: an entry stays while someone
//! holds or waits for its lock, or while its cell holds a case (a running case touched by this
//! engine). The last holder to leave an empty cell (the case ended, or was never there) removes
//! the entry, so unknown ids and ended cases cost no memory.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};

use knhk_core::CaseId;
use tokio::sync::OwnedMutexGuard;

use super::{Live, lock};

type Cell = Arc<tokio::sync::Mutex<Option<Live>>>;

#[derive(Debug)]
struct Entry {
    cell: Cell,
    /// How many callers hold or wait for this lock.
    holders: usize,
}

/// The locks of the cases this engine is working on.
#[derive(Debug, Default)]
pub(super) struct CaseLocks {
    entries: Mutex<HashMap<CaseId, Entry>>,
}

impl CaseLocks {
    /// Takes the lock of a case, waiting for the step in progress, if any.
    pub(super) async fn lock(&self, id: CaseId) -> CaseGuard<'_> {
        let cell = {
            let mut entries = lock(&self.entries);
            let entry = entries.entry(id).or_insert_with(|| Entry {
                cell: Cell::default(),
                holders: 0,
            });
            entry.holders += 1;
            entry.cell.clone()
        };
        // Counted as a holder before waiting, so the entry cannot go while we wait.
        let guard = cell.lock_owned().await;
        CaseGuard {
            locks: self,
            id,
            guard,
        }
    }

    /// Returns how many cases are held in memory.
    pub(super) fn cached(&self) -> usize {
        lock(&self.entries).len()
    }
}

/// The lock of one case, with its cached state (`None`: not loaded, ended or unknown).
#[derive(Debug)]
pub(super) struct CaseGuard<'a> {
    locks: &'a CaseLocks,
    id: CaseId,
    guard: OwnedMutexGuard<Option<Live>>,
}

impl Deref for CaseGuard<'_> {
    type Target = Option<Live>;
    fn deref(&self) -> &Option<Live> {
        &self.guard
    }
}

impl DerefMut for CaseGuard<'_> {
    fn deref_mut(&mut self) -> &mut Option<Live> {
        &mut self.guard
    }
}

impl Drop for CaseGuard<'_> {
    fn drop(&mut self) {
        let mut entries = lock(&self.locks.entries);
        if let Some(entry) = entries.get_mut(&self.id) {
            entry.holders = entry.holders.saturating_sub(1);
            // The case's lock itself is released just after this, with the guard. Removing the
            // entry first is safe: nobody else holds it, and its cell caches nothing, so a
            // caller that comes now starts from a fresh entry and loads the case from the store.
            if entry.holders == 0 && self.guard.is_none() {
                entries.remove(&self.id);
            }
        }
    }
}
