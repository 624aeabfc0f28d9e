//! Checkpoints of the lockchain: the checkpointer task of a started engine (every N leaves
//! or T seconds, whichever first, when the tree grew), `checkpoint_now`, and the thread that
//! owns the git anchor.
//!
//! A checkpoint signs the tree head the store reports, so it always covers whole commits. Two
//! are never signed at once (`Lockchain::taking`), and one is signed only when the head is
//! larger than the latest stored checkpoint, so the stored checkpoints grow with the tree.
//!
//! The git repository is touched by one thread only, which owns it (gix's repository handle
//! is not `Send` without its parallel feature, and its calls block): the engine holds only the
//! sending end of its channel and never waits for git. Before each commit the thread proves
//! the new checkpoint an extension of the last anchored one from tiles read from the store
//! (RFC 6962 consistency), and `Anchor::append` checks the proof: an anchor never goes
//! backwards. A refusal or a failed push is logged and kept for the health probe. When the
//! engine shuts down, the thread anchors what was sent before it stops.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use knhk_lockchain::anchor::{Anchor, AnchorError};
use knhk_lockchain::merkle::consistency_proof;
use knhk_lockchain::note::Checkpoint;
use knhk_lockchain::{Hash, TileSet};
use knhk_store::{CheckpointRecord, Store};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use super::lockchain::{AnchorConfig, AnchorState, CheckpointView};
use super::{WorkflowEngine, lock};
use crate::error::Error;

/// What the anchor thread is told.
#[derive(Debug)]
pub(super) enum ToAnchor {
    /// Anchor this stored checkpoint.
    Checkpoint(CheckpointRecord),
    /// Stop, once what came before is anchored.
    Stop,
}

impl WorkflowEngine {
    /// Takes a checkpoint now if the tree grew since the latest stored one: signs the tree
    /// head, stores it and hands it to the git anchor. Returns the latest checkpoint (the new
    /// one, or the one that already covers the whole tree), or `None` while the tree is
    /// empty. One-shot commands call it before they exit, so that receipts of what they did
    /// need no later checkpoint.
    pub async fn checkpoint_now(&self) -> Result<Option<CheckpointView>, Error> {
        Ok(self
            .take_checkpoint()
            .await?
            .as_ref()
            .map(CheckpointView::of))
    }

    /// Takes a checkpoint when the tree grew; returns the latest stored one.
    pub(super) async fn take_checkpoint(&self) -> Result<Option<CheckpointRecord>, Error> {
        let lc = self.lockchain()?;
        let _taking = lc.taking.lock().await;
        // Leaves committed from here on count towards the next checkpoint.
        lc.pending.store(0, Ordering::Relaxed);
        let store = &self.inner.store;
        let head = store.lockchain_head().await?;
        let latest = store.latest_checkpoint().await?;
        if let Some(latest) = &latest
            && latest.size >= head.size
        {
            return Ok(Some(latest.clone()));
        }
        if head.size == 0 {
            return Ok(None);
        }
        let checkpoint = Checkpoint {
            origin: lc.config.origin.clone(),
            size: head.size,
            root: head.root,
            extensions: Vec::new(),
        };
        let note = lc
            .config
            .signer
            .sign(&checkpoint)
            .map_err(|e| Error::Lockchain(format!("cannot sign the checkpoint: {e}")))?;
        let mut record = CheckpointRecord {
            size: head.size,
            root: head.root,
            note,
            at: self.inner.clock.now(),
        };
        if !store.put_checkpoint(&record).await? {
            // Another process sharing the store signed this size first: that one stands.
            if let Some(stored) = store
                .checkpoints(head.size - 1, 1)
                .await?
                .into_iter()
                .find(|c| c.size == head.size)
            {
                record = stored;
            }
        }
        info!(size = record.size, "lockchain checkpoint taken");
        self.send_to_anchor(ToAnchor::Checkpoint(record.clone()));
        Ok(Some(record))
    }

