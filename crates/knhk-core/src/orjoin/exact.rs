//! The exact OR-join rule: backward coverability in the reset net of a YAWL net (Wynn,
//! Edmond, van der Aalst, ter Hofstede; YAWL's `E2WFOJNet`).
//!
//! The reset net of a net has a place per condition and a *busy* place per task (a token
//! there: the task runs; composite and multiple-instance tasks are atomic). Each task has
//! start transitions by its join (AND: one taking every input; XOR, and OR-joins other than
//! the one decided, as YAWL treats them: one per input) and end transitions by its split
//! (AND: one giving every output; XOR: one per output; OR: one per non-empty subset of its
//! outputs, of which only the one giving every output matters backwards, see below), each
//! emptying its cancellation set (its conditions, and the busy places of its tasks: reset
//! arcs), plus one end along its failure flow if it has one (no cancellation). The OR-join
//! `t` decided loses its own transitions.
//!
//! `t` waits at marking `M` iff, for an unmarked input `p`, the marking "one token on each
//! marked input of `t` and on `p`" can be covered from `M`. The markings from which a
//! target can be covered form an upward-closed set, with a finite basis of minimal markings
//! (Dickson's lemma): the target, then the pre-images of the elements found so far by every
//! transition, minus those above an element already found. A transition has a pre-image of
//! an element only if the element asks no more tokens of a place the transition resets than
//! the transition puts back: `pre(m)(x) = pre(x)` on reset places, `max(m(x) - post(x), 0) +
//! pre(x)` elsewhere. On an OR split, the end giving every output has, wherever another
//! subset's has a pre-image, one at most as large, so it stands for all of them.
//!
//! The basis depends on the net and the target alone, not on the marking: it is computed
//! once per workflow and target, lazily and in a fixed order (breadth first), each decision
//! extending it only until one of its elements lies under the marking, and cached
//! ([`Exact`]). A kept input that no transition but `t`'s consumes or resets stays marked
//! whatever fires, so it is dropped from the target: the cache key is the OR-join, the
//! unmarked input and the marked inputs that can be lost.
//!
//! Each basis may hold [`OR_JOIN_BUDGET`] elements. Past it, the decision takes the conservative
//! answer (wait, as the over-approximating rule) and counts it ([`OrJoinStats`]). The
//! answer is the same for the same net and marking whatever was decided before: the basis
//! grows in the same order whoever asks (an element left half expanded is expanded again
//! from its start, what it gave already being found subsumed), so whether a covering
//! element lies within the budget does not depend on who asked first.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use crate::ids::FxBuild;
use crate::index::{Idx, IxVec, PlaceIx, TaskIx};
use crate::model::ControlType;
use crate::workflow::{PlaceDef, TaskDef};

/// How many elements the basis of one target may hold, over all the decisions that extend
/// it (each element costs its pre-images by the transitions giving to its places, and a
/// test against the elements found before). A basis is about as large as the part of the net that can reach the target
/// (an element per place and task of the backward cone, more through AND-joins and
/// cancellation sets), so nets of a few thousand tasks stay well within it; past it, the
/// OR-joins asking that target wait (the conservative answer) and
/// [`OrJoinStats::over_budget`] counts each such decision.
pub const OR_JOIN_BUDGET: usize = 20_000;

/// How many elements of the basis, toward the target, a witness looks at when the element
/// that matched last no longer lies under the marking (a token moved on).
const LOOKAHEAD: usize = 8;

/// A node of the reset net: a place (`< places`) or a task's busy place.
type Node = u32;

/// A marking of the reset net, sparse: (node, tokens), by node, tokens > 0.
type Tokens = Vec<(Node, u32)>;

/// A transition of the reset net. Nodes sorted, each once.
#[derive(Debug)]
struct Transition {
    task: TaskIx,
    pre: Vec<Node>,
    post: Vec<Node>,
    reset: Vec<Node>,
}

/// The reset net of a YAWL net, every OR-join's start transitions as XOR ones: the net of
/// the decision of an OR-join `t` is this one without `t`'s transitions.
#[derive(Debug, Default)]
pub(crate) struct ResetNet {
    places: u32,
    transitions: Vec<Transition>,
    /// By node: the transitions putting a token there.
    producers: Vec<Vec<u32>>,
    /// By place: the tasks taking from it or resetting it.
    takers: IxVec<PlaceIx, Vec<TaskIx>>,
}

