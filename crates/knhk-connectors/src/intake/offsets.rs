//! A Kafka subscription's offsets: what was delivered and not yet settled, per partition, and
//! the committed offset that follows from it, kept in a file of the state directory.
//!
//! Kafka keeps no per-message acknowledgement: a consumer says where to resume. Messages of a
//! partition are settled out of order (several are processed at once), so the offset to
//! resume from is the lowest one delivered and not yet settled, or, with none outstanding, the
//! next one to fetch. That offset only moves over a contiguous run of settled messages:
//! everything below it is settled, so resuming there loses nothing. What is above it and
//! settled already is delivered again after a restart, and the engine's idempotency keys make
//! that redelivery a duplicate (at least once, never lost).
//!
//! The file is replaced atomically (a temporary file, synced, renamed over the old one, and
//! the directory synced), so a crash leaves the old offsets or the new, never a torn file.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

/// One partition: the next offset to fetch, and the offsets delivered and not yet settled.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Partition {
    next: i64,
    outstanding: BTreeSet<i64>,
}

/// The offsets of every partition of one subscription.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Offsets {
    partitions: BTreeMap<i32, Partition>,
}

impl Offsets {
    /// Starts each partition of `start` at its offset, nothing outstanding.
    pub fn new(start: &BTreeMap<i32, i64>) -> Offsets {
        Offsets {
            partitions: start
                .iter()
                .map(|(p, o)| {
                    (
                        *p,
                        Partition {
                            next: *o,
                            outstanding: BTreeSet::new(),
                        },
                    )
                })
                .collect(),
        }
    }

    /// Returns the next offset to fetch from `partition` (0 for a partition not known).
    pub fn next(&self, partition: i32) -> i64 {
        self.partitions.get(&partition).map_or(0, |p| p.next)
    }

    /// Records that the message at `offset` of `partition` was handed on. An offset below the
    /// next one to fetch was handed on already: it is refused (`false`), so that one fetched
    /// twice is delivered once.
    pub fn delivered(&mut self, partition: i32, offset: i64) -> bool {
        let p = self.partitions.entry(partition).or_default();
        if offset < p.next {
            return false;
        }
        p.outstanding.insert(offset);
        p.next = offset + 1;
        true
    }

    /// Records that the message at `offset` of `partition` is settled (acknowledged, or sent
    /// to the dead letter).
    pub fn settled(&mut self, partition: i32, offset: i64) {
        if let Some(p) = self.partitions.get_mut(&partition) {
            p.outstanding.remove(&offset);
        }
    }

    /// Moves the next offset to fetch to `offset`, after the broker said the old one is out of
    /// its range (records deleted, or the topic made again).
    pub fn reset(&mut self, partition: i32, offset: i64) {
        let p = self.partitions.entry(partition).or_default();
        p.outstanding.retain(|o| *o < offset);
        p.next = offset;
    }

    /// Returns the offset to resume `partition` from: the lowest outstanding, else the next to
    /// fetch.
    pub fn committed(&self, partition: i32) -> Option<i64> {
        self.partitions
            .get(&partition)
            .map(|p| p.outstanding.first().copied().unwrap_or(p.next))
    }

    /// Returns the committed offset of every partition.
    pub fn all_committed(&self) -> BTreeMap<i32, i64> {
        self.partitions
            .keys()
            .filter_map(|p| self.committed(*p).map(|o| (*p, o)))
            .collect()
    }

    /// Returns how many messages are delivered and not yet settled.
    pub fn outstanding(&self) -> usize {
        self.partitions.values().map(|p| p.outstanding.len()).sum()
    }
}

/// The file that keeps one subscription's committed offsets.
#[derive(Clone, Debug)]
pub struct OffsetFile {
    path: PathBuf,
    topic: String,
}