    /// Sends to the anchor thread, starting it first when the engine has an anchor and it is
    /// not running yet.
    fn send_to_anchor(&self, message: ToAnchor) {
        let Some(lc) = &self.inner.lockchain else {
            return;
        };
        let Some(config) = &lc.config.anchor else {
            return;
        };
        let mut sender = lock(&lc.anchor);
        if sender.is_none() {
            *sender = self.start_anchor(config.clone(), Arc::clone(&lc.anchored));
        }
        if let Some(tx) = sender.as_ref()
            && tx.send(message).is_err()
        {
            warn!("the git anchor has stopped; the checkpoint is stored but not anchored");
        }
    }

    /// Starts the thread that owns the git repository, and a task of the engine that stops it
    /// at shutdown and waits for it. Returns its channel, or `None` (logged, and kept for the
    /// health probe) when no thread can be started.
    fn start_anchor(
        &self,
        config: AnchorConfig,
        state: Arc<std::sync::Mutex<AnchorState>>,
    ) -> Option<mpsc::UnboundedSender<ToAnchor>> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (done_tx, mut done_rx) = oneshot::channel::<()>();
        let store = Arc::clone(&self.inner.store);
        let runtime = tokio::runtime::Handle::current();
        let thread_state = Arc::clone(&state);
        let spawned = std::thread::Builder::new()
            .name("knhk-anchor".to_owned())
            .spawn(move || {
                anchor_thread(&config, store.as_ref(), &runtime, rx, &thread_state);
                // The store goes before the engine hears the thread is done: a store closes
                // cleanly when its last handle goes, and the process may exit right after.
                drop(store);
                let _ = done_tx.send(());
            });
        if let Err(e) = spawned {
            let problem = format!("cannot start the git anchor's thread: {e}");
            warn!("{problem}");
            lock(&state).error = Some(problem);
            return None;
        }
        let cancel = self.inner.cancel.clone();
        let stop = tx.clone();
        self.inner.tracker.spawn(async move {
            tokio::select! {
                () = cancel.cancelled() => {
                    let _ = stop.send(ToAnchor::Stop);
                    let _ = done_rx.await;
                }
                _ = &mut done_rx => {}
            }
        });
        Some(tx)
    }

    /// Starts the checkpointer of a started engine: a checkpoint every
    /// `checkpoint_events` leaves or `checkpoint_interval`, whichever comes first, when the
    /// tree grew. The anchor is started with it, so that it takes up the stored checkpoints
    /// not anchored yet.
    pub(super) fn start_checkpointer(&self) {
        let Some(lc) = &self.inner.lockchain else {
            return;
        };
        {
            let mut sender = lock(&lc.anchor);
            if sender.is_none()
                && let Some(config) = &lc.config.anchor
            {
                *sender = self.start_anchor(config.clone(), Arc::clone(&lc.anchored));
            }
        }
        let engine = self.clone();
        let cancel = self.inner.cancel.clone();
        let every = lc.config.checkpoint_interval;
        self.inner.tracker.spawn(async move {
            let Ok(lc) = engine.lockchain() else {
                return;
            };
            loop {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(every) => {}
                    () = lc.due.notified() => {}
                }
                if let Err(e) = engine.take_checkpoint().await {
                    warn!(error = %e, "cannot take a lockchain checkpoint; trying again later");
                }
            }
        });
    }
}

/// The anchor thread: opens the repository, anchors the latest stored checkpoint when the
/// repository lags behind it, then each checkpoint it is sent, until told to stop.
/// How many stored checkpoints the anchor's thread reads at a time when it catches up.
const CATCH_UP_PAGE: usize = 100;

