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
//!
//! While the OR-join waits, the decision keeps a [`Witness`]: a path from a token (or a
//! running task) to the unmarked input it may reach, through tasks that need one input only.
//! As long as some place of the path is marked or some task of it runs, the OR-join still
//! waits; the next look checks that from where the token was last seen, so a token walking
//! down a long branch costs a step per move, not a fixpoint over the branch.

use crate::index::{Idx, IxVec, PlaceIx, TaskIx};
use crate::model::ControlType;
use crate::workflow::{NetDef, OrCone};

/// A step of a [`Witness`]'s path.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Node {
    Place(PlaceIx),
    Task(TaskIx),
}

/// Why an OR-join waits: a path from a source (a marked place or a running task) to one of
/// its unmarked inputs, each task on it enabled by one input alone (XOR or OR join, or an
/// AND join with one input). Any source on the path reaches the input.
#[derive(Clone, Debug)]
pub(crate) struct Witness {
    /// From the source to the input.
    path: Vec<Node>,
    /// Where on the path a source was last seen: tokens move forward.
    at: usize,
}

impl Witness {
    /// Returns whether the OR-join must still wait by this witness: the input is still
    /// unmarked and the path still holds a source at or after the last one seen.
    pub(crate) fn holds(
        &mut self,
        marking: &IxVec<PlaceIx, u32>,
        busy: impl Fn(TaskIx) -> bool,
    ) -> bool {
        let marked = |p: PlaceIx| marking.get(p).is_some_and(|&n| n > 0);
        match self.path.last() {
            Some(&Node::Place(input)) if !marked(input) => {}
            _ => return false,
        }
        let found = self.path.iter().skip(self.at).position(|&node| match node {
            Node::Place(p) => marked(p),
            Node::Task(u) => busy(u),
        });
        match found {
            Some(k) => {
                self.at += k;
                true
            }
            None => false,
        }
    }
}

/// How a place was reached, or a task fired, in [`decide`]: 0 not (yet), `SOURCE` held a
/// token or ran, `JOINED` an AND join of several inputs, else 1 + the index of the task (for
/// a place) or of the input place (for a task) it came from.
const SOURCE: u32 = u32::MAX;
const JOINED: u32 = u32::MAX - 1;

