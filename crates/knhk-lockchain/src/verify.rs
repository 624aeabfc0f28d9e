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

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

use base64::Engine as _;
use knhk_core::{CaseId, Event};

use crate::canonical::event_leaf;
use crate::merkle::Hash;
use crate::note::Verifier as KeyVerifier;
use crate::tiles::{LeafRef, TILE_HEIGHT, TILE_WIDTH, Tail, Tile, TileId};

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
    let started = Instant::now();
    // The checkpoints before the head: on a log that grows meanwhile, none is then larger.
    let checkpoints = log.checkpoints()?;
    let (size, head_root) = log.head()?;
    let mut pass = Pass {
        log,
        started,
        size,
        max_problems: options.max_problems.max(1),
        problems: Vec::new(),
        tail: Tail::empty(),
        cases: HashMap::new(),
        marks: BTreeMap::new(),
        last_good: 0,
        higher_full: Vec::new(),
        higher_tails: BTreeMap::new(),
        events: 0,
        outside: 0,
        latest_size: size,
    };
    let counted = pass.plan_marks(key, &checkpoints, anchors);
    pass.reach(0);
    let complete = pass.leaves(options, progress)?;
    if complete && !pass.full() {
        pass.higher_tiles(options.tiles_per_read.max(1), true)?;
        pass.beyond(&head_root)?;
        pass.events_outside()?;
    }
    let leaves = pass.tail.size();
    progress(&Progress {
        leaves,
        size,
        elapsed: started.elapsed(),
    });
    let stopped = pass.full();
    let mut problems = pass.problems;
    problems.truncate(pass.max_problems);
    Ok(Report {
        size,
        root: pass.tail.root(),
        leaves,
        events: pass.events,
        checkpoints: counted.0,
        anchors: counted.1,
        cases: pass.cases.len() as u64,
        cases_outside: pass.outside,
        signatures: key.is_some(),
        problems,
        stopped,
        elapsed: started.elapsed(),
    })
}

/// What the tree's root must be when it reaches a size: a checkpoint's or an anchor's.
struct Mark {
    place: Place,
    /// The root signed, or what is wrong with the record already (told when the pass gets
    /// there, so that problems come in the order of the log).
    claim: Result<Hash, String>,
}

/// The last leaf of a case seen in the log.
#[derive(Clone, Copy)]
struct Seen {
    seq: u64,
    leaf: u64,
}

struct Pass<'a> {
    log: &'a mut dyn Log,
    started: Instant,
    size: u64,
    max_problems: usize,
    problems: Vec<Problem>,
    tail: Tail,
    cases: HashMap<CaseId, Seen>,
    marks: BTreeMap<u64, Vec<Mark>>,
    /// The largest size at which a signed root held.
    last_good: u64,
    /// Full tiles above level 0 made by the pass, to compare with the stored ones.
    higher_full: Vec<Tile>,
    /// The latest partial tile of each level above 0.
    higher_tails: BTreeMap<u8, Tile>,
    events: u64,
    /// The cases with no event in the log.
    outside: u64,
    /// The largest tree size read (the head, read again when a leaf past it is met).
    latest_size: u64,
}

const WIDTH: u64 = TILE_WIDTH as u64;

