//! Enablement: which tasks are enabled after a change (the OR-join included), what an enabled
//! task does (offer, arm its timer, await its trigger, start), and what a case with nothing left
//! to reconsider is: waiting, completed, or deadlocked.

use std::collections::HashMap;

use serde_json::Value;

use super::agenda::Dirty;
use super::{Cx, Res, tdef};
use crate::case::{Case, ROOT, Slot};
use crate::effect::Effect;
use crate::event::{CaseStatus, EventKind, TaskRef};
use crate::ids::{TimerId, WorkItemId};
use crate::index::{Idx, InstIx, PlaceIx, TaskIx};
use crate::model::{ControlType, TaskBinding, TimerTrigger, TriggerKind};
use crate::orjoin;
use crate::workflow::OUTPUT;

impl Case {
    /// Runs everything that follows from the last change until the case waits or ends.
    pub(super) fn settle(&mut self, cx: &mut Cx) -> Res {
        loop {
            while let Some(next) = cx.dirty.pop_front() {
                let go_on = match next {
                    Dirty::Task(ni, t) => {
                        let go_on = self.may_go_on(cx)?;
                        if go_on {
                            self.reconsider(cx, ni, t)?;
                        }
                        go_on
                    }
                    Dirty::OrJoins(ni) => self.reconsider_or_joins(cx, ni)?,
                };
                if !go_on {
                    return Ok(());
                }
            }
            if self.status() != CaseStatus::Running || !self.quiescent_step(cx)? {
                return Ok(());
            }
        }
    }

    /// Checks, before an entry of the agenda, that settling goes on: the case still runs
    /// and the step has not started too many tasks (then the case fails here).
    #[inline(always)]
    fn may_go_on(&mut self, cx: &mut Cx) -> Res<bool> {
        if self.status() == CaseStatus::Running && cx.fired <= cx.max_firings {
            return Ok(true);
        }
        self.stop_settling(cx)
    }

    /// Stops settling: the case no longer runs, or the step started too many tasks.
    #[cold]
    fn stop_settling(&mut self, cx: &mut Cx) -> Res<bool> {
        if self.status() != CaseStatus::Running {
            cx.dirty.clear();
            return Ok(false);
        }
        if cx.fired > cx.max_firings {
            self.firing_limit_reached(cx)?;
            return Ok(false);
        }
        Ok(true)
    }

    /// Reconsiders the changed OR-joins of `ni` in the net's order: the same as reconsidering
    /// each of them, the others doing nothing (see `agenda`), with the same checks between
    /// them. Returns whether settling goes on. Kept out of line: `settle`'s loop stays small.
    #[inline(never)]
    fn reconsider_or_joins(&mut self, cx: &mut Cx, ni: InstIx) -> Res<bool> {
        let Some(net) = self.nets().get(ni).map(|n| n.net) else {
            return Ok(true);
        };
        let wf = cx.wf;
        let def = wf.net(net)?;
        let n = def.or_joins.len();
        if !self.may_go_on(cx)? {
            return Ok(false);
        }
        let mut from = 0;
        while let Some(o) = cx.dirty.next_changed(ni, from, n) {
            if !self.may_go_on(cx)? {
                return Ok(false);
            }
            cx.dirty.reconsidered(ni, o, n);
            let t = def.or_cones.cones.at(o)?.task;
            self.reconsider(cx, ni, t)?;
            from = o.raw() + 1;
        }
        // The OR-joins after the last one reconsidered would each have checked again.
        if from > 0 && (from as usize) < n {
            return self.may_go_on(cx);
        }
        Ok(true)
    }

    pub(super) fn enabled(&self, cx: &mut Cx, ni: InstIx, t: TaskIx) -> bool {
        let Some(net) = self.nets().get(ni) else {
            return false;
        };
        if !net.live {
            return false;
        }
        let Ok(def) = cx.wf.net(net.net) else {
            return false;
        };
        let Ok(task) = def.task_def(t) else {
            return false;
        };
        let m = &net.marking;
        let marked = |p: &PlaceIx| m.get(*p).is_some_and(|&n| n > 0);
        match task.join {
            ControlType::And => task.inputs.iter().all(marked),
            ControlType::Xor => task.inputs.iter().any(marked),
            ControlType::Or => {
                let Some(o) = def.or_cones.of_task.get(t).copied().flatten() else {
                    return false;
                };
                // Decided now: a later change in the cone marks it changed again (`agenda`).
                cx.dirty.reconsidered(ni, o, def.or_joins.len());
                let Some((sources, _)) = cx.dirty.sources(ni, def, net) else {
                    return false;
                };
                let marked_inputs = sources.marked_inputs(def, net, o);
                if marked_inputs == 0 {
                    return false;
                }
                if cx.forced.contains(&(ni, t)) {
                    return true;
                }
                let Ok(cone) = def.or_cones.cones.at(o) else {
                    return false;
                };
                let busy = |u: TaskIx| matches!(net.slots.get(u), Some(Slot::Busy(_)));
                let exact = Some(&def.or_exact);
                // Still waiting by the last witness: no need to decide again.
                if cx
                    .dirty
                    .witness(ni, o)
                    .is_some_and(|w| w.holds(exact, task, t, m, busy))
                {
                    return false;
                }
                let Some((sources, scratch)) = cx.dirty.sources(ni, def, net) else {
                    return false;
                };
                let Some(cursor) = sources.cursor.get_mut(o) else {
                    return false;
                };
                let seeds = orjoin::Seeds {
                    places: &sources.places,
                    tasks: &sources.tasks,
                    marked_inputs,
                    cursor,
                };
                let (fires, witness) =
                    orjoin::decide_from(def, cone, exact, m, busy, seeds, scratch);
                cx.dirty.keep_witness(ni, o, witness);
                fires
            }
        }
    }

