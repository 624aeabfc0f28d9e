//! The engine's lockchain: its configuration, the leaves of every step, the receipts, the
//! latest checkpoint, the public key and the health probe. The checkpointer and the git
//! anchor are in `checkpoints.rs`.
//!
//! Why a receipt holds: the leaves are computed from each event's canonical bytes in
//! `commit_step`, before the store commits them with the events, so that a stored event and
//! its leaf are durable together or not at all. A receipt reads the event back, its leaf index
//! and the tiles its inclusion proof needs, and checks the proof against the signed root of a
//! checkpoint that covers it before handing it out: an event altered in the store since it was
//! committed gets an error naming it, never a receipt that does not verify.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use knhk_core::{CaseId, Event};
use knhk_lockchain::consistency::ConsistencyProof;
use knhk_lockchain::merkle::{
    consistency_proof, inclusion_proof, leaf_hash, verify_consistency, verify_inclusion,
};
use knhk_lockchain::note::Signer;
use knhk_lockchain::receipt::Receipt;
use knhk_lockchain::{Hash, TileSet, canonical};
use knhk_store::CheckpointRecord;
use tokio::sync::Notify;

use super::{WorkflowEngine, lock};
use crate::error::Error;

/// How an engine keeps the lockchain: the key that signs its checkpoints, their origin, how
/// often they are taken, and the git anchor. `EngineConfig::lockchain`; `None` keeps none (no
/// leaves, no checkpoints).
#[derive(Clone, Debug)]
pub struct LockchainConfig {
    /// The checkpoints' signing key; its name is the note key name (the CLI makes it the
    /// origin).
    pub signer: Signer,
    /// The checkpoints' origin line, which names the log.
    pub origin: String,
    /// A checkpoint is taken once this many leaves were committed by this engine since the
    /// last one (0: only by time). [`LockchainConfig::DEFAULT_CHECKPOINT_EVENTS`] by default.
    pub checkpoint_events: u64,
    /// A checkpoint is taken this often when the tree grew, whichever comes first.
    /// [`LockchainConfig::DEFAULT_CHECKPOINT_INTERVAL`] by default.
    pub checkpoint_interval: Duration,
    /// Where the checkpoints are anchored; `None`: signed and stored only.
    pub anchor: Option<AnchorConfig>,
}

impl LockchainConfig {
    /// The origin when none is configured.
    pub const DEFAULT_ORIGIN: &str = "knhk.local/lockchain";
    /// The leaves between two checkpoints when not configured.
    pub const DEFAULT_CHECKPOINT_EVENTS: u64 = 100_000;
    /// The time between two checkpoints when not configured.
    pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(10);

    /// Returns the configuration of a lockchain signed by `signer`, with the signer's name as
    /// the origin, no anchor, and the default intervals.
    pub fn new(signer: Signer) -> LockchainConfig {
        LockchainConfig {
            origin: signer.name().to_owned(),
            signer,
            checkpoint_events: LockchainConfig::DEFAULT_CHECKPOINT_EVENTS,
            checkpoint_interval: LockchainConfig::DEFAULT_CHECKPOINT_INTERVAL,
            anchor: None,
        }
    }
}

/// The git repository the checkpoints are committed to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnchorConfig {
    /// The repository's directory; a bare one is created when it is missing or empty.
    pub git_dir: PathBuf,
    /// A remote (name or URL) every new checkpoint is pushed to, with the `git` binary.
    pub remote: Option<String>,
    /// How old the last anchor may be, while the tree has grown past it, before the health
    /// probe says so. [`AnchorConfig::DEFAULT_MAX_AGE`] by default.
    pub max_age: Duration,
}

impl AnchorConfig {
    /// The anchor's age bound when none is configured.
    pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);

    /// Returns the anchor in `git_dir`, with no remote and the default age bound.
    pub fn new(git_dir: PathBuf) -> AnchorConfig {
        AnchorConfig {
            git_dir,
            remote: None,
            max_age: AnchorConfig::DEFAULT_MAX_AGE,
        }
    }
}

