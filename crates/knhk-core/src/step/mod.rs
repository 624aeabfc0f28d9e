//! Deciding: what an input does to a case, and everything that follows from it until the case
//! waits for the outside world again (empty tasks complete, splits route tokens, joins fire).
//!
//! Every change is made by emitting an event and folding it at once (`Case::evolve`), so the
//! events returned are exactly what replay needs.

use serde_json::{Map, Value};

use crate::case::{Case, Slot, Step, WorkItemKind, WorkItemState};
use crate::effect::Effect;
use crate::error::Error;
use crate::event::{CaseStatus, Event, EventKind, TaskRef};
use crate::ids::{IdSource, Timestamp, WorkItemId};
use crate::index::{Idx, InstIx, TaskIx};
use crate::input::Input;
use crate::model::{TaskBinding, TimerAction};
use crate::workflow::{TaskDef, Workflow};

struct Cx<'a> {
    wf: &'a Workflow,
    now: Timestamp,
    ids: &'a mut dyn IdSource,
    step: Step,
    /// OR-joins allowed to fire although the analysis says wait: nothing else can move. Each
    /// is allowed once: starting it spends its entry.
    forced: Vec<(InstIx, TaskIx)>,
    /// The step's scratch queue: tasks whose enablement may have changed, as `evolve` reports
    /// them, to reconsider.
    dirty: Agenda,
    /// Tasks started in this step so far, and the most allowed.
    fired: u32,
    max_firings: u32,
    max_subnet_depth: u32,
    max_data_bytes: usize,
}

type Res<T = ()> = Result<T, Error>;

mod bounds;

pub use bounds::ApplyOptions;
mod agenda;

use agenda::Agenda;
mod enablement;
mod firing;
mod incident;

impl Case {
    /// Applies one input at time `now`, taking new ids from `ids`, and returns the events and
    /// effects. On error the case is unchanged. Runs with the default [`ApplyOptions`].
    pub fn apply(
        &mut self,
        workflow: &Workflow,
        now: Timestamp,
        input: Input,
        ids: &mut dyn IdSource,
    ) -> Result<Step, Error> {
        self.apply_with(workflow, now, input, ids, ApplyOptions::default())
    }

    /// Applies one input like [`Case::apply`], with `options` (the bound on task firings in
    /// one step).
    pub fn apply_with(
        &mut self,
        workflow: &Workflow,
        now: Timestamp,
        input: Input,
        ids: &mut dyn IdSource,
        options: ApplyOptions,
    ) -> Result<Step, Error> {
        let mut next = self.clone();
        let mut cx = Cx {
            wf: workflow,
            now,
            ids,
            step: Step {
                events: Vec::with_capacity(32),
                effects: Vec::new(),
            },
            forced: Vec::new(),
            dirty: Agenda::new(options.every_or_join),
            fired: 0,
            max_firings: options.max_firings,
            max_subnet_depth: options.max_subnet_depth,
            max_data_bytes: options.max_data_bytes,
        };
        next.perform(&mut cx, input)?;
        next.settle(&mut cx)?;
        *self = next;
        Ok(cx.step)
    }

    fn emit(&mut self, cx: &mut Cx, kind: EventKind) -> Res {
        let event = Event {
            seq: self.last_seq() + 1,
            time: cx.now,
            kind,
        };
        self.evolve(cx.wf, &event, &mut cx.dirty)?;
        cx.step.events.push(event);
        Ok(())
    }

    fn require(&self, status: CaseStatus, action: &'static str) -> Res {
        if self.status() == status {
            Ok(())
        } else {
            Err(Error::WrongCaseState {
                status: self.status(),
                action,
            })
        }
    }

    /// Timers fire while running or suspended: the world does not stop for a suspended
    /// case, but nothing new starts until it resumes. A failed case takes no timer: its
    /// timers fire once it is retried.
    fn require_active(&self, action: &'static str) -> Res {
        match self.status() {
            CaseStatus::Running | CaseStatus::Suspended => Ok(()),
            status => Err(Error::WrongCaseState { status, action }),
        }
    }

