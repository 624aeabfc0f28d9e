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

use crate::index::{IxVec, PlaceIx, TaskIx};
use crate::model::ControlType;
use crate::workflow::NetDef;

/// Returns whether OR-join task `t` may fire: one of its inputs is marked and no unmarked
/// input may become marked without `t` firing first.
pub(crate) fn may_fire(
    net: &NetDef,
    marking: &IxVec<PlaceIx, u32>,
    busy: &IxVec<TaskIx, bool>,
    t: TaskIx,
) -> bool {
    let Some(task) = net.tasks.get(t) else {
        return false;
    };
    let marked = |p: PlaceIx| marking.get(p).is_some_and(|&n| n > 0);
    if !task.inputs.iter().any(|&p| marked(p)) {
        return false;
    }
    let mut reachable: IxVec<PlaceIx, bool> =
        IxVec::from_vec(marking.iter().map(|&n| n > 0).collect());
    let reach = |reachable: &mut IxVec<PlaceIx, bool>, outputs: &[crate::workflow::OutArc]| {
        for arc in outputs {
            if let Some(r) = reachable.get_mut(arc.place) {
                *r = true;
            }
        }
    };
    let mut fired = vec![false; net.tasks.len()];
    for ((u, def), fired) in net.tasks.iter_enumerated().zip(fired.iter_mut()) {
        if u != t && busy.get(u).copied().unwrap_or(false) {
            *fired = true;
            reach(&mut reachable, &def.outputs);
        }
    }
    let may_be_marked =
        |reachable: &IxVec<PlaceIx, bool>, p: PlaceIx| reachable.get(p).copied().unwrap_or(false);
    loop {
        if task
            .inputs
            .iter()
            .any(|&p| !marked(p) && may_be_marked(&reachable, p))
        {
            return false;
        }
        let mut changed = false;
        for ((u, def), fired) in net.tasks.iter_enumerated().zip(fired.iter_mut()) {
            if *fired || u == t {
                continue;
            }
            let can = match def.join {
                ControlType::And => def.inputs.iter().all(|&p| may_be_marked(&reachable, p)),
                ControlType::Xor | ControlType::Or => {
                    def.inputs.iter().any(|&p| may_be_marked(&reachable, p))
                }
            };
            if can {
                *fired = true;
                changed = true;
                reach(&mut reachable, &def.outputs);
            }
        }
        if !changed {
            return true;
        }
    }
}
