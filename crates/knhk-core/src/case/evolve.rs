//! The fold: how each event changes a case. `Case::evolve` is the only place where a case's
//! state changes; deciding (`step/`) emits events and folds them here at once, replay folds a
//! stored history.

use serde_json::Value;

use super::*;
use crate::workflow::INPUT;

impl Case {
    #[inline]
    pub(super) fn slot_mut(&mut self, ni: InstIx, t: TaskIx) -> Option<&mut Slot> {
        self.nets.get_mut(ni)?.slots.get_mut(t)
    }

    fn activation_mut(&mut self, ni: InstIx, t: TaskIx) -> Option<&mut Activation> {
        match self.slot_mut(ni, t)? {
            Slot::Busy(a) => Some(a),
            _ => None,
        }
    }

    /// Marks the consumers of a place for re-evaluation, then the OR-joins of its net for a
    /// look; those whose cone holds the place may now decide otherwise.
    fn touch(&self, workflow: &Workflow, ni: InstIx, place: PlaceIx, dirty: &mut impl Touched) {
        let Some(net) = self.nets.get(ni) else {
            return;
        };
        let Some(def) = workflow.nets.get(net.net) else {
            return;
        };
        if let Some(p) = def.places.get(place) {
            for &t in &p.consumers {
                dirty.touched(ni, t);
            }
        }
        if def.or_joins.is_empty() {
            return;
        }
        dirty.or_joins_changed(ni, def, net, Change::Place(place));
        dirty.or_joins(ni);
    }

    /// Reports a change of task `t`'s state (enabled, started, ended...): it may change the
    /// answer of the OR-joins whose cone holds `t`, and of `t` itself if it is one.
    fn task_changed(&self, workflow: &Workflow, ni: InstIx, t: TaskIx, dirty: &mut impl Touched) {
        if !workflow.has_or_joins {
            return;
        }
        let Some(net) = self.nets.get(ni) else {
            return;
        };
        let Some(def) = workflow.nets.get(net.net) else {
            return;
        };
        if !def.or_joins.is_empty() {
            dirty.or_joins_changed(ni, def, net, Change::Task(t));
        }
    }

    /// Ends a task's activation and puts a token in each produced condition; `None` if one
    /// of them is not a condition of the task's net.
    fn finish_task(
        &mut self,
        workflow: &Workflow,
        dirty: &mut impl Touched,
        ni: InstIx,
        t: TaskIx,
        produced: &[ElementId],
    ) -> Option<()> {
        let def = workflow.nets.get(self.nets.get(ni)?.net)?;
        *self.nets.get_mut(ni)?.slots.get_mut(t)? = Slot::Idle;
        self.task_changed(workflow, ni, t, dirty);
        dirty.touched(ni, t);
        // An unknown condition means a history that does not fit: the caller drops the case.
        for c in produced {
            let p = def.place(c)?;
            *self.nets.get_mut(ni)?.marking.get_mut(p)? += 1;
            self.touch(workflow, ni, p, dirty);
        }
        Some(())
    }