    /// Results of connector calls are taken while running, suspended, or failed with an
    /// incident open: the calls were made and their results are not lost, but nothing new
    /// starts until the case runs again.
    fn require_taking_results(&self, action: &'static str) -> Res {
        match self.status() {
            CaseStatus::Failed if !self.incidents().is_empty() => Ok(()),
            _ => self.require_active(action),
        }
    }

    fn set_status(&mut self, cx: &mut Cx, to: CaseStatus, reason: Option<String>) -> Res {
        let from = self.status();
        self.emit(cx, EventKind::CaseStateChanged { from, to, reason })?;
        if to.is_final() {
            cx.step.effects.push(Effect::CaseEnded { status: to });
        }
        Ok(())
    }

    /// Queues every task of every live net instance for reconsidering.
    fn reconsider_all(&self, cx: &mut Cx) {
        for (ni, net) in self.nets().iter_enumerated() {
            if net.live {
                for t in net.slots.indices() {
                    cx.dirty.push_task(ni, t);
                }
            }
        }
    }

    fn task_ref(&self, wf: &Workflow, ni: InstIx, t: TaskIx) -> Res<TaskRef> {
        Ok(TaskRef {
            net_instance: ni.raw(),
            task: tdef(wf, self, ni, t)?.id.clone(),
        })
    }

