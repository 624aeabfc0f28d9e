//! What the OR-join decision needs of a net that does not depend on the marking, computed
//! once when the workflow is built: each OR-join's backward cone, the places and tasks from
//! which a token can reach one of its inputs without the OR-join firing.
//!
//! Only the cone matters to an OR-join: a task outside it never marks a place inside it
//! (else it would be inside), so `orjoin::decide` looks at the cone alone, and a token
//! change outside the cone never changes the OR-join's answer, so it is not reconsidered.

use crate::index::{IxBits, IxVec, OrIx, PlaceIx, TaskIx};
use crate::workflow::{PlaceDef, TaskDef};

/// The backward cone of one OR-join.
#[derive(Debug)]
pub(crate) struct OrCone {
    /// The OR-join.
    pub task: TaskIx,
    /// Its places: its inputs and every place with a path to one of them avoiding it.
    pub has_place: IxBits<PlaceIx>,
    /// Its tasks: those, other than the OR-join, with an output among its places.
    pub has_task: IxBits<TaskIx>,
    /// Its inputs, each once, in the order the task lists them.
    pub inputs: Vec<PlaceIx>,
    /// Its inputs as a set: whether a place is one is a look-up, not a scan of `inputs`
    /// (an OR-join may have thousands).
    pub is_input: IxBits<PlaceIx>,
}

/// The cones of a net's OR-joins. Each is two bit sets (a bit per place and per task of
/// the net), so a net of n tasks and k OR-joins holds about k * n / 4 bytes of cones.
#[derive(Debug, Default)]
pub(crate) struct OrCones {
    /// By OR-join, in the order of `NetDef::or_joins`.
    pub cones: IxVec<OrIx, OrCone>,
    /// By task: its index among the OR-joins, if it is one.
    pub of_task: IxVec<TaskIx, Option<OrIx>>,
    /// By place: the tasks giving to it (empty for a net without OR-joins).
    pub producers: IxVec<PlaceIx, Vec<TaskIx>>,
    /// By place: the OR-joins it is an input of, each once (empty for a net without
    /// OR-joins).
    pub of_input: IxVec<PlaceIx, Vec<OrIx>>,
}

impl OrCones {
    /// Computes the cones of `or_joins` by a backward search from each one's inputs.
    pub(crate) fn new(
        places: &IxVec<PlaceIx, PlaceDef>,
        tasks: &IxVec<TaskIx, TaskDef>,
        or_joins: &[TaskIx],
    ) -> OrCones {
        let mut producers: IxVec<PlaceIx, Vec<TaskIx>> = IxVec::filled(Vec::new(), places.len());
        for (u, def) in tasks.iter_enumerated() {
            for arc in &def.outputs {
                if let Some(ps) = producers.get_mut(arc.place)
                    && !ps.contains(&u)
                {
                    ps.push(u);
                }
            }
        }
        let mut cones = IxVec::with_capacity(or_joins.len());
        let mut of_task: IxVec<TaskIx, Option<OrIx>> = IxVec::filled(None, tasks.len());
        let mut of_input: IxVec<PlaceIx, Vec<OrIx>> = IxVec::filled(Vec::new(), places.len());
        for &t in or_joins {
            let mut has_place: IxBits<PlaceIx> = IxBits::new(places.len(), false);
            let mut has_task: IxBits<TaskIx> = IxBits::new(tasks.len(), false);
            let mut todo: Vec<PlaceIx> = Vec::new();
            let mut add = |p: PlaceIx, todo: &mut Vec<PlaceIx>| {
                if !has_place.contains(p) && places.get(p).is_some() {
                    has_place.insert(p);
                    todo.push(p);
                }
            };
            for &p in tasks.get(t).map_or(&[][..], |d| &d.inputs) {
                add(p, &mut todo);
            }
            while let Some(p) = todo.pop() {
                for &u in producers.get(p).map_or(&[][..], Vec::as_slice) {
                    if u == t || has_task.contains(u) {
                        continue;
                    }
                    has_task.insert(u);
                    for &q in tasks.get(u).map_or(&[][..], |d| &d.inputs) {
                        add(q, &mut todo);
                    }
                }
            }
            let mut is_input: IxBits<PlaceIx> = IxBits::new(places.len(), false);
            let mut inputs = Vec::new();
            for &p in tasks.get(t).map_or(&[][..], |d| &d.inputs) {
                if places.get(p).is_some() && !is_input.contains(p) {
                    is_input.insert(p);
                    inputs.push(p);
                }
            }
            let o = cones.next_index();
            for &p in &inputs {
                if let Some(os) = of_input.get_mut(p) {
                    os.push(o);
                }
            }
            cones.push(OrCone {
                task: t,
                has_place,
                has_task,
                inputs,
                is_input,
            });
            if let Some(slot) = of_task.get_mut(t) {
                *slot = Some(o);
            }
        }
        if or_joins.is_empty() {
            producers = IxVec::default();
            of_input = IxVec::default();
        }
        OrCones {
            cones,
            of_task,
            producers,
            of_input,
        }
    }
}
