//! Deciding: what an input does to a case, and everything that follows from it until the case
//! waits for the outside world again (empty tasks complete, splits route tokens, joins fire).
//!
//! Every change is made by emitting an event and folding it at once (`Case::evolve`), so the
//! events returned are exactly what replay needs.

use serde_json::{Map, Value};

use crate::case::{Case, InstanceState, Slot, Step, Unit, WorkItemState};
use crate::effect::Effect;
use crate::error::Error;
use crate::event::{CaseStatus, Event, EventKind, TaskRef};
use crate::ids::{IdSource, TimerId, Timestamp, WorkItemId};
use crate::input::Input;
use crate::model::{ControlType, TaskBinding, TimerAction, TimerTrigger};
use crate::orjoin;
use crate::workflow::{OUTPUT, TaskDef, Workflow};

struct Cx<'a> {
    wf: &'a Workflow,
    now: Timestamp,
    ids: &'a mut dyn IdSource,
    step: Step,
    /// OR-joins allowed to fire although the analysis says wait: nothing else can move.
    forced: Vec<(u32, u32)>,
}

type Res<T = ()> = Result<T, Error>;

impl Case {
    /// Applies one input at time `now`, taking new ids from `ids`, and returns the events and
    /// effects. On error the case is unchanged.
    pub fn apply(
        &mut self,
        workflow: &Workflow,
        now: Timestamp,
        input: Input,
        ids: &mut dyn IdSource,
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
        };
        next.perform(&mut cx, input)?;
        next.settle(&mut cx)?;
        next.dirty.clear();
        *self = next;
        Ok(cx.step)
    }

    fn emit(&mut self, cx: &mut Cx, kind: EventKind) -> Res {
        let event = Event {
            seq: self.seq + 1,
            time: cx.now,
            kind,
        };
        self.evolve(cx.wf, &event)?;
        cx.step.events.push(event);
        Ok(())
    }

    fn require(&self, status: CaseStatus, action: &'static str) -> Res {
        if self.status == status {
            Ok(())
        } else {
            Err(Error::WrongCaseState {
                status: self.status,
                action,
            })
        }
    }

    /// Outside results (connector calls, timers) are taken while running or suspended: the
    /// world does not stop for a suspended case, but nothing new starts until it resumes.
    fn require_active(&self, action: &'static str) -> Res {
        match self.status {
            CaseStatus::Running | CaseStatus::Suspended => Ok(()),
            status => Err(Error::WrongCaseState { status, action }),
        }
    }

    fn set_status(&mut self, cx: &mut Cx, to: CaseStatus, reason: Option<String>) -> Res {
        let from = self.status;
        self.emit(cx, EventKind::CaseStateChanged { from, to, reason })?;
        if to.is_final() {
            cx.step.effects.push(Effect::CaseEnded { status: to });
        }
        Ok(())
    }

    fn task_ref(&self, wf: &Workflow, ni: u32, t: u32) -> TaskRef {
        TaskRef {
            net_instance: ni,
            task: tdef(wf, self, ni, t).id.clone(),
        }
    }

    fn perform(&mut self, cx: &mut Cx, input: Input) -> Res {
        match input {
            Input::Start => {
                self.require(CaseStatus::Created, "start")?;
                self.set_status(cx, CaseStatus::Running, None)
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
                if let TaskBinding::Human(h) = &tdef(cx.wf, self, ni, t).binding
                    && h.four_eyes
                    && self.four_eyes.contains(&user)
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
            Input::ConnectorSucceeded { item, output } => {
                self.require_active("take a connector result")?;
                let wi = self.call(item)?.clone();
                self.emit(
                    cx,
                    EventKind::ConnectorCallSucceeded {
                        item,
                        output: output.clone(),
                    },
                )?;
                let (ni, t) = self.locate_item(cx.wf, &wi.task)?;
                self.finish_instance(cx, ni, t, wi.instance, output)
            }
            Input::ConnectorFailed { item, error } => {
                self.require_active("take a connector result")?;
                let wi = self.call(item)?.clone();
                self.emit(
                    cx,
                    EventKind::ConnectorCallFailed {
                        item,
                        error: error.clone(),
                    },
                )?;
                let (ni, t) = self.locate_item(cx.wf, &wi.task)?;
                let connector = wi.connector.unwrap_or_default();
                self.fail_task(cx, ni, t, format!("connector {connector} failed: {error}"))
            }
            Input::TimerFired { timer } => {
                self.require_active("fire a timer")?;
                let task = self
                    .timers
                    .get(&timer)
                    .ok_or(Error::UnknownTimer(timer))?
                    .task
                    .clone();
                self.emit(cx, EventKind::TimerFired { timer })?;
                let (ni, t) = self.locate_item(cx.wf, &task)?;
                let expire = tdef(cx.wf, self, ni, t)
                    .timer
                    .is_some_and(|tm| tm.action == TimerAction::Expire);
                match self.slot(ni, t) {
                    Some(Slot::Enabled { item, .. }) if expire => {
                        if let Some(item) = *item {
                            self.cancel_item(cx, item)?;
                        }
                        let task = self.task_ref(cx.wf, ni, t);
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
                    return Err(Error::NoTriggerWaiting(event));
                }
                for (ni, t) in waiting {
                    // A trigger task that shared its token with one started just before is gone.
                    if matches!(self.slot(ni, t), Some(Slot::Enabled { held: false, .. })) {
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
                for (ni, net) in self.nets.iter().enumerate() {
                    if net.live {
                        for t in 0..net.slots.len() {
                            self.dirty.push_back((ni as u32, t as u32));
                        }
                    }
                }
                Ok(())
            }
            Input::Cancel { reason } => {
                if self.status.is_final() {
                    return Err(Error::WrongCaseState {
                        status: self.status,
                        action: "cancel",
                    });
                }
                self.teardown_all(cx)?;
                self.set_status(cx, CaseStatus::Cancelled, Some(reason))
            }
        }
    }

    fn human_item(&self, item: WorkItemId, action: &'static str) -> Res<&crate::WorkItem> {
        let wi = self.items.get(&item).ok_or(Error::UnknownWorkItem(item))?;
        if wi.state == WorkItemState::Calling {
            return Err(Error::WrongWorkItemState {
                item,
                state: wi.state.as_str(),
                action,
            });
        }
        Ok(wi)
    }

    fn call(&self, item: WorkItemId) -> Res<&crate::WorkItem> {
        let wi = self.items.get(&item).ok_or(Error::UnknownWorkItem(item))?;
        if wi.state != WorkItemState::Calling {
            return Err(Error::WrongWorkItemState {
                item,
                state: wi.state.as_str(),
                action: "take a connector result",
            });
        }
        Ok(wi)
    }

    fn locate_item(&self, wf: &Workflow, task: &TaskRef) -> Res<(u32, u32)> {
        self.locate(wf, task).ok_or_else(|| Error::Replay {
            seq: self.seq,
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

    fn waiting_for(&self, wf: &Workflow, event: &str) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        for (ni, net) in self.nets.iter().enumerate() {
            if !net.live {
                continue;
            }
            for (t, slot) in net.slots.iter().enumerate() {
                if let Slot::Enabled { held: false, .. } = slot
                    && let TaskBinding::Trigger { event: e } =
                        &tdef(wf, self, ni as u32, t as u32).binding
                    && e == event
                {
                    out.push((ni as u32, t as u32));
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
        let def = tdef(cx.wf, self, ni, t);
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

    /// Runs everything that follows from the last change until the case waits or ends.
    fn settle(&mut self, cx: &mut Cx) -> Res {
        loop {
            while let Some((ni, t)) = self.dirty.pop_front() {
                if self.status != CaseStatus::Running {
                    self.dirty.clear();
                    return Ok(());
                }
                self.reconsider(cx, ni, t)?;
            }
            if self.status != CaseStatus::Running || !self.quiescent_step(cx)? {
                return Ok(());
            }
        }
    }

    fn enabled(&self, cx: &Cx, ni: u32, t: u32) -> bool {
        let Some(net) = self.nets.get(ni as usize) else {
            return false;
        };
        if !net.live {
            return false;
        }
        let def = &cx.wf.nets[net.net as usize];
        let task = &def.tasks[t as usize];
        let m = &net.marking;
        match task.join {
            ControlType::And => task.inputs.iter().all(|&p| m[p as usize] > 0),
            ControlType::Xor => task.inputs.iter().any(|&p| m[p as usize] > 0),
            ControlType::Or => {
                if cx.forced.contains(&(ni, t)) {
                    return task.inputs.iter().any(|&p| m[p as usize] > 0);
                }
                let busy: Vec<bool> = net
                    .slots
                    .iter()
                    .map(|s| matches!(s, Slot::Busy(_)))
                    .collect();
                orjoin::may_fire(def, m, &busy, t)
            }
        }
    }

    fn reconsider(&mut self, cx: &mut Cx, ni: u32, t: u32) -> Res {
        if !self.nets.get(ni as usize).is_some_and(|n| n.live) {
            return Ok(());
        }
        if matches!(self.slot(ni, t), Some(Slot::Idle)) {
            if !self.enabled(cx, ni, t) {
                return Ok(());
            }
            let task = self.task_ref(cx.wf, ni, t);
            self.emit(cx, EventKind::TaskEnabled { task })?;
            self.on_enabled(cx, ni, t)?;
        }
        let Some(Slot::Enabled { item, held, .. }) = self.slot(ni, t).cloned() else {
            return Ok(());
        };
        if !self.enabled(cx, ni, t) {
            return self.withdraw(cx, ni, t);
        }
        if held {
            return Ok(());
        }
        let def = tdef(cx.wf, self, ni, t);
        let auto = def.mi.is_some()
            || def.subnet.is_some()
            || matches!(def.binding, TaskBinding::Empty | TaskBinding::Connector(_));
        if auto {
            return self.start_task(cx, ni, t, None);
        }
        if matches!(def.binding, TaskBinding::Human(_)) && item.is_none() {
            let input = match self.task_input(def, &Value::Null) {
                Ok(input) => input,
                Err(e) => return self.fail_task(cx, ni, t, e),
            };
            self.offer(cx, ni, t, 0, input)?;
        }
        Ok(())
    }

    /// Offers a work item for instance `i` of a human task.
    fn offer(&mut self, cx: &mut Cx, ni: u32, t: u32, i: u32, input: Value) -> Res {
        let TaskBinding::Human(h) = &tdef(cx.wf, self, ni, t).binding else {
            return Ok(());
        };
        let item = WorkItemId(cx.ids.next_id());
        let task = self.task_ref(cx.wf, ni, t);
        self.emit(
            cx,
            EventKind::WorkItemOffered {
                item,
                task: task.clone(),
                instance: i,
                input: input.clone(),
            },
        )?;
        cx.step.effects.push(Effect::OfferWorkItem {
            item,
            task,
            binding: h.clone(),
            input,
        });
        Ok(())
    }

    fn on_enabled(&mut self, cx: &mut Cx, ni: u32, t: u32) -> Res {
        let def = tdef(cx.wf, self, ni, t);
        if let Some(timer) = def.timer
            && timer.trigger == TimerTrigger::OnEnabled
        {
            self.arm_timer(cx, ni, t, timer.duration_ms)?;
        }
        if let TaskBinding::Trigger { event } = &def.binding {
            let task = self.task_ref(cx.wf, ni, t);
            cx.step.effects.push(Effect::AwaitTrigger {
                task,
                event: event.clone(),
            });
        }
        Ok(())
    }

    fn arm_timer(&mut self, cx: &mut Cx, ni: u32, t: u32, duration_ms: u64) -> Res {
        let timer = TimerId(cx.ids.next_id());
        let fires_at = cx.now.plus_millis(duration_ms);
        let task = self.task_ref(cx.wf, ni, t);
        self.emit(
            cx,
            EventKind::TimerArmed {
                timer,
                task,
                fires_at,
            },
        )?;
        cx.step.effects.push(Effect::ArmTimer { timer, fires_at });
        Ok(())
    }

    fn cancel_timer(&mut self, cx: &mut Cx, timer: Option<TimerId>) -> Res {
        if let Some(timer) = timer
            && self.timers.contains_key(&timer)
        {
            self.emit(cx, EventKind::TimerCancelled { timer })?;
            cx.step.effects.push(Effect::CancelTimer { timer });
        }
        Ok(())
    }

    fn cancel_item(&mut self, cx: &mut Cx, item: WorkItemId) -> Res {
        let Some(wi) = self.items.get(&item) else {
            return Ok(());
        };
        let effect = if wi.state == WorkItemState::Calling {
            Effect::CancelConnectorCall { item }
        } else {
            Effect::WithdrawWorkItem { item }
        };
        self.emit(cx, EventKind::WorkItemCancelled { item })?;
        cx.step.effects.push(effect);
        Ok(())
    }

    fn withdraw(&mut self, cx: &mut Cx, ni: u32, t: u32) -> Res {
        if let Some(Slot::Enabled { item, timer, .. }) = self.slot(ni, t).cloned() {
            if let Some(item) = item {
                self.cancel_item(cx, item)?;
            }
            self.cancel_timer(cx, timer)?;
            let task = self.task_ref(cx.wf, ni, t);
            self.emit(cx, EventKind::TaskWithdrawn { task })?;
        }
        Ok(())
    }

    /// Returns the input of a task instance: its input mapping, or the case data with the
    /// instance's item.
    fn task_input(&self, def: &TaskDef, item: &Value) -> Result<Value, String> {
        let item_var = def.mi.as_ref().map(|m| m.spec.item_variable.as_str());
        if let Some(mapping) = &def.input_mapping {
            let extra: Vec<(&str, &Value)> = item_var.map(|v| (v, item)).into_iter().collect();
            return mapping
                .eval_value(&self.data, &extra)
                .map_err(|e| format!("input mapping: {e}"));
        }
        let mut data = self.data.clone();
        if let Some(v) = item_var {
            data.insert(v.to_string(), item.clone());
        }
        Ok(Value::Object(data))
    }

    fn start_task(&mut self, cx: &mut Cx, ni: u32, t: u32, trigger: Option<Value>) -> Res {
        let def = tdef(cx.wf, self, ni, t);
        let instances = match &def.mi {
            // A single-instance task records no item: its one instance is implied.
            None => Vec::new(),
            Some(mi) => {
                let items = match &mi.split {
                    None => vec![Value::Null; mi.spec.minimum as usize],
                    Some(e) => match e.eval_value(&self.data, &[]) {
                        Ok(Value::Array(items)) => items,
                        Ok(other) => {
                            let got = json_kind(&other);
                            return self.fail_task(
                                cx,
                                ni,
                                t,
                                format!("split expression gave {got}, not a list"),
                            );
                        }
                        Err(e) => {
                            return self.fail_task(cx, ni, t, format!("split expression: {e}"));
                        }
                    },
                };
                let n = items.len() as u64;
                if n < u64::from(mi.spec.minimum)
                    || mi.spec.maximum.is_some_and(|max| n > u64::from(max))
                {
                    let max = mi
                        .spec
                        .maximum
                        .map_or_else(|| "unbounded".to_string(), |m| m.to_string());
                    return self.fail_task(
                        cx,
                        ni,
                        t,
                        format!(
                            "{n} instances are outside the bounds [{}, {max}]",
                            mi.spec.minimum
                        ),
                    );
                }
                items
            }
        };
        let count = if def.mi.is_some() {
            instances.len() as u32
        } else {
            1
        };
        let task = self.task_ref(cx.wf, ni, t);
        self.emit(cx, EventKind::TaskStarted { task, instances })?;
        if let Some(data) = trigger {
            // The event a trigger task waited for is its work's output.
            return self.finish_instance(cx, ni, t, 0, data);
        }
        if let Some(timer) = def.timer
            && timer.trigger == TimerTrigger::OnStarted
        {
            self.arm_timer(cx, ni, t, timer.duration_ms)?;
        }
        let Some(Slot::Busy(act)) = self.slot(ni, t) else {
            return Ok(());
        };
        let started = act.started_seq;
        for i in 0..count {
            // An earlier instance may have completed the task (empty work, threshold reached).
            let Some(Slot::Busy(act)) = self.slot(ni, t) else {
                break;
            };
            if act.started_seq != started {
                break;
            }
            if matches!(
                act.instances.get(i as usize).map(|x| &x.state),
                Some(InstanceState::Running(None))
            ) {
                self.begin_instance(cx, ni, t, i)?;
            }
        }
        Ok(())
    }

    fn begin_instance(&mut self, cx: &mut Cx, ni: u32, t: u32, i: u32) -> Res {
        let wf = cx.wf;
        let def = tdef(wf, self, ni, t);
        let task = self.task_ref(wf, ni, t);
        if let Some(sub) = def.subnet {
            let net_instance = self.nets.len() as u32;
            let net = wf.nets[sub as usize].id.clone();
            return self.emit(
                cx,
                EventKind::NetStarted {
                    net_instance,
                    net,
                    parent: task,
                    instance: i,
                },
            );
        }
        let Some(Slot::Busy(act)) = self.slot(ni, t) else {
            return Ok(());
        };
        let started_seq = act.started_seq;
        let item = act
            .instances
            .get(i as usize)
            .map(|x| x.item.clone())
            .unwrap_or(Value::Null);
        match &def.binding {
            TaskBinding::Empty => self.finish_instance(cx, ni, t, i, Value::Object(Map::new())),
            // Trigger tasks complete through `TriggerReceived`, or are cancelled.
            TaskBinding::Trigger { .. } => Ok(()),
            TaskBinding::Human(_) => {
                let input = match self.task_input(def, &item) {
                    Ok(input) => input,
                    Err(e) => return self.fail_task(cx, ni, t, e),
                };
                self.offer(cx, ni, t, i, input)
            }
            TaskBinding::Connector(c) => {
                let input = match self.task_input(def, &item) {
                    Ok(input) => input,
                    Err(e) => return self.fail_task(cx, ni, t, e),
                };
                let id = WorkItemId(cx.ids.next_id());
                let idempotency_key = format!("{}/{ni}/{}/{started_seq}/{i}", self.id, task.task);
                self.emit(
                    cx,
                    EventKind::ConnectorCallStarted {
                        item: id,
                        task: task.clone(),
                        instance: i,
                        connector: c.connector.clone(),
                        idempotency_key: idempotency_key.clone(),
                        input: input.clone(),
                    },
                )?;
                cx.step.effects.push(Effect::CallConnector {
                    item: id,
                    task,
                    binding: c.clone(),
                    hints: def.runtime.clone(),
                    input,
                    idempotency_key,
                });
                Ok(())
            }
        }
    }

    /// Records an instance's output and completes the task once enough instances did.
    fn finish_instance(&mut self, cx: &mut Cx, ni: u32, t: u32, i: u32, output: Value) -> Res {
        let def = tdef(cx.wf, self, ni, t);
        let Some(Slot::Busy(act)) = self.slot(ni, t) else {
            return Ok(());
        };
        let item = act
            .instances
            .get(i as usize)
            .map(|x| x.item.clone())
            .unwrap_or(Value::Null);
        let mapped = match &def.output_mapping {
            None => output,
            Some(m) => {
                let mut extra = vec![("output", &output)];
                if let Some(mi) = &def.mi {
                    extra.push((mi.spec.item_variable.as_str(), &item));
                }
                match m.eval_value(&self.data, &extra) {
                    Ok(v) => v,
                    Err(e) => return self.fail_task(cx, ni, t, format!("output mapping: {e}")),
                }
            }
        };
        let collects = def
            .mi
            .as_ref()
            .is_some_and(|m| m.spec.join_variable.is_some());
        if !collects
            && let Value::Object(changes) = &mapped
            && !changes.is_empty()
        {
            self.emit(
                cx,
                EventKind::DataUpdated {
                    changes: changes.clone(),
                },
            )?;
        }
        if def.mi.is_none() {
            // A single instance done is the task done; its output is in the data already.
            return self.complete_task(cx, ni, t);
        }
        let task = self.task_ref(cx.wf, ni, t);
        self.emit(
            cx,
            EventKind::InstanceCompleted {
                task,
                instance: i,
                output: mapped,
            },
        )?;
        let Some(Slot::Busy(act)) = self.slot(ni, t) else {
            return Ok(());
        };
        let total = act.instances.len();
        let done = act
            .instances
            .iter()
            .filter(|x| matches!(x.state, InstanceState::Completed(_)))
            .count();
        let needed = def
            .mi
            .as_ref()
            .and_then(|m| m.spec.threshold)
            .map_or(total, |th| (th as usize).min(total));
        if done >= needed {
            self.complete_task(cx, ni, t)?;
        }
        Ok(())
    }

    /// Returns what still runs for a busy task (work items, calls, sub-nets) and its timer.
    fn running_work(&self, ni: u32, t: u32) -> Option<(Vec<Unit>, Option<TimerId>)> {
        let Some(Slot::Busy(act)) = self.slot(ni, t) else {
            return None;
        };
        let units = act
            .instances
            .iter()
            .filter_map(|i| match i.state {
                InstanceState::Running(unit) => unit,
                InstanceState::Completed(_) => None,
            })
            .collect();
        Some((units, act.timer))
    }

    /// Withdraws what still runs for a busy task.
    fn cancel_units(&mut self, cx: &mut Cx, ni: u32, t: u32) -> Res {
        let Some((units, timer)) = self.running_work(ni, t) else {
            return Ok(());
        };
        for unit in units {
            match unit {
                Unit::Item(item) => self.cancel_item(cx, item)?,
                Unit::Net(k) => self.end_net(cx, k)?,
            }
        }
        self.cancel_timer(cx, timer)
    }

    fn complete_task(&mut self, cx: &mut Cx, ni: u32, t: u32) -> Res {
        let wf = cx.wf;
        let def = tdef(wf, self, ni, t);
        let Some(Slot::Busy(act)) = self.slot(ni, t) else {
            return Ok(());
        };
        let joined = def
            .mi
            .as_ref()
            .and_then(|m| m.spec.join_variable.clone())
            .map(|var| {
                let outputs: Vec<Value> = act
                    .instances
                    .iter()
                    .filter_map(|x| match &x.state {
                        InstanceState::Completed(v) => Some(v.clone()),
                        InstanceState::Running(_) => None,
                    })
                    .collect();
                (var, outputs)
            });
        self.cancel_units(cx, ni, t)?;
        if let Some((var, outputs)) = joined {
            let mut changes = Map::new();
            changes.insert(var, Value::Array(outputs));
            self.emit(cx, EventKind::DataUpdated { changes })?;
        }
        // Cancellation set: reset before produce, as in reset nets.
        let mut empty = def.cancel_places.clone();
        for &u in &def.cancel_tasks {
            if u == t {
                continue;
            }
            let net_def = &wf.nets[self.nets[ni as usize].net as usize];
            match self.slot(ni, u) {
                Some(Slot::Busy(_)) => {
                    self.cancel_units(cx, ni, u)?;
                    let task = self.task_ref(wf, ni, u);
                    self.emit(cx, EventKind::TaskCancelled { task })?;
                }
                Some(Slot::Enabled { .. }) => {
                    // An enabled task named in the set loses the tokens only it could use.
                    for &p in &net_def.tasks[u as usize].inputs {
                        if net_def.places[p as usize].implicit {
                            empty.push(p);
                        }
                    }
                }
                _ => {}
            }
        }
        for p in empty {
            let net = &self.nets[ni as usize];
            let count = net.marking[p as usize];
            if count > 0 {
                let condition = wf.nets[net.net as usize].places[p as usize].id.clone();
                self.emit(
                    cx,
                    EventKind::TokensRemoved {
                        net_instance: ni,
                        condition,
                        count,
                    },
                )?;
            }
        }
        let places = match self.route(def) {
            Ok(p) => p,
            Err(reason) => return self.fail_task(cx, ni, t, reason),
        };
        let net_def = &wf.nets[self.nets[ni as usize].net as usize];
        let produced = places
            .iter()
            .map(|&p| net_def.places[p as usize].id.clone())
            .collect();
        let task = self.task_ref(wf, ni, t);
        self.emit(cx, EventKind::TaskCompleted { task, produced })?;
        if places.contains(&OUTPUT) {
            if ni == 0 {
                self.teardown_all(cx)?;
                self.set_status(cx, CaseStatus::Completed, None)?;
            } else {
                self.net_finished(cx, ni)?;
            }
        }
        Ok(())
    }

    /// Chooses the output places of a completing task by its split.
    fn route(&self, def: &TaskDef) -> Result<Vec<u32>, String> {
        let holds = |arc: &crate::workflow::OutArc| -> Result<bool, String> {
            match &arc.predicate {
                None => Ok(true),
                Some(p) => p.eval_bool(&self.data).map_err(|e| e.to_string()),
            }
        };
        let default = || def.outputs.iter().find(|a| a.is_default).map(|a| a.place);
        let split = match def.split {
            ControlType::And => {
                return Ok(def
                    .outputs
                    .iter()
                    .filter(|a| !a.on_failure)
                    .map(|a| a.place)
                    .collect());
            }
            s => s,
        };
        if def.outputs.iter().all(|a| a.on_failure) {
            // A task without outgoing flows ends its thread of control.
            return Ok(Vec::new());
        }
        let mut chosen = Vec::new();
        for arc in def.outputs.iter().filter(|a| !a.on_failure) {
            // The default flow is a fallback; on an OR split its own predicate, when it has
            // one, is evaluated like the others (as YAWL does).
            if arc.is_default && (split == ControlType::Xor || arc.predicate.is_none()) {
                continue;
            }
            if holds(arc)? {
                chosen.push(arc.place);
                if split == ControlType::Xor {
                    break;
                }
            }
        }
        if chosen.is_empty() {
            match default() {
                Some(p) => chosen.push(p),
                None => {
                    return Err(format!(
                        "no flow of the {} split of {} holds and it has no default flow",
                        if split == ControlType::Xor {
                            "XOR"
                        } else {
                            "OR"
                        },
                        def.id
                    ));
                }
            }
        }
        Ok(chosen)
    }

    /// Fails a task (enabled or running) and with it the case.
    fn fail_task(&mut self, cx: &mut Cx, ni: u32, t: u32, reason: String) -> Res {
        match self.slot(ni, t).cloned() {
            Some(Slot::Busy(_)) => self.cancel_units(cx, ni, t)?,
            Some(Slot::Enabled { item, timer, .. }) => {
                if let Some(item) = item {
                    self.cancel_item(cx, item)?;
                }
                self.cancel_timer(cx, timer)?;
            }
            _ => {}
        }
        let task = self.task_ref(cx.wf, ni, t);
        let wf = cx.wf;
        let net = &wf.nets[self.nets[ni as usize].net as usize];
        if let Some(arc) = net.tasks[t as usize].outputs.iter().find(|a| a.on_failure) {
            // The definition routes this failure: record it in the data and go on. A task
            // that failed before it started takes its tokens first, so it is not enabled
            // (and failing) again.
            if matches!(self.slot(ni, t), Some(Slot::Enabled { .. })) {
                self.emit(
                    cx,
                    EventKind::TaskStarted {
                        task: task.clone(),
                        instances: Vec::new(),
                    },
                )?;
            }
            let mut changes = Map::new();
            changes.insert(
                "last_error".to_string(),
                serde_json::json!({"task": task.task.as_str(), "reason": reason}),
            );
            self.emit(cx, EventKind::DataUpdated { changes })?;
            let produced = vec![net.places[arc.place as usize].id.clone()];
            return self.emit(
                cx,
                EventKind::TaskFailed {
                    task,
                    reason,
                    produced,
                },
            );
        }
        let why = format!("task {} failed: {reason}", task.task);
        self.emit(
            cx,
            EventKind::TaskFailed {
                task,
                reason,
                produced: Vec::new(),
            },
        )?;
        self.teardown_all(cx)?;
        self.set_status(cx, CaseStatus::Failed, Some(why))
    }

    /// Withdraws all work of a net instance (tasks, work items, timers, sub-nets).
    fn teardown(&mut self, cx: &mut Cx, ni: u32) -> Res {
        let slots = match self.nets.get(ni as usize) {
            Some(n) if n.live => n.slots.len() as u32,
            _ => return Ok(()),
        };
        for t in 0..slots {
            match self.slot(ni, t).cloned() {
                Some(Slot::Busy(_)) => {
                    self.cancel_units(cx, ni, t)?;
                    let task = self.task_ref(cx.wf, ni, t);
                    self.emit(cx, EventKind::TaskCancelled { task })?;
                }
                Some(Slot::Enabled { .. }) => self.withdraw(cx, ni, t)?,
                _ => {}
            }
        }
        Ok(())
    }

    fn teardown_all(&mut self, cx: &mut Cx) -> Res {
        self.teardown(cx, 0)
    }

    /// Ends a sub-net instance: withdraws its remaining work and marks it ended.
    fn end_net(&mut self, cx: &mut Cx, k: u32) -> Res {
        if !self.nets.get(k as usize).is_some_and(|n| n.live) {
            return Ok(());
        }
        self.teardown(cx, k)?;
        self.emit(cx, EventKind::NetEnded { net_instance: k })
    }

    /// A sub-net instance reached its end: the composite task's instance completes.
    fn net_finished(&mut self, cx: &mut Cx, k: u32) -> Res {
        let parent = self.nets.get(k as usize).and_then(|n| n.parent);
        self.end_net(cx, k)?;
        if let Some((pni, pt, pi)) = parent {
            self.finish_instance(cx, pni, pt, pi, Value::Object(Map::new()))?;
        }
        Ok(())
    }

    /// Looks at a case where nothing is left to reconsider. Returns whether something
    /// changed (so that settling goes on).
    fn quiescent_step(&mut self, cx: &mut Cx) -> Res<bool> {
        let wf = cx.wf;
        for ni in (0..self.nets.len() as u32).rev() {
            let net = &self.nets[ni as usize];
            if !net.live
                || net.slots.iter().any(|s| !matches!(s, Slot::Idle))
                || net.marking.get(OUTPUT as usize).is_some_and(|&m| m > 0)
            {
                continue;
            }
            let def = &wf.nets[net.net as usize];
            // Only OR-joins waiting on each other are left: let the first one fire.
            if let Some(&t) = def.or_joins.iter().find(|&&t| {
                def.tasks[t as usize]
                    .inputs
                    .iter()
                    .any(|&p| net.marking[p as usize] > 0)
                    && !cx.forced.contains(&(ni, t))
            }) {
                cx.forced.push((ni, t));
                self.dirty.push_back((ni, t));
                return Ok(true);
            }
            let marked: Vec<_> = net
                .marking
                .iter()
                .enumerate()
                .filter(|&(_, &n)| n > 0)
                .map(|(p, _)| def.places[p].id.clone())
                .collect();
            if !marked.is_empty() {
                let names: Vec<&str> = marked.iter().map(|c| c.as_str()).collect();
                let why = format!(
                    "deadlock: tokens in {} of net {} but no task can fire",
                    names.join(", "),
                    def.id
                );
                self.emit(cx, EventKind::CaseDeadlocked { marked })?;
                self.teardown_all(cx)?;
                self.set_status(cx, CaseStatus::Failed, Some(why))?;
                return Ok(false);
            }
            // Implicit termination: no tokens and no work left.
            if ni == 0 {
                self.set_status(cx, CaseStatus::Completed, None)?;
                return Ok(false);
            }
            self.net_finished(cx, ni)?;
            return Ok(true);
        }
        Ok(false)
    }
}

fn tdef<'w>(wf: &'w Workflow, case: &Case, ni: u32, t: u32) -> &'w TaskDef {
    let net = case.nets[ni as usize].net;
    &wf.nets[net as usize].tasks[t as usize]
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
