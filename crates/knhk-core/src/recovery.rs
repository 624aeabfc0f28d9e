//! Picking a case up again: the effects a runtime must (re)perform for a case loaded from its
//! history, after a restart or on another node.

use crate::case::{Case, Slot, WorkItemKind};
use crate::effect::Effect;
use crate::event::TaskRef;
use crate::index::Idx;
use crate::model::TaskBinding;
use crate::workflow::Workflow;

impl Case {
    /// Returns what the runtime must do for this case to go on: connector calls in flight
    /// (with their original idempotency keys, so a retried call is recognised), work items on
    /// offer or in progress, armed timers and awaited triggers. Empty for an ended case.
    pub fn outstanding(&self, workflow: &Workflow) -> Vec<Effect> {
        if self.status().is_final() {
            return Vec::new();
        }
        self.pending_work(workflow)
    }

    /// Returns the effects that keep this case's live work going, whatever its state (a
    /// failed case keeps its work frozen until it is retried).
    pub(crate) fn pending_work(&self, workflow: &Workflow) -> Vec<Effect> {
        let mut out = Vec::new();
        for (id, item) in self.items() {
            let Some((ni, t)) = self.locate(workflow, &item.task) else {
                continue;
            };
            let Ok(def) = self.net_def(workflow, ni).and_then(|n| n.task_def(t)) else {
                continue;
            };
            match (&def.binding, &item.kind) {
                (
                    TaskBinding::Connector(c),
                    WorkItemKind::Call {
                        idempotency_key, ..
                    },
                ) => {
                    out.push(Effect::CallConnector {
                        item: *id,
                        task: item.task.clone(),
                        binding: c.clone(),
                        hints: def.runtime.clone(),
                        input: item.input.clone(),
                        idempotency_key: idempotency_key.clone(),
                    });
                }
                (TaskBinding::Human(h), _) => out.push(Effect::OfferWorkItem {
                    item: *id,
                    task: item.task.clone(),
                    binding: h.clone(),
                    input: item.input.clone(),
                }),
                _ => {}
            }
        }
        for (timer, state) in self.armed_timers() {
            out.push(Effect::ArmTimer {
                timer: *timer,
                fires_at: state.fires_at,
            });
        }
        for (ni, net) in self.nets().iter_enumerated() {
            if !net.live {
                continue;
            }
            let Ok(def) = workflow.net(net.net) else {
                continue;
            };
            for (slot, task) in net.slots.iter().zip(&def.tasks) {
                if let (Slot::Enabled { .. }, TaskBinding::Trigger { event, .. }) =
                    (slot, &task.binding)
                {
                    out.push(Effect::AwaitTrigger {
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