    /// Folds one event into the case: the only place where a case changes.
    /// Tasks whose enablement the event may have changed are reported to `dirty`.
    pub(crate) fn evolve(
        &mut self,
        workflow: &Workflow,
        event: &Event,
        dirty: &mut impl Touched,
    ) -> Result<(), Error> {
        let bad = |why: &str| Error::Replay {
            seq: event.seq,
            why: why.to_string(),
        };
        if event.seq != self.seq + 1 {
            return Err(bad("sequence number out of order"));
        }
        let task_of = |case: &Case, task: &TaskRef| {
            case.locate(workflow, task)
                .ok_or_else(|| bad(&format!("unknown task {}", task.task)))
        };
        match &event.kind {
            EventKind::CaseCreated { data, .. } => {
                if self.seq != 0 {
                    return Err(bad("case created twice"));
                }
                self.data = data.clone();
                self.new_net(workflow, NetIx::new(0), None);
            }
            EventKind::CaseStateChanged { from, to, reason } => {
                if *from != self.status || !from.can_become(*to) {
                    return Err(bad("impossible case state change"));
                }
                if *from == CaseStatus::Failed
                    && *to == CaseStatus::Running
                    && !self.incidents().is_empty()
                {
                    return Err(bad("a failed case ran again with an incident open"));
                }
                self.status = *to;
                // A case that ends otherwise than failed drops what a failure left; its
                // remaining work went with it.
                match to {
                    CaseStatus::Failed => self.failures_mut().failure = reason.clone(),
                    _ => {
                        if let Some(f) = self.failures.as_deref_mut() {
                            f.failure = None;
                            if matches!(to, CaseStatus::Completed | CaseStatus::Cancelled) {
                                f.incidents.clear();
                            }
                        }
                    }
                }
                if *from == CaseStatus::Created && *to == CaseStatus::Running {
                    if let Some(m) = self
                        .nets
                        .first_mut()
                        .and_then(|root| root.marking.get_mut(INPUT))
                    {
                        *m += 1;
                    }
                    self.touch(workflow, ROOT, INPUT, dirty);
                }
            }
            EventKind::CaseDeadlocked { .. } | EventKind::FiringLimitReached { .. } => {}
            EventKind::NetStarted {
                net_instance,
                net,
                parent,
                instance,
            } => {
                let (pni, pt) = task_of(self, parent)?;
                let net = workflow
                    .nets
                    .iter_enumerated()
                    .find_map(|(i, n)| (&n.id == net).then_some(i))
                    .ok_or_else(|| bad("unknown net"))?;
                let net_instance = InstIx::new(*net_instance);
                if net_instance != self.nets.next_index() {
                    return Err(bad("net instance out of order"));
                }
                self.new_net(workflow, net, Some((pni, pt, *instance)));
                if let Some(m) = self.nets.last_mut().and_then(|n| n.marking.get_mut(INPUT)) {
                    *m += 1;
                }
                self.touch(workflow, net_instance, INPUT, dirty);
                let inst = self
                    .activation_mut(pni, pt)
                    .and_then(|a| a.instances.get_mut(*instance as usize))
                    .ok_or_else(|| bad("net started for an unknown instance"))?;
                inst.state = InstanceState::Running(Some(Unit::Net(net_instance)));
            }
            EventKind::NetEnded { net_instance } => {
                let net = self
                    .nets
                    .get_mut(InstIx::new(*net_instance))
                    .ok_or_else(|| bad("unknown net instance"))?;
                net.live = false;
            }
            EventKind::TaskEnabled { task } => {
                let (ni, t) = task_of(self, task)?;
                let slot = self.slot_mut(ni, t).ok_or_else(|| bad("unknown task"))?;
                *slot = Slot::Enabled {
                    item: None,
                    timer: None,
                    held: false,
                };
                self.task_changed(workflow, ni, t, dirty);
            }
            EventKind::TaskFailed { task, produced, .. } if !produced.is_empty() => {
                let (ni, t) = task_of(self, task)?;
                self.finish_task(workflow, dirty, ni, t, produced)
                    .ok_or_else(|| bad("unknown condition"))?;
            }
            EventKind::IncidentRaised {
                task,
                reason,
                started,
                instances,
            } => {
                task_of(self, task)?;
                let failures = self.failures_mut();
                if failures.incidents.iter().any(|i| &i.task == task) {
                    return Err(bad("a second incident for the same task"));
                }
                let attempt = failures
                    .attempts
                    .iter()
                    .find(|(t, _)| t == task)
                    .map_or(1, |&(_, a)| a);
                failures.incidents.push(Incident {
                    task: task.clone(),
                    reason: reason.clone(),
                    since: event.time,
                    attempt,
                    started: *started,
                    instances: instances.clone(),
                });
            }
            EventKind::TaskRetried { task, attempt } => {
                let (ni, t) = task_of(self, task)?;
                let failures = self.failures_mut();
                let at = failures
                    .incidents
                    .iter()
                    .position(|i| &i.task == task)
                    .ok_or_else(|| bad("a task retried with no incident open"))?;
                let incident = failures.incidents.remove(at);
                match failures.attempts.iter_mut().find(|(t, _)| t == task) {
                    Some(entry) => entry.1 = *attempt,
                    None => failures.attempts.push((task.clone(), *attempt)),
                }
                if incident.started {
                    let many = self.net_def(workflow, ni)?.task_def(t)?.mi.is_some();
                    let fresh = |item: &Value| Instance {
                        item: item.clone(),
                        state: InstanceState::Running(None),
                    };
                    let instances = if many {
                        Instances::Many(incident.instances.iter().map(fresh).collect())
                    } else {
                        Instances::One(fresh(&Value::Null))
                    };
                    let slot = self.slot_mut(ni, t).ok_or_else(|| bad("unknown task"))?;
                    if !matches!(slot, Slot::Idle) {
                        return Err(bad("a task retried while it is not idle"));
                    }
                    // The retry names the new activation, as a start does: its calls take
                    // idempotency keys of their own.
                    *slot = Slot::Busy(Activation {
                        started_seq: event.seq,
                        instances,
                        timer: None,
                    });
                }
                self.task_changed(workflow, ni, t, dirty);
                dirty.touched(ni, t);
            }
            EventKind::TaskWithdrawn { task }
            | EventKind::TaskCancelled { task }
            | EventKind::TaskFailed { task, .. } => {
                let (ni, t) = task_of(self, task)?;
                if let Some(slot) = self.slot_mut(ni, t) {
                    *slot = Slot::Idle;
                }
                self.task_changed(workflow, ni, t, dirty);
                dirty.touched(ni, t);
            }
            EventKind::TaskStarted { task, instances } => {
                let (ni, t) = task_of(self, task)?;
                let tdef = self.net_def(workflow, ni)?.task_def(t)?;
                let enabled = self.slot(ni, t).cloned();
                let (item, timer) = match enabled {
                    Some(Slot::Enabled { item, timer, .. }) => (item, timer),
                    _ => return Err(bad("task started without being enabled")),
                };
                let net = self
                    .nets
                    .get_mut(ni)
                    .ok_or_else(|| bad("unknown net instance"))?;
                consume(tdef.join, &tdef.inputs, &mut net.marking);
                let mut insts = if tdef.mi.is_some() {
                    Instances::Many(
                        instances
                            .iter()
                            .map(|v| Instance {
                                item: v.clone(),
                                state: InstanceState::Running(None),
                            })
                            .collect(),
                    )
                } else {
                    Instances::One(Instance {
                        item: Value::Null,
                        state: InstanceState::Running(None),
                    })
                };
                if let (Some(item), Some(first)) = (item, insts.get_mut(0)) {
                    first.state = InstanceState::Running(Some(Unit::Item(item)));
                }
                let keeps_timer = tdef
                    .timer
                    .is_some_and(|tm| tm.action == TimerAction::Expire);
                let slot = net.slots.get_mut(t).ok_or_else(|| bad("unknown task"))?;
                *slot = Slot::Busy(Activation {
                    started_seq: event.seq,
                    instances: insts,
                    timer: if keeps_timer { timer } else { None },
                });
                self.task_changed(workflow, ni, t, dirty);
                for &p in &tdef.inputs {
                    self.touch(workflow, ni, p, dirty);
                }
            }
            EventKind::InstanceAdded { task, item } => {
                let (ni, t) = task_of(self, task)?;
                let act = self
                    .activation_mut(ni, t)
                    .ok_or_else(|| bad("instance added to a task that is not running"))?;
                act.instances.push(Instance {
                    item: item.clone(),
                    state: InstanceState::Running(None),
                });
            }
            EventKind::InstanceCompleted {
                task,
                instance,
                output,
            } => {
                let (ni, t) = task_of(self, task)?;
                let inst = self
                    .activation_mut(ni, t)
                    .and_then(|a| a.instances.get_mut(*instance as usize))
                    .ok_or_else(|| bad("unknown instance"))?;
                inst.state = InstanceState::Completed(output.clone());
            }
            EventKind::TaskCompleted { task, produced } => {
                let (ni, t) = task_of(self, task)?;
                self.finish_task(workflow, dirty, ni, t, produced)
                    .ok_or_else(|| bad("unknown condition"))?;
            }
            EventKind::TokensRemoved {
                net_instance,
                condition,
                count,
            } => {
                let net = self
                    .nets
                    .get_mut(InstIx::new(*net_instance))
                    .ok_or_else(|| bad("unknown net instance"))?;
                let def = workflow.net(net.net)?;
                let p = def
                    .place(condition)
                    .ok_or_else(|| bad("unknown condition"))?;
                let m = net
                    .marking
                    .get_mut(p)
                    .ok_or_else(|| bad("unknown condition"))?;
                *m = m
                    .checked_sub(*count)
                    .ok_or_else(|| bad("removed more tokens than held"))?;
                self.touch(workflow, InstIx::new(*net_instance), p, dirty);
            }
            EventKind::WorkItemOffered {
                item,
                task,
                instance,
                input,
            } => {
                let (ni, t) = task_of(self, task)?;
                match self.slot_mut(ni, t) {
                    Some(Slot::Enabled {
                        item: slot_item, ..
                    }) => *slot_item = Some(*item),
                    Some(Slot::Busy(a)) => {
                        let inst = a
                            .instances
                            .get_mut(*instance as usize)
                            .ok_or_else(|| bad("unknown instance"))?;
                        inst.state = InstanceState::Running(Some(Unit::Item(*item)));
                    }
                    _ => return Err(bad("work item offered for an idle task")),
                }
                self.task_changed(workflow, ni, t, dirty);
                self.items.insert(
                    *item,
                    WorkItem {
                        task: task.clone(),
                        instance: *instance,
                        state: WorkItemState::Offered,
                        owner: None,
                        kind: WorkItemKind::Human,
                        input: input.clone(),
                        since: event.time,
                        offered_to: None,
                    },
                );
            }
            EventKind::WorkItemReoffered { item, roles } => {
                let wi = self
                    .items
                    .get_mut(item)
                    .ok_or_else(|| bad("unknown work item"))?;
                if wi.state != WorkItemState::Offered {
                    return Err(bad("work item re-offered after it was allocated"));
                }
                wi.offered_to = Some(roles.clone());
            }
            EventKind::WorkItemAllocated { item, user }
            | EventKind::WorkItemStarted { item, user } => {
                let state = if matches!(event.kind, EventKind::WorkItemAllocated { .. }) {
                    WorkItemState::Allocated
                } else {
                    WorkItemState::Started
                };
                let wi = self
                    .items
                    .get_mut(item)
                    .ok_or_else(|| bad("unknown work item"))?;
                wi.state = state;
                wi.owner = Some(user.clone());
            }
            EventKind::WorkItemReleased { item, .. } => {
                let wi = self
                    .items
                    .get_mut(item)
                    .ok_or_else(|| bad("unknown work item"))?;
                if wi.state != WorkItemState::Allocated {
                    return Err(bad("work item released while not allocated"));
                }
                wi.state = WorkItemState::Offered;
                wi.owner = None;
            }
            EventKind::WorkItemDelegated { item, to, .. } => {
                let wi = self
                    .items
                    .get_mut(item)
                    .ok_or_else(|| bad("unknown work item"))?;
                if !matches!(wi.state, WorkItemState::Allocated | WorkItemState::Started) {
                    return Err(bad("work item delegated while nobody held it"));
                }
                wi.owner = Some(to.clone());
            }
            EventKind::WorkItemCompleted { item, user, .. } => {
                let wi = self
                    .items
                    .remove(item)
                    .ok_or_else(|| bad("unknown work item"))?;
                let (ni, t) = task_of(self, &wi.task)?;
                if let TaskBinding::Human(h) = &self.net_def(workflow, ni)?.task_def(t)?.binding
                    && h.four_eyes
                    && !self.four_eyes.contains(user)
                {
                    self.four_eyes.push(user.clone());
                }
            }
            EventKind::WorkItemCancelled { item } => {
                let wi = self
                    .items
                    .remove(item)
                    .ok_or_else(|| bad("unknown work item"))?;
                if let Some((ni, t)) = self.locate(workflow, &wi.task)
                    && let Some(Slot::Enabled {
                        item: slot_item, ..
                    }) = self.slot_mut(ni, t)
                    && *slot_item == Some(*item)
                {
                    *slot_item = None;
                    self.task_changed(workflow, ni, t, dirty);
                }
            }
            EventKind::ConnectorCallStarted {
                item,
                task,
                instance,
                connector,
                idempotency_key,
                input,
            } => {
                let (ni, t) = task_of(self, task)?;
                let inst = self
                    .activation_mut(ni, t)
                    .and_then(|a| a.instances.get_mut(*instance as usize))
                    .ok_or_else(|| bad("unknown instance"))?;
                inst.state = InstanceState::Running(Some(Unit::Item(*item)));
                self.items.insert(
                    *item,
                    WorkItem {
                        task: task.clone(),
                        instance: *instance,
                        state: WorkItemState::Calling,
                        owner: None,
                        kind: WorkItemKind::Call {
                            connector: connector.clone(),
                            idempotency_key: idempotency_key.clone(),
                        },
                        input: input.clone(),
                        since: event.time,
                        offered_to: None,
                    },
                );
            }
            EventKind::ConnectorCallSucceeded { item, .. }
            | EventKind::ConnectorCallFailed { item, .. } => {
                self.items
                    .remove(item)
                    .ok_or_else(|| bad("unknown connector call"))?;
            }
            EventKind::TimerArmed {
                timer,
                task,
                fires_at,
            } => {
                let (ni, t) = task_of(self, task)?;
                let delay = self
                    .net_def(workflow, ni)?
                    .task_def(t)?
                    .timer
                    .is_some_and(|tm| tm.action == TimerAction::Delay);
                match self.slot_mut(ni, t) {
                    Some(Slot::Enabled {
                        timer: slot_timer,
                        held,
                        ..
                    }) => {
                        *slot_timer = Some(*timer);
                        *held = delay;
                    }
                    Some(Slot::Busy(a)) => a.timer = Some(*timer),
                    _ => return Err(bad("timer armed for an idle task")),
                }
                self.task_changed(workflow, ni, t, dirty);
                self.timers.insert(
                    *timer,
                    TimerState {
                        task: task.clone(),
                        fires_at: *fires_at,
                    },
                );
            }
            EventKind::TimerFired { timer } | EventKind::TimerCancelled { timer } => {
                let state = self
                    .timers
                    .remove(timer)
                    .ok_or_else(|| bad("unknown timer"))?;
                if let Some((ni, t)) = self.locate(workflow, &state.task) {
                    match self.slot_mut(ni, t) {
                        Some(Slot::Enabled {
                            timer: slot_timer,
                            held,
                            ..
                        }) if *slot_timer == Some(*timer) => {
                            *slot_timer = None;
                            *held = false;
                            dirty.touched(ni, t);
                        }
                        Some(Slot::Busy(a)) if a.timer == Some(*timer) => a.timer = None,
                        _ => {}
                    }
                    self.task_changed(workflow, ni, t, dirty);
                }
            }
            EventKind::DataUpdated { changes } => {
                for (k, v) in changes {
                    self.data.insert(k.clone(), v.clone());
                }
            }
            EventKind::TriggerKept { event, data } => {
                self.kept.push((event.clone(), data.clone()));
            }
            EventKind::TriggerConsumed { event: name, .. } => {
                let at = self
                    .kept
                    .iter()
                    .position(|(e, _)| e == name)
                    .ok_or_else(|| bad("no kept event of that name"))?;
                self.kept.remove(at);
            }
        }
        self.seq = event.seq;
        Ok(())
    }
}