/// A signed checkpoint, as the engine shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointView {
    pub size: u64,
    /// The root hash, base64 (as in the note).
    pub root: String,
    /// The signed note, whole.
    pub note: String,
    pub at: knhk_core::Timestamp,
}

impl CheckpointView {
    pub(super) fn of(c: &CheckpointRecord) -> CheckpointView {
        CheckpointView {
            size: c.size,
            root: base64::engine::general_purpose::STANDARD.encode(c.root),
            note: c.note.clone(),
            at: c.at,
        }
    }
}

/// The lockchain's health: the anchor repository is writable, and the last anchor's age is
/// within its bound.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockchainHealth {
    /// `Ok` with a word of what was checked, or why it is not healthy.
    pub result: Result<String, String>,
}

/// The lockchain of a running engine.
#[derive(Debug)]
pub(super) struct Lockchain {
    pub(super) config: LockchainConfig,
    /// Leaves this engine committed since its last checkpoint.
    pub(super) pending: AtomicU64,
    /// Woken when `pending` reaches `checkpoint_events`.
    pub(super) due: Notify,
    /// Held while a checkpoint is taken, so that two are not signed at once.
    pub(super) taking: tokio::sync::Mutex<()>,
    /// The channel to the thread that owns the git repository, once started.
    pub(super) anchor:
        Mutex<Option<tokio::sync::mpsc::UnboundedSender<super::checkpoints::ToAnchor>>>,
    /// What the anchor thread last did.
    pub(super) anchored: std::sync::Arc<Mutex<AnchorState>>,
}

/// What the anchor thread last did: the last anchored checkpoint, and the last failure.
#[derive(Clone, Debug, Default)]
pub(super) struct AnchorState {
    /// The size and commit time (seconds) of the last anchored checkpoint.
    pub(super) last: Option<(u64, i64)>,
    /// The last failure to anchor or push, cleared by the next success.
    pub(super) error: Option<String>,
}

impl Lockchain {
    pub(super) fn new(config: LockchainConfig) -> Lockchain {
        Lockchain {
            config,
            pending: AtomicU64::new(0),
            due: Notify::new(),
            taking: tokio::sync::Mutex::new(()),
            anchor: Mutex::new(None),
            anchored: std::sync::Arc::new(Mutex::new(AnchorState::default())),
        }
    }

    /// Counts leaves committed, and wakes the checkpointer once enough came.
    pub(super) fn committed(&self, leaves: usize) {
        let n = u64::try_from(leaves).unwrap_or(u64::MAX);
        let every = self.config.checkpoint_events;
        let before = self.pending.fetch_add(n, Ordering::Relaxed);
        if every > 0 && before.saturating_add(n) >= every {
            self.due.notify_one();
        }
    }
}

/// Returns the leaf hash of each event of a step of `case`, in order: what `Commit::leaves`
/// carries when the lockchain is on.
pub(super) fn leaves_of(case: CaseId, events: &[Event]) -> Result<Vec<Hash>, Error> {
    events
        .iter()
        .map(|e| canonical::event_leaf(case, e).map_err(|e| Error::Lockchain(e.to_string())))
        .collect()
}

impl WorkflowEngine {
    /// Returns the lockchain, or why there is none.
    pub(super) fn lockchain(&self) -> Result<&Lockchain, Error> {
        self.inner.lockchain.as_ref().ok_or(Error::LockchainOff)
    }

