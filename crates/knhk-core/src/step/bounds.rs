//! The bounds a step keeps besides the firing bound: how deep sub-nets nest, and how large the
//! case data may grow through what tasks give back.

use serde::ser::{Serialize, Serializer};
use serde_json::{Map, Value};

use super::{Cx, Res};
use crate::case::Case;
use crate::event::CaseStatus;
use crate::ids::{ElementId, NetId};
use crate::index::InstIx;
use crate::workflow::Workflow;

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
