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

use crate::model::ControlType;
use crate::workflow::NetDef;

/// Returns whether OR-join task `t` may fire: one of its inputs is marked and no unmarked
/// input may become marked without `t` firing first.
pub(crate) fn may_fire(net: &NetDef, marking: &[u32], busy: &[bool], t: u32) -> bool {
    let Some(task) = net.tasks.get(t as usize) else {
        return false;
    };
    if !task.inputs.iter().any(|&p| marking[p as usize] > 0) {
        return false;
    }
    let mut reachable: Vec<bool> = marking.iter().map(|&n| n > 0).collect();
    let mut fired = vec![false; net.tasks.len()];
    for (u, def) in net.tasks.iter().enumerate() {
        if u as u32 != t && busy.get(u).copied().unwrap_or(false) {
            fired[u] = true;
            for arc in &def.outputs {
                reachable[arc.place as usize] = true;
            }
        }
    }
    let waits_for = |reachable: &[bool]| {
        task.inputs
            .iter()
            .any(|&p| marking[p as usize] == 0 && reachable[p as usize])
    };
    loop {
        if waits_for(&reachable) {
            return false;
        }
        let mut changed = false;
        for (u, def) in net.tasks.iter().enumerate() {
            if fired[u] || u as u32 == t {
                continue;
            }
            let can = match def.join {
                ControlType::And => def.inputs.iter().all(|&p| reachable[p as usize]),
                ControlType::Xor | ControlType::Or => {
                    def.inputs.iter().any(|&p| reachable[p as usize])
                }
            };
            if can {
                fired[u] = true;
                changed = true;
                for arc in &def.outputs {
                    reachable[arc.place as usize] = true;
                }
            }
        }
        if !changed {
            return true;
        }
    }
}
