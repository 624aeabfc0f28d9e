//! Firing: starting a task's instances, completing them, completing the task (cancellation
//! set, split), and withdrawing work when a task, a sub-net or the case ends. Failing a task
//! is in `incident.rs`.

use serde_json::{Map, Value};

use super::{Cx, Res, json_kind, tdef};
use crate::case::{Case, InstanceState, ROOT, Slot, Unit};
use crate::effect::Effect;
use crate::event::{CaseStatus, EventKind};
use crate::ids::{ElementId, TimerId, WorkItemId};
use crate::index::{Idx, InstIx, TaskIx};
use crate::model::{ControlType, TaskBinding, TimerTrigger};
use crate::workflow::{NetDef, OUTPUT, OutArc, TaskDef};

impl Case {
    /// Returns the input of a task instance: its input mapping, or the case data with the
    /// instance's item.
    pub(super) fn task_input(&self, def: &TaskDef, item: &Value) -> Result<Value, String> {
        let item_var = def.mi.as_ref().map(|m| m.spec.item_variable.as_str());
        if let Some(mapping) = &def.input_mapping {
            let extra: Vec<(&str, &Value)> = item_var.map(|v| (v, item)).into_iter().collect();
            return mapping
                .eval_value(self.data(), &extra)
                .map_err(|e| format!("input mapping: {e}"));
        }
        let mut data = self.data().clone();
        if let Some(v) = item_var {
            data.insert(v.to_string(), item.clone());
        }
        Ok(Value::Object(data))
    }

