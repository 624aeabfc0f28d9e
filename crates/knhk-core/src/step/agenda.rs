//! The step's agenda: what is left to reconsider, in order, and which OR-joins may decide
//! otherwise than when they were last reconsidered.
//!
//! A token change queues the consumers of its place, then one look at the OR-joins of its
//! net: the OR-joins are reconsidered there, in the net's order, as if each had been queued,
//! but only those marked changed, that is, with a token or running task in their cone
//! changed since they were last reconsidered (and a marked input or an enabled task: an
//! idle OR-join without a marked input cannot fire). Any other would be reconsidered to no
//! effect, so the events are those of reconsidering every OR-join on every token change.

use std::collections::VecDeque;

use crate::case::Touched;
use crate::index::{Idx, InstIx, IxBits, IxVec, OrIx, TaskIx};

/// One entry of the agenda.
#[derive(Clone, Copy, Debug)]
pub(super) enum Dirty {
    /// Reconsider this task.
    Task(InstIx, TaskIx),
    /// Reconsider the changed OR-joins of this net instance.
    OrJoins(InstIx),
}

#[derive(Debug)]
pub(super) struct Agenda {
    /// Whether every OR-join counts as changed, always (the reference behaviour).
    every: bool,
    queue: VecDeque<Dirty>,
    /// By net instance: its changed OR-joins. An instance without a set yet has all of them
    /// changed: a step knows nothing of what the steps before it reconsidered.
    changed: IxVec<InstIx, Option<IxBits<OrIx>>>,
}

impl Agenda {
    pub(super) fn new(every: bool) -> Agenda {
        Agenda {
            every,
            queue: VecDeque::new(),
            changed: IxVec::default(),
        }
    }

    pub(super) fn pop_front(&mut self) -> Option<Dirty> {
        self.queue.pop_front()
    }

    pub(super) fn clear(&mut self) {
        self.queue.clear();
    }

    pub(super) fn push_task(&mut self, ni: InstIx, t: TaskIx) {
        self.queue.push_back(Dirty::Task(ni, t));
    }

    /// Returns the first changed OR-join of `ni` at or after `from`, of the `n` of its net.
    pub(super) fn next_changed(&self, ni: InstIx, from: u32, n: usize) -> Option<OrIx> {
        match self.changed.get(ni) {
            Some(Some(set)) if !self.every => set.next_from(from),
            _ => ((from as usize) < n).then_some(OrIx::new(from)),
        }
    }

    /// Marks OR-join `o` of `ni` (one of `n`) as reconsidered now.
    pub(super) fn reconsidered(&mut self, ni: InstIx, o: OrIx, n: usize) {
        while self.changed.len() <= ni.raw() as usize {
            self.changed.push(None);
        }
        if let Some(entry) = self.changed.get_mut(ni) {
            entry.get_or_insert_with(|| IxBits::new(n, true)).remove(o);
        }
    }
}

impl Touched for Agenda {
    #[inline]
    fn touched(&mut self, ni: InstIx, t: TaskIx) {
        self.push_task(ni, t);
    }

    fn or_joins(&mut self, ni: InstIx) {
        self.queue.push_back(Dirty::OrJoins(ni));
    }

    fn or_join_changed(&mut self, ni: InstIx, o: OrIx) {
        if let Some(Some(set)) = self.changed.get_mut(ni) {
            set.insert(o);
        }
    }

    fn wants_or_joins(&self) -> bool {
        true
    }
}
