//! `verify_lockchain`: the offline verification of the store's lockchain
//! ([`knhk_lockchain::verify`]) over the store's reads, with the git anchor chain.
//!
//! The verifier is synchronous and pure; it runs on a blocking thread, and each of its reads
//! waits there on the store's asynchronous method ([`tokio::runtime::Handle::block_on`]), so
//! that hashing a long log never holds up the runtime's workers. It only reads: it runs on a
//! store opened read-only.

use std::path::PathBuf;
use std::sync::Arc;

use knhk_core::{CaseId, Event};
use knhk_lockchain::note::Verifier;
use knhk_lockchain::verify::{self, Anchor, Log, LogError, Progress, Report, StoredCheckpoint};
use knhk_lockchain::{Hash, Tile, TileId};
use knhk_store::Store;
use tokio::runtime::Handle;

use super::WorkflowEngine;
use crate::error::Error;

/// What `verify_lockchain` checks with.
#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// The key the checkpoints are checked with; `None`: the engine's own
    /// ([`WorkflowEngine::lockchain_public_key`]).
    pub key: Option<Verifier>,
    /// The git repository of the anchors; `None`: no anchor is checked.
    pub git_dir: Option<PathBuf>,
    /// How the verifier runs (progress, when to stop).
    pub verify: verify::Options,
}

/// Where the key a verification used came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// The caller gave it.
    Given,
    /// The engine's own key.
    Engine,
}

/// What `verify_lockchain` found, and with what.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifyReport {
    pub report: Report,
    /// The name of the key the signatures were checked with.
    pub key_name: String,
    /// Where that key came from.
    pub key_source: KeySource,
    /// The git repository whose anchors were checked, if any.
    pub git_dir: Option<PathBuf>,
}

/// How many checkpoints are read at a time.
const CHECKPOINT_PAGE: usize = 1000;

impl WorkflowEngine {
    /// Verifies the store's whole lockchain offline: every event hashed again against its
    /// leaf, the tree rebuilt and held against the stored tiles and head, each stored
    /// checkpoint and each git anchor (of `options.git_dir`) against it with its signature,
    /// and the events the log does not hold. `progress` is called as leaves are checked.
    /// What is wrong with the log is in the report; an error means it could not be read.
    pub async fn verify_lockchain(
        &self,
        options: VerifyOptions,
        mut progress: Box<dyn FnMut(&Progress) + Send>,
    ) -> Result<VerifyReport, Error> {
        let (key, key_source) = match options.key {
            Some(key) => (key, KeySource::Given),
            None => {
                let text = self.lockchain_public_key()?;
                let key = Verifier::parse(&text).map_err(|e| {
                    lockchain_error(format!("the engine's public key {text:?}: {e}"))
                })?;
                (key, KeySource::Engine)
            }
        };
        let anchors = match &options.git_dir {
            Some(dir) => read_anchors(dir.clone()).await?,
            None => Vec::new(),
        };
        let mut log = StoreLog {
            store: Arc::clone(&self.inner.store),
            handle: Handle::current(),
        };
        let key_name = key.name().to_owned();
        let settings = options.verify;
        let report = tokio::task::spawn_blocking(move || {
            verify::verify(&mut log, Some(&key), &anchors, &settings, &mut *progress)
        })
        .await
        .map_err(|e| lockchain_error(format!("the verification stopped: {e}")))?
        .map_err(|e| lockchain_error(format!("reading the log: {e}")))?;
        Ok(VerifyReport {
            report,
            key_name,
            key_source,
            git_dir: options.git_dir,
        })
    }
}

fn lockchain_error(message: String) -> Error {
    Error::Store(knhk_store::Error::Lockchain(message))
}

/// Reads the anchor chain of the git repository at `dir`, oldest first.
async fn read_anchors(dir: PathBuf) -> Result<Vec<Anchor>, Error> {
    let _ = dir;
    Err(lockchain_error(
        "reading git anchors is being built".to_owned(),
    ))
}

/// The log as the store holds it, read from a blocking thread.
struct StoreLog {
    store: Arc<dyn Store>,
    handle: Handle,
}

fn read_error(e: knhk_store::Error) -> LogError {
    LogError(e.to_string())
}

impl Log for StoreLog {
    fn head(&mut self) -> Result<(u64, Hash), LogError> {
        let head = self
            .handle
            .block_on(self.store.lockchain_head())
            .map_err(read_error)?;
        Ok((head.size, head.root))
    }

    fn tiles(&mut self, ids: &[TileId]) -> Result<Vec<Tile>, LogError> {
        self.handle
            .block_on(self.store.lockchain_tiles(ids))
            .map_err(read_error)
    }

    fn events(
        &mut self,
        case: CaseId,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<Event>, LogError> {
        self.handle
            .block_on(self.store.events_page(case, after_seq, limit))
            .map_err(read_error)
    }

    fn checkpoints(&mut self) -> Result<Vec<StoredCheckpoint>, LogError> {
        let mut out: Vec<StoredCheckpoint> = Vec::new();
        loop {
            let after = out.last().map_or(0, |c| c.size);
            let page = self
                .handle
                .block_on(self.store.checkpoints(after, CHECKPOINT_PAGE))
                .map_err(read_error)?;
            let done = page.len() < CHECKPOINT_PAGE;
            out.extend(page.into_iter().map(|c| StoredCheckpoint {
                size: c.size,
                root: c.root,
                note: c.note,
            }));
            if done {
                return Ok(out);
            }
        }
    }

    fn case_ids(&mut self) -> Result<Vec<CaseId>, LogError> {
        self.handle
            .block_on(self.store.case_ids(&[]))
            .map_err(read_error)
    }

    fn event_leaf(&mut self, case: CaseId, seq: u64) -> Result<Option<u64>, LogError> {
        self.handle
            .block_on(self.store.event_leaf(case, seq))
            .map_err(read_error)
    }
}
