//! The non-local OR-join (WCP-38): may an OR-join task fire now, or can a token still reach
//! one of its unmarked inputs without the task firing first?
//!
//! The rule is YAWL's (Wynn et al.; YAWL's `E2WFOJNet`), decided exactly: the OR-join `t`
//! may fire iff one of its inputs is marked and, in the reset net of the net without `t`,
//! no marking is coverable that keeps every marked input of `t` marked and marks one more
//! ([`exact`] says how the net is built and coverability decided). Three steps decide it,
//! cheapest first, each exact in what it answers:
//!
//! 1. The over-approximation: a place *may become marked* if it holds a token, is an output
//!    of a busy task, or is an output of a task other than the OR-join whose join can be
//!    satisfied by places that may become marked (AND: all inputs, XOR/OR: any). Every
//!    firing sequence of the reset net only marks places of this least fixpoint (removing
//!    tokens only shrinks what is reachable), so an input outside it cannot be covered:
//!    when it reaches none of the unmarked inputs, the OR-join fires at once.
//! 2. A path: when it reaches an unmarked input through tasks that each need one input (an
//!    XOR or OR join, or an AND join with one input), from a marked place or a running
//!    task, firing those tasks one after the other is a firing sequence of the reset net
//!    (each task's cancellation set is emptied before it gives its output). It marks the
//!    input and keeps the marked inputs unless one of its tasks consumes or empties one of
//!    them: if none does, the OR-join waits, exactly. Such a path is looked for backwards
//!    from the unmarked inputs first (nearest token first), then forwards in the fixpoint.
//! 3. Coverability, for the inputs the fixpoint reaches and no such path shows: each is
//!    decided by the basis of the markings covering the target, cached per workflow
//!    ([`exact::Exact`]). Past [`OR_JOIN_BUDGET`] the OR-join waits (the answer of step 1)
//!    and [`OrJoinStats::over_budget`] counts it. Once the bases of all its unmarked
//!    inputs are complete, an OR-join is decided by them first, a look-up (steps 1 and 2
//!    only avoid computing bases).
//!
//! So where the over-approximation fires, the exact rule fires, and where the exact rule
//! waits, so does the over-approximation (a property test checks both, and the decision
//! against a plain forward exploration of the reset net).
//!
//! Only the OR-join's backward cone (`workflow::OrCone`, computed once per net) can mark one
//! of its inputs, so the fixpoint is computed over the cone alone, as a worklist: a place
//! enters once, and a task is looked at when one of its inputs enters. Its cost is bounded by
//! the cone, whatever order the file lists the tasks in. Coverability too only looks at the
//! cone: only its transitions give to what the target asks.
//!
//! While the OR-join waits, the decision keeps a [`Witness`]: the path of step 2, or the
//! basis element of step 3 that lies under the marking. The next look checks it first: the
//! path from where the token was last seen (while the input is unmarked, some place of the
//! path marked or some task of it running, and no marked input one of its tasks takes), or
//! the element and the next few toward the target, so a token walking down a long branch
//! costs a step per move, not a fixpoint over the branch nor a new coverability check.

use crate::index::{Idx, IxVec, PlaceIx, TaskIx};
use crate::model::ControlType;
use crate::workflow::{NetDef, OrCone, TaskDef};

pub(crate) mod exact;

use exact::{Cover, Covering, Exact, View};
pub use exact::{OR_JOIN_BUDGET, OrJoinStats};

/// A step of a [`Witness`]'s path.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Node {
    Place(PlaceIx),
    Task(TaskIx),
}

/// Why an OR-join waits, kept from one decision to the next and checked first.
#[derive(Clone, Debug)]
pub(crate) enum Witness {
    /// A firing sequence of the reset net to the input.
    Path(Path),
    /// An element of the basis of the markings covering the target, under the marking.
    Cover(Covering),
}

impl Witness {
    /// Returns whether the OR-join `t` (`def`) must still wait by this witness. `exact`:
    /// the net's exact rule, counting a wait past its budget; `None` for the
    /// over-approximation alone.
    pub(crate) fn holds<B: Fn(TaskIx) -> bool>(
        &mut self,
        exact: Option<&Exact>,
        def: &TaskDef,
        t: TaskIx,
        marking: &IxVec<PlaceIx, u32>,
        busy: B,
    ) -> bool {
        match (self, exact) {
            (Witness::Path(path), None) => path.holds(marking, busy),
            (Witness::Path(path), Some(exact)) => {
                let marked = |p: &PlaceIx| marking.get(*p).is_some_and(|&n| n > 0);
                if path.over_budget {
                    let holds = path.holds(marking, busy);
                    if holds {
                        exact.count_over_budget();
                    }
                    holds
                } else {
                    !path.takes.iter().any(marked) && path.holds(marking, busy)
                }
            }
            (Witness::Cover(c), Some(exact)) => {
                let view = View {
                    marking,
                    busy,
                    places: exact.net.places(),
                };
                c.holds(exact, def, t, &view)
            }
            (Witness::Cover(_), None) => false,
        }
    }
}

