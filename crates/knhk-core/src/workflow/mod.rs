//! A validated specification indexed for execution: places and tasks by number, implicit
//! conditions made explicit, expressions compiled.

use std::collections::HashMap;

use crate::error::{Error, InvalidDefinition, Violation};
use crate::expr::CompiledExpr;
use crate::ids::{ElementId, FxBuild, NetId};
use crate::model::{
    ControlType, Expression, Flow, MultipleInstance, Net, RuntimeHints, Specification, TaskBinding,
    TaskTimer, TimerAction, TimerTrigger,
};

// Validation indexes vectors it has just sized itself; its lookups are still to be made
// fallible like the rest of the crate's (the YAWL import work changes this file meanwhile).
#[allow(clippy::indexing_slicing)]
mod build;

use build::{build_net, violation};

/// A specification that passed validation, ready to run cases.
#[derive(Debug)]
pub struct Workflow {
    spec: Specification,
    pub(crate) nets: Vec<NetDef>,
    /// Findings that do not stop the workflow from running (a split with one flow...).
    notes: Vec<Violation>,
}

#[derive(Debug)]
pub(crate) struct NetDef {
    pub id: NetId,
    /// Place 0 is the input condition, place 1 the output condition.
    pub places: Vec<PlaceDef>,
    pub tasks: Vec<TaskDef>,
    pub task_index: HashMap<ElementId, u32, FxBuild>,
    pub place_index: HashMap<ElementId, u32, FxBuild>,
    /// The same indexes keyed by the address of the id's text: ids taken from this workflow
    /// are found without hashing their text.
    task_by_addr: HashMap<usize, u32, FxBuild>,
    place_by_addr: HashMap<usize, u32, FxBuild>,
    pub or_joins: Vec<u32>,
}

impl NetDef {
    /// Returns the index of the task with this id.
    pub fn task(&self, id: &ElementId) -> Option<u32> {
        // Small nets: comparing a few addresses beats hashing.
        if self.tasks.len() <= 16 {
            if let Some(t) = self.tasks.iter().position(|d| d.id.addr() == id.addr()) {
                return Some(t as u32);
            }
            return self.task_index.get(id).copied();
        }
        match self.task_by_addr.get(&id.addr()) {
            Some(&t)
                if self
                    .tasks
                    .get(t as usize)
                    .is_some_and(|d| d.id.addr() == id.addr()) =>
            {
                Some(t)
            }
            _ => self.task_index.get(id).copied(),
        }
    }

    /// Returns the index of the place with this id.
    pub fn place(&self, id: &ElementId) -> Option<u32> {
        if self.places.len() <= 16 {
            if let Some(p) = self.places.iter().position(|d| d.id.addr() == id.addr()) {
                return Some(p as u32);
            }
            return self.place_index.get(id).copied();
        }
        match self.place_by_addr.get(&id.addr()) {
            Some(&p)
                if self
                    .places
                    .get(p as usize)
                    .is_some_and(|d| d.id.addr() == id.addr()) =>
            {
                Some(p)
            }
            _ => self.place_index.get(id).copied(),
        }
    }
}

impl NetDef {
    /// Returns the definition of task `t`.
    pub(crate) fn task_def(&self, t: u32) -> Result<&TaskDef, Error> {
        Error::misfit(self.tasks.get(t as usize), "task", t)
    }

    /// Returns the definition of place `p`.
    pub(crate) fn place_def(&self, p: u32) -> Result<&PlaceDef, Error> {
        Error::misfit(self.places.get(p as usize), "place", p)
    }
}

pub(crate) const INPUT: u32 = 0;
pub(crate) const OUTPUT: u32 = 1;

#[derive(Debug)]
pub(crate) struct PlaceDef {
    pub id: ElementId,
    /// Tasks that take tokens from this place.
    pub consumers: Vec<u32>,
    /// Whether this place is the implicit condition of a task-to-task flow.
    pub implicit: bool,
}

#[derive(Debug)]
pub(crate) struct TaskDef {
    pub id: ElementId,
    pub join: ControlType,
    pub split: ControlType,
    pub inputs: Vec<u32>,
    /// Outgoing arcs, non-default ones in evaluation order, then the default one.
    pub outputs: Vec<OutArc>,
    pub cancel_places: Vec<u32>,
    pub cancel_tasks: Vec<u32>,
    pub mi: Option<MiDef>,
    pub subnet: Option<u32>,
    pub binding: TaskBinding,
    pub timer: Option<TaskTimer>,
    pub input_mapping: Option<CompiledExpr>,
    pub output_mapping: Option<CompiledExpr>,
    pub runtime: RuntimeHints,
}

#[derive(Debug)]
pub(crate) struct OutArc {
    pub place: u32,
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
        let net_index: HashMap<&NetId, u32> = spec
            .nets
            .iter()
            .enumerate()
            .map(|(i, n)| (&n.id, i as u32))
            .collect();
        let mut nets = Vec::with_capacity(spec.nets.len());
        for net in &spec.nets {
            nets.push(build_net(
                net,
                &spec.root_net,
                &net_index,
                &mut v,
                &mut notes,
            ));
        }
        if !v.is_empty() {
            return Err(InvalidDefinition { violations: v });
        }
        // Keep the root net first so that net instance 0 of a case runs it.
        let root = net_index.get(&spec.root_net).copied().unwrap_or(0) as usize;
        if root != 0 {
            nets.swap(0, root);
            for net in &mut nets {
                for task in &mut net.tasks {
                    task.subnet = task.subnet.map(|s| match s as usize {
                        s if s == root => 0,
                        0 => root as u32,
                        s => s as u32,
                    });
                }
            }
        }
        Ok(Workflow { spec, nets, notes })
    }

    /// Returns the definition of net `n`.
    pub(crate) fn net(&self, n: u32) -> Result<&NetDef, Error> {
        Error::misfit(self.nets.get(n as usize), "net", n)
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

    /// Returns the identifier of the specification.
    pub fn id(&self) -> &str {
        &self.spec.id
    }
}