    fn perform(&mut self, cx: &mut Cx, input: Input) -> Res {
        match input {
            Input::Start => {
                self.require(CaseStatus::Created, "start")?;
                self.set_status(cx, CaseStatus::Running, None)
            }
            Input::OfferWorkItem { item, roles } => {
                self.require(CaseStatus::Running, "offer a work item")?;
                let wi = self.human_item(item, "offer")?;
                if wi.state != WorkItemState::Offered {
                    return Err(Error::WrongWorkItemState {
                        item,
                        state: wi.state.as_str(),
                        action: "offer",
                    });
                }
                let mut unique: Vec<String> = Vec::with_capacity(roles.len());
                for role in roles {
                    let role = role.trim().to_owned();
                    if !role.is_empty() && !unique.contains(&role) {
                        unique.push(role);
                    }
                }
                if unique.is_empty() {
                    return Err(Error::NoRoles(item));
                }
                self.emit(
                    cx,
                    EventKind::WorkItemReoffered {
                        item,
                        roles: unique,
                    },
                )
            }
            Input::AllocateWorkItem { item, user } => {
                self.require(CaseStatus::Running, "allocate a work item")?;
                let wi = self.human_item(item, "allocate")?;
                if wi.state != WorkItemState::Offered {
                    return Err(Error::WrongWorkItemState {
                        item,
                        state: wi.state.as_str(),
                        action: "allocate",
                    });
                }
                self.emit(cx, EventKind::WorkItemAllocated { item, user })
            }
            Input::ReleaseWorkItem { item, user } => {
                self.require(CaseStatus::Running, "release a work item")?;
                let wi = self.human_item(item, "release")?;
                if wi.state != WorkItemState::Allocated {
                    return Err(Error::WrongWorkItemState {
                        item,
                        state: wi.state.as_str(),
                        action: "release",
                    });
                }
                if let Some(owner) = wi.owner.as_ref().filter(|owner| **owner != user) {
                    return Err(Error::NotAllocatedTo {
                        item,
                        owner: owner.clone(),
                        user,
                    });
                }
                self.emit(cx, EventKind::WorkItemReleased { item, user })
            }
            Input::DelegateWorkItem { item, from, to } => {
                self.require(CaseStatus::Running, "delegate a work item")?;
                let wi = self.human_item(item, "delegate")?;
                if !matches!(wi.state, WorkItemState::Allocated | WorkItemState::Started) {
                    return Err(Error::WrongWorkItemState {
                        item,
                        state: wi.state.as_str(),
                        action: "delegate",
                    });
                }
                if let Some(owner) = wi.owner.as_ref().filter(|owner| **owner != from) {
                    return Err(Error::NotAllocatedTo {
                        item,
                        owner: owner.clone(),
                        user: from,
                    });
                }
                self.emit(cx, EventKind::WorkItemDelegated { item, from, to })
            }
            Input::StartWorkItem { item, user } => {
                self.require(CaseStatus::Running, "start a work item")?;
                self.start_item(cx, item, user)
            }
            Input::CompleteWorkItem { item, user, output } => {
                self.require(CaseStatus::Running, "complete a work item")?;
                let output = object_output(output)?;
                let wi = self.human_item(item, "complete")?.clone();
                match (&wi.state, &wi.owner) {
                    (WorkItemState::Started, Some(owner)) if *owner != user => {
                        return Err(Error::NotAllocatedTo {
                            item,
                            owner: owner.clone(),
                            user,
                        });
                    }
                    (WorkItemState::Started, _) => {}
                    _ => self.start_item(cx, item, user.clone())?,
                }
                let (ni, t) = self.locate_item(cx.wf, &wi.task)?;
                if let TaskBinding::Human(h) = &tdef(cx.wf, self, ni, t)?.binding
                    && h.four_eyes
                    && self.four_eyes().contains(&user)
                {
                    return Err(Error::FourEyes { item, user });
                }
                self.emit(
                    cx,
                    EventKind::WorkItemCompleted {
                        item,
                        user,
                        output: output.clone(),
                    },
                )?;
                self.finish_instance(cx, ni, t, wi.instance, output)
            }
            Input::FailWorkItem { item, reason } => {
                self.require(CaseStatus::Running, "fail a work item")?;
                let wi = self.human_item(item, "fail")?.clone();
                let (ni, t) = self.locate_item(cx.wf, &wi.task)?;
                self.fail_task(cx, ni, t, format!("work item failed: {reason}"))
            }
            Input::ConnectorSucceeded {
                item,
                output,
                failed_attempts,
            } => {
                self.require_taking_results("take a connector result")?;
                let wi = self.call(item)?.clone();
                self.emit(
                    cx,
                    EventKind::ConnectorCallSucceeded {
                        item,
                        output: output.clone(),
                        failed_attempts,
                    },
                )?;
                let (ni, t) = self.locate_item(cx.wf, &wi.task)?;
                self.finish_instance(cx, ni, t, wi.instance, output)
            }
            Input::ConnectorFailed {
                item,
                error,
                failed_attempts,
            } => {
                self.require_taking_results("take a connector result")?;
                let wi = self.call(item)?.clone();
                self.emit(
                    cx,
                    EventKind::ConnectorCallFailed {
                        item,
                        error: error.clone(),
                        failed_attempts,
                    },
                )?;
                let (ni, t) = self.locate_item(cx.wf, &wi.task)?;
                let connector = match &wi.kind {
                    WorkItemKind::Call { connector, .. } => connector.as_str(),
                    WorkItemKind::Human => "",
                };
                self.fail_task(cx, ni, t, format!("connector {connector} failed: {error}"))
            }
            Input::TimerFired { timer } => {
                self.require_active("fire a timer")?;
                let task = self
                    .armed_timers()
                    .get(&timer)
                    .ok_or(Error::UnknownTimer(timer))?
                    .task
                    .clone();
                self.emit(cx, EventKind::TimerFired { timer })?;
                let (ni, t) = self.locate_item(cx.wf, &task)?;
                let expire = tdef(cx.wf, self, ni, t)?
                    .timer
                    .is_some_and(|tm| tm.action == TimerAction::Expire);
                match self.slot(ni, t) {
                    Some(Slot::Enabled { item, .. }) if expire => {
                        if let Some(item) = *item {
                            self.cancel_item(cx, item)?;
                        }
                        let task = self.task_ref(cx.wf, ni, t)?;
                        self.emit(
                            cx,
                            EventKind::TaskStarted {
                                task,
                                instances: Vec::new(),
                            },
                        )?;
                        self.complete_task(cx, ni, t)
                    }
                    Some(Slot::Busy(_)) if expire => self.complete_task(cx, ni, t),
                    _ => Ok(()),
                }
            }
            Input::TriggerReceived { event, data } => {
                self.require(CaseStatus::Running, "take an event")?;
                let waiting = self.waiting_for(cx.wf, &event);
                if waiting.is_empty() {
                    // A persistent trigger's event waits in the case for its task (WCP-24);
                    // a transient one is refused, and the sender knows it is lost (WCP-23).
                    if cx.wf.has_persistent_trigger(&event) {
                        return self.emit(cx, EventKind::TriggerKept { event, data });
                    }
                    return Err(Error::NoTriggerWaiting(event));
                }
                for (ni, t) in waiting {
                    // A trigger task that shared its token with one started just before is
                    // gone; one that failed the case stops the others.
                    if self.status() == CaseStatus::Running
                        && matches!(self.slot(ni, t), Some(Slot::Enabled { held: false, .. }))
                    {
                        self.start_task(cx, ni, t, Some(data.clone()))?;
                    }
                }
                Ok(())
            }
            Input::AddInstance { task, item } => {
                self.require(CaseStatus::Running, "add an instance")?;
                self.add_instance(cx, &task, item)
            }
            Input::CompleteTask { task } => {
                self.require(CaseStatus::Running, "complete a task")?;
                let refuse = |why: &str| Error::CannotCompleteTask {
                    task: task.task.to_string(),
                    why: why.to_string(),
                };
                let (ni, t) = self
                    .locate(cx.wf, &task)
                    .ok_or_else(|| refuse("no such task"))?;
                if !matches!(self.slot(ni, t), Some(Slot::Busy(_))) {
                    return Err(refuse("it is not running"));
                }
                self.complete_task(cx, ni, t)
            }
            Input::UpdateData { changes } => {
                self.require(CaseStatus::Running, "update data")?;
                if let Some(why) = self.data_too_large(&changes, cx.max_data_bytes) {
                    return Err(Error::DataTooLarge(why));
                }
                self.emit(cx, EventKind::DataUpdated { changes })
            }
            Input::Suspend => {
                self.require(CaseStatus::Running, "suspend")?;
                self.set_status(cx, CaseStatus::Suspended, None)
            }
            Input::Resume => {
                self.require(CaseStatus::Suspended, "resume")?;
                self.set_status(cx, CaseStatus::Running, None)?;
                // Results taken while suspended may have moved tokens: look at every task.
                self.reconsider_all(cx);
                Ok(())
            }
            Input::RetryTask { task } => self.retry(cx, task.as_ref()),
            Input::Cancel { reason } => {
                // An operator may give up on a case failed by a task: its work is withdrawn.
                let incident = self.status() == CaseStatus::Failed && !self.incidents().is_empty();
                if self.status().is_final() && !incident {
                    return Err(Error::WrongCaseState {
                        status: self.status(),
                        action: "cancel",
                    });
                }
                self.teardown_all(cx)?;
                self.set_status(cx, CaseStatus::Cancelled, Some(reason))
            }
        }
    }