    // Inlined into `settle`'s loop, its hot caller.
    #[inline(always)]
    pub(super) fn reconsider(&mut self, cx: &mut Cx, ni: InstIx, t: TaskIx) -> Res {
        if !self.nets().get(ni).is_some_and(|n| n.live) {
            return Ok(());
        }
        if matches!(self.slot(ni, t), Some(Slot::Idle)) {
            if !self.enabled(cx, ni, t) {
                return Ok(());
            }
            let task = self.task_ref(cx.wf, ni, t)?;
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
        let def = tdef(cx.wf, self, ni, t)?;
        let auto = def.mi.is_some()
            || def.subnet.is_some()
            || matches!(def.binding, TaskBinding::Empty | TaskBinding::Connector(_));
        if auto {
            return self.start_task(cx, ni, t, None);
        }
        if let TaskBinding::Trigger {
            event,
            trigger_kind: TriggerKind::Persistent,
        } = &def.binding
            && let Some(data) = self.kept_event(event)
        {
            let event = event.clone();
            let task = self.task_ref(cx.wf, ni, t)?;
            self.emit(cx, EventKind::TriggerConsumed { event, task })?;
            return self.start_task(cx, ni, t, Some(data));
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
    pub(super) fn offer(
        &mut self,
        cx: &mut Cx,
        ni: InstIx,
        t: TaskIx,
        i: u32,
        input: Value,
    ) -> Res {
        let TaskBinding::Human(h) = &tdef(cx.wf, self, ni, t)?.binding else {
            return Ok(());
        };
        let item = WorkItemId(cx.ids.next_id());
        let task = self.task_ref(cx.wf, ni, t)?;
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

    pub(super) fn on_enabled(&mut self, cx: &mut Cx, ni: InstIx, t: TaskIx) -> Res {
        let def = tdef(cx.wf, self, ni, t)?;
        if let Some(timer) = def.timer
            && timer.trigger == TimerTrigger::OnEnabled
        {
            self.arm_timer(cx, ni, t, timer.duration_ms)?;
        }
        // A task that consumes a kept event at once waits for nothing.
        if let TaskBinding::Trigger {
            event,
            trigger_kind,
        } = &def.binding
            && (*trigger_kind == TriggerKind::Transient || self.kept_event(event).is_none())
        {
            let task = self.task_ref(cx.wf, ni, t)?;
            cx.step.effects.push(Effect::AwaitTrigger {
                task,
                event: event.clone(),
            });
        }
        Ok(())
    }

    pub(super) fn arm_timer(
        &mut self,
        cx: &mut Cx,
        ni: InstIx,
        t: TaskIx,
        duration_ms: u64,
    ) -> Res {
        let timer = TimerId(cx.ids.next_id());
        let fires_at = cx.now.plus_millis(duration_ms);
        let task = self.task_ref(cx.wf, ni, t)?;
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

    pub(super) fn cancel_timer(&mut self, cx: &mut Cx, timer: Option<TimerId>) -> Res {
        if let Some(timer) = timer
            && self.armed_timers().contains_key(&timer)
        {
            self.emit(cx, EventKind::TimerCancelled { timer })?;
            cx.step.effects.push(Effect::CancelTimer { timer });
        }
        Ok(())
    }

    pub(super) fn cancel_item(&mut self, cx: &mut Cx, item: WorkItemId) -> Res {
        let Some(wi) = self.items().get(&item) else {
            return Ok(());
        };
        let effect = if wi.is_call() {
            Effect::CancelConnectorCall { item }
        } else {
            Effect::WithdrawWorkItem { item }
        };
        self.emit(cx, EventKind::WorkItemCancelled { item })?;
        cx.step.effects.push(effect);
        Ok(())
    }

    pub(super) fn withdraw(&mut self, cx: &mut Cx, ni: InstIx, t: TaskIx) -> Res {
        if let Some(Slot::Enabled { item, timer, .. }) = self.slot(ni, t).cloned() {
            if let Some(item) = item {
                self.cancel_item(cx, item)?;
            }
            self.cancel_timer(cx, timer)?;
            let task = self.task_ref(cx.wf, ni, t)?;
            self.emit(cx, EventKind::TaskWithdrawn { task })?;
        }
        Ok(())
    }

    /// Looks at a case where nothing is left to reconsider. Returns whether something
    /// changed (so that settling goes on).
    pub(super) fn quiescent_step(&mut self, cx: &mut Cx) -> Res<bool> {
        let wf = cx.wf;
        // The deepest net left holding tokens with nothing to fire. It deadlocks the case
        // only if nothing else in the case can move: another branch may still end the case
        // (and withdraw the stuck sub-net), or a timer expire the composite task.
        let mut stuck: Option<(InstIx, Vec<crate::ids::ElementId>)> = None;
        for ni in self.nets().indices().rev() {
            let net = self.net_instance(ni)?;
            if !net.live
                || net.slots.iter().any(|s| !matches!(s, Slot::Idle))
                || net.marking.get(OUTPUT).is_some_and(|&m| m > 0)
            {
                continue;
            }
            let def = wf.net(net.net)?;
            let marked = |p: &PlaceIx| net.marking.get(*p).is_some_and(|&n| n > 0);
            // Only OR-joins waiting on each other are left: let the first one fire.
            if let Some(&t) = def.or_joins.iter().find(|&&t| {
                def.tasks
                    .get(t)
                    .is_some_and(|d| d.inputs.iter().any(marked))
                    && !cx.forced.contains(&(ni, t))
            }) {
                cx.forced.push((ni, t));
                cx.dirty.push_task(ni, t);
                return Ok(true);
            }
            let marked: Vec<_> = net
                .marking
                .iter()
                .zip(&def.places)
                .filter(|&(&n, _)| n > 0)
                .map(|(_, place)| place.id.clone())
                .collect();
            if !marked.is_empty() {
                if stuck.is_none() {
                    stuck = Some((ni, marked));
                }
                continue;
            }
            // Implicit termination: no tokens and no work left.
            if ni == ROOT {
                self.set_status(cx, CaseStatus::Completed, None)?;
                return Ok(false);
            }
            self.net_finished(cx, ni)?;
            return Ok(true);
        }
        if let Some((ni, marked)) = stuck
            && !self.can_move()
        {
            let def = self.net_def(wf, ni)?;
            let names: Vec<&str> = marked.iter().map(|c| c.as_str()).collect();
            let why = format!(
                "deadlock: tokens in {} of net {} but no task can fire",
                names.join(", "),
                def.id
            );
            self.emit(cx, EventKind::CaseDeadlocked { marked })?;
            self.teardown_all(cx)?;
            self.set_status(cx, CaseStatus::Failed, Some(why))?;
        }
        Ok(false)
    }

    /// Fails a case whose step started more tasks than its bound: a loop of tasks that need
    /// nothing from outside. The tasks that started more than once in this step are the loop.
    fn firing_limit_reached(&mut self, cx: &mut Cx) -> Res {
        cx.dirty.clear();
        // Counted once, here, from the step's own events: the hot path keeps no tally.
        let mut starts: HashMap<&TaskRef, u32> = HashMap::new();
        for e in &cx.step.events {
            if let EventKind::TaskStarted { task, .. } = &e.kind {
                *starts.entry(task).or_default() += 1;
            }
        }
        let mut tasks: Vec<TaskRef> = starts
            .into_iter()
            .filter(|&(_, n)| n > 1)
            .map(|(task, _)| task.clone())
            .collect();
        tasks.sort_by(|a, b| {
            (a.net_instance, a.task.as_str()).cmp(&(b.net_instance, b.task.as_str()))
        });
        let names: Vec<&str> = tasks.iter().map(|t| t.task.as_str()).collect();
        let why = format!(
            "one step started more than {} tasks without waiting for anything: a loop of {}",
            cx.max_firings,
            names.join(", ")
        );
        let firings = cx.fired;
        self.emit(cx, EventKind::FiringLimitReached { firings, tasks })?;
        self.teardown_all(cx)?;
        self.set_status(cx, CaseStatus::Failed, Some(why))
    }

    /// Returns whether anything in the case can still happen: an enabled task, work in
    /// progress (a work item, a connector call) or an armed timer.
    fn can_move(&self) -> bool {
        !self.armed_timers().is_empty()
            || self.nets().iter().filter(|n| n.live).any(|n| {
                n.slots.iter().any(|s| match s {
                    Slot::Idle => false,
                    Slot::Enabled { .. } => true,
                    Slot::Busy(a) => a.instances.iter().any(|i| {
                        matches!(
                            i.state,
                            crate::case::InstanceState::Running(Some(crate::case::Unit::Item(_)))
                        )
                    }),
                })
            })
    }
}