impl ResetNet {
    pub(crate) fn new(places: &IxVec<PlaceIx, PlaceDef>, tasks: &IxVec<TaskIx, TaskDef>) -> Self {
        let n_places = places.len() as u32;
        let busy = |u: TaskIx| n_places + u.raw();
        let mut transitions = Vec::new();
        let mut takers: IxVec<PlaceIx, Vec<TaskIx>> = IxVec::filled(Vec::new(), places.len());
        let mut take = |p: PlaceIx, u: TaskIx| {
            if let Some(ts) = takers.get_mut(p)
                && !ts.contains(&u)
            {
                ts.push(u);
            }
        };
        for (u, def) in tasks.iter_enumerated() {
            let inputs: Vec<Node> = def.inputs.iter().map(|p| p.raw()).collect();
            for &p in &def.inputs {
                take(p, u);
            }
            match def.join {
                ControlType::And => transitions.push(Transition {
                    task: u,
                    pre: sorted(inputs),
                    post: vec![busy(u)],
                    reset: Vec::new(),
                }),
                ControlType::Xor | ControlType::Or => {
                    for p in inputs {
                        transitions.push(Transition {
                            task: u,
                            pre: vec![p],
                            post: vec![busy(u)],
                            reset: Vec::new(),
                        });
                    }
                }
            }
            let mut reset: Vec<Node> = def.cancel_places.iter().map(|p| p.raw()).collect();
            for &p in &def.cancel_places {
                take(p, u);
            }
            reset.extend(
                def.cancel_tasks
                    .iter()
                    .filter(|&&c| c != u)
                    .map(|&c| busy(c)),
            );
            let reset = sorted(reset);
            let outputs: Vec<Node> = def
                .outputs
                .iter()
                .filter(|a| !a.on_failure)
                .map(|a| a.place.raw())
                .collect();
            let end = |post: Vec<Node>| Transition {
                task: u,
                pre: vec![busy(u)],
                post: sorted(post),
                reset: reset.clone(),
            };
            if def.split == ControlType::Xor && !outputs.is_empty() {
                transitions.extend(outputs.into_iter().map(|p| end(vec![p])));
            } else {
                transitions.push(end(outputs));
            }
            if let Some(arc) = def.outputs.iter().find(|a| a.on_failure) {
                transitions.push(Transition {
                    task: u,
                    pre: vec![busy(u)],
                    post: vec![arc.place.raw()],
                    reset: Vec::new(),
                });
            }
        }
        let nodes = places.len() + tasks.len();
        let mut producers = vec![Vec::new(); nodes];
        for (i, tr) in transitions.iter().enumerate() {
            for &x in &tr.post {
                if let Some(ps) = producers.get_mut(x as usize) {
                    ps.push(i as u32);
                }
            }
        }
        ResetNet {
            places: n_places,
            transitions,
            producers,
            takers,
        }
    }

    /// The number of places (conditions): a task's busy place comes after them.
    pub(crate) fn places(&self) -> u32 {
        self.places
    }

    /// Returns whether something other than `t` can take the token of its input `q`.
    pub(crate) fn fragile(&self, t: TaskIx, q: PlaceIx) -> bool {
        self.takers
            .get(q)
            .is_some_and(|ts| ts.iter().any(|&u| u != t))
    }
}

fn sorted(mut v: Vec<Node>) -> Vec<Node> {
    v.sort_unstable();
    v.dedup();
    v
}

/// The basis of the markings covering one target, as far as it was computed.
#[derive(Debug)]
pub(crate) struct Basis {
    elements: Vec<Tokens>,
    /// By element: the element it is a pre-image of (toward the target); the target's is
    /// itself.
    parent: Vec<u32>,
    /// By node: the elements filed under it, each under one of its nodes. An element under
    /// a marking has that node marked, so a marking is tested against the elements of its
    /// marked nodes, and an element under another against those of the other's nodes.
    by_node: HashMap<Node, Vec<u32>, FxBuild>,
    /// The next element whose pre-images to compute.
    next: usize,
}

/// What a target's basis says of a marking.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Cover {
    /// The target can be covered: this element lies under the marking.
    Yes(u32),
    /// It cannot.
    No,
    /// Unknown within the budget.
    OverBudget,
}

/// A marking of the net instance, as the decision sees it.
pub(crate) struct View<'a, B: Fn(TaskIx) -> bool> {
    pub marking: &'a IxVec<PlaceIx, u32>,
    pub busy: B,
    pub places: u32,
}

