//! The per-case locks, each holding the case in memory while it runs.
//!
//! A step of a case runs under its case's lock, so that steps of one case are decided, committed
//! and have their effects performed one after the other. The lock's cell caches the replayed
//! case between steps. The rule for keeping an entry is explicit: an entry stays while someone
//! holds or waits for its lock, or while its cell holds a case (a running case touched by this
//! engine). The last holder to leave an empty cell (the case ended, or was never there) removes
//! the entry, so unknown ids and ended cases cost no memory.
//!
//! The cases cached while nobody holds their lock are bounded (`EngineConfig::case_cache`):
//! past the bound, the one that entered the cache first is dropped, and its next step loads it
//! from the store again. The store holds every committed step, so dropping a cached case loses nothing.

use std::collections::{HashMap, VecDeque};
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
    /// Whether the case is listed in `Entries::cached`.
    listed: bool,
}

/// The locks of the cases this engine is working on.
#[derive(Debug)]
pub(super) struct CaseLocks {
    entries: Mutex<Entries>,
    /// The most cases kept in memory while nobody holds their lock.
    capacity: usize,
}

#[derive(Debug, Default)]
struct Entries {
    by_case: HashMap<CaseId, Entry>,
    /// The cases left cached by their last holder, in the order they were first left so. A
    /// listing may outlive its entry (the case ended meanwhile); eviction skips it.
    cached: VecDeque<CaseId>,
}

impl CaseLocks {
    /// Creates the locks, keeping at most `capacity` idle cases in memory.
    pub(super) fn new(capacity: usize) -> CaseLocks {
        CaseLocks {
            entries: Mutex::new(Entries::default()),
            capacity,
        }
    }

    /// Takes the lock of a case, waiting for the step in progress, if any.
    pub(super) async fn lock(&self, id: CaseId) -> CaseGuard<'_> {
        let cell = {
            let mut entries = lock(&self.entries);
            let entry = entries.by_case.entry(id).or_insert_with(|| Entry {
                cell: Cell::default(),
                holders: 0,
                listed: false,
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
        lock(&self.entries).by_case.len()
    }
}

impl Entries {
    /// Drops idle cached cases, first cached first, until at most `capacity` are listed. One
    /// whose lock is held or awaited is not idle: it leaves the list, and is listed again when
    /// its holder leaves.
    fn evict(&mut self, capacity: usize) {
        while self.cached.len() > capacity {
            let Some(id) = self.cached.pop_front() else {
                return;
            };
            let Some(entry) = self.by_case.get_mut(&id) else {
                continue;
            };
            entry.listed = false;
            if entry.holders > 0 {
                continue;
            }
            // Nobody holds or waits for it (holders are counted under this mutex), so its cell
            // is free to empty; the entry goes with it.
            if let Ok(mut cell) = entry.cell.clone().try_lock_owned() {
                *cell = None;
            }
            self.by_case.remove(&id);
        }
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
        let Some(entry) = entries.by_case.get_mut(&self.id) else {
            return;
        };
        entry.holders = entry.holders.saturating_sub(1);
        if entry.holders > 0 {
            return;
        }
        // The case's lock itself is released just after this, with the guard. Removing the
        // entry first is safe: nobody else holds it, and its cell caches nothing, so a caller
        // that comes now starts from a fresh entry and loads the case from the store.
        if self.guard.is_none() {
            entries.by_case.remove(&self.id);
            return;
        }
        if !entry.listed {
            entry.listed = true;
            entries.cached.push_back(self.id);
            entries.evict(self.locks.capacity);
        }
    }
}