    fn human_item(&self, item: WorkItemId, action: &'static str) -> Res<&crate::WorkItem> {
        let wi = self
            .items()
            .get(&item)
            .ok_or(Error::UnknownWorkItem(item))?;
        if wi.is_call() {
            return Err(Error::WrongWorkItemState {
                item,
                state: wi.state.as_str(),
                action,
            });
        }
        Ok(wi)
    }

    fn call(&self, item: WorkItemId) -> Res<&crate::WorkItem> {
        let wi = self
            .items()
            .get(&item)
            .ok_or(Error::UnknownWorkItem(item))?;
        if !wi.is_call() {
            return Err(Error::WrongWorkItemState {
                item,
                state: wi.state.as_str(),
                action: "take a connector result",
            });
        }
        Ok(wi)
    }

    fn locate_item(&self, wf: &Workflow, task: &TaskRef) -> Res<(InstIx, TaskIx)> {
        self.locate(wf, task).ok_or_else(|| Error::Replay {
            seq: self.last_seq(),
            why: format!("unknown task {}", task.task),
        })
    }

    fn start_item(&mut self, cx: &mut Cx, item: WorkItemId, user: String) -> Res {
        let wi = self.human_item(item, "start")?.clone();
        match (wi.state, &wi.owner) {
            (WorkItemState::Offered, _) => {}
            (WorkItemState::Allocated, Some(owner)) if *owner != user => {
                return Err(Error::NotAllocatedTo {
                    item,
                    owner: owner.clone(),
                    user,
                });
            }
            (WorkItemState::Allocated, _) => {}
            (state, _) => {
                return Err(Error::WrongWorkItemState {
                    item,
                    state: state.as_str(),
                    action: "start",
                });
            }
        }
        self.emit(cx, EventKind::WorkItemStarted { item, user })?;
        let (ni, t) = self.locate_item(cx.wf, &wi.task)?;
        if matches!(self.slot(ni, t), Some(Slot::Enabled { .. })) {
            self.start_task(cx, ni, t, None)?;
        }
        Ok(())
    }