    /// Returns the receipt of event `seq` of `case`: its leaf index, its inclusion proof, and
    /// the signed checkpoint that covers it (one is taken now when the latest does not).
    pub async fn receipt(&self, case: CaseId, seq: u64) -> Result<Receipt, Error> {
        self.lockchain()?;
        let store = &self.inner.store;
        let event = store
            .events_page(case, seq.saturating_sub(1), 1)
            .await?
            .into_iter()
            .next()
            .filter(|e| e.seq == seq);
        let Some(event) = event else {
            return Err(match store.case(case).await? {
                None => Error::UnknownCase(case),
                Some(_) => Error::UnknownEvent { case, seq },
            });
        };
        let leaf = store
            .event_leaf(case, seq)
            .await?
            .ok_or(Error::NoLeaf { case, seq })?;
        let bytes =
            canonical::event_bytes(case, &event).map_err(|e| Error::Lockchain(e.to_string()))?;
        let checkpoint = match store.latest_checkpoint().await? {
            Some(c) if c.size > leaf => c,
            _ => self.take_checkpoint().await?.ok_or_else(|| {
                Error::Lockchain(format!(
                    "no checkpoint covers leaf {leaf} (event {seq} of case {case})"
                ))
            })?,
        };
        if checkpoint.size <= leaf {
            return Err(Error::Lockchain(format!(
                "the latest checkpoint, of size {}, does not cover leaf {leaf} (event {seq} of \
                 case {case})",
                checkpoint.size
            )));
        }
        let size = checkpoint.size;
        let ids: Vec<_> = TileSet::needed(|s| inclusion_proof(&s, leaf, size))
            .into_iter()
            .collect();
        let tiles = TileSet::new(store.lockchain_tiles(&ids).await?);
        let proof = inclusion_proof(&tiles, leaf, size).map_err(|e| {
            Error::Lockchain(format!(
                "cannot prove leaf {leaf} in the tree of {size} leaves: {e}"
            ))
        })?;
        verify_inclusion(&leaf_hash(&bytes), leaf, size, &proof, &checkpoint.root).map_err(
            |e| {
                Error::Lockchain(format!(
                    "event {seq} of case {case} does not match its leaf {leaf} in the checkpoint \
                     of size {size} ({e}): the stored event or tree was changed; `knhk lockchain \
                     verify` names what"
                ))
            },
        )?;
        Ok(Receipt::new(
            case,
            seq,
            leaf,
            size,
            &bytes,
            &proof,
            checkpoint.note,
        ))
    }

    /// Returns the consistency proof between the stored checkpoints of tree sizes `old` and
    /// `new` (the latest when `None`): both notes and the proof that the older tree is a
    /// prefix of the newer, checked against their signed roots before it is handed out.
    ///
    /// A size with no stored checkpoint is [`Error::UnknownCheckpoint`], naming the stored
    /// sizes nearest to it; `old` larger than `new` is [`Error::NotAPrefix`].
    pub async fn consistency_proof(
        &self,
        old: u64,
        new: Option<u64>,
    ) -> Result<ConsistencyProof, Error> {
        self.lockchain()?;
        if let Some(new) = new
            && old > new
        {
            return Err(Error::NotAPrefix { old, new });
        }
        let store = &self.inner.store;
        // The old one first: a size past the latest is then named as not stored.
        let old_checkpoint = self.stored_checkpoint(old).await?;
        let new_checkpoint = match new {
            Some(size) => self.stored_checkpoint(size).await?,
            None => store
                .latest_checkpoint()
                .await?
                .ok_or(Error::UnknownCheckpoint {
                    size: old,
                    below: None,
                    above: None,
                })?,
        };
        let new = new_checkpoint.size;
        if old > new {
            return Err(Error::NotAPrefix { old, new });
        }
        let ids: Vec<_> = TileSet::needed(|s| consistency_proof(&s, old, new))
            .into_iter()
            .collect();
        let tiles = TileSet::new(store.lockchain_tiles(&ids).await?);
        let proof = consistency_proof(&tiles, old, new).map_err(|e| {
            Error::Lockchain(format!(
                "cannot prove the tree of {old} leaves a prefix of the tree of {new}: {e}"
            ))
        })?;
        verify_consistency(old, new, &old_checkpoint.root, &new_checkpoint.root, &proof).map_err(
            |e| {
                Error::Lockchain(format!(
                    "the checkpoints of size {old} and {new} are not consistent with the stored \
                 tree ({e}): the stored tree or a checkpoint was changed; `knhk lockchain \
                 verify` names what"
                ))
            },
        )?;
        Ok(ConsistencyProof::new(
            old,
            new,
            &proof,
            old_checkpoint.note,
            new_checkpoint.note,
        ))
    }

