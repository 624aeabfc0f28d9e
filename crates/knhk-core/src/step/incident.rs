//! Failing a task: along its failure flow, or with an incident that fails the case until an
//! operator retries the task (and with it the case) or cancels the case.

use serde_json::Map;

use super::{Cx, Res, tdef};
use crate::case::{Case, Slot};
use crate::effect::Effect;
use crate::error::Error;
use crate::event::{CaseStatus, EventKind, TaskRef};
use crate::index::{InstIx, TaskIx};
use crate::model::{TaskBinding, TimerTrigger};
use crate::workflow::OUTPUT;

impl Case {
    /// Fails a task (enabled or running): along its failure flow if it has one, else with
    /// an incident that fails the case until an operator retries the task.
    pub(super) fn fail_task(&mut self, cx: &mut Cx, ni: InstIx, t: TaskIx, reason: String) -> Res {
        let before = self.slot(ni, t).cloned();
        match before.clone() {
            Some(Slot::Busy(_)) => self.cancel_units(cx, ni, t)?,
            Some(Slot::Enabled { item, timer, .. }) => {
                if let Some(item) = item {
                    self.cancel_item(cx, item)?;
                }
                self.cancel_timer(cx, timer)?;
            }
            _ => {}
        }
        let task = self.task_ref(cx.wf, ni, t)?;
        let wf = cx.wf;
        let net = self.net_def(wf, ni)?;
        if let Some(arc) = net.task_def(t)?.outputs.iter().find(|a| a.on_failure) {
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
            let produced = vec![net.place_def(arc.place)?.id.clone()];
            let to_output = arc.place == OUTPUT;
            self.emit(
                cx,
                EventKind::TaskFailed {
                    task,
                    reason,
                    produced,
                },
            )?;
            if to_output {
                self.output_reached(cx, ni)?;
            }
            return Ok(());
        }
        // No failure flow: an incident. The rest of the case stays as it stands (marking,
        // other branches' work items, calls and timers), frozen while the case is failed,
        // so that a retry can go on from here.
        let why = format!("task {} failed: {reason}", task.task);
        let (started, instances) = match &before {
            Some(Slot::Busy(act)) if net.task_def(t)?.mi.is_some() => {
                (true, act.instances.iter().map(|i| i.item.clone()).collect())
            }
            Some(Slot::Busy(_)) => (true, Vec::new()),
            _ => (false, Vec::new()),
        };
        self.emit(
            cx,
            EventKind::TaskFailed {
                task: task.clone(),
                reason: reason.clone(),
                produced: Vec::new(),
            },
        )?;
        self.emit(
            cx,
            EventKind::IncidentRaised {
                task,
                reason,
                started,
                instances,
            },
        )?;
        if self.status() == CaseStatus::Failed {
            // Another incident is open already: the case stays failed.
            return Ok(());
        }
        self.set_status(cx, CaseStatus::Failed, Some(why))
    }

    /// Runs a task with an open incident again: `task`, or the only one. The case runs again
    /// once no incident is left open.
    pub(super) fn retry(&mut self, cx: &mut Cx, task: Option<&TaskRef>) -> Res {
        let status = self.status();
        if status != CaseStatus::Failed {
            return Err(Error::CannotRetry(format!(
                "the case is {status}, not failed"
            )));
        }
        let open: Vec<String> = self.incidents().iter().map(|i| label(&i.task)).collect();
        let incident = match (task, self.incidents()) {
            (_, []) => {
                let why = self.failure().unwrap_or("no reason was recorded");
                return Err(Error::CannotRetry(format!(
                    "the case failed with no task to run again ({why})"
                )));
            }
            (None, [only]) => only.clone(),
            (None, _) => {
                return Err(Error::CannotRetry(format!(
                    "{} tasks failed ({}): name the one to retry",
                    open.len(),
                    open.join(", ")
                )));
            }
            (Some(t), all) => all.iter().find(|i| &i.task == t).cloned().ok_or_else(|| {
                Error::CannotRetry(format!(
                    "task {} has no incident; the failed {} {}",
                    label(t),
                    if open.len() == 1 {
                        "task is"
                    } else {
                        "tasks are"
                    },
                    open.join(", ")
                ))
            })?,
        };
        let (ni, t) = self.locate_item(cx.wf, &incident.task)?;
        if incident.started
            && let TaskBinding::Trigger { event, .. } = &tdef(cx.wf, self, ni, t)?.binding
        {
            // Its work was the event that started it, which the case does not keep.
            return Err(Error::CannotRetry(format!(
                "task {} ran on the event {event:?}, which cannot be delivered again",
                label(&incident.task)
            )));
        }
        self.emit(
            cx,
            EventKind::TaskRetried {
                task: incident.task.clone(),
                attempt: incident.attempt.saturating_add(1),
            },
        )?;
        if self.incidents().is_empty() {
            // The rest of the case was frozen as it stood: calls still in flight are made
            // again with their own idempotency keys (the process that made them may be
            // gone), and timers are armed again (those due meanwhile fire at once).
            let frozen = self
                .pending_work(cx.wf)
                .into_iter()
                .filter(|e| matches!(e, Effect::CallConnector { .. } | Effect::ArmTimer { .. }));
            cx.step.effects.extend(frozen);
            self.set_status(cx, CaseStatus::Running, None)?;
            self.reconsider_all(cx);
        }
        if !incident.started {
            // Its tokens are where they were: reconsidering enables it again.
            return Ok(());
        }
        if let Some(timer) = tdef(cx.wf, self, ni, t)?.timer
            && timer.trigger == TimerTrigger::OnStarted
        {
            self.arm_timer(cx, ni, t, timer.duration_ms)?;
        }
        self.begin_instances(cx, ni, t)
    }
}

/// Names a task as the command line does: its id, with `#N` in sub-net instance N.
fn label(task: &TaskRef) -> String {
    if task.net_instance == 0 {
        task.task.to_string()
    } else {
        format!("{}#{}", task.task, task.net_instance)
    }
}
