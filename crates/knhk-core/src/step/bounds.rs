//! The bounds a step keeps, as [`ApplyOptions`] sets them: the tasks one step may start, how
//! deep sub-nets nest, and how large the case data may grow through what tasks give back.

use serde::ser::{Serialize, Serializer};
use serde_json::{Map, Value};

use super::{Cx, Res};
use crate::case::Case;
use crate::event::CaseStatus;
use crate::ids::{ElementId, NetId};
use crate::index::InstIx;
use crate::workflow::Workflow;

/// How [`Case::apply`] runs a step. [`Case::apply`] uses the defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApplyOptions {
    /// The most tasks one step may start without waiting for the outside world. A loop of
    /// automatic tasks (empty tasks cycling through an XOR split, a deferred choice between
    /// empty tasks) would otherwise run for ever; past this bound the case fails with a
    /// [`crate::EventKind::FiringLimitReached`] event naming the tasks of the loop. The history of
    /// such a step holds about three events per firing, so the bound also bounds its memory.
    pub max_firings: u32,
    /// The most sub-net instances nested inside each other. Recursion through sub-nets (a
    /// composite task whose net starts, perhaps through others, the same composite task) that
    /// does no work would nest net instances without end; a composite task that would start a
    /// net deeper than this fails the case instead, with a reason naming the task and the nets.
    /// Withdrawing the work of nested nets recurses once per level, so keep it small (the
    /// `knhk` binary takes at most 1000).
    pub max_subnet_depth: u32,
    /// The most bytes of JSON the case data may take. A task whose output (or the joined
    /// outputs of its instances) would make the data larger fails, saying so; data set from
    /// outside ([`crate::Input::UpdateData`]) that would is refused.
    pub max_data_bytes: usize,
    /// Reconsider every OR-join of a net on every token change, as the engine first did:
    /// the reference the tests check the agenda against.
    pub(super) every_or_join: bool,
}

impl ApplyOptions {
    /// The default bound on task firings in one step.
    pub const DEFAULT_MAX_FIRINGS: u32 = 100_000;
    /// The default bound on the nesting of sub-net instances.
    pub const DEFAULT_MAX_SUBNET_DEPTH: u32 = 64;
    /// The default bound on the case data: 1 MiB of JSON.
    pub const DEFAULT_MAX_DATA_BYTES: usize = 1024 * 1024;

    /// Returns these options with another bound on task firings in one step.
    pub fn with_max_firings(mut self, max_firings: u32) -> ApplyOptions {
        self.max_firings = max_firings;
        self
    }

    /// Returns these options with another bound on the nesting of sub-net instances.
    pub fn with_max_subnet_depth(mut self, max_subnet_depth: u32) -> ApplyOptions {
        self.max_subnet_depth = max_subnet_depth;
        self
    }

    /// Returns these options with another bound on the size of the case data.
    pub fn with_max_data_bytes(mut self, max_data_bytes: usize) -> ApplyOptions {
        self.max_data_bytes = max_data_bytes;
        self
    }

    /// Returns these options reconsidering every OR-join of a net on every token change (not
    /// only those whose cone changed): the same events, at a cost that grows with the net.
    #[cfg(feature = "test-support")]
    pub fn reconsidering_every_or_join(mut self) -> ApplyOptions {
        self.every_or_join = true;
        self
    }
}

impl Default for ApplyOptions {
    fn default() -> ApplyOptions {
        ApplyOptions {
            max_firings: ApplyOptions::DEFAULT_MAX_FIRINGS,
            max_subnet_depth: ApplyOptions::DEFAULT_MAX_SUBNET_DEPTH,
            max_data_bytes: ApplyOptions::DEFAULT_MAX_DATA_BYTES,
            every_or_join: false,
        }
    }
}

impl Case {
    /// Returns the nets of the instances that enclose net instance `ni`, innermost first, when a
    /// sub-net started in it would nest deeper than `max`; `None` while within the bound.
    pub(super) fn nesting_beyond(
        &self,
        wf: &Workflow,
        ni: InstIx,
        max: u32,
    ) -> Res<Option<Vec<String>>> {
        let mut depth = 0u32;
        let mut inst = ni;
        while let Some((parent, _, _)) = self.net_instance(inst)?.parent {
            depth += 1;
            if depth >= max {
                break;
            }
            inst = parent;
        }
        if depth < max {
            return Ok(None);
        }
        // Name the nets of the innermost levels: a recursion shows as the same few nets again.
        let mut nets = Vec::new();
        let mut inst = Some(ni);
        while let Some(i) = inst
            && nets.len() < 6
        {
            nets.push(self.net_def(wf, i)?.id.to_string());
            inst = self.net_instance(i)?.parent.map(|(p, _, _)| p);
        }
        Ok(Some(nets))
    }

    /// Fails the case whose composite task `task` would start `net` deeper than the bound.
    pub(super) fn subnet_too_deep(
        &mut self,
        cx: &mut Cx,
        task: &ElementId,
        net: &NetId,
        enclosing: Vec<String>,
    ) -> Res {
        let why = format!(
            "sub-nets nested more than {} deep: composite task {task} would start net {net} \
             inside {}, ... (a recursion through sub-nets that never ends?)",
            cx.max_subnet_depth,
            enclosing.join(" inside ")
        );
        self.teardown_all(cx)?;
        self.set_status(cx, CaseStatus::Failed, Some(why))
    }

    /// Says why the case data would be too large with `changes` merged in, if it would: more
    /// than `max` bytes of JSON. Counted without building the merged data, and no further than
    /// the bound.
    pub(super) fn data_too_large(
        &self,
        changes: &Map<String, Value>,
        max: usize,
    ) -> Option<String> {
        let merged = Merged {
            data: self.data(),
            changes,
        };
        let mut counter = Counter { written: 0, max };
        let over = serde_json::to_writer(&mut counter, &merged).is_err() || counter.written > max;
        over.then(|| format!("would make the case data larger than the {max} bytes allowed"))
    }
}

/// The case data with changes merged in, as it would serialize.
struct Merged<'a> {
    data: &'a Map<String, Value>,
    changes: &'a Map<String, Value>,
}

impl Serialize for Merged<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(
            self.data
                .iter()
                .filter(|(k, _)| !self.changes.contains_key(*k))
                .chain(self.changes.iter()),
        )
    }
}

/// A writer that counts bytes and fails once past `max`, so that a huge value is not written
/// whole just to be measured.
struct Counter {
    written: usize,
    max: usize,
}

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.written = self.written.saturating_add(buf.len());
        if self.written > self.max {
            return Err(std::io::Error::other("over the bound"));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
