//! Incidents: an operator retrying a task that failed with no failure flow, and with it the
//! failed case.

use super::{Cx, Res, tdef};
use crate::case::Case;
use crate::effect::Effect;
use crate::error::Error;
use crate::event::{CaseStatus, EventKind, TaskRef};
use crate::model::{TaskBinding, TimerTrigger};

impl Case {
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
            && let TaskBinding::Trigger { event } = &tdef(cx.wf, self, ni, t)?.binding
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