    /// Returns the stored checkpoint of tree size `size`, or an error naming the stored sizes
    /// nearest to it.
    async fn stored_checkpoint(&self, size: u64) -> Result<CheckpointRecord, Error> {
        let store = &self.inner.store;
        let above = match size.checked_sub(1) {
            Some(after) => store.checkpoints(after, 1).await?.into_iter().next(),
            // Size 0: the first stored checkpoint is the nearest, none is of size 0.
            None => store.checkpoints(0, 1).await?.into_iter().next(),
        };
        if let Some(c) = above.as_ref().filter(|c| c.size == size) {
            return Ok(c.clone());
        }
        // Not stored: find the largest size below it, a page of checkpoints at a time.
        let mut below = None;
        let mut after = 0;
        loop {
            let page = store.checkpoints(after, 1000).await?;
            let Some(last) = page.last() else { break };
            after = last.size;
            below = page
                .iter()
                .take_while(|c| c.size < size)
                .last()
                .map(|c| c.size)
                .or(below);
            if after >= size {
                break;
            }
        }
        Err(Error::UnknownCheckpoint {
            size,
            below,
            above: above.map(|c| c.size),
        })
    }

    /// Returns the latest signed checkpoint, if one was taken.
    pub async fn latest_checkpoint(&self) -> Result<Option<CheckpointView>, Error> {
        Ok(self
            .inner
            .store
            .latest_checkpoint()
            .await?
            .as_ref()
            .map(CheckpointView::of))
    }

    /// Returns the verifier key of the log's checkpoints (the signed-note text form).
    pub fn lockchain_public_key(&self) -> Result<String, Error> {
        Ok(self.lockchain()?.config.signer.verifier_key())
    }

    /// Probes the lockchain: the anchor repository is writable, the last checkpoint was
    /// anchored without error, and the last anchor is recent enough while the tree has grown
    /// past it. A lockchain without an anchor, or none, is healthy.
    pub async fn lockchain_health(&self) -> LockchainHealth {
        LockchainHealth {
            result: self.lockchain_probe().await,
        }
    }

    async fn lockchain_probe(&self) -> Result<String, String> {
        let Some(lc) = &self.inner.lockchain else {
            return Ok("the lockchain is off".to_owned());
        };
        let Some(anchor) = &lc.config.anchor else {
            return Ok("checkpoints are signed and stored; no git anchor is configured".to_owned());
        };
        let dir = anchor.git_dir.clone();
        let last = tokio::task::spawn_blocking(move || {
            let opened = knhk_lockchain::anchor::Anchor::open_or_init(&dir)?;
            knhk_lockchain::anchor::check_writable(opened.dir())?;
            Ok::<_, knhk_lockchain::anchor::AnchorError>(opened.last().map(|a| (a.size, a.at)))
        })
        .await
        .map_err(|e| format!("the anchor probe failed: {e}"))?
        .map_err(|e| e.to_string())?;
        let state = lock(&lc.anchored).clone();
        if let Some(error) = state.error {
            return Err(error);
        }
        let head = self
            .inner
            .store
            .lockchain_head()
            .await
            .map_err(|e| format!("cannot read the tree head: {e}"))?;
        let now_secs = self.inner.clock.now().0 / 1000;
        let shown = anchor.git_dir.display();
        match last {
            None if head.size == 0 => {
                Ok(format!("git anchor {shown} is writable; the tree is empty"))
            }
            None => Err(format!(
                "git anchor {shown} holds no checkpoint, and the tree has {} leaves",
                head.size
            )),
            Some((size, at)) => {
                let age = now_secs.saturating_sub(at);
                let bound = i64::try_from(anchor.max_age.as_secs()).unwrap_or(i64::MAX);
                if head.size > size && age > bound {
                    Err(format!(
                        "git anchor {shown}: the last anchored checkpoint, of size {size}, is \
                         {age} s old (the bound is {bound} s), and the tree has grown to {} \
                         leaves",
                        head.size
                    ))
                } else {
                    Ok(format!(
                        "git anchor {shown} is writable; the last anchored checkpoint, of size \
                         {size}, is {age} s old"
                    ))
                }
            }
        }
    }
}
