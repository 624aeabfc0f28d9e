//! A validated specification indexed for execution: places and tasks by number, implicit
//! conditions made explicit, expressions compiled.

use std::collections::HashMap;

use crate::error::{Error, InvalidDefinition, Violation};
use crate::expr::CompiledExpr;
use crate::ids::{ElementId, FxBuild, NetId};
use crate::index::{IxVec, NetIx, PlaceIx, TaskIx};
use crate::model::{
    ControlType, Expression, Flow, MultipleInstance, Net, RuntimeHints, Specification, TaskBinding,
    TaskTimer, TimerAction, TimerTrigger,
};

mod build;
mod cones;
mod recursion;

use build::{build_net, violation};
pub(crate) use cones::{OrCone, OrCones};

/// A specification that passed validation, ready to run cases.
#[derive(Debug)]
pub struct Workflow {
    spec: Specification,
    pub(crate) nets: IxVec<NetIx, NetDef>,
    /// Findings that do not stop the workflow from running (a split with one flow...).
    notes: Vec<Violation>,
    /// Whether a net has an OR-join: a workflow without any skips their bookkeeping.
    pub(crate) has_or_joins: bool,
}

#[derive(Debug)]
pub(crate) struct NetDef {
    pub id: NetId,
    /// Place 0 is the input condition, place 1 the output condition.
    pub places: IxVec<PlaceIx, PlaceDef>,
    pub tasks: IxVec<TaskIx, TaskDef>,
    pub task_index: HashMap<ElementId, TaskIx, FxBuild>,
    pub place_index: HashMap<ElementId, PlaceIx, FxBuild>,
    /// The same indexes keyed by the address of the id's text: ids taken from this workflow
    /// are found without hashing their text.
    task_by_addr: HashMap<usize, TaskIx, FxBuild>,
    place_by_addr: HashMap<usize, PlaceIx, FxBuild>,
    pub or_joins: Vec<TaskIx>,
    /// What the OR-join decision needs of the net, whatever the marking.
    pub or_cones: OrCones,
    /// The exact OR-join rule: the net's reset net and the coverability bases found so far.
    pub or_exact: crate::orjoin::exact::Exact,
}

impl NetDef {
    /// Returns the index of the task with this id.
    pub fn task(&self, id: &ElementId) -> Option<TaskIx> {
        // Small nets: comparing a few addresses beats hashing.
        if self.tasks.len() <= 16 {
            if let Some(t) = self.tasks.iter().position(|d| d.id.addr() == id.addr()) {
                return Some(TaskIx::new(t as u32));
            }
            return self.task_index.get(id).copied();
        }
        match self.task_by_addr.get(&id.addr()) {
            Some(&t) if self.tasks.get(t).is_some_and(|d| d.id.addr() == id.addr()) => Some(t),
            _ => self.task_index.get(id).copied(),
        }
    }

    /// Returns the index of the place with this id.
    pub fn place(&self, id: &ElementId) -> Option<PlaceIx> {
        if self.places.len() <= 16 {
            if let Some(p) = self.places.iter().position(|d| d.id.addr() == id.addr()) {
                return Some(PlaceIx::new(p as u32));
            }
            return self.place_index.get(id).copied();
        }
        match self.place_by_addr.get(&id.addr()) {
            Some(&p) if self.places.get(p).is_some_and(|d| d.id.addr() == id.addr()) => Some(p),
            _ => self.place_index.get(id).copied(),
        }
    }
}

impl NetDef {
    /// Returns the definition of task `t`.
    #[inline]
    pub(crate) fn task_def(&self, t: TaskIx) -> Result<&TaskDef, Error> {
        self.tasks.at(t)
    }

    /// Returns the definition of place `p`.
    #[inline]
    pub(crate) fn place_def(&self, p: PlaceIx) -> Result<&PlaceDef, Error> {
        self.places.at(p)
    }
}

/// The input condition of every net.
pub(crate) const INPUT: PlaceIx = PlaceIx::new(0);
/// The output condition of every net.
pub(crate) const OUTPUT: PlaceIx = PlaceIx::new(1);

#[derive(Debug)]
pub(crate) struct PlaceDef {
    pub id: ElementId,
    /// Tasks that take tokens from this place.
    pub consumers: Vec<TaskIx>,
    /// Whether this place is the implicit condition of a task-to-task flow.
    pub implicit: bool,
}

#[derive(Debug)]
pub(crate) struct TaskDef {
    pub id: ElementId,
    pub join: ControlType,
    pub split: ControlType,
    pub inputs: Vec<PlaceIx>,
    /// Outgoing arcs, non-default ones in evaluation order, then the default one.
    pub outputs: Vec<OutArc>,
    pub cancel_places: Vec<PlaceIx>,
    pub cancel_tasks: Vec<TaskIx>,
    pub mi: Option<MiDef>,
    pub subnet: Option<NetIx>,
    pub binding: TaskBinding,
    pub timer: Option<TaskTimer>,
    pub input_mapping: Option<CompiledExpr>,
    pub output_mapping: Option<CompiledExpr>,
    pub runtime: RuntimeHints,
}