/// Returns whether the OR-join of `cone` may fire: one of its inputs is marked and no
/// unmarked input may become marked without it firing first. `busy` says which tasks run;
/// the search starts from `marked_places` and `running`, the marked places and running
/// tasks of the net instance (others are ignored).
/// When it must wait, also returns a witness of it if there is one (the input may be
/// reachable only through AND joins).
pub(crate) fn decide(
    net: &NetDef,
    cone: &OrCone,
    marking: &IxVec<PlaceIx, u32>,
    busy: impl Fn(TaskIx) -> bool,
    (marked_places, running): (&[PlaceIx], &[TaskIx]),
    scratch: &mut Scratch,
) -> (bool, Option<Witness>) {
    let t = cone.task;
    let Some(task) = net.tasks.get(t) else {
        return (false, None);
    };
    let marked = |p: PlaceIx| marking.get(p).is_some_and(|&n| n > 0);
    if !task.inputs.iter().any(|&p| marked(p)) {
        return (false, None);
    }
    // Nothing left to wait for.
    if task.inputs.iter().all(|&p| marked(p)) {
        return (true, None);
    }
    scratch.fit(net.places.len(), net.tasks.len());
    let Scratch {
        reached,
        fired,
        places,
        tasks,
        todo,
    } = scratch;
    let is = |v: Option<&u32>| v.is_some_and(|&v| v != 0);
    // Adds `p` to what may become marked, reached `how`; returns it if it is an unmarked
    // input of the OR-join (then it must wait).
    let mut reach = |p: PlaceIx, how: u32, reached: &mut IxVec<PlaceIx, u32>, todo: &mut Vec<_>| {
        match reached.get_mut(p) {
            Some(r) if *r == 0 => *r = how,
            _ => return None,
        }
        places.push(p);
        if !marked(p) && task.inputs.contains(&p) {
            return Some(p);
        }
        todo.push(p);
        None
    };
    let mut goal = None;
    for &p in marked_places {
        if cone.has_place.contains(p) && marked(p) {
            reach(p, SOURCE, reached, todo);
        }
    }
    'seed: for &u in running {
        if cone.has_task.contains(u) && busy(u) {
            if let Some(f) = fired.get_mut(u) {
                *f = SOURCE;
                tasks.push(u);
            }
            for arc in net.tasks.get(u).map_or(&[][..], |d| &d.outputs) {
                goal = reach(arc.place, u.raw() + 1, reached, todo);
                if goal.is_some() {
                    break 'seed;
                }
            }
        }
    }
    'spread: while goal.is_none()
        && let Some(p) = todo.pop()
    {
        for &u in net.places.get(p).map_or(&[][..], |d| &d.consumers) {
            if u == t || is(fired.get(u)) || !cone.has_task.contains(u) {
                continue;
            }
            let Some(def) = net.tasks.get(u) else {
                continue;
            };
            // `p` is an input of `u`: an XOR or OR join needs no more.
            let how = if def.join == ControlType::And && def.inputs.iter().any(|&q| q != p) {
                if !def.inputs.iter().all(|&q| is(reached.get(q))) {
                    continue;
                }
                JOINED
            } else {
                p.raw() + 1
            };
            if let Some(f) = fired.get_mut(u) {
                *f = how;
                tasks.push(u);
            }
            for arc in &def.outputs {
                goal = reach(arc.place, u.raw() + 1, reached, todo);
                if goal.is_some() {
                    break 'spread;
                }
            }
        }
    }
    let decision = match goal {
        None => (true, None),
        Some(input) => (false, witness(input, reached, fired)),
    };
    scratch.clear();
    decision
}

/// What [`decide`] works in, kept from one decision to the next so that a decision costs
/// what it explores, not the size of the net: marks by place and task, zero but where the
/// last decision wrote (it clears them).
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    reached: IxVec<PlaceIx, u32>,
    fired: IxVec<TaskIx, u32>,
    /// What `reached` and `fired` hold marks for.
    places: Vec<PlaceIx>,
    tasks: Vec<TaskIx>,
    todo: Vec<PlaceIx>,
}

impl Scratch {
    /// Grows the marks to cover a net of `places` and `tasks`.
    fn fit(&mut self, places: usize, tasks: usize) {
        while self.reached.len() < places {
            self.reached.push(0);
        }
        while self.fired.len() < tasks {
            self.fired.push(0);
        }
    }

    fn clear(&mut self) {
        for p in self.places.drain(..) {
            if let Some(r) = self.reached.get_mut(p) {
                *r = 0;
            }
        }
        for u in self.tasks.drain(..) {
            if let Some(f) = self.fired.get_mut(u) {
                *f = 0;
            }
        }
        self.todo.clear();
    }
}

/// Follows how `input` was reached back to a source; `None` through an AND join.
fn witness(
    input: PlaceIx,
    reached: &IxVec<PlaceIx, u32>,
    fired: &IxVec<TaskIx, u32>,
) -> Option<Witness> {
    let mut path = vec![Node::Place(input)];
    let mut place = input;
    loop {
        let how = *reached.get(place)?;
        if how == SOURCE {
            break;
        }
        let u = TaskIx::from_raw(how.checked_sub(1)?);
        path.push(Node::Task(u));
        match *fired.get(u)? {
            SOURCE => break,
            0 | JOINED => return None,
            from => place = PlaceIx::from_raw(from - 1),
        }
        path.push(Node::Place(place));
    }
    path.reverse();
    Some(Witness { path, at: 0 })
}

#[cfg(test)]
mod tests;
