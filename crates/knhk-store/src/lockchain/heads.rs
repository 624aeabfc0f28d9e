//! The heads of the level-0 tiles a group commit fills, hashed ahead on a thread of their own
//! while the writer runs the group's statements.
//!
//! A full tile's head is 255 node hashes, about 0.1 µs each: for a group of commits at full
//! load, a few percent of the writer thread, which is what caps a store's throughput. The
//! writer knows the group's leaves before it runs a statement (each commit carries its own),
//! so it hands the tiles they would fill, if every commit is accepted, to this thread first,
//! and takes their heads when it appends.
//!
//! Why it cannot give a wrong head: a head computed ahead is used only for a tile whose
//! entries are exactly the ones it was computed from ([`Heads::head_of`] compares them); any
//! other tile (a commit was refused, so the leaves moved) is hashed where it is asked for.
//! When the thread cannot be started or has stopped, every head is hashed in place.

use std::sync::mpsc;
use std::thread::JoinHandle;

use knhk_lockchain::Hash;
use knhk_lockchain::merkle::root_of;
use knhk_lockchain::tiles::TILE_WIDTH;

/// Full tiles, each with its head.
type Hashed = Vec<(Vec<Hash>, Hash)>;
/// Tiles to hash, with where to send them back with their heads.
type Job = (Vec<Vec<Hash>>, mpsc::SyncSender<Hashed>);

/// The thread that hashes tiles ahead. Dropping it stops the thread.
pub(crate) struct HeadHasher {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl HeadHasher {
    /// Starts the thread; without it (it could not be started) heads are hashed in place.
    pub(crate) fn start() -> HeadHasher {
        let (jobs, queue) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("knhk-tile-heads".to_owned())
            .spawn(move || {
                while let Ok((tiles, reply)) = queue.recv() {
                    // A writer that stopped waiting needs no answer.
                    let heads = tiles
                        .into_iter()
                        .map(|t| {
                            let head = root_of(&t);
                            (t, head)
                        })
                        .collect();
                    let _ = reply.send(heads);
                }
            });
        match thread {
            Ok(thread) => HeadHasher {
                jobs: Some(jobs),
                thread: Some(thread),
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the tile hasher: heads are hashed by the writer");
                HeadHasher {
                    jobs: None,
                    thread: None,
                }
            }
        }
    }

    /// Starts hashing the level-0 tiles that `leaves` fill when they are appended after
    /// `tail` (the entries of the last level-0 tile now).
    pub(crate) fn ahead(&self, tail: &[Hash], leaves: &[&[Hash]]) -> Pending {
        let Some(jobs) = &self.jobs else {
            return Pending::none();
        };
        let count: usize = leaves.iter().map(|l| l.len()).sum();
        // The entries of the tiles that fill; none for most groups of a case or two.
        let full = (tail.len() + count) / TILE_WIDTH * TILE_WIDTH;
        if full == 0 {
            return Pending::none();
        }
        let leaves = leaves.iter().flat_map(|l| l.iter().copied());
        let mut tiles = Vec::with_capacity(full / TILE_WIDTH);
        let mut open: Vec<Hash> = tail.to_vec();
        for leaf in leaves.take(full - tail.len()) {
            open.push(leaf);
            if open.len() == TILE_WIDTH {
                tiles.push(std::mem::replace(&mut open, Vec::with_capacity(TILE_WIDTH)));
            }
        }
        let (reply, answer) = mpsc::sync_channel(1);
        match jobs.send((tiles, reply)) {
            Ok(()) => Pending(Some(answer)),
            Err(_) => Pending::none(),
        }
    }
}

impl Drop for HeadHasher {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Heads being hashed ahead.
pub(crate) struct Pending(Option<mpsc::Receiver<Hashed>>);

impl Pending {
    /// No heads: every tile is hashed where it fills.
    pub(crate) fn none() -> Pending {
        Pending(None)
    }

    /// Waits for the heads, each with its tile (none when the thread is gone).
    pub(crate) fn heads(self) -> Heads {
        Heads(
            self.0
                .and_then(|answer| answer.recv().ok())
                .unwrap_or_default(),
        )
    }
}

/// Heads hashed ahead, each with its tile's entries.
pub(crate) struct Heads(Hashed);

impl Heads {
    /// Returns the head of a full tile of `entries`: the one hashed ahead from these entries,
    /// else hashed now.
    pub(crate) fn head_of(&self, entries: &[Hash]) -> Hash {
        self.0
            .iter()
            .find(|(tile, _)| tile.as_slice() == entries)
            .map_or_else(|| root_of(entries), |(_, head)| *head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashes(from: u8, n: usize) -> Vec<Hash> {
        (0..n).map(|i| [from.wrapping_add(i as u8); 32]).collect()
    }

    #[test]
    fn heads_hashed_ahead_are_the_heads_of_the_tiles_filled_and_others_are_hashed_in_place() {
        let hasher = HeadHasher::start();
        let tail = hashes(1, 200);
        let leaves = hashes(7, 600);
        let heads = hasher
            .ahead(&tail, &[&leaves[..100], &leaves[100..]])
            .heads();
        // 200 + 600 leaves fill three tiles, the last 32 stay open.
        assert_eq!(heads.0.len(), 3);
        let mut all = tail.clone();
        all.extend(&leaves);
        for t in 0..3 {
            let entries = &all[t * TILE_WIDTH..(t + 1) * TILE_WIDTH];
            assert_eq!(heads.head_of(entries), root_of(entries));
        }
        // A tile not computed ahead (a refused commit moved the leaves) is hashed now.
        let other = hashes(99, TILE_WIDTH);
        assert_eq!(heads.head_of(&other), root_of(&other));
        // Leaves that fill no tile send nothing.
        assert!(hasher.ahead(&tail, &[&hashes(3, 10)]).0.is_none());
    }
}