    pub(super) fn start_task(
        &mut self,
        cx: &mut Cx,
        ni: InstIx,
        t: TaskIx,
        trigger: Option<Value>,
    ) -> Res {
        // An OR-join the fallback let fire fires once; its next firing is by the rule again
        // (it may still hold tokens, and a branch may still be on its way to its other inputs).
        cx.forced.retain(|&f| f != (ni, t));
        let def = tdef(cx.wf, self, ni, t)?;
        let instances = match &def.mi {
            // A single-instance task records no item: its one instance is implied.
            None => Vec::new(),
            Some(mi) => {
                let items = match &mi.split {
                    None => vec![Value::Null; mi.spec.minimum as usize],
                    Some(e) => match e.eval_value(self.data(), &[]) {
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
        let task = self.task_ref(cx.wf, ni, t)?;
        cx.fired = cx.fired.saturating_add(1);
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
        self.begin_instances(cx, ni, t)
    }

    /// Begins every instance of a busy task that has not begun (no work item, call or
    /// sub-net yet), in order.
    pub(super) fn begin_instances(&mut self, cx: &mut Cx, ni: InstIx, t: TaskIx) -> Res {
        let Some(Slot::Busy(act)) = self.slot(ni, t) else {
            return Ok(());
        };
        let started = act.started_seq;
        let count = act.instances.len() as u32;
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

    pub(super) fn begin_instance(&mut self, cx: &mut Cx, ni: InstIx, t: TaskIx, i: u32) -> Res {
        let wf = cx.wf;
        let def = tdef(wf, self, ni, t)?;
        let task = self.task_ref(wf, ni, t)?;
        if let Some(sub) = def.subnet {
            let net = wf.net(sub)?.id.clone();
            if let Some(nets) = self.nesting_beyond(wf, ni, cx.max_subnet_depth)? {
                return self.subnet_too_deep(cx, &task.task, &net, nets);
            }
            let net_instance = self.nets().next_index().raw();
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
                let idempotency_key = format!("{}/{ni}/{}/{started_seq}/{i}", self.id(), task.task);
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
    pub(super) fn finish_instance(
        &mut self,
        cx: &mut Cx,
        ni: InstIx,
        t: TaskIx,
        i: u32,
        output: Value,
    ) -> Res {
        let def = tdef(cx.wf, self, ni, t)?;
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
                match m.eval_value(self.data(), &extra) {
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
            if let Some(why) = self.data_too_large(changes, cx.max_data_bytes) {
                return self.fail_task(cx, ni, t, format!("its output {why}"));
            }
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
        let task = self.task_ref(cx.wf, ni, t)?;
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
    pub(super) fn running_work(
        &self,
        ni: InstIx,
        t: TaskIx,
    ) -> Option<(Vec<Unit>, Option<TimerId>)> {
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
    pub(super) fn cancel_units(&mut self, cx: &mut Cx, ni: InstIx, t: TaskIx) -> Res {
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

    pub(super) fn complete_task(&mut self, cx: &mut Cx, ni: InstIx, t: TaskIx) -> Res {
        let wf = cx.wf;
        let def = tdef(wf, self, ni, t)?;
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
        let joined = joined.map(|(var, outputs)| {
            let mut changes = Map::new();
            changes.insert(var, Value::Array(outputs));
            changes
        });
        if let Some(why) = joined
            .as_ref()
            .and_then(|changes| self.data_too_large(changes, cx.max_data_bytes))
        {
            return self.fail_task(cx, ni, t, format!("the outputs of its instances {why}"));
        }
        self.cancel_units(cx, ni, t)?;
        if let Some(changes) = joined {
            self.emit(cx, EventKind::DataUpdated { changes })?;
        }
        // Cancellation set: reset before produce, as in reset nets.
        let mut empty = def.cancel_places.clone();
        for &u in &def.cancel_tasks {
            if u == t {
                continue;
            }
            let net_def = self.net_def(wf, ni)?;
            match self.slot(ni, u) {
                Some(Slot::Busy(_)) => {
                    self.cancel_units(cx, ni, u)?;
                    let task = self.task_ref(wf, ni, u)?;
                    self.emit(cx, EventKind::TaskCancelled { task })?;
                }
                Some(Slot::Enabled { .. }) => {
                    // An enabled task named in the set loses the tokens only it could use.
                    for &p in &net_def.task_def(u)?.inputs {
                        if net_def.place_def(p)?.implicit {
                            empty.push(p);
                        }
                    }
                }
                _ => {}
            }
        }
        for p in empty {
            let net = self.net_instance(ni)?;
            let count = net.marking.get(p).copied().unwrap_or(0);
            if count > 0 {
                let condition = wf.net(net.net)?.place_def(p)?.id.clone();
                self.emit(
                    cx,
                    EventKind::TokensRemoved {
                        net_instance: ni.raw(),
                        condition,
                        count,
                    },
                )?;
            }
        }
        let net_def = self.net_def(wf, ni)?;
        let (produced, to_output) = match self.route(def, net_def) {
            Ok(routed) => routed,
            Err(reason) => return self.fail_task(cx, ni, t, reason),
        };
        let task = self.task_ref(wf, ni, t)?;
        self.emit(cx, EventKind::TaskCompleted { task, produced })?;
        if to_output {
            self.output_reached(cx, ni)?;
        }
        Ok(())
    }

    /// A token reached a net's output condition: the root net completes the case, a sub-net
    /// completes its composite task's instance. Remaining work is withdrawn either way.
    pub(super) fn output_reached(&mut self, cx: &mut Cx, ni: InstIx) -> Res {
        if ni == ROOT {
            self.teardown_all(cx)?;
            self.set_status(cx, CaseStatus::Completed, None)
        } else {
            self.net_finished(cx, ni)
        }
    }

    /// Chooses the output places of a completing task by its split.
    /// Chooses the conditions a completing task produces tokens in, by its split; says
    /// whether one of them is the net's output condition.
    pub(super) fn route(
        &self,
        def: &TaskDef,
        net: &NetDef,
    ) -> Result<(Vec<ElementId>, bool), String> {
        let holds = |arc: &OutArc| -> Result<bool, String> {
            match &arc.predicate {
                None => Ok(true),
                Some(p) => p.eval_bool(self.data()).map_err(|e| e.to_string()),
            }
        };
        let mut chosen: Vec<ElementId> = Vec::new();
        let mut to_output = false;
        let mut take = |arc: &OutArc| -> Result<(), String> {
            let place = net.place_def(arc.place).map_err(|e| e.to_string())?;
            chosen.push(place.id.clone());
            to_output |= arc.place == OUTPUT;
            Ok(())
        };
        let split = def.split;
        if split == ControlType::And {
            for arc in def.outputs.iter().filter(|a| !a.on_failure) {
                take(arc)?;
            }
            return Ok((chosen, to_output));
        }
        if def.outputs.iter().all(|a| a.on_failure) {
            // A task without outgoing flows ends its thread of control.
            return Ok((chosen, false));
        }
        let mut any = false;
        for arc in def.outputs.iter().filter(|a| !a.on_failure) {
            // The default flow is a fallback; on an OR split its own predicate, when it has
            // one, is evaluated like the others (as YAWL does).
            if arc.is_default && (split == ControlType::Xor || arc.predicate.is_none()) {
                continue;
            }
            if holds(arc)? {
                take(arc)?;
                any = true;
                if split == ControlType::Xor {
                    break;
                }
            }
        }
        if !any {
            match def.outputs.iter().find(|a| a.is_default) {
                Some(arc) => take(arc)?,
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
        Ok((chosen, to_output))
    }

    /// Withdraws all work of a net instance (tasks, work items, timers, sub-nets).
    pub(super) fn teardown(&mut self, cx: &mut Cx, ni: InstIx) -> Res {
        let slots = match self.nets().get(ni) {
            Some(n) if n.live => n.slots.indices(),
            _ => return Ok(()),
        };
        for t in slots {
            match self.slot(ni, t).cloned() {
                Some(Slot::Busy(_)) => {
                    self.cancel_units(cx, ni, t)?;
                    let task = self.task_ref(cx.wf, ni, t)?;
                    self.emit(cx, EventKind::TaskCancelled { task })?;
                }
                Some(Slot::Enabled { .. }) => self.withdraw(cx, ni, t)?,
                _ => {}
            }
        }
        Ok(())
    }

    pub(super) fn teardown_all(&mut self, cx: &mut Cx) -> Res {
        self.teardown(cx, ROOT)
    }

    /// Ends a sub-net instance: withdraws its remaining work and marks it ended.
    pub(super) fn end_net(&mut self, cx: &mut Cx, k: InstIx) -> Res {
        if !self.nets().get(k).is_some_and(|n| n.live) {
            return Ok(());
        }
        self.teardown(cx, k)?;
        self.emit(
            cx,
            EventKind::NetEnded {
                net_instance: k.raw(),
            },
        )
    }

    /// A sub-net instance reached its end: the composite task's instance completes.
    pub(super) fn net_finished(&mut self, cx: &mut Cx, k: InstIx) -> Res {
        let parent = self.nets().get(k).and_then(|n| n.parent);
        self.end_net(cx, k)?;
        if let Some((pni, pt, pi)) = parent {
            self.finish_instance(cx, pni, pt, pi, Value::Object(Map::new()))?;
        }
        Ok(())
    }
}