impl OffsetFile {
    /// The file of `subscription` (reading `topic`) in `dir`: `NAME.offsets`, the name with
    /// every byte other than a letter, digit, `-`, `_` or `.` written `%XX`, so that two names
    /// never share a file.
    pub fn new(dir: &Path, subscription: &str, topic: &str) -> OffsetFile {
        let mut name = String::with_capacity(subscription.len() + 8);
        for b in subscription.bytes() {
            if b.is_ascii_alphanumeric()
                || b == b'-'
                || b == b'_'
                || (b == b'.' && !name.is_empty())
            {
                name.push(char::from(b));
            } else {
                name.push_str(&format!("%{b:02X}"));
            }
        }
        name.push_str(".offsets");
        OffsetFile {
            path: dir.join(name),
            topic: topic.to_owned(),
        }
    }

    /// Returns the file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the committed offsets; none when the file does not exist yet. A file that is not
    /// what [`OffsetFile::save`] writes, or that is for another topic, is an error naming it.
    pub fn load(&self) -> Result<BTreeMap<i32, i64>, String> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => return Err(format!("reading {}: {e}", self.path.display())),
        };
        let bad = |why: &str| {
            format!(
                "{} is not an offsets file ({why}); remove it to start from `start_from`",
                self.path.display()
            )
        };
        let value: Value = serde_json::from_str(&text).map_err(|e| bad(&e.to_string()))?;
        let topic = value["topic"].as_str().ok_or_else(|| bad("no `topic`"))?;
        if topic != self.topic {
            return Err(format!(
                "{} keeps the offsets of topic {topic}, but the subscription reads {}; remove \
                 it to start from `start_from`",
                self.path.display(),
                self.topic
            ));
        }
        let offsets = value["offsets"]
            .as_object()
            .ok_or_else(|| bad("no `offsets` table"))?;
        let mut out = BTreeMap::new();
        for (partition, offset) in offsets {
            let p = partition
                .parse::<i32>()
                .ok()
                .filter(|p| *p >= 0)
                .ok_or_else(|| bad(&format!("partition {partition:?} is not a number")))?;
            let o = offset
                .as_i64()
                .filter(|o| *o >= 0)
                .ok_or_else(|| bad(&format!("the offset of partition {p} is not a number")))?;
            out.insert(p, o);
        }
        Ok(out)
    }

    /// Replaces the file with `offsets`, atomically: a temporary file beside it, synced, then
    /// renamed over it, and the directory synced so that the rename is durable too.
    pub fn save(&self, offsets: &BTreeMap<i32, i64>) -> std::io::Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let table: Map<String, Value> = offsets
            .iter()
            .map(|(p, o)| (p.to_string(), json!(o)))
            .collect();
        let body = json!({"topic": self.topic, "offsets": table});
        let mut temp = self.path.clone().into_os_string();
        temp.push(".tmp");
        let temp = PathBuf::from(temp);
        {
            let mut file = std::fs::File::create(&temp)?;
            file.write_all(body.to_string().as_bytes())?;
            file.write_all(b"\n")?;
            file.sync_all()?;
        }
        std::fs::rename(&temp, &self.path)?;
        std::fs::File::open(dir)?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(pairs: &[(i32, i64)]) -> Offsets {
        Offsets::new(&pairs.iter().copied().collect())
    }

    #[test]
    fn contiguous_acks_advance_the_committed_offset() {
        let mut o = start(&[(0, 10)]);
        assert_eq!(o.committed(0), Some(10));
        for offset in 10..13 {
            assert!(o.delivered(0, offset));
        }
        assert_eq!(o.committed(0), Some(10));
        assert_eq!(o.outstanding(), 3);
        o.settled(0, 10);
        assert_eq!(o.committed(0), Some(11));
        o.settled(0, 11);
        o.settled(0, 12);
        assert_eq!(o.committed(0), Some(13));
        assert_eq!(o.outstanding(), 0);
    }

    #[test]
    fn an_out_of_order_ack_waits_for_the_ones_below_it() {
        let mut o = start(&[(0, 0), (1, 5)]);
        for offset in 0..4 {
            o.delivered(0, offset);
        }
        o.delivered(1, 5);
        o.settled(0, 2);
        o.settled(0, 3);
        assert_eq!(o.committed(0), Some(0), "0 and 1 are not settled");
        o.settled(0, 1);
        assert_eq!(o.committed(0), Some(0));
        o.settled(0, 0);
        assert_eq!(o.committed(0), Some(4), "the run 0..4 is settled");
        // Each partition on its own.
        assert_eq!(o.committed(1), Some(5));
        o.settled(1, 5);
        assert_eq!(
            o.all_committed(),
            [(0, 4), (1, 6)].into_iter().collect::<BTreeMap<_, _>>()
        );
    }

    #[test]
    fn gaps_in_the_offsets_do_not_hold_the_committed_offset() {
        // Compaction or transaction markers leave offsets no record has.
        let mut o = start(&[(0, 0)]);
        o.delivered(0, 0);
        o.delivered(0, 3);
        o.settled(0, 3);
        assert_eq!(o.committed(0), Some(0));
        o.settled(0, 0);
        assert_eq!(o.committed(0), Some(4));
    }

    #[test]
    fn an_offset_handed_on_already_is_not_delivered_twice() {
        let mut o = start(&[(0, 0)]);
        assert!(o.delivered(0, 0));
        assert!(o.delivered(0, 1));
        assert!(!o.delivered(0, 1));
        assert!(!o.delivered(0, 0));
        assert_eq!(o.next(0), 2);
        // Settling an unknown offset or partition changes nothing.
        o.settled(0, 7);
        o.settled(9, 0);
        assert_eq!(o.committed(0), Some(0));
        assert_eq!(o.committed(9), None);
    }

    #[test]
    fn a_reset_moves_the_next_offset_and_drops_what_is_beyond_it() {
        let mut o = start(&[(0, 100)]);
        o.delivered(0, 100);
        o.reset(0, 40);
        assert_eq!(o.next(0), 40);
        assert_eq!(o.committed(0), Some(40));
        assert!(o.delivered(0, 40));
    }

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "knhk-offsets-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn the_file_keeps_the_offsets_across_a_save_and_a_load() {
        let d = dir();
        let file = OffsetFile::new(&d, "log/orders", "orders");
        assert_eq!(file.path(), d.join("log%2Forders.offsets"));
        assert_eq!(file.load().unwrap(), BTreeMap::new());
        let offsets: BTreeMap<i32, i64> = [(0, 12), (2, 7)].into_iter().collect();
        file.save(&offsets).unwrap();
        assert_eq!(file.load().unwrap(), offsets);
        let more: BTreeMap<i32, i64> = [(0, 13), (1, 1), (2, 7)].into_iter().collect();
        file.save(&more).unwrap();
        assert_eq!(file.load().unwrap(), more);
        // No temporary file is left.
        let names: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from("log%2Forders.offsets")]
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_file_of_another_topic_or_garbage_is_refused_naming_it() {
        let d = dir();
        let file = OffsetFile::new(&d, "s", "orders");
        OffsetFile::new(&d, "s", "payments")
            .save(&[(0, 1)].into_iter().collect())
            .unwrap();
        let err = file.load().unwrap_err();
        assert!(
            err.ends_with(
                "s.offsets keeps the offsets of topic payments, but the subscription reads \
                 orders; remove it to start from `start_from`"
            ),
            "{err}"
        );
        std::fs::write(
            file.path(),
            "{\"topic\": \"orders\", \"offsets\": {\"x\": 1}}",
        )
        .unwrap();
        let err = file.load().unwrap_err();
        assert!(
            err.contains("is not an offsets file (partition \"x\" is not a number)"),
            "{err}"
        );
        std::fs::write(file.path(), "not json").unwrap();
        assert!(file.load().unwrap_err().contains("is not an offsets file"));
        // Names that differ only in the bytes escaped get files of their own.
        assert_ne!(
            OffsetFile::new(&d, "a/b", "t").path(),
            OffsetFile::new(&d, "a_b", "t").path()
        );
        assert_eq!(
            OffsetFile::new(&d, ".hidden", "t").path(),
            d.join("%2Ehidden.offsets")
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}