impl<B: Fn(TaskIx) -> bool> View<'_, B> {
    fn tokens(&self, x: Node) -> u32 {
        if x < self.places {
            self.marking.get(PlaceIx::from_raw(x)).copied().unwrap_or(0)
        } else {
            u32::from((self.busy)(TaskIx::from_raw(x - self.places)))
        }
    }

    fn covers(&self, m: &[(Node, u32)]) -> bool {
        m.iter().all(|&(x, n)| self.tokens(x) >= n)
    }
}

fn leq(a: &[(Node, u32)], b: &[(Node, u32)]) -> bool {
    let mut j = 0;
    for &(x, n) in a {
        while b.get(j).is_some_and(|&(y, _)| y < x) {
            j += 1;
        }
        match b.get(j) {
            Some(&(y, k)) if y == x && k >= n => j += 1,
            _ => return false,
        }
    }
    true
}

impl Basis {
    fn new(target: Tokens) -> Basis {
        let mut b = Basis {
            elements: Vec::new(),
            parent: Vec::new(),
            by_node: HashMap::default(),
            next: 0,
        };
        b.push(target, 0);
        b
    }

    fn push(&mut self, m: Tokens, parent: u32) -> u32 {
        let i = self.elements.len() as u32;
        // Filed under its node with the fewest elements so far: a node many elements share
        // (a kept input) would make every test scan them all.
        let len = |x: &Node| self.by_node.get(x).map_or(0, Vec::len);
        if let Some(&(x, _)) = m.iter().min_by_key(|(x, _)| len(x)) {
            self.by_node.entry(x).or_default().push(i);
        }
        self.elements.push(m);
        self.parent.push(parent);
        i
    }

    /// Returns whether an element found so far lies under `m`.
    fn subsumed(&self, m: &[(Node, u32)]) -> bool {
        m.iter().any(|(x, _)| {
            self.by_node.get(x).is_some_and(|es| {
                es.iter()
                    .any(|&e| self.elements.get(e as usize).is_some_and(|f| leq(f, m)))
            })
        })
    }

    /// Returns the element found so far under the marking `view`, looking at the elements
    /// of the nodes `sources` (the marked places and busy tasks).
    fn find<B: Fn(TaskIx) -> bool>(
        &self,
        view: &View<'_, B>,
        sources: impl Iterator<Item = Node>,
    ) -> Option<u32> {
        for x in sources {
            for &e in self.by_node.get(&x).map_or(&[][..], Vec::as_slice) {
                if self
                    .elements
                    .get(e as usize)
                    .is_some_and(|m| view.covers(m))
                {
                    return Some(e);
                }
            }
        }
        None
    }

    /// Decides whether the marking `view` covers the target, extending the basis as needed.
    fn cover<B: Fn(TaskIx) -> bool>(
        &mut self,
        net: &ResetNet,
        t: TaskIx,
        view: &View<'_, B>,
        sources: impl Iterator<Item = Node>,
    ) -> Cover {
        if let Some(e) = self.find(view, sources) {
            return Cover::Yes(e);
        }
        let mut trs: Vec<u32> = Vec::new();
        while let Some(m) = self.elements.get(self.next).cloned() {
            let from = self.next as u32;
            trs.clear();
            for &(x, _) in &m {
                trs.extend(net.producers.get(x as usize).map_or(&[][..], Vec::as_slice));
            }
            trs.sort_unstable();
            trs.dedup();
            for &i in &trs {
                let Some(tr) = net.transitions.get(i as usize) else {
                    continue;
                };
                if tr.task == t {
                    continue;
                }
                let Some(p) = pre_image(&m, tr) else {
                    continue;
                };
                if leq(&m, &p) {
                    continue;
                }
                if self.subsumed(&p) {
                    continue;
                }
                if self.elements.len() >= OR_JOIN_BUDGET {
                    return Cover::OverBudget;
                }
                let covered = view.covers(&p);
                let e = self.push(p, from);
                if covered {
                    return Cover::Yes(e);
                }
            }
            self.next += 1;
        }
        Cover::No
    }

    /// Returns whether every element of the basis is found.
    fn complete(&self) -> bool {
        self.next >= self.elements.len()
    }

    /// Returns `e` or the first of its next `LOOKAHEAD` elements toward the target that
    /// lies under `view`.
    fn follow<B: Fn(TaskIx) -> bool>(&self, mut e: u32, view: &View<'_, B>) -> Option<u32> {
        for _ in 0..=LOOKAHEAD {
            if view.covers(self.elements.get(e as usize)?) {
                return Some(e);
            }
            let p = *self.parent.get(e as usize)?;
            if p == e {
                return None;
            }
            e = p;
        }
        None
    }
}

