//! A case: the state of one run of a workflow, changed only by folding its events.
//!
//! `evolve` is the single place where state changes. Deciding what happens next lives in
//! `step/`; it emits events and folds each one at once, so replaying a history through
//! `evolve` alone rebuilds exactly the same case.

use serde_json::{Map, Value};

use crate::error::Error;
use crate::event::{CaseStatus, Event, EventKind, TaskRef};
use crate::ids::{CaseId, ElementId, TimerId, Timestamp, WorkItemId};
use crate::index::{Idx, InstIx, IxVec, NetIx, PlaceIx, TaskIx};
use crate::model::{TaskBinding, TimerAction};
use crate::sorted::SortedMap;
use crate::workflow::{NetDef, Workflow};

mod evolve;
mod snapshot;
mod waits;

pub use snapshot::{CaseSnapshot, SnapshotError};
pub use waits::Wait;

/// The root net's instance: the first of every case.
pub(crate) const ROOT: InstIx = InstIx::new(0);

/// The state of one case. Equal histories give equal cases.
#[derive(Clone, Debug, PartialEq)]
pub struct Case {
    id: CaseId,
    status: CaseStatus,
    data: Map<String, Value>,
    seq: u64,
    nets: IxVec<InstIx, NetInstance>,
    items: SortedMap<WorkItemId, WorkItem>,
    timers: SortedMap<TimerId, TimerState>,
    /// Users who completed a four-eyes work item of this case.
    four_eyes: Vec<String>,
    /// What failures left: `None` for a case that never failed, boxed so that the many cases
    /// that never fail stay small in memory.
    failures: Option<Box<Failures>>,
    /// Events of persistent triggers that no task has consumed yet, oldest first, with their
    /// data.
    kept: Vec<(String, Value)>,
}

/// What a case keeps of its failures.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Failures {
    /// Tasks that failed with no failure flow and wait for an operator's retry, in the order
    /// they failed. Not empty only while the case is failed.
    pub(crate) incidents: Vec<Incident>,
    /// The last attempt number of each task retried so far.
    pub(crate) attempts: Vec<(TaskRef, u32)>,
    /// Why the case failed, while it is failed.
    pub(crate) failure: Option<String>,
}

/// A task that failed with no failure flow to take, leaving its case failed until an
/// operator retries it ([`crate::Input::RetryTask`]) or cancels the case.
#[derive(Clone, Debug, PartialEq)]
pub struct Incident {
    pub task: TaskRef,
    pub reason: String,
    /// When the task failed.
    pub since: Timestamp,
    /// Which run of the task failed: 1 for its first, 2 once retried...
    pub attempt: u32,
    /// Whether the task had started; a retry starts it again with `instances`.
    pub(crate) started: bool,
    pub(crate) instances: Vec<Value>,
}

/// Where [`Case::evolve`] reports the tasks whose enablement an event may have changed:
/// deciding reconsiders them (its scratch queue), replay has no use for them.
pub(crate) trait Touched {
    fn touched(&mut self, net_instance: InstIx, task: TaskIx);

    /// A token changed in `net_instance`, whose net has OR-joins: they are looked at next
    /// (those whose answer may have changed, see [`Touched::or_joins_changed`]).
    fn or_joins(&mut self, _net_instance: InstIx) {}

    /// A token of `net_instance` (an instance of `def`, now as `net`) or the state of one of
    /// its tasks changed: the OR-joins whose cone holds it may now decide otherwise.
    fn or_joins_changed(&mut self, _ni: InstIx, _def: &NetDef, _net: &NetInstance, _c: Change) {}
}

/// What changed in a net instance, for [`Touched::or_joins_changed`].
#[derive(Clone, Copy, Debug)]
pub(crate) enum Change {
    /// The tokens in a place.
    Place(PlaceIx),
    /// The state of a task (enabled, started, ended...).
    Task(TaskIx),
}

/// Replay folds events without reconsidering tasks.
pub(crate) struct Untouched;

