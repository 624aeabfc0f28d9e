//! What a case waits for: the one answer, read from the case's state, to "what must happen
//! outside knhk-core for this case to move on".

use super::{Case, Slot, WorkItemKind, WorkItemState};
use crate::event::{CaseStatus, TaskRef};
use crate::ids::{TimerId, Timestamp, WorkItemId};
use crate::index::Idx;
use crate::model::TaskBinding;
use crate::workflow::{TaskDef, Workflow};

/// One thing outside knhk-core that a case waits for, and the input that answers it.
#[derive(Clone, Debug, PartialEq)]
pub enum Wait {
    /// The case was created and not started: [`crate::Input::Start`].
    Start,
    /// The case is suspended: [`crate::Input::Resume`]. Connector results and timers are
    /// still taken meanwhile (they are listed beside it); people's work and triggers are not.
    Resume,
    /// A human work item: people of `roles` complete it ([`crate::Input::CompleteWorkItem`]).
    /// `user` is who allocated or started it (`None` while only offered).
    WorkItem {
        item: WorkItemId,
        task: TaskRef,
        /// [`WorkItemState::Offered`], [`WorkItemState::Allocated`] or
        /// [`WorkItemState::Started`].
        state: WorkItemState,
        roles: Vec<String>,
        user: Option<String>,
        /// When it was offered.
        since: Timestamp,
    },
    /// A connector call in flight: [`crate::Input::ConnectorSucceeded`] or
    /// [`crate::Input::ConnectorFailed`].
    Call {
        item: WorkItemId,
        task: TaskRef,
        connector: String,
        idempotency_key: String,
        /// When the call started.
        since: Timestamp,
    },
    /// An armed timer, due at `fires_at`: [`crate::Input::TimerFired`].
    Timer {
        timer: TimerId,
        task: TaskRef,
        fires_at: Timestamp,
    },
    /// A task failed with no failure flow and its case is failed until an operator retries
    /// the task ([`crate::Input::RetryTask`]) or cancels the case. `attempt` is the run of the
    /// task that failed (1 for its first), `since` when it failed.
    Retry {
        task: TaskRef,
        reason: String,
        attempt: u32,
        since: Timestamp,
    },
    /// An enabled trigger task waiting for the outside event `event`:
    /// [`crate::Input::TriggerReceived`].
    Trigger { task: TaskRef, event: String },
}

impl Case {
    fn task_def<'w>(&self, workflow: &'w Workflow, task: &TaskRef) -> Option<&'w TaskDef> {
        let (ni, t) = self.locate(workflow, task)?;
        let net = self.nets.get(ni)?;
        workflow.nets.get(net.net)?.tasks.get(t)
    }

    /// Returns what this case waits for, in a stable order: [`Wait::Start`] or
    /// [`Wait::Resume`] first when the case is created or suspended, or [`Wait::Retry`] for
    /// each open incident of a failed case (then only its calls in flight), then human work items and
    /// connector calls (by work item id, the order they were created in), armed timers (by
    /// timer id) and awaited triggers (by net instance, then task). Empty when the case has
    /// ended: nothing moves it any more (a failed case with no incident to retry included).
    ///
    /// A running case that could never move again fails as deadlocked, so a running case
    /// lists something here, except a dynamic multiple-instance task left with no running
    /// instance, which waits for a command ([`crate::Input::AddInstance`] or
    /// [`crate::Input::CompleteTask`]). While suspended, human work items and triggers are
    /// left out, since the case refuses them until it resumes; calls and timers still arrive
    /// and are listed.
    pub fn waits(&self, workflow: &Workflow) -> Vec<Wait> {
        let mut out = Vec::new();
        let running = match self.status() {
            CaseStatus::Created => return vec![Wait::Start],
            CaseStatus::Running => true,
            CaseStatus::Suspended => {
                out.push(Wait::Resume);
                false
            }
            CaseStatus::Failed if !self.incidents().is_empty() => {
                for i in self.incidents() {
                    out.push(Wait::Retry {
                        task: i.task.clone(),
                        reason: i.reason.clone(),
                        attempt: i.attempt,
                        since: i.since,
                    });
                }
                // Calls in flight are still taken; people's work, timers and triggers wait
                // for the retry.
                for (id, wi) in &self.items {
                    if let WorkItemKind::Call {
                        connector,
                        idempotency_key,
                    } = &wi.kind
                    {
                        out.push(Wait::Call {
                            item: *id,
                            task: wi.task.clone(),
                            connector: connector.clone(),
                            idempotency_key: idempotency_key.clone(),
                            since: wi.since,
                        });
                    }
                }
                return out;
            }
            CaseStatus::Completed | CaseStatus::Cancelled | CaseStatus::Failed => return out,
        };
        for (id, wi) in &self.items {
            match &wi.kind {
                WorkItemKind::Call {
                    connector,
                    idempotency_key,
                } => out.push(Wait::Call {
                    item: *id,
                    task: wi.task.clone(),
                    connector: connector.clone(),
                    idempotency_key: idempotency_key.clone(),
                    since: wi.since,
                }),
                WorkItemKind::Human if running => {
                    // An administrator's re-offer replaces the roles of the binding.
                    let roles = match (&wi.offered_to, self.task_def(workflow, &wi.task)) {
                        (Some(roles), _) => roles.clone(),
                        (None, Some(t)) => match &t.binding {
                            TaskBinding::Human(h) => h.roles.clone(),
                            _ => Vec::new(),
                        },
                        (None, None) => Vec::new(),
                    };
                    out.push(Wait::WorkItem {
                        item: *id,
                        task: wi.task.clone(),
                        state: wi.state,
                        roles,
                        user: wi.owner.clone(),
                        since: wi.since,
                    });
                }
                WorkItemKind::Human => {}
            }
        }
        for (timer, state) in &self.timers {
            out.push(Wait::Timer {
                timer: *timer,
                task: state.task.clone(),
                fires_at: state.fires_at,
            });
        }
        if !running {
            return out;
        }
        for (ni, net) in self.nets.iter_enumerated() {
            let Some(def) = workflow.nets.get(net.net).filter(|_| net.live) else {
                continue;
            };
            for (slot, task) in net.slots.iter().zip(&def.tasks) {
                if let (Slot::Enabled { held: false, .. }, TaskBinding::Trigger { event, .. }) =
                    (slot, &task.binding)
                {
                    out.push(Wait::Trigger {
                        task: TaskRef {
                            net_instance: ni.raw(),
                            task: task.id.clone(),
                        },
                        event: event.clone(),
                    });
                }
            }
        }
        out
    }
}