/// The pre-image of `m` by `tr`, if `tr` can lead to a marking at or above `m`.
fn pre_image(m: &[(Node, u32)], tr: &Transition) -> Option<Tokens> {
    let mut out: Tokens = Vec::with_capacity(m.len() + tr.pre.len());
    for &(x, n) in m {
        if tr.reset.binary_search(&x).is_ok() {
            let back = u32::from(tr.post.binary_search(&x).is_ok());
            if n > back {
                return None;
            }
            continue;
        }
        let n = if tr.post.binary_search(&x).is_ok() {
            n - 1
        } else {
            n
        };
        if n > 0 {
            out.push((x, n));
        }
    }
    for &x in &tr.pre {
        match out.binary_search_by_key(&x, |&(y, _)| y) {
            Ok(k) => {
                if let Some(slot) = out.get_mut(k) {
                    slot.1 += 1;
                }
            }
            Err(k) => out.insert(k, (x, 1)),
        }
    }
    Some(out)
}

/// The key of a target: the OR-join, the unmarked input, the marked inputs that can be lost.
type Key = (TaskIx, PlaceIx, Vec<PlaceIx>);

/// How many OR-join decisions a workflow took by the exact rule, and how many of them ran
/// out of [`OR_JOIN_BUDGET`] and waited (the conservative answer). Kept per workflow, across its
/// cases; not part of any case's state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OrJoinStats {
    /// Decisions the over-approximation could not settle, decided by coverability.
    pub exact_checks: u64,
    /// Of those, decisions past the budget: the OR-join waited.
    pub over_budget: u64,
}

/// What the exact rule keeps of a net: its reset net, the bases computed so far, counters.
#[derive(Debug, Default)]
pub(crate) struct Exact {
    pub net: ResetNet,
    /// Read by every decision of an OR-join that needed coverability, written when a new
    /// target is asked for.
    bases: RwLock<HashMap<Key, Arc<Mutex<Basis>>, FxBuild>>,
    /// By task: whether a basis of one of its targets was asked for (it is an OR-join whose
    /// decisions needed coverability).
    asked: Vec<AtomicBool>,
    exact_checks: AtomicU64,
    over_budget: AtomicU64,
}

/// Why an OR-join waits, found by coverability: an element of a target's basis under the
/// marking.
#[derive(Clone, Debug)]
pub(crate) struct Covering {
    input: PlaceIx,
    /// The marked inputs that can be lost, kept by the target.
    kept: Vec<PlaceIx>,
    basis: Arc<Mutex<Basis>>,
    element: u32,
}

impl Covering {
    /// Returns whether the OR-join still waits by this covering: the input is unmarked, no
    /// input that can be lost was marked since, and the element or one after it toward the
    /// target lies under the marking.
    pub(crate) fn holds<B: Fn(TaskIx) -> bool>(
        &mut self,
        exact: &Exact,
        t: &TaskDef,
        ti: TaskIx,
        view: &View<'_, B>,
    ) -> bool {
        let marked = |p: PlaceIx| view.marking.get(p).is_some_and(|&n| n > 0);
        if marked(self.input) {
            return false;
        }
        if t.inputs
            .iter()
            .any(|&q| marked(q) && exact.net.fragile(ti, q) && !self.kept.contains(&q))
        {
            return false;
        }
        let basis = self.basis.lock().unwrap_or_else(PoisonError::into_inner);
        match basis.follow(self.element, view) {
            Some(e) => {
                self.element = e;
                true
            }
            None => false,
        }
    }
}

impl Exact {
    pub(crate) fn new(places: &IxVec<PlaceIx, PlaceDef>, tasks: &IxVec<TaskIx, TaskDef>) -> Self {
        Exact {
            net: ResetNet::new(places, tasks),
            asked: tasks.iter().map(|_| AtomicBool::new(false)).collect(),
            ..Exact::default()
        }
    }

    /// How many targets have a basis (computed or begun).
    #[cfg(test)]
    pub(crate) fn known_bases(&self) -> usize {
        self.bases.read().map_or(0, |b| b.len())
    }