/// A path from a source (a marked place or a running task) to one of an OR-join's unmarked
/// inputs, each task on it enabled by one input alone (XOR or OR join, or an AND join with
/// one input). Any source on the path reaches the input: firing the path's tasks from it,
/// one after the other, is a firing sequence of the reset net (a task's cancellation set is
/// emptied before it gives its output). The OR-join's other marked inputs stay marked along
/// it unless the path takes one of them (`takes`).
#[derive(Clone, Debug)]
pub(crate) struct Path {
    /// From the source to the input.
    path: Vec<Node>,
    /// Where on the path a source was last seen: tokens move forward.
    at: usize,
    /// The OR-join's inputs a task of the path consumes or empties.
    takes: Vec<PlaceIx>,
    /// Kept although it takes a marked input: the exact rule ran out of budget.
    over_budget: bool,
}

impl Path {
    /// Returns whether the input is still unmarked and the path still holds a source at or
    /// after the last one seen.
    fn holds(&mut self, marking: &IxVec<PlaceIx, u32>, busy: impl Fn(TaskIx) -> bool) -> bool {
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

/// How a place was reached, or a task fired, in [`decide_from`]: 0 not (yet), `SOURCE` held a
/// token or ran, `JOINED` an AND join of several inputs, else 1 + the index of the task (for
/// a place) or of the input place (for a task) it came from.
const SOURCE: u32 = u32::MAX;
const JOINED: u32 = u32::MAX - 1;

/// [`decide_from`], with the marked inputs counted and the search started at the first.
#[cfg(test)]
pub(crate) fn decide(
    net: &NetDef,
    cone: &OrCone,
    exact: Option<&Exact>,
    marking: &IxVec<PlaceIx, u32>,
    busy: impl Fn(TaskIx) -> bool,
    (places, tasks): (&[PlaceIx], &[TaskIx]),
    scratch: &mut Scratch,
) -> (bool, Option<Witness>) {
    let marked_inputs = cone
        .inputs
        .iter()
        .filter(|&&p| marking.get(p).is_some_and(|&n| n > 0))
        .count();
    let seeds = Seeds {
        places,
        tasks,
        marked_inputs,
        cursor: &mut 0,
    };
    decide_from(net, cone, exact, marking, busy, seeds, scratch)
}

/// Where [`decide_from`] starts from, kept by the step as the marking changes.
pub(crate) struct Seeds<'a> {
    /// The marked places of the net instance.
    pub places: &'a [PlaceIx],
    /// Its running tasks.
    pub tasks: &'a [TaskIx],
    /// How many of the OR-join's inputs (`OrCone::inputs`) are marked.
    pub marked_inputs: usize,
    /// Where in `OrCone::inputs` the backward search for a waiting path starts: the input
    /// its last path led to. Any start gives the same decision (any path shows that the
    /// OR-join waits), but inputs tend to get their tokens in order, so the next unmarked
    /// input after the last target is found after a skip or two, not a scan of the inputs
    /// already marked, and its path holds until that input gets its token.
    pub cursor: &'a mut u32,
}

/// Returns whether the OR-join of `cone` may fire: one of its inputs is marked and no
/// unmarked input can become marked, the other marked inputs staying marked, without it
/// firing first. `busy` says which tasks run; the search starts from `seeds`, the marked places and running
/// tasks of the net instance (others are ignored), and any and all inputs marked are read
/// from its count, so the decision costs no scan of the inputs.
/// When it must wait, also returns a witness of it if there is one.
///
/// With `exact` ([`exact`]), in order: an OR-join decided by coverability before, whose
/// bases for its unmarked inputs are all complete, is decided by them alone; a waiting path
/// is looked for backwards from the unmarked inputs; then the over-approximation (see the
/// module's documentation) runs: an input it cannot reach is not reachable, and each input
/// it reaches is checked at once if the path it took is a firing sequence that keeps the
/// marked inputs, else by coverability. Without `exact`, the first input the
/// over-approximation reaches makes the OR-join wait (the over-approximating rule alone).
pub(crate) fn decide_from(
    net: &NetDef,
    cone: &OrCone,
    exact: Option<&Exact>,
    marking: &IxVec<PlaceIx, u32>,
    busy: impl Fn(TaskIx) -> bool,
    seeds: Seeds<'_>,
    scratch: &mut Scratch,
) -> (bool, Option<Witness>) {
    let t = cone.task;
    let Some(task) = net.tasks.get(t) else {
        return (false, None);
    };
    let marked = |p: PlaceIx| marking.get(p).is_some_and(|&n| n > 0);
    let Seeds {
        places: marked_places,
        tasks: running,
        marked_inputs,
        cursor,
    } = seeds;
    if marked_inputs == 0 {
        return (false, None);
    }
    // Nothing left to wait for.
    if marked_inputs >= cone.inputs.len() {
        return (true, None);
    }
    scratch.fit(net.places.len(), net.tasks.len());
    if let Some(exact) = exact {
        // An OR-join decided by coverability before: its bases may answer alone.
        let view = View {
            marking,
            busy: &busy,
            places: exact.net.places(),
        };
        if let Some((fires, covering)) =
            exact.decide_known(task, t, &view, (marked_places, running))
        {
            return (fires, covering.map(Witness::Cover));
        }
        let path = back_path(net, cone, marking, &busy, cursor, scratch);
        scratch.clear();
        if let Some(path) = path {
            return (false, Some(Witness::Path(path)));
        }
    }
    let Scratch {
        reached,
        fired,
        places,
        tasks,
        todo,
    } = scratch;
    let is = |v: Option<&u32>| v.is_some_and(|&v| v != 0);
    // Adds `p` to what may become marked, reached `how`; returns it if it is an unmarked
    // input of the OR-join (then it is judged before the search goes on from it).
    let mut reach = |p: PlaceIx, how: u32, reached: &mut IxVec<PlaceIx, u32>, todo: &mut Vec<_>| {
        match reached.get_mut(p) {
            Some(r) if *r == 0 => *r = how,
            _ => return None,
        }
        places.push(p);
        if !marked(p) && cone.is_input.contains(p) {
            return Some(p);
        }
        todo.push(p);
        None
    };
    // Whether the OR-join waits for `input`, reached: with the witness of it.
    let judge = |input: PlaceIx,
                 reached: &IxVec<PlaceIx, u32>,
                 fired: &IxVec<TaskIx, u32>|
     -> Option<Option<Witness>> {
        let path = witness(net, cone, input, reached, fired);
        let Some(exact) = exact else {
            return Some(path.map(Witness::Path));
        };
        if let Some(path) = path
            .as_ref()
            .filter(|w| !w.takes.iter().any(|&q| marked(q)))
        {
            return Some(Some(Witness::Path(path.clone())));
        }
        let view = View {
            marking,
            busy: &busy,
            places: exact.net.places(),
        };
        match exact.cover(task, t, input, &view, (marked_places, running)) {
            (Cover::Yes(_), covering) => Some(covering.map(Witness::Cover)),
            (Cover::OverBudget, _) => Some(path.map(|mut w| {
                w.over_budget = true;
                Witness::Path(w)
            })),
            (Cover::No, _) => None,
        }
    };
    let mut wait = None;
    let mut goals = Vec::new();
    for &p in marked_places {
        if cone.has_place.contains(p) && marked(p) {
            reach(p, SOURCE, reached, todo);
        }
    }
    for &u in running {
        if cone.has_task.contains(u) && busy(u) {
            if let Some(f) = fired.get_mut(u) {
                *f = SOURCE;
                tasks.push(u);
            }
            for arc in net.tasks.get(u).map_or(&[][..], |d| &d.outputs) {
                goals.extend(reach(arc.place, u.raw() + 1, reached, todo));
            }
        }
    }
    'spread: loop {
        for g in goals.drain(..) {
            wait = judge(g, reached, fired);
            if wait.is_some() {
                break 'spread;
            }
            todo.push(g);
        }
        let Some(p) = todo.pop() else {
            break;
        };
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
                goals.extend(reach(arc.place, u.raw() + 1, reached, todo));
            }
        }
    }
    let decision = match wait {
        None => (true, None),
        Some(witness) => (false, witness),
    };
    scratch.clear();
    decision
}

