//! The offline verifier of a whole log: every event read back and hashed again, the tree
//! rebuilt from those hashes, and that tree held against the stored tiles, the signed
//! checkpoints and the git anchors.
//!
//! Why it is correct. Each level-0 tile names, for each leaf, the event it is the leaf of
//! (`LeafRef`); [`verify`] reads that event as stored, takes its leaf hash
//! ([`canonical::event_leaf`](crate::canonical::event_leaf)) and compares it with the tile's.
//! A leaf whose event is missing, unreadable or hashes differently is a problem named by its
//! leaf index, case and seq; the tree goes on with the stored hash, so that what else is wrong
//! is named on its own rather than as a consequence. The tree of the leaves checked so far is
//! kept as a [`Tail`]; whenever it reaches the size of a stored checkpoint or a git anchor,
//! its root is compared with the root that the note signs (the signature checked with the
//! log's key), so a leaf hash rewritten together with its event is caught by the first
//! signed root after it. The stored higher tiles and the stored head are compared with the
//! ones the leaves make. Last, the events the log does not hold are looked for: each case of
//! the log must have no event after its last leaf, and a case outside the log must claim no
//! leaf (a truncated log leaves both).
//!
//! The verifier is pure and synchronous: it reads through the [`Log`] trait, which the engine
//! implements over its store, and reports progress through a callback.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use knhk_core::{CaseId, Event};

use crate::merkle::Hash;
use crate::note::Verifier as KeyVerifier;
use crate::tiles::{Tile, TileId};

mod pass;
#[cfg(test)]
mod tests;

/// A read of the log failed: the store is at fault, not the log, and nothing can be said.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LogError(pub String);

/// A signed checkpoint as the store keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// The tree size it signs.
    pub size: u64,
    /// The root hash the record says (the note's is the one that counts).
    pub root: Hash,
    /// The signed note.
    pub note: String,
}

/// One commit of the git anchor chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anchor {
    /// The commit id (hex).
    pub commit: String,
    /// The commit's parents (hex ids).
    pub parents: Vec<String>,
    /// The signed checkpoint note the commit holds.
    pub note: String,
}

/// Where the stored log is read from: the store's tree head, tiles, events and checkpoints.
pub trait Log {
    /// Returns the stored tree head: its size and root.
    fn head(&mut self) -> Result<(u64, Hash), LogError>;
    /// Returns the stored tiles among `ids`; one not stored is left out.
    fn tiles(&mut self, ids: &[TileId]) -> Result<Vec<Tile>, LogError>;
    /// Returns at most `limit` events of `case` with `seq > after_seq`, ascending.
    fn events(
        &mut self,
        case: CaseId,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<Event>, LogError>;
    /// Returns every stored checkpoint, by size.
    fn checkpoints(&mut self) -> Result<Vec<StoredCheckpoint>, LogError>;
    /// Returns the id of every stored case.
    fn case_ids(&mut self) -> Result<Vec<CaseId>, LogError>;
    /// Returns the leaf index stored with event `seq` of `case`, if it has one.
    fn event_leaf(&mut self, case: CaseId, seq: u64) -> Result<Option<u64>, LogError>;
}

/// How a verification runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// The progress callback is called after about this many leaves (and once at the end).
    pub progress_every: u64,
    /// The verification stops after this many problems (at least one).
    pub max_problems: usize,
    /// How many tiles are read at a time.
    pub tiles_per_read: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            progress_every: 10_000,
            max_problems: 100,
            tiles_per_read: 16,
        }
    }
}

/// What a problem is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// A leaf of the log, and the event its tile names.
    Leaf { index: u64, case: CaseId, seq: u64 },
    /// A stored tile.
    Tile(TileId),
    /// The stored tree head.
    Head,
    /// A stored checkpoint, by the size it signs.
    Checkpoint { size: u64 },
    /// A commit of the git anchor chain.
    Anchor { commit: String },
    /// A stored event that is not in the log.
    Event { case: CaseId, seq: u64 },
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Leaf { index, case, seq } => write!(f, "leaf {index} (case {case} event {seq})"),
            Place::Tile(id) => write!(f, "tile {}/{}", id.level, id.index),
            Place::Head => f.write_str("the tree head"),
            Place::Checkpoint { size } => write!(f, "checkpoint {size}"),
            Place::Anchor { commit } => write!(f, "anchor commit {commit}"),
            Place::Event { case, seq } => write!(f, "case {case} event {seq}"),
        }
    }
}

/// One thing wrong with the log: where, and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub place: Place,
    /// What is wrong, in words.
    pub problem: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.place, self.problem)
    }
}

/// How far a verification got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// The leaves checked so far.
    pub leaves: u64,
    /// The leaves of the log.
    pub size: u64,
    /// The time since the verification started.
    pub elapsed: Duration,
}

impl Progress {
    /// Returns the leaves checked per second so far.
    pub fn per_second(&self) -> f64 {
        rate(self.leaves, self.elapsed)
    }
}

/// What a verification found and counted.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// The size of the stored tree.
    pub size: u64,
    /// The root of the tree the checked leaves make (of `size` leaves when all were checked).
    pub root: Hash,
    /// The leaves checked.
    pub leaves: u64,
    /// The events read and hashed.
    pub events: u64,
    /// The stored checkpoints compared with the tree.
    pub checkpoints: u64,
    /// The git anchors compared with the tree.
    pub anchors: u64,
    /// The cases with events in the log.
    pub cases: u64,
    /// The cases with no event in the log (committed without the lockchain).
    pub cases_outside: u64,
    /// Whether the checkpoints' signatures were checked (a key was given).
    pub signatures: bool,
    /// What is wrong, the first found first; empty when the log holds.
    pub problems: Vec<Problem>,
    /// Whether the verification stopped at [`Options::max_problems`] with more to look at.
    pub stopped: bool,
    /// How long it took.
    pub elapsed: Duration,
}

impl Report {
    /// Returns whether the log holds: no problem found.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    /// Returns the events read and hashed per second.
    pub fn events_per_second(&self) -> f64 {
        rate(self.events, self.elapsed)
    }
}

fn rate(n: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 { n as f64 / secs } else { 0.0 }
}

fn b64(hash: &Hash) -> String {
    base64::engine::general_purpose::STANDARD.encode(hash)
}

/// Verifies the whole log that `log` reads: each event against its leaf, the tree against
/// the stored tiles and head, each stored checkpoint and each of `anchors` (oldest first)
/// against the tree, their signatures with `key` (`None`: signatures not checked, the
/// stored roots compared), and the events outside the log. A read that fails is an error;
/// what is wrong with the log is in the report.
pub fn verify(
    log: &mut dyn Log,
    key: Option<&KeyVerifier>,
    anchors: &[Anchor],
    options: &Options,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Report, LogError> {
    pass::run(log, key, anchors, options, progress)
}
