//! The step's agenda: what is left to reconsider, in order, and which OR-joins may decide
//! otherwise than when they were last reconsidered.
//!
//! A token change queues the consumers of its place, then one look at the OR-joins of its
//! net: the OR-joins are reconsidered there, in the net's order, as if each had been queued,
//! but only those marked changed, that is, with a token or a task in their cone changed
//! since they were last reconsidered. Any other would be reconsidered to no effect, so the
//! events are those of reconsidering every OR-join on every token change.
//!
//! Only the *awake* OR-joins are marked: those with a marked input or not idle. An idle
//! OR-join without a marked input cannot fire, and it wakes by a change of its own inputs or
//! state, which marks it. The agenda keeps the awake OR-joins of each net instance (found
//! once per step, then followed), so a change costs the awake OR-joins, not all of them.

use std::collections::{HashMap, VecDeque};

use crate::case::{Change, NetInstance, Slot, Touched};
use crate::ids::FxBuild;
use crate::index::{Idx, InstIx, IxBits, IxVec, OrIx, PlaceIx, TaskIx};
use crate::orjoin::{Scratch, Witness};
use crate::workflow::NetDef;

/// Stands for the OR-joins of a net instance in the queue.
const OR_JOINS: TaskIx = TaskIx::new(u32::MAX);

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
    /// The entries, an OR-join look as the task `OR_JOINS` (no net has that many tasks): an
    /// entry stays eight bytes, as before there were looks.
    queue: VecDeque<(InstIx, TaskIx)>,
    /// By net instance: its changed OR-joins. An instance without a set yet has all of them
    /// changed: a step knows nothing of what the steps before it reconsidered.
    changed: IxVec<InstIx, Option<IxBits<OrIx>>>,
    /// By net instance: its awake OR-joins, once found in this step.
    awake: IxVec<InstIx, Option<Vec<OrIx>>>,
    /// Why each waiting OR-join waited when last decided in this step, if known.
    witnesses: HashMap<(InstIx, OrIx), Witness, FxBuild>,
    /// By net instance: its marked places and running tasks, once asked for in this step.
    sources: IxVec<InstIx, Option<Sources>>,
    /// Where OR-joins are decided.
    scratch: Scratch,
}

/// The marked places and running tasks of a net instance, where an OR-join's decision
/// starts from: found once per step, then followed change by change, so that deciding costs
/// the tokens in flight, not the size of the cone.
#[derive(Debug)]
pub(crate) struct Sources {
    pub places: Vec<PlaceIx>,
    place_at: IxVec<PlaceIx, u32>,
    pub tasks: Vec<TaskIx>,
    task_at: IxVec<TaskIx, u32>,
    /// By OR-join: how many of its inputs are marked, once counted in this step. A count
    /// changes only when one of its inputs turns marked or unmarked, which `follow` sees
    /// (`place_at` holds whether each place was marked), so it stays exact for a look-up
    /// of any and all inputs marked in O(1), however many inputs the OR-join has.
    marked_inputs: IxVec<OrIx, Option<u32>>,
    /// By OR-join: where the backward search for a waiting path starts (`orjoin::Seeds`).
    pub cursor: IxVec<OrIx, u32>,
}

/// Puts `i` in or out of the list `list`, whose positions (plus one, 0 for out) are `at`.
fn set<I: Idx>(list: &mut Vec<I>, at: &mut IxVec<I, u32>, i: I, on: bool) {
    let Some(&k) = at.get(i) else {
        return;
    };
    match (on, k) {
        (true, 0) => {
            list.push(i);
            if let Some(a) = at.get_mut(i) {
                *a = list.len() as u32;
            }
        }
        (false, k) if k > 0 => {
            let k = k as usize - 1;
            if k < list.len() {
                list.swap_remove(k);
                if let Some(&moved) = list.get(k)
                    && let Some(a) = at.get_mut(moved)
                {
                    *a = k as u32 + 1;
                }
            }
            if let Some(a) = at.get_mut(i) {
                *a = 0;
            }
        }
        _ => {}
    }
}

impl Sources {
    fn new(def: &NetDef, net: &NetInstance) -> Sources {
        let n = def.or_cones.cones.len();
        let mut s = Sources {
            places: Vec::new(),
            place_at: IxVec::filled(0, net.marking.len()),
            tasks: Vec::new(),
            task_at: IxVec::filled(0, net.slots.len()),
            marked_inputs: IxVec::filled(None, n),
            cursor: IxVec::filled(0, n),
        };
        for (p, &n) in net.marking.iter_enumerated() {
            set(&mut s.places, &mut s.place_at, p, n > 0);
        }
        for (t, slot) in net.slots.iter_enumerated() {
            set(
                &mut s.tasks,
                &mut s.task_at,
                t,
                matches!(slot, Slot::Busy(_)),
            );
        }
        s
    }

    /// Returns how many inputs of OR-join `o` are marked, counting them the first time.
    pub(crate) fn marked_inputs(&mut self, def: &NetDef, net: &NetInstance, o: OrIx) -> usize {
        let Some(slot) = self.marked_inputs.get_mut(o) else {
            return 0;
        };
        *slot.get_or_insert_with(|| {
            def.or_cones.cones.get(o).map_or(0, |cone| {
                let marked = |p: &&PlaceIx| net.marking.get(**p).is_some_and(|&n| n > 0);
                cone.inputs.iter().filter(marked).count() as u32
            })
        }) as usize
    }