/// Looks for a path to an unmarked input of the OR-join of `cone` backwards from it, nearest
/// sources first, through tasks enabled by one input alone, that takes none of the
/// OR-join's marked inputs: a firing sequence of the reset net that marks the input and
/// keeps the marked ones, so the OR-join waits. Costs what lies between the input and the
/// nearest token, where the forward search starts from every token of the net instance.
/// `None` if there is none such (the forward search and the exact rule decide).
fn back_path(
    net: &NetDef,
    cone: &OrCone,
    marking: &IxVec<PlaceIx, u32>,
    busy: &impl Fn(TaskIx) -> bool,
    cursor: &mut u32,
    scratch: &mut Scratch,
) -> Option<Path> {
    let t = cone.task;
    let marked = |p: PlaceIx| marking.get(p).is_some_and(|&n| n > 0);
    let Scratch {
        reached,
        fired,
        places,
        tasks,
        todo,
    } = scratch;
    // `reached`: 1 + the task a place leads to toward the input (`SOURCE` for the input);
    // `fired`: 1 + the place a task leads to. `todo` is a queue, from `head`.
    let mut found = None;
    let n = cone.inputs.len();
    let from = *cursor as usize;
    'inputs: for k in (from..n).chain(0..from.min(n)) {
        let Some(&g) = cone.inputs.get(k) else {
            continue;
        };
        *cursor = k as u32;
        if marked(g) || reached.get(g).is_some_and(|&r| r != 0) {
            continue;
        }
        if let Some(r) = reached.get_mut(g) {
            *r = SOURCE;
            places.push(g);
        }
        todo.clear();
        todo.push(g);
        let mut head = 0;
        while let Some(&x) = todo.get(head) {
            head += 1;
            for &u in net.or_cones.producers.get(x).map_or(&[][..], Vec::as_slice) {
                if u == t || fired.get(u).is_some_and(|&f| f != 0) {
                    continue;
                }
                if let Some(f) = fired.get_mut(u) {
                    *f = x.raw() + 1;
                    tasks.push(u);
                }
                if busy(u) {
                    found = Some(Node::Task(u));
                    break 'inputs;
                }
                let Some(def) = net.tasks.get(u) else {
                    continue;
                };
                if def.join == ControlType::And && def.inputs.len() > 1 {
                    continue;
                }
                for &q in &def.inputs {
                    if reached.get(q).is_some_and(|&r| r != 0) {
                        continue;
                    }
                    if let Some(r) = reached.get_mut(q) {
                        *r = u.raw() + 1;
                        places.push(q);
                    }
                    if marked(q) {
                        found = Some(Node::Place(q));
                        break 'inputs;
                    }
                    todo.push(q);
                }
            }
        }
    }
    // Forward from the source along the marks.
    let mut node = found?;
    let mut path = vec![node];
    let mut takes = Vec::new();
    loop {
        match node {
            Node::Place(p) => {
                let how = *reached.get(p)?;
                if how == SOURCE {
                    break;
                }
                if cone.is_input.contains(p) {
                    takes.push(p);
                }
                node = Node::Task(TaskIx::from_raw(how - 1));
            }
            Node::Task(u) => {
                takes.extend(
                    net.tasks
                        .get(u)?
                        .cancel_places
                        .iter()
                        .filter(|&&q| cone.is_input.contains(q)),
                );
                node = Node::Place(PlaceIx::from_raw(fired.get(u)?.checked_sub(1)?));
            }
        }
        path.push(node);
    }
    if takes.iter().any(|&q| marked(q)) {
        return None;
    }
    takes.sort_unstable();
    takes.dedup();
    Some(Path {
        path,
        at: 0,
        takes,
        over_budget: false,
    })
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

