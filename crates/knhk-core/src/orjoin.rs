//! The non-local OR-join (WCP-38): may an OR-join task fire now, or can a token still reach
//! one of its unmarked inputs without the task firing first?
//!
//! The answer over-approximates the markings reachable from the current one: a place *may
//! become marked* if it holds a token, is an output of a busy task, or is an output of a task
//! other than the OR-join whose join can be satisfied by places that may become marked (AND:
//! all inputs, XOR/OR: any). This least fixpoint follows loops, ignores dead branches (no
//! token can reach them) and sees cancelled branches as gone (their tokens were removed). It
//! never lets the OR-join fire too early: every real firing sequence only marks places in the
//! set. Removing tokens (cancellation) only shrinks what is reachable, so it stays sound.
//!
//! Only the OR-join's backward cone (`workflow::OrCone`, computed once per net) can mark one
//! of its inputs, so the fixpoint is computed over the cone alone, as a worklist: a place
//! enters once, and a task is looked at when one of its inputs enters. Its cost is bounded by
//! the cone, whatever order the file lists the tasks in.

use crate::index::{IxBits, IxVec, PlaceIx, TaskIx};
use crate::model::ControlType;
use crate::workflow::{NetDef, OrCone};

/// Returns whether the OR-join of `cone` may fire: one of its inputs is marked and no
/// unmarked input may become marked without it firing first. `busy` says which tasks run.
pub(crate) fn may_fire(
    net: &NetDef,
    cone: &OrCone,
    marking: &IxVec<PlaceIx, u32>,
    busy: impl Fn(TaskIx) -> bool,
) -> bool {
    let t = cone.task;
    let Some(task) = net.tasks.get(t) else {
        return false;
    };
    let marked = |p: PlaceIx| marking.get(p).is_some_and(|&n| n > 0);
    if !task.inputs.iter().any(|&p| marked(p)) {
        return false;
    }
    let mut reached: IxBits<PlaceIx> = IxBits::new(net.places.len(), false);
    let mut fired: IxBits<TaskIx> = IxBits::new(net.tasks.len(), false);
    let mut todo: Vec<PlaceIx> = Vec::new();
    // Adds `p` to what may become marked; false when it is an unmarked input of the OR-join.
    let reach = |p: PlaceIx, reached: &mut IxBits<PlaceIx>, todo: &mut Vec<PlaceIx>| {
        if reached.contains(p) {
            return true;
        }
        if !marked(p) && task.inputs.contains(&p) {
            return false;
        }
        reached.insert(p);
        todo.push(p);
        true
    };
    for p in cone.has_place.iter() {
        if marked(p) {
            reach(p, &mut reached, &mut todo);
        }
    }
    for u in cone.has_task.iter() {
        if busy(u) {
            fired.insert(u);
            for arc in net.tasks.get(u).map_or(&[][..], |d| &d.outputs) {
                if !reach(arc.place, &mut reached, &mut todo) {
                    return false;
                }
            }
        }
    }
    while let Some(p) = todo.pop() {
        for &u in net.places.get(p).map_or(&[][..], |d| &d.consumers) {
            if u == t || fired.contains(u) || !cone.has_task.contains(u) {
                continue;
            }
            let Some(def) = net.tasks.get(u) else {
                continue;
            };
            // `p` is an input of `u`: an XOR or OR join needs no more.
            if def.join == ControlType::And && !def.inputs.iter().all(|&q| reached.contains(q)) {
                continue;
            }
            fired.insert(u);
            for arc in &def.outputs {
                if !reach(arc.place, &mut reached, &mut todo) {
                    return false;
                }
            }
        }
    }
    true
}

#[cfg(test)]
mod tests;