    pub(crate) fn stats(&self) -> OrJoinStats {
        OrJoinStats {
            exact_checks: self.exact_checks.load(Ordering::Relaxed),
            over_budget: self.over_budget.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn count_over_budget(&self) {
        self.over_budget.fetch_add(1, Ordering::Relaxed);
    }

    /// The marked inputs of the OR-join `ti` other than `input` that something else can take.
    fn kept(
        &self,
        t: &TaskDef,
        ti: TaskIx,
        input: PlaceIx,
        marking: &IxVec<PlaceIx, u32>,
    ) -> Vec<PlaceIx> {
        let marked = |p: PlaceIx| marking.get(p).is_some_and(|&n| n > 0);
        let mut kept: Vec<PlaceIx> = t
            .inputs
            .iter()
            .copied()
            .filter(|&q| q != input && marked(q) && self.fragile(ti, q))
            .collect();
        kept.sort_unstable();
        kept.dedup();
        kept
    }

    fn fragile(&self, ti: TaskIx, q: PlaceIx) -> bool {
        self.net.fragile(ti, q)
    }

    /// The sources as nodes of the reset net.
    fn nodes<'s>(
        &self,
        (places, tasks): (&'s [PlaceIx], &'s [TaskIx]),
    ) -> impl Iterator<Item = Node> + 's {
        let n = self.net.places;
        places
            .iter()
            .map(|p| p.raw())
            .chain(tasks.iter().map(move |u| n + u.raw()))
    }

    /// Decides the OR-join `ti` by the bases of its targets alone, if each of its unmarked
    /// inputs has its basis complete already (the decision is then a look-up): whether it
    /// fires, and if not, why. `None` if one has not (the full decision runs).
    pub(crate) fn decide_known<B: Fn(TaskIx) -> bool>(
        &self,
        t: &TaskDef,
        ti: TaskIx,
        view: &View<'_, B>,
        sources: (&[PlaceIx], &[TaskIx]),
    ) -> Option<(bool, Option<Covering>)> {
        if !self.asked.get(ti.raw() as usize)?.load(Ordering::Relaxed) {
            return None;
        }
        let marked = |p: PlaceIx| view.marking.get(p).is_some_and(|&n| n > 0);
        let bases = self.bases.read().unwrap_or_else(PoisonError::into_inner);
        let mut found = Vec::new();
        for &input in t.inputs.iter().filter(|&&p| !marked(p)) {
            let kept = self.kept(t, ti, input, view.marking);
            let basis = bases.get(&(ti, input, kept))?;
            found.push((input, basis.clone()));
        }
        drop(bases);
        for (input, basis) in found {
            let b = basis.lock().unwrap_or_else(PoisonError::into_inner);
            if !b.complete() {
                return None;
            }
            if let Some(element) = b.find(view, self.nodes(sources)) {
                drop(b);
                self.exact_checks.fetch_add(1, Ordering::Relaxed);
                let kept = self.kept(t, ti, input, view.marking);
                return Some((
                    false,
                    Some(Covering {
                        input,
                        kept,
                        basis,
                        element,
                    }),
                ));
            }
        }
        self.exact_checks.fetch_add(1, Ordering::Relaxed);
        Some((true, None))
    }

    /// Decides whether, from `view`, the OR-join `ti` can come to hold its marked inputs and
    /// its unmarked input `input` at once. `sources` are the marked places and busy tasks.
    pub(crate) fn cover<B: Fn(TaskIx) -> bool>(
        &self,
        t: &TaskDef,
        ti: TaskIx,
        input: PlaceIx,
        view: &View<'_, B>,
        sources: (&[PlaceIx], &[TaskIx]),
    ) -> (Cover, Option<Covering>) {
        self.exact_checks.fetch_add(1, Ordering::Relaxed);
        if let Some(asked) = self.asked.get(ti.raw() as usize) {
            asked.store(true, Ordering::Relaxed);
        }
        let kept = self.kept(t, ti, input, view.marking);
        let key = (ti, input, kept.clone());
        let known = self
            .bases
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .cloned();
        let basis = if let Some(basis) = known {
            basis
        } else {
            let mut bases = self.bases.write().unwrap_or_else(PoisonError::into_inner);
            bases
                .entry(key)
                .or_insert_with(|| {
                    let mut target: Tokens = kept.iter().map(|q| (q.raw(), 1)).collect();
                    target.push((input.raw(), 1));
                    target.sort_unstable();
                    Arc::new(Mutex::new(Basis::new(target)))
                })
                .clone()
        };
        let cover = basis.lock().unwrap_or_else(PoisonError::into_inner).cover(
            &self.net,
            ti,
            view,
            self.nodes(sources),
        );
        match cover {
            Cover::Yes(element) => (
                cover,
                Some(Covering {
                    input,
                    kept,
                    basis,
                    element,
                }),
            ),
            Cover::OverBudget => {
                self.count_over_budget();
                (cover, None)
            }
            Cover::No => (cover, None),
        }
    }
}