    /// Returns the data of the oldest kept event named `event`, if the case keeps one.
    pub(super) fn kept_event(&self, event: &str) -> Option<Value> {
        self.kept_triggers()
            .iter()
            .find(|(e, _)| e == event)
            .map(|(_, data)| data.clone())
    }

    fn waiting_for(&self, wf: &Workflow, event: &str) -> Vec<(InstIx, TaskIx)> {
        let mut out = Vec::new();
        for (ni, net) in self.nets().iter_enumerated() {
            if !net.live {
                continue;
            }
            for (t, slot) in net.slots.iter_enumerated() {
                if let Slot::Enabled { held: false, .. } = slot
                    && let Ok(def) = tdef(wf, self, ni, t)
                    && let TaskBinding::Trigger { event: e, .. } = &def.binding
                    && e == event
                {
                    out.push((ni, t));
                }
            }
        }
        out
    }

    fn add_instance(&mut self, cx: &mut Cx, task: &TaskRef, item: Value) -> Res {
        let refuse = |why: &str| Error::CannotAddInstance {
            task: task.task.to_string(),
            why: why.to_string(),
        };
        let (ni, t) = self
            .locate(cx.wf, task)
            .ok_or_else(|| refuse("no such task"))?;
        let def = tdef(cx.wf, self, ni, t)?;
        let Some(mi) = &def.mi else {
            return Err(refuse("it is not a multiple-instance task"));
        };
        if mi.spec.creation != crate::model::CreationMode::Dynamic {
            return Err(refuse("its instances are created statically"));
        }
        let Some(Slot::Busy(act)) = self.slot(ni, t) else {
            return Err(refuse("it is not running"));
        };
        if let Some(max) = mi.spec.maximum
            && act.instances.len() as u64 >= u64::from(max)
        {
            return Err(refuse(&format!(
                "it already has the maximum of {max} instances"
            )));
        }
        let i = act.instances.len() as u32;
        self.emit(
            cx,
            EventKind::InstanceAdded {
                task: task.clone(),
                item,
            },
        )?;
        self.begin_instance(cx, ni, t, i)
    }
}

/// Returns the definition of task `t` of net instance `ni`.
fn tdef<'w>(wf: &'w Workflow, case: &Case, ni: InstIx, t: TaskIx) -> Res<&'w TaskDef> {
    case.net_def(wf, ni)?.task_def(t)
}

fn object_output(output: Value) -> Result<Value, Error> {
    match output {
        Value::Null => Ok(Value::Object(Map::new())),
        Value::Object(_) => Ok(output),
        other => Err(Error::OutputNotObject(json_kind(&other))),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