    fn follow(&mut self, def: &NetDef, net: &NetInstance, c: Change) {
        match c {
            Change::Place(p) => {
                let on = net.marking.get(p).is_some_and(|&n| n > 0);
                let was = self.place_at.get(p).is_some_and(|&k| k > 0);
                set(&mut self.places, &mut self.place_at, p, on);
                if on != was {
                    for &o in def.or_cones.of_input.get(p).map_or(&[][..], Vec::as_slice) {
                        if let Some(Some(k)) = self.marked_inputs.get_mut(o) {
                            *k = if on { *k + 1 } else { k.saturating_sub(1) };
                        }
                    }
                }
            }
            Change::Task(t) => {
                let on = matches!(net.slots.get(t), Some(Slot::Busy(_)));
                set(&mut self.tasks, &mut self.task_at, t, on);
            }
        }
    }
}

/// Whether OR-join `o` is awake: not idle, or with a marked input.
fn awake(def: &NetDef, net: &NetInstance, sources: &mut Sources, o: OrIx) -> bool {
    let Some(cone) = def.or_cones.cones.get(o) else {
        return false;
    };
    !matches!(net.slots.get(cone.task), Some(Slot::Idle) | None)
        || sources.marked_inputs(def, net, o) > 0
}

/// Returns the entry of `ni` in `v`, growing `v` as needed.
fn entry<T>(v: &mut IxVec<InstIx, Option<T>>, ni: InstIx) -> Option<&mut Option<T>> {
    while v.len() <= ni.raw() as usize {
        v.push(None);
    }
    v.get_mut(ni)
}

impl Agenda {
    pub(super) fn new(every: bool) -> Agenda {
        Agenda {
            every,
            queue: VecDeque::new(),
            changed: IxVec::default(),
            awake: IxVec::default(),
            witnesses: HashMap::default(),
            sources: IxVec::default(),
            scratch: Scratch::default(),
        }
    }

    pub(super) fn pop_front(&mut self) -> Option<Dirty> {
        let (ni, t) = self.queue.pop_front()?;
        Some(if t == OR_JOINS {
            Dirty::OrJoins(ni)
        } else {
            Dirty::Task(ni, t)
        })
    }

    pub(super) fn clear(&mut self) {
        self.queue.clear();
    }

    pub(super) fn push_task(&mut self, ni: InstIx, t: TaskIx) {
        self.queue.push_back((ni, t));
    }

    /// Returns the witness OR-join `o` of `ni` waited by when last decided, if any.
    pub(super) fn witness(&mut self, ni: InstIx, o: OrIx) -> Option<&mut Witness> {
        self.witnesses.get_mut(&(ni, o))
    }

    /// Keeps the witness OR-join `o` of `ni` waits by, or forgets the last one.
    pub(super) fn keep_witness(&mut self, ni: InstIx, o: OrIx, w: Option<Witness>) {
        match w {
            Some(w) => self.witnesses.insert((ni, o), w),
            None => self.witnesses.remove(&(ni, o)),
        };
    }

    /// Returns the marked places and running tasks of `ni`, as `net` now is, and where to
    /// decide.
    pub(super) fn sources(
        &mut self,
        ni: InstIx,
        def: &NetDef,
        net: &NetInstance,
    ) -> Option<(&mut Sources, &mut Scratch)> {
        let slot = entry(&mut self.sources, ni)?;
        Some((
            slot.get_or_insert_with(|| Sources::new(def, net)),
            &mut self.scratch,
        ))
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
        if let Some(entry) = entry(&mut self.changed, ni) {
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
        self.queue.push_back((ni, OR_JOINS));
    }

    fn or_joins_changed(&mut self, ni: InstIx, def: &NetDef, net: &NetInstance, c: Change) {
        // Followed from the first change of the step: the counts of marked inputs need
        // every change since they were counted.
        let Some(sources) = entry(&mut self.sources, ni) else {
            return;
        };
        let sources = match sources {
            Some(s) => {
                s.follow(def, net, c);
                s
            }
            None => sources.get_or_insert_with(|| Sources::new(def, net)),
        };
        let Some(slot) = entry(&mut self.awake, ni) else {
            return;
        };
        let awake_now = slot.get_or_insert_with(|| {
            def.or_cones
                .cones
                .indices()
                .filter(|&o| awake(def, net, sources, o))
                .collect()
        });
        // The OR-joins whose wakefulness the change may have changed: those taking from the
        // place, or the task itself.
        let mut near = |o: OrIx| {
            let at = awake_now.iter().position(|&x| x == o);
            match (awake(def, net, sources, o), at) {
                (true, None) => awake_now.push(o),
                (false, Some(i)) => {
                    awake_now.swap_remove(i);
                }
                _ => {}
            }
        };
        let of = |t: TaskIx| def.or_cones.of_task.get(t).copied().flatten();
        match c {
            Change::Place(p) => {
                for &t in def.places.get(p).map_or(&[][..], |d| &d.consumers) {
                    if let Some(o) = of(t) {
                        near(o);
                    }
                }
            }
            Change::Task(t) => {
                if let Some(o) = of(t) {
                    near(o);
                }
            }
        }
        let Some(Some(changed)) = self.changed.get_mut(ni) else {
            return;
        };
        for &o in awake_now.iter() {
            let Some(cone) = def.or_cones.cones.get(o) else {
                continue;
            };
            let holds = match c {
                Change::Place(p) => cone.has_place.contains(p),
                Change::Task(t) => t == cone.task || cone.has_task.contains(t),
            };
            if holds {
                changed.insert(o);
            }
        }
    }
}