impl Touched for Untouched {
    #[inline]
    fn touched(&mut self, _: InstIx, _: TaskIx) {}
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct NetInstance {
    pub net: NetIx,
    /// Tokens by place of the net.
    pub marking: IxVec<PlaceIx, u32>,
    /// The state of each task of the net.
    pub slots: IxVec<TaskIx, Slot>,
    /// The composite task instance this net instance runs for (net instance, task, instance
    /// number); `None` for the root net.
    pub parent: Option<(InstIx, TaskIx, u32)>,
    pub live: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Slot {
    Idle,
    Enabled {
        item: Option<WorkItemId>,
        timer: Option<TimerId>,
        /// A delay timer has not fired yet: the task may not start.
        held: bool,
    },
    Busy(Activation),
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Activation {
    /// Sequence number of the `TaskStarted` event: names this activation.
    pub started_seq: u64,
    pub instances: Instances,
    pub timer: Option<TimerId>,
}

/// The instances of a started task: most tasks have exactly one, kept without a vector.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Instances {
    One(Instance),
    Many(Vec<Instance>),
}

impl Instances {
    pub(crate) fn as_slice(&self) -> &[Instance] {
        match self {
            Instances::One(i) => std::slice::from_ref(i),
            Instances::Many(v) => v,
        }
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [Instance] {
        match self {
            Instances::One(i) => std::slice::from_mut(i),
            Instances::Many(v) => v,
        }
    }

    pub(crate) fn iter(&self) -> std::slice::Iter<'_, Instance> {
        self.as_slice().iter()
    }

    pub(crate) fn get(&self, i: usize) -> Option<&Instance> {
        self.as_slice().get(i)
    }

    pub(crate) fn get_mut(&mut self, i: usize) -> Option<&mut Instance> {
        self.as_mut_slice().get_mut(i)
    }

    pub(crate) fn len(&self) -> usize {
        self.as_slice().len()
    }

    pub(crate) fn push(&mut self, instance: Instance) {
        match self {
            Instances::Many(v) => v.push(instance),
            // Only dynamic multiple-instance tasks grow; they start as `Many` already.
            Instances::One(first) => *self = Instances::Many(vec![first.clone(), instance]),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Instance {
    pub item: Value,
    pub state: InstanceState,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum InstanceState {
    /// Running; what performs it, once known.
    Running(Option<Unit>),
    Completed(Value),
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Unit {
    Item(WorkItemId),
    Net(InstIx),
}

/// A live unit of work: a work item offered to people or a connector call in flight.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkItem {
    pub task: TaskRef,
    pub instance: u32,
    pub state: WorkItemState,
    /// Who claimed or started it, for human work items.
    pub owner: Option<String>,
    /// What it is: work for people, or a connector call.
    pub kind: WorkItemKind,
    /// The work's input: what people see, or what the connector is called with.
    pub input: Value,
    /// When the item was offered or the call started.
    pub since: crate::ids::Timestamp,
    /// The roles an administrator offered it to ([`crate::Input::OfferWorkItem`]), in place
    /// of its task's roles; `None` while it is offered as the definition says.
    pub offered_to: Option<Vec<String>>,
}

/// What a live work item is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorkItemKind {
    /// Work offered to people: the roles of the task's human binding.
    Human,
    /// A connector call in flight (state [`WorkItemState::Calling`]).
    Call {
        connector: String,
        /// The same for every attempt of this call, also after a restart.
        idempotency_key: String,
    },
}

impl WorkItem {
    /// Returns whether this is a connector call rather than work for people.
    pub fn is_call(&self) -> bool {
        matches!(self.kind, WorkItemKind::Call { .. })
    }
}

/// Where a live work item stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkItemState {
    Offered,
    Allocated,
    Started,
    /// A connector call in flight.
    Calling,
}

impl WorkItemState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            WorkItemState::Offered => "offered",
            WorkItemState::Allocated => "allocated",
            WorkItemState::Started => "started",
            WorkItemState::Calling => "a connector call",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct TimerState {
    pub task: TaskRef,
    pub fires_at: Timestamp,
}

/// What one `apply` did: the new events (already folded into the case) and the effects the
/// runtime must perform, in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Step {
    pub events: Vec<Event>,
    pub effects: Vec<crate::Effect>,
}

impl Case {
    /// Creates a case of `workflow` holding `data` over the initial values of the root net's
    /// variables; it starts with [`crate::Input::Start`].
    pub fn create(
        workflow: &Workflow,
        id: CaseId,
        now: Timestamp,
        data: Map<String, Value>,
    ) -> (Case, Step) {
        let mut case = Case::empty(id);
        let mut step = Step::default();
        let mut initial = workflow.specification().initial_data.clone();
        initial.extend(data);
        let kind = EventKind::CaseCreated {
            workflow: workflow.id().to_string(),
            data: initial,
        };
        // A fresh case takes its creation event: nothing in it can be refused.
        let event = Event {
            seq: 1,
            time: now,
            kind,
        };
        if case.evolve(workflow, &event, &mut Untouched).is_ok() {
            step.events.push(event);
        }
        (case, step)
    }

    fn empty(id: CaseId) -> Case {
        Case {
            id,
            status: CaseStatus::Created,
            data: Map::new(),
            seq: 0,
            nets: IxVec::default(),
            items: SortedMap::default(),
            timers: SortedMap::default(),
            four_eyes: Vec::new(),
            failures: None,
            kept: Vec::new(),
        }
    }

    /// Rebuilds a case from its whole history.
    pub fn replay(workflow: &Workflow, id: CaseId, events: &[Event]) -> Result<Case, Error> {
        let mut case = Case::empty(id);
        case.fold(workflow, events)?;
        Ok(case)
    }

    /// Folds events that follow the case's last one, as replay does: a case restored from a
    /// snapshot ([`Case::restore`]) catches up with the history after it. On error the case
    /// holds the events before the one refused.
    pub fn fold(&mut self, workflow: &Workflow, events: &[Event]) -> Result<(), Error> {
        for event in events {
            self.evolve(workflow, event, &mut Untouched)?;
        }
        Ok(())
    }

    pub fn id(&self) -> CaseId {
        self.id
    }

    pub fn status(&self) -> CaseStatus {
        self.status
    }

    pub fn data(&self) -> &Map<String, Value> {
        &self.data
    }

    /// Returns the sequence number of the last event.
    pub fn last_seq(&self) -> u64 {
        self.seq
    }

    /// Returns the net instances, by number (0 is the root net's).
    pub(crate) fn nets(&self) -> &IxVec<InstIx, NetInstance> {
        &self.nets
    }

    /// Returns the live work items by id, for deciding code.
    pub(crate) fn items(&self) -> &SortedMap<WorkItemId, WorkItem> {
        &self.items
    }

    /// Returns the armed timers by id, for deciding code.
    pub(crate) fn armed_timers(&self) -> &SortedMap<TimerId, TimerState> {
        &self.timers
    }

    /// Returns the users who completed a four-eyes work item of this case.
    pub(crate) fn four_eyes(&self) -> &[String] {
        &self.four_eyes
    }

    /// Returns the events of persistent triggers that the case keeps because no task has
    /// consumed them yet, oldest first, with their data.
    pub fn kept_triggers(&self) -> &[(String, Value)] {
        &self.kept
    }

    /// Returns the open incidents: tasks that failed with no failure flow, which an operator
    /// may retry. Empty unless the case is failed.
    pub fn incidents(&self) -> &[Incident] {
        self.failures.as_deref().map_or(&[], |f| &f.incidents)
    }

    /// Returns why the case failed, while it is failed.
    pub fn failure(&self) -> Option<&str> {
        self.failures.as_deref().and_then(|f| f.failure.as_deref())
    }

    /// Returns what failures left, made on first use.
    pub(crate) fn failures_mut(&mut self) -> &mut Failures {
        self.failures.get_or_insert_with(Box::default)
    }

    /// Returns the live work items (human work items and connector calls in flight).
    pub fn work_items(&self) -> impl Iterator<Item = (&WorkItemId, &WorkItem)> {
        self.items.iter()
    }

    /// Returns the live work item `id`.
    pub fn work_item(&self, id: &WorkItemId) -> Option<&WorkItem> {
        self.items.get(id)
    }

    /// Returns the armed timers and when they fire.
    pub fn timers(&self) -> impl Iterator<Item = (&TimerId, Timestamp)> {
        self.timers.iter().map(|(id, t)| (id, t.fires_at))
    }

    /// Returns the marked conditions of live net instances: (net instance, condition, tokens).
    pub fn marking(&self, workflow: &Workflow) -> Vec<(u32, ElementId, u32)> {
        let mut out = Vec::new();
        for (ni, net) in self.nets.iter_enumerated() {
            let Some(def) = workflow.nets.get(net.net) else {
                continue;
            };
            if !net.live {
                continue;
            }
            for (p, &n) in net.marking.iter_enumerated() {
                if n > 0
                    && let Some(place) = def.places.get(p)
                {
                    out.push((ni.raw(), place.id.clone(), n));
                }
            }
        }
        out
    }

    /// Returns the definition of the task a reference points at.
    pub fn task_model<'w>(
        &self,
        workflow: &'w Workflow,
        task: &TaskRef,
    ) -> Option<&'w crate::model::Task> {
        let net = self.nets.get(InstIx::new(task.net_instance))?;
        let net_id = &workflow.nets.get(net.net)?.id;
        workflow
            .specification()
            .nets
            .iter()
            .find(|n| &n.id == net_id)?
            .tasks
            .iter()
            .find(|t| t.id == task.task)
    }

    /// Returns the tasks that are enabled but not started.
    pub fn enabled_tasks(&self, workflow: &Workflow) -> Vec<TaskRef> {
        self.tasks_where(workflow, |s| matches!(s, Slot::Enabled { .. }))
    }

    /// Returns the tasks that started and have not finished.
    pub fn busy_tasks(&self, workflow: &Workflow) -> Vec<TaskRef> {
        self.tasks_where(workflow, |s| matches!(s, Slot::Busy(_)))
    }

    fn tasks_where(&self, workflow: &Workflow, f: impl Fn(&Slot) -> bool) -> Vec<TaskRef> {
        let mut out = Vec::new();
        for (ni, net) in self.nets.iter_enumerated() {
            let Some(def) = workflow.nets.get(net.net) else {
                continue;
            };
            for (t, slot) in net.slots.iter_enumerated() {
                if net.live
                    && f(slot)
                    && let Some(task) = def.tasks.get(t)
                {
                    out.push(TaskRef {
                        net_instance: ni.raw(),
                        task: task.id.clone(),
                    });
                }
            }
        }
        out
    }

    fn new_net(&mut self, workflow: &Workflow, net: NetIx, parent: Option<(InstIx, TaskIx, u32)>) {
        let (places, tasks) = workflow
            .nets
            .get(net)
            .map(|n| (n.places.len(), n.tasks.len()))
            .unwrap_or((0, 0));
        self.nets.push(NetInstance {
            net,
            marking: IxVec::filled(0, places),
            slots: IxVec::filled(Slot::Idle, tasks),
            parent,
            live: true,
        });
    }

    /// Resolves a task reference to (net instance, task index).
    pub(crate) fn locate(&self, workflow: &Workflow, task: &TaskRef) -> Option<(InstIx, TaskIx)> {
        let ni = InstIx::new(task.net_instance);
        let net = self.nets.get(ni)?;
        let def = workflow.nets.get(net.net)?;
        let t = def.task(&task.task)?;
        Some((ni, t))
    }

    /// Returns net instance `ni`.
    pub(crate) fn net_instance(&self, ni: InstIx) -> Result<&NetInstance, Error> {
        self.nets.at(ni)
    }

    /// Returns the definition of the net that net instance `ni` runs.
    pub(crate) fn net_def<'w>(
        &self,
        workflow: &'w Workflow,
        ni: InstIx,
    ) -> Result<&'w NetDef, Error> {
        workflow.net(self.net_instance(ni)?.net)
    }

    #[inline]
    pub(crate) fn slot(&self, ni: InstIx, t: TaskIx) -> Option<&Slot> {
        self.nets.get(ni)?.slots.get(t)
    }
}

/// Takes the tokens a task with this join consumes when it starts: one from every input (AND),
/// from the first marked input (XOR), from every marked input (OR).
fn consume(join: crate::model::ControlType, inputs: &[PlaceIx], marking: &mut IxVec<PlaceIx, u32>) {
    use crate::model::ControlType;
    match join {
        ControlType::And | ControlType::Or => {
            for &p in inputs {
                if let Some(m) = marking.get_mut(p) {
                    *m = m.saturating_sub(1);
                }
            }
        }
        ControlType::Xor => {
            if let Some(m) = inputs
                .iter()
                .find(|&&p| marking.get(p).is_some_and(|&n| n > 0))
                .and_then(|&p| marking.get_mut(p))
            {
                *m -= 1;
            }
        }
    }
}