#[derive(Debug)]
pub(crate) struct OutArc {
    pub place: PlaceIx,
    pub predicate: Option<CompiledExpr>,
    pub is_default: bool,
    /// Taken only when the task fails.
    pub on_failure: bool,
}

#[derive(Debug)]
pub(crate) struct MiDef {
    pub spec: MultipleInstance,
    pub split: Option<CompiledExpr>,
}

impl Workflow {
    /// Validates `spec` and indexes it, or returns every rule it breaks.
    pub fn new(spec: Specification) -> Result<Workflow, InvalidDefinition> {
        let mut v = Vec::new();
        let mut notes = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for net in &spec.nets {
            if !seen.insert(net.id.clone()) {
                violation(&mut v, net.id.as_str(), "net id is used twice");
            }
        }
        if !spec.nets.iter().any(|n| n.id == spec.root_net) {
            violation(
                &mut v,
                spec.root_net.as_str(),
                "root net is not among the specification's nets",
            );
        }
        let net_index: HashMap<&NetId, NetIx> = spec
            .nets
            .iter()
            .enumerate()
            .map(|(i, n)| (&n.id, NetIx::new(i as u32)))
            .collect();
        let mut nets = IxVec::with_capacity(spec.nets.len());
        for net in &spec.nets {
            match build_net(net, &spec.root_net, &net_index, &mut v, &mut notes) {
                Ok(def) => {
                    nets.push(def);
                }
                // Validation looked up an index it made itself and missed: refuse the net
                // rather than run a workflow indexed wrongly.
                Err(e) => {
                    let why = match e {
                        Error::Misfit { what, index } => format!("no {what} {index}"),
                        other => other.to_string(),
                    };
                    violation(
                        &mut v,
                        net.id.as_str(),
                        format!("the net could not be indexed ({why}): a defect of knhk"),
                    );
                }
            }
        }
        if v.is_empty() {
            recursion::check(&nets, &mut v);
        }
        if !v.is_empty() {
            return Err(InvalidDefinition { violations: v });
        }
        // Keep the root net first so that net instance 0 of a case runs it.
        const FIRST: NetIx = NetIx::new(0);
        let root = net_index.get(&spec.root_net).copied().unwrap_or(FIRST);
        if root != FIRST && nets.swap(FIRST, root) {
            for net in nets.iter_mut() {
                for task in net.tasks.iter_mut() {
                    task.subnet = task.subnet.map(|s| match s {
                        s if s == root => FIRST,
                        FIRST => root,
                        s => s,
                    });
                }
            }
        }
        let has_or_joins = nets.iter().any(|n| !n.or_joins.is_empty());
        Ok(Workflow {
            spec,
            nets,
            notes,
            has_or_joins,
        })
    }

    /// Returns the definition of net `n`.
    #[inline]
    pub(crate) fn net(&self, n: NetIx) -> Result<&NetDef, Error> {
        self.nets.at(n)
    }

    /// How the exact OR-join rule fared on this workflow's cases so far: the decisions it
    /// took by coverability, and those past [`crate::OR_JOIN_BUDGET`] that waited instead
    /// (the conservative answer). Counted across the workflow's cases, outside their state.
    pub fn or_join_stats(&self) -> crate::OrJoinStats {
        let mut stats = crate::OrJoinStats::default();
        for net in &self.nets {
            let s = net.or_exact.stats();
            stats.exact_checks += s.exact_checks;
            stats.over_budget += s.over_budget;
        }
        stats
    }

    /// Returns the specification this workflow was built from.
    pub fn specification(&self) -> &Specification {
        &self.spec
    }

    /// Returns what validation noted without refusing the definition: each names the element
    /// and says what was noted (a split or join with one flow, a threshold above the maximum).
    pub fn notes(&self) -> &[Violation] {
        &self.notes
    }

    /// Returns whether a task of the workflow waits for `event` as a persistent trigger, so
    /// that a case keeps such an event that no task awaits yet.
    pub fn has_persistent_trigger(&self, event: &str) -> bool {
        self.nets.iter().any(|net| {
            net.tasks.iter().any(|t| {
                matches!(&t.binding, crate::model::TaskBinding::Trigger {
                    event: e,
                    trigger_kind: crate::model::TriggerKind::Persistent,
                } if e == event)
            })
        })
    }

    /// Returns the identifier of the specification.
    pub fn id(&self) -> &str {
        &self.spec.id
    }
}