/// Follows how `input` was reached back to a source; `None` through an AND join. Notes the
/// inputs of the OR-join `t` the path's tasks consume or empty.
fn witness(
    net: &NetDef,
    t: &OrCone,
    input: PlaceIx,
    reached: &IxVec<PlaceIx, u32>,
    fired: &IxVec<TaskIx, u32>,
) -> Option<Path> {
    let mut path = vec![Node::Place(input)];
    let mut takes = Vec::new();
    let mut place = input;
    loop {
        let how = *reached.get(place)?;
        if how == SOURCE {
            break;
        }
        let u = TaskIx::from_raw(how.checked_sub(1)?);
        path.push(Node::Task(u));
        takes.extend(
            net.tasks
                .get(u)?
                .cancel_places
                .iter()
                .filter(|&&q| t.is_input.contains(q)),
        );
        match *fired.get(u)? {
            SOURCE => break,
            0 | JOINED => return None,
            from => place = PlaceIx::from_raw(from - 1),
        }
        if t.is_input.contains(place) {
            takes.push(place);
        }
        path.push(Node::Place(place));
    }
    path.reverse();
    takes.sort_unstable();
    takes.dedup();
    Some(Path {
        path,
        at: 0,
        takes,
        over_budget: false,
    })
}

#[cfg(test)]
mod exact_tests;
#[cfg(test)]
mod tests;