impl Pass<'_> {
    /// Records a problem.
    fn found(&mut self, place: Place, problem: String) {
        if self.problems.len() <= self.max_problems {
            self.problems.push(Problem { place, problem });
        }
    }

    /// Returns whether more problems were found than are to be reported: time to stop.
    fn full(&self) -> bool {
        self.problems.len() > self.max_problems
    }

    /// Returns whether leaf `leaf` is within the tree as it is now: the head is read again
    /// once, so that on a log that grows while it is verified, a leaf committed meanwhile is
    /// not taken for one past a truncation.
    fn within_latest(&mut self, leaf: u64) -> Result<bool, LogError> {
        if leaf >= self.latest_size {
            self.latest_size = self.latest_size.max(self.log.head()?.0);
        }
        Ok(leaf < self.latest_size)
    }

    /// Turns the checkpoints and anchors into the roots the tree must have at their sizes;
    /// returns how many of each there are.
    fn plan_marks(
        &mut self,
        key: Option<&KeyVerifier>,
        checkpoints: &[StoredCheckpoint],
        anchors: &[Anchor],
    ) -> (u64, u64) {
        for c in checkpoints {
            let claim = match key {
                None => Ok(c.root),
                Some(k) => match k.verify(&c.note) {
                    Err(e) => Err(format!(
                        "its note does not verify with the key {}: {e}: the checkpoint was \
                         changed",
                        k.name()
                    )),
                    Ok(cp) if cp.size != c.size || cp.root != c.root => Err(format!(
                        "the record says size {} root {}, its signed note size {} root {}: the \
                         record was changed",
                        c.size,
                        b64(&c.root),
                        cp.size,
                        b64(&cp.root)
                    )),
                    Ok(cp) => Ok(cp.root),
                },
            };
            self.marks.entry(c.size).or_default().push(Mark {
                place: Place::Checkpoint { size: c.size },
                claim,
            });
        }
        let mut previous: Option<&Anchor> = None;
        let mut previous_size = 0u64;
        for a in anchors {
            let signed = match key {
                Some(k) => k.verify(&a.note).map(|cp| (cp.size, cp.root)).map_err(|e| {
                    format!(
                        "its note does not verify with the key {}: {e}: the commit was \
                             rewritten",
                        k.name()
                    )
                }),
                // Without the key, an anchor is known only as a copy of a stored checkpoint.
                None => checkpoints
                    .iter()
                    .find(|c| c.note == a.note)
                    .map(|c| (c.size, c.root))
                    .ok_or_else(|| {
                        "its note is none of the stored checkpoints, and without the log's key \
                         it cannot be checked"
                            .to_owned()
                    }),
            };
            let chained = match previous {
                Some(p) if a.parents.len() != 1 || a.parents[0] != p.commit => Err(format!(
                    "its parents are [{}], not the anchor before it, {}: the chain was rewritten",
                    a.parents.join(", "),
                    p.commit
                )),
                _ => Ok(()),
            };
            let (at, claim) = match (signed, chained) {
                (Err(e), _) | (Ok(_), Err(e)) => (previous_size, Err(e)),
                (Ok((size, _)), Ok(())) if previous.is_some() && size <= previous_size => (
                    previous_size,
                    Err(format!(
                        "anchors a tree of {size} leaves after one of {previous_size}: the \
                         anchor went backwards"
                    )),
                ),
                (Ok((size, root)), Ok(())) => {
                    previous_size = size;
                    (size, Ok(root))
                }
            };
            self.marks.entry(at).or_default().push(Mark {
                place: Place::Anchor {
                    commit: a.commit.clone(),
                },
                claim,
            });
            previous = Some(a);
        }
        (checkpoints.len() as u64, anchors.len() as u64)
    }

    /// Holds the tree, which has just reached `size` leaves, against the marks at that size.
    fn reach(&mut self, size: u64) {
        let Some(marks) = self.marks.remove(&size) else {
            return;
        };
        let root = self.tail.root();
        for mark in marks {
            match mark.claim {
                Err(problem) => self.found(mark.place, problem),
                Ok(signed) if signed == root => self.last_good = self.last_good.max(size),
                Ok(signed) => {
                    let problem = format!(
                        "it signs the root {} of {size} leaves, the log's leaves make {}: a leaf \
                         after {} (the last signed size that holds) was changed after it was \
                         signed",
                        b64(&signed),
                        b64(&root),
                        self.last_good
                    );
                    self.found(mark.place, problem);
                }
            }
        }
    }

    /// Checks every level-0 tile and its leaves' events, building the tree; returns whether
    /// every leaf could be taken (no tile missing or short).
    fn leaves(
        &mut self,
        options: &Options,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<bool, LogError> {
        let per = options.tiles_per_read.max(1) as u64;
        let every = options.progress_every.max(1);
        let mut next_report = every;
        let count = self.size.div_ceil(WIDTH);
        let mut at = 0u64;
        while at < count {
            let ids: Vec<TileId> = (at..(at + per).min(count))
                .map(|index| TileId { level: 0, index })
                .collect();
            let mut got: HashMap<TileId, Tile> = self
                .log
                .tiles(&ids)?
                .into_iter()
                .map(|t| (t.id, t))
                .collect();
            for id in ids {
                if self.full() {
                    return Ok(false);
                }
                let first = id.index * WIDTH;
                let expected = (self.size - first).min(WIDTH) as usize;
                let Some(tile) = got.remove(&id) else {
                    let end = first + expected as u64;
                    self.found(
                        Place::Tile(id),
                        format!("is missing: leaves {first}..{end} cannot be checked"),
                    );
                    return Ok(false);
                };
                if tile.hashes.len() != expected {
                    let problem = format!(
                        "holds {} leaves, a tree of {} leaves has {expected} there",
                        tile.hashes.len(),
                        self.size
                    );
                    self.found(Place::Tile(id), problem);
                }
                if tile.leaves.len() != tile.hashes.len() {
                    let problem = format!(
                        "names {} events for its {} leaves",
                        tile.leaves.len(),
                        tile.hashes.len()
                    );
                    self.found(Place::Tile(id), problem);
                }
                let usable = expected.min(tile.hashes.len()).min(tile.leaves.len());
                self.check_tile(first, &tile.hashes[..usable], &tile.leaves[..usable])?;
                self.higher_tiles(per as usize, false)?;
                if usable < expected {
                    return Ok(false);
                }
                if self.tail.size() >= next_report {
                    progress(&Progress {
                        leaves: self.tail.size(),
                        size: self.size,
                        elapsed: self.started.elapsed(),
                    });
                    next_report = self.tail.size() + every;
                }
            }
            at += per;
        }
        // A tile past the last one holds leaves past the size: the head was lowered.
        let past = TileId {
            level: 0,
            index: count,
        };
        let stored = self.log.tiles(&[past])?;
        if let Some(t) = stored.iter().find(|t| t.id == past && !t.hashes.is_empty())
            && !self.within_latest(count * WIDTH)?
        {
            let problem = format!(
                "holds {} leaves past the tree's size {}: the head was lowered (the log \
                 truncated)",
                t.hashes.len(),
                self.size
            );
            self.found(Place::Tile(past), problem);
        }
        Ok(true)
    }

    /// Checks the leaves of one level-0 tile, whose first is leaf `first`, against their
    /// events, and adds them to the tree.
    fn check_tile(
        &mut self,
        first: u64,
        hashes: &[Hash],
        refs: &[LeafRef],
    ) -> Result<(), LogError> {
        let events = self.read_events(refs);
        let mut batch: Vec<(LeafRef, Hash)> = Vec::with_capacity(refs.len());
        for (j, (r, stored)) in refs.iter().zip(hashes).enumerate() {
            let index = first + j as u64;
            // The tree is held against a signed root at every size that has one.
            // (The tree holds `index` leaves once the batch is in.)
            if !batch.is_empty() && self.marks.contains_key(&index) {
                self.append(&batch);
                batch.clear();
            }
            let place = Place::Leaf {
                index,
                case: r.case,
                seq: r.seq,
            };
            self.order(index, r, &place);
            match events.get(&(r.case, r.seq)) {
                None => self.found(place, "no such event: it was deleted".to_owned()),
                Some(Err(e)) => self.found(
                    place,
                    format!("the stored event cannot be read ({e}): it was changed"),
                ),
                Some(Ok(event)) => {
                    self.events += 1;
                    match event_leaf(r.case, event) {
                        Ok(h) if h == *stored => {}
                        Ok(_) => self.found(
                            place,
                            "the stored event does not hash to its leaf: the event was changed"
                                .to_owned(),
                        ),
                        Err(e) => self.found(
                            place,
                            format!("the stored event has no canonical bytes: {e}"),
                        ),
                    }
                }
            }
            // A leaf that does not hold is named above; the tree goes on with the stored
            // hash, so that what follows is judged on its own.
            batch.push((*r, *stored));
        }
        self.append(&batch);
        Ok(())
    }

    /// Checks that leaf `index` comes next in its case's history.
    fn order(&mut self, index: u64, r: &LeafRef, place: &Place) {
        let Some(seen) = self.cases.get(&r.case).copied() else {
            self.cases.insert(
                r.case,
                Seen {
                    seq: r.seq,
                    leaf: index,
                },
            );
            return;
        };
        if r.seq > seen.seq {
            self.cases.insert(
                r.case,
                Seen {
                    seq: r.seq,
                    leaf: index,
                },
            );
        }
        if r.seq <= seen.seq {
            let problem = format!(
                "the case's event {} is leaf {} already: the log names the case's events out \
                 of order, or one twice",
                seen.seq, seen.leaf
            );
            self.found(place.clone(), problem);
        } else if r.seq > seen.seq + 1 {
            let missing = if r.seq == seen.seq + 2 {
                format!("event {}", seen.seq + 1)
            } else {
                format!("events {} to {}", seen.seq + 1, r.seq - 1)
            };
            let problem = format!(
                "the case's {missing} are in no leaf between its event {} (leaf {}) and this \
                 one: leaves were removed",
                seen.seq, seen.leaf
            );
            self.found(place.clone(), problem);
        }
    }

    /// Reads the events that leaves name, one read per run of consecutive events of a case;
    /// a run that cannot be read is read event by event, so that the one at fault is named.
    fn read_events(&mut self, refs: &[LeafRef]) -> HashMap<(CaseId, u64), Result<Event, String>> {
        let mut wanted: HashMap<CaseId, Vec<u64>> = HashMap::new();
        for r in refs {
            wanted.entry(r.case).or_default().push(r.seq);
        }
        let mut out = HashMap::with_capacity(refs.len());
        for (case, mut seqs) in wanted {
            seqs.sort_unstable();
            seqs.dedup();
            let mut start = 0usize;
            for i in 1..=seqs.len() {
                if i == seqs.len() || seqs[i] != seqs[i - 1] + 1 {
                    self.read_run(case, seqs[start], seqs[i - 1], &mut out);
                    start = i;
                }
            }
        }
        out
    }

    fn read_run(
        &mut self,
        case: CaseId,
        from: u64,
        to: u64,
        out: &mut HashMap<(CaseId, u64), Result<Event, String>>,
    ) {
        let n = usize::try_from(to - from + 1).unwrap_or(usize::MAX);
        match self.log.events(case, from.saturating_sub(1), n) {
            Ok(events) => {
                for e in events {
                    if (from..=to).contains(&e.seq) {
                        out.insert((case, e.seq), Ok(e));
                    }
                }
            }
            Err(_) if from < to => {
                for seq in from..=to {
                    self.read_run(case, seq, seq, out);
                }
            }
            Err(e) => {
                out.insert((case, from), Err(e.0));
            }
        }
    }

    /// Adds leaves to the tree, keeps the higher tiles it makes, and holds the tree against
    /// the marks at its new size.
    fn append(&mut self, batch: &[(LeafRef, Hash)]) {
        if batch.is_empty() {
            return;
        }
        for t in self.tail.append(batch) {
            if t.id.level == 0 {
                // Level 0 holds the stored hashes themselves, checked leaf by leaf.
                continue;
            }
            if t.hashes.len() == TILE_WIDTH {
                self.higher_full.push(t);
            } else {
                self.higher_tails.insert(t.id.level, t);
            }
        }
        self.reach(self.tail.size());
    }

    /// Compares the higher tiles the leaves made with the stored ones: the full ones once
    /// `per` of them wait, or all when `all`, and then the tails too.
    fn higher_tiles(&mut self, per: usize, all: bool) -> Result<(), LogError> {
        if !all && self.higher_full.len() < per {
            return Ok(());
        }
        let mut made = std::mem::take(&mut self.higher_full);
        if all {
            for id in Tail::tail_ids(self.size) {
                if id.level == 0 {
                    continue;
                }
                if let Some(t) = self.higher_tails.get(&id.level).filter(|t| t.id == id) {
                    made.push(t.clone());
                }
            }
        }
        if made.is_empty() {
            return Ok(());
        }
        let ids: Vec<TileId> = made.iter().map(|t| t.id).collect();
        let stored: HashMap<TileId, Tile> = self
            .log
            .tiles(&ids)?
            .into_iter()
            .map(|t| (t.id, t))
            .collect();
        for t in made {
            let place = Place::Tile(t.id);
            let Some(s) = stored.get(&t.id) else {
                self.found(place, "is missing".to_owned());
                continue;
            };
            if s.hashes.len() != t.hashes.len() {
                let problem = format!(
                    "holds {} hashes, the leaves make {}",
                    s.hashes.len(),
                    t.hashes.len()
                );
                self.found(place, problem);
                continue;
            }
            if let Some(k) = (0..t.hashes.len()).find(|&k| s.hashes[k] != t.hashes[k]) {
                let height = u32::from(t.id.level) * u32::from(TILE_HEIGHT);
                let node = t.id.index * WIDTH + k as u64;
                let (from, to) = (node << height, (node + 1) << height);
                let problem = format!(
                    "entry {k} is not the head of leaves {from}..{to} as the leaves make it: the \
                     tile was changed"
                );
                self.found(place, problem);
            }
        }
        Ok(())
    }

    /// After every leaf: the stored head, and the marks past the tree's size.
    fn beyond(&mut self, head_root: &Hash) -> Result<(), LogError> {
        let root = self.tail.root();
        if root != *head_root {
            let problem = format!(
                "its root {} is not the root {} of its {} leaves: the head was changed",
                b64(head_root),
                b64(&root),
                self.size
            );
            self.found(Place::Head, problem);
        }
        let rest = std::mem::take(&mut self.marks);
        for (size, marks) in rest {
            for mark in marks {
                match mark.claim {
                    Err(problem) => self.found(mark.place, problem),
                    Ok(_) if self.within_latest(size.saturating_sub(1))? => {}
                    Ok(_) => {
                        let problem = format!(
                            "it signs a tree of {size} leaves, the log holds {}: the log was \
                             truncated",
                            self.size
                        );
                        self.found(mark.place, problem);
                    }
                }
            }
        }
        Ok(())
    }

    /// Looks for events the log does not hold: after the last leaf of each case of the log,
    /// and the first event of every other case.
    fn events_outside(&mut self) -> Result<(), LogError> {
        let mut inside: Vec<(CaseId, Seen)> = self.cases.iter().map(|(c, s)| (*c, *s)).collect();
        inside.sort_by_key(|(_, s)| s.leaf);
        for (case, seen) in inside {
            if self.full() {
                return Ok(());
            }
            let Some(next) = self.log.events(case, seen.seq, 1)?.into_iter().next() else {
                continue;
            };
            let leaf = self.log.event_leaf(case, next.seq)?;
            let what = match leaf {
                Some(x) if self.within_latest(x)? && x >= self.size => continue,
                Some(x) if x >= self.size => format!(
                    "its leaf {x} is past the log's {} leaves: the log was truncated",
                    self.size
                ),
                Some(x) => format!("its leaf {x} names another event"),
                None => "it was added without its leaf, or the log truncated".to_owned(),
            };
            let problem = format!(
                "is in no leaf, though the case's event {} is (leaf {}): {what}",
                seen.seq, seen.leaf
            );
            self.found(
                Place::Event {
                    case,
                    seq: next.seq,
                },
                problem,
            );
        }
        let mut others = self.log.case_ids()?;
        others.retain(|c| !self.cases.contains_key(c));
        others.sort_unstable();
        for case in others {
            if self.full() {
                return Ok(());
            }
            let Some(first) = self.log.events(case, 0, 1)?.into_iter().next() else {
                continue;
            };
            let problem = match self.log.event_leaf(case, first.seq)? {
                None => {
                    self.outside += 1;
                    continue;
                }
                Some(x) if self.within_latest(x)? && x >= self.size => continue,
                Some(x) if x >= self.size => format!(
                    "is in no leaf, yet has leaf {x}, past the log's {} leaves: the log was \
                     truncated",
                    self.size
                ),
                Some(x) => format!("is in no leaf, yet has leaf {x}, which names another event"),
            };
            self.found(
                Place::Event {
                    case,
                    seq: first.seq,
                },
                problem,
            );
        }
        Ok(())
    }
}