fn anchor_thread(
    config: &AnchorConfig,
    store: &dyn Store,
    runtime: &tokio::runtime::Handle,
    mut rx: mpsc::UnboundedReceiver<ToAnchor>,
    state: &std::sync::Mutex<AnchorState>,
) {
    let fail = |problem: String| {
        warn!(anchor = %config.git_dir.display(), "{problem}");
        lock(state).error = Some(problem);
    };
    let mut anchor = match Anchor::open_or_init(&config.git_dir) {
        Ok(anchor) => anchor,
        Err(e) => {
            fail(e.to_string());
            return;
        }
    };
    lock(state).last = anchor.last().map(|a| (a.size, a.at));
    // Checkpoints stored while no anchor ran (by one-shot commands, another process, or just
    // before this thread started): each one is anchored on top, in order, proven consistent
    // like any other, so that every checkpoint has its commit.
    let mut after = anchor.last().map_or(0, |a| a.size);
    loop {
        match runtime.block_on(store.checkpoints(after, CATCH_UP_PAGE)) {
            Ok(page) => {
                let Some(last) = page.last().map(|c| c.size) else {
                    break;
                };
                for record in &page {
                    anchor_one(config, store, runtime, &mut anchor, record, state);
                }
                after = last;
            }
            Err(e) => {
                fail(format!("cannot read the stored checkpoints: {e}"));
                break;
            }
        }
    }
    while let Some(ToAnchor::Checkpoint(record)) = rx.blocking_recv() {
        // Another process on the same store and repository (`knhk run` beside `knhk serve`)
        // may have anchored since.
        if let Err(e) = anchor.refresh() {
            fail(e.to_string());
            continue;
        }
        if let Some(last) = anchor.last()
            && last.size >= record.size
            && (last.note == record.note || covered_by_own(store, runtime, last))
        {
            // Anchored already, or covered by a later checkpoint of this same log.
            continue;
        }
        anchor_one(config, store, runtime, &mut anchor, &record, state);
    }
}

/// Tells whether an anchored checkpoint is one this store signed: a later checkpoint of the
/// same log, which covers the earlier ones.
fn covered_by_own(
    store: &dyn Store,
    runtime: &tokio::runtime::Handle,
    last: &knhk_lockchain::anchor::Anchored,
) -> bool {
    matches!(
        runtime.block_on(store.checkpoints(last.size.saturating_sub(1), 1)),
        Ok(found) if found.iter().any(|c| c.size == last.size && c.note == last.note)
    )
}

/// Anchors one checkpoint (and pushes it when a remote is configured), recording the result.
fn anchor_one(
    config: &AnchorConfig,
    store: &dyn Store,
    runtime: &tokio::runtime::Handle,
    anchor: &mut Anchor,
    record: &CheckpointRecord,
    state: &std::sync::Mutex<AnchorState>,
) {
    let result = proof_from_last(anchor, store, runtime, record.size).and_then(|proof| {
        anchor
            .append(&record.note, &proof)
            .map_err(|e| e.to_string())
    });
    match result {
        Ok(anchored) => {
            let mut s = lock(state);
            s.last = Some((anchored.size, anchored.at));
            s.error = None;
            drop(s);
            info!(size = anchored.size, commit = %anchored.commit, "lockchain checkpoint anchored");
            if let Some(remote) = &config.remote
                && let Err(e) = anchor.push(remote)
            {
                warn!(error = %e, "cannot push the git anchor");
                lock(state).error = Some(e.to_string());
            }
        }
        Err(problem) => {
            warn!(size = record.size, "{problem}");
            lock(state).error = Some(problem);
        }
    }
}

/// Returns the consistency proof from the last anchored checkpoint to a tree of `size`
/// leaves, made from tiles read from the store (empty when there is no last one, or it is
/// empty or not smaller: `Anchor::append` then decides).
fn proof_from_last(
    anchor: &Anchor,
    store: &dyn Store,
    runtime: &tokio::runtime::Handle,
    size: u64,
) -> Result<Vec<Hash>, String> {
    let Some(last) = anchor.last() else {
        return Ok(Vec::new());
    };
    let old = last.size;
    if old == 0 || old >= size {
        return Ok(Vec::new());
    }
    let ids: Vec<_> = TileSet::needed(|s| consistency_proof(&s, old, size))
        .into_iter()
        .collect();
    let tiles = runtime
        .block_on(store.lockchain_tiles(&ids))
        .map_err(|e| format!("cannot read the tiles of a consistency proof: {e}"))?;
    consistency_proof(&TileSet::new(tiles), old, size).map_err(|e| {
        AnchorError::Refused {
            dir: anchor.dir().to_path_buf(),
            size,
            problem: format!("no consistency proof from the anchored size {old}: {e}"),
        }
        .to_string()
    })
}
