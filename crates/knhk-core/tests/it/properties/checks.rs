//! The per-step checks of the properties: what the specification says each task does, the
//! route a completing split must take, and the invariants asserted on every step and state.

use std::collections::{BTreeMap, BTreeSet};
use std::iter::once;

use knhk_core::model::ControlType::{And, Or, Xor};
use knhk_core::model::*;
use knhk_core::*;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{Map, Value};

use super::driver::Driver;
use super::{Check, holds};

pub(super) struct TaskInfo {
    pub(super) join: ControlType,
    /// Its cancellation set.
    pub(super) cancels: Vec<String>,
    /// The conditions the task takes tokens from.
    pub(super) inputs: BTreeSet<String>,
    pub(super) split: ControlType,
    /// (condition a flow leads to, the flow), in definition order.
    pub(super) flows: Vec<(String, Flow)>,
}

pub(super) struct NetInfo {
    pub(super) output: String,
    pub(super) conditions: BTreeSet<String>,
    pub(super) tasks: BTreeMap<String, TaskInfo>,
}

pub(super) fn spec_info(spec: &Specification) -> BTreeMap<String, NetInfo> {
    let mut out = BTreeMap::new();
    for net in &spec.nets {
        let task_ids: BTreeSet<&str> = net.tasks.iter().map(|t| t.id.as_str()).collect();
        let mut conditions: BTreeSet<String> = once(&net.input_condition)
            .chain(once(&net.output_condition))
            .chain(&net.conditions)
            .map(|c| c.id.to_string())
            .collect();
        let mut tasks = BTreeMap::new();
        for t in &net.tasks {
            let flows: Vec<(String, Flow)> = t
                .flows
                .iter()
                .map(|f| {
                    let c = if task_ids.contains(f.to.as_str()) {
                        format!("{}__{}", t.id, f.to)
                    } else {
                        f.to.to_string()
                    };
                    (c, f.clone())
                })
                .collect();
            conditions.extend(flows.iter().map(|(c, _)| c.clone()));
            tasks.insert(
                t.id.to_string(),
                TaskInfo {
                    join: t.join,
                    cancels: t.cancellation_set.iter().map(|c| c.to_string()).collect(),
                    inputs: BTreeSet::new(),
                    split: t.split,
                    flows,
                },
            );
        }
        let mut arcs: Vec<(String, String)> = Vec::new();
        for c in once(&net.input_condition).chain(&net.conditions) {
            arcs.extend(c.flows.iter().map(|f| (f.to.to_string(), c.id.to_string())));
        }
        for t in &net.tasks {
            for f in &t.flows {
                if task_ids.contains(f.to.as_str()) {
                    arcs.push((f.to.to_string(), format!("{}__{}", t.id, f.to)));
                }
            }
        }
        for (t, c) in arcs {
            if let Some(info) = tasks.get_mut(&t) {
                info.inputs.insert(c);
            }
        }
        let output = net.output_condition.id.to_string();
        out.insert(
            net.id.to_string(),
            NetInfo {
                output,
                conditions,
                tasks,
            },
        );
    }
    out
}

/// Returns the conditions a completing task's split must produce, given the case data.
pub(super) fn expected_route(t: &TaskInfo, data: &Map<String, Value>) -> Option<BTreeSet<String>> {
    let normal: Vec<&(String, Flow)> = t.flows.iter().filter(|(_, f)| !f.on_failure).collect();
    if t.split == And {
        return Some(normal.iter().map(|(c, _)| c.clone()).collect());
    }
    let guard = |f: &Flow| {
        f.predicate
            .as_ref()
            .map_or(Some(true), |p| holds(&p.source, data))
    };
    let mut ordered: Vec<(usize, &&(String, Flow))> = normal
        .iter()
        .enumerate()
        .filter(|(_, (_, f))| !f.is_default && f.predicate.is_some())
        .collect();
    ordered.sort_by_key(|(i, (_, f))| (f.ordering.is_none(), f.ordering, *i));
    let unguarded = normal
        .iter()
        .filter(|(_, f)| !f.is_default && f.predicate.is_none());
    let default = normal.iter().find(|(_, f)| f.is_default);
    let mut chosen = BTreeSet::new();
    for (_, (c, f)) in ordered {
        if guard(f)? {
            chosen.insert(c.clone());
            if t.split == Xor {
                return Some(chosen);
            }
        }
    }
    for (c, _) in unguarded {
        chosen.insert(c.clone());
        if t.split == Xor {
            return Some(chosen);
        }
    }
    if t.split == Or
        && let Some((c, f)) = default
        && f.predicate.is_some()
        && guard(f)?
    {
        chosen.insert(c.clone());
    }
    if chosen.is_empty()
        && let Some((c, _)) = default
    {
        chosen.insert(c.clone());
    }
    Some(chosen)
}

// ---------------------------------------------------------------------------------------------
// Checking a case after every step

impl Driver<'_> {
    /// Checks the state right after event `at`, the completion of `task`: the conditions of
    /// its cancellation set hold only what the task just produced, its tasks are not running.
    pub(super) fn check_cancellation(
        &self,
        at: usize,
        task: &TaskRef,
        t: &TaskInfo,
        produced: &BTreeSet<String>,
    ) -> Check {
        let mid = Case::replay(self.wf, self.case().id(), &self.events()[..=at])
            .map_err(|e| TestCaseError::fail(format!("replay: {e}")))?;
        let ni = task.net_instance;
        let marking = mid.marking(self.wf);
        let busy = mid.busy_tasks(self.wf);
        for c in &t.cancels {
            let tokens = marking
                .iter()
                .find(|(n, id, _)| *n == ni && id.as_str() == c)
                .map_or(0, |m| m.2);
            if !self.info_of(ni).conditions.contains(c) {
                let cancelled = TaskRef {
                    net_instance: ni,
                    task: c.as_str().into(),
                };
                if c != task.task.as_str() {
                    prop_assert!(
                        !busy.contains(&cancelled),
                        "{} completed but {} of its cancellation set still runs",
                        task.task,
                        c
                    );
                }
                continue;
            }
            prop_assert_eq!(
                tokens,
                u32::from(produced.contains(c)),
                "{} completed but {} of its cancellation set holds tokens",
                task.task,
                c
            );
        }
        Ok(())
    }

    pub(super) fn info_of(&self, ni: u32) -> &NetInfo {
        &self.info[&self.nets[ni as usize]]
    }

    pub(super) fn task_info(&self, task: &TaskRef) -> Result<&TaskInfo, TestCaseError> {
        let net = self.nets.get(task.net_instance as usize);
        let t = net
            .and_then(|n| self.info.get(n))
            .and_then(|n| n.tasks.get(task.task.as_str()));
        t.ok_or_else(|| TestCaseError::fail(format!("unknown task {task:?}")))
    }

    pub(super) fn check_effects(&mut self, before: &Case, step: &Step) -> Check {
        let ev = &step.events;
        let case = &self.case();
        let find = |f: &dyn Fn(&EventKind) -> bool| ev.iter().position(|e| f(&e.kind));
        let gone_after = |item: &WorkItemId, from: usize| {
            ev[from..].iter().any(|e| match &e.kind {
                EventKind::WorkItemCancelled { item: i }
                | EventKind::WorkItemCompleted { item: i, .. }
                | EventKind::ConnectorCallSucceeded { item: i, .. }
                | EventKind::ConnectorCallFailed { item: i, .. } => i == item,
                _ => false,
            })
        };
        let mut ended = 0;
        // A retried case runs again: the calls and timers frozen while it was failed are
        // performed again, with no event of their own in this step.
        let resumed = ev.iter().any(|e| {
            matches!(
                &e.kind,
                EventKind::CaseStateChanged {
                    from: CaseStatus::Failed,
                    to: CaseStatus::Running,
                    ..
                }
            )
        });
        for eff in &step.effects {
            match eff {
                Effect::CallConnector { item, .. }
                    if resumed && before.work_item(item).is_some_and(|w| w.is_call()) => {}
                Effect::ArmTimer { timer, fires_at }
                    if resumed && before.timers().any(|(t, at)| t == timer && at == *fires_at) => {}
                Effect::OfferWorkItem { item, .. } | Effect::CallConnector { item, .. } => {
                    let at = find(&|k| match k {
                        EventKind::WorkItemOffered { item: i, .. }
                        | EventKind::ConnectorCallStarted { item: i, .. } => i == item,
                        _ => false,
                    });
                    prop_assert!(at.is_some(), "{:?} without its event", eff);
                    let at = at.unwrap_or_default();
                    prop_assert!(
                        case.work_item(item).is_some() || gone_after(item, at + 1),
                        "{:?}: the item is not live and nothing removed it",
                        eff
                    );
                }
                Effect::WithdrawWorkItem { item } | Effect::CancelConnectorCall { item } => {
                    prop_assert!(case.work_item(item).is_none(), "{:?} but live", eff);
                    prop_assert!(
                        find(
                            &|k| matches!(k, EventKind::WorkItemCancelled { item: i } if i == item)
                        )
                        .is_some(),
                        "{:?} without its event",
                        eff
                    );
                }
                Effect::ArmTimer { timer, fires_at } => {
                    let at = find(&|k| {
                        matches!(k, EventKind::TimerArmed { timer: t, fires_at: f, .. }
                            if t == timer && f == fires_at)
                    });
                    prop_assert!(at.is_some(), "{:?} without its event", eff);
                    let at = at.unwrap_or_default();
                    let live = case.timers().any(|(t, _)| t == timer);
                    let gone = ev[at + 1..].iter().any(|e| {
                        matches!(&e.kind, EventKind::TimerCancelled { timer: t }
                            | EventKind::TimerFired { timer: t } if t == timer)
                    });
                    prop_assert!(live || gone, "{:?}: timer neither armed nor ended", eff);
                }
                Effect::CancelTimer { timer } => {
                    prop_assert!(
                        !case.timers().any(|(t, _)| t == timer),
                        "{:?} but armed",
                        eff
                    );
                }
                Effect::AwaitTrigger { task, .. } => {
                    let at =
                        find(&|k| matches!(k, EventKind::TaskEnabled { task: t } if t == task));
                    prop_assert!(at.is_some(), "{:?} without TaskEnabled", eff);
                    let at = at.unwrap_or_default();
                    let enabled = case.enabled_tasks(self.wf).contains(task);
                    let left = ev[at + 1..].iter().any(|e| {
                        matches!(&e.kind, EventKind::TaskStarted { task: t, .. }
                            | EventKind::TaskWithdrawn { task: t }
                            | EventKind::TaskCancelled { task: t }
                            | EventKind::TaskFailed { task: t, .. } if t == task)
                            || matches!(&e.kind, EventKind::NetEnded { net_instance }
                                if *net_instance == task.net_instance)
                    });
                    prop_assert!(enabled || left, "{:?} but the task is not enabled", eff);
                }
                Effect::CaseEnded { status } => {
                    ended += 1;
                    prop_assert_eq!(*status, case.status());
                    prop_assert!(status.is_final());
                }
            }
        }
        // The other way round: every event that asks the world for something has its effect.
        for e in ev {
            let has = |f: &dyn Fn(&Effect) -> bool| step.effects.iter().any(f);
            let ok = match &e.kind {
                EventKind::WorkItemOffered { item, .. } => {
                    has(&|x| matches!(x, Effect::OfferWorkItem { item: i, .. } if i == item))
                }
                EventKind::ConnectorCallStarted { item, .. } => {
                    has(&|x| matches!(x, Effect::CallConnector { item: i, .. } if i == item))
                }
                EventKind::WorkItemCancelled { item } => has(&|x| {
                    matches!(x, Effect::WithdrawWorkItem { item: i }
                        | Effect::CancelConnectorCall { item: i } if i == item)
                }),
                EventKind::TimerArmed { timer, .. } => {
                    has(&|x| matches!(x, Effect::ArmTimer { timer: t, .. } if t == timer))
                }
                EventKind::TimerCancelled { timer } => {
                    has(&|x| matches!(x, Effect::CancelTimer { timer: t } if t == timer))
                }
                _ => true,
            };
            prop_assert!(ok, "event {:?} without its effect", e.kind);
        }
        // One CaseEnded per move into a final state (a retried case may fail again).
        prop_assert_eq!(ended, finals(ev), "CaseEnded effects in this step");
        self.ended += ended;
        Ok(())
    }

    pub(super) fn check_state(&self) -> Check {
        let replayed = Case::replay(self.wf, self.case().id(), self.events())
            .map_err(|e| TestCaseError::fail(format!("replay: {e}")))?;
        prop_assert_eq!(&replayed, self.case(), "replay differs");
        prop_assert_eq!(
            self.case().data(),
            &self.data,
            "data differs from its history"
        );
        let case = &replayed;
        let status = case.status();
        let items = case.work_items().count();
        let timers = case.timers().count();
        let triggers = self.enabled_triggers(case);
        let busy = case.busy_tasks(self.wf);
        prop_assert_eq!(
            self.ended,
            finals(self.events()),
            "CaseEnded effects differ from the moves into a final state"
        );
        if !case.incidents().is_empty() {
            // Failed by a task: the rest of the case is frozen as it stood; the failed tasks
            // hold nothing.
            prop_assert_eq!(
                status,
                CaseStatus::Failed,
                "incidents open in a {} case",
                status
            );
            for i in case.incidents() {
                prop_assert!(
                    !busy.contains(&i.task) && !case.enabled_tasks(self.wf).contains(&i.task),
                    "failed task {:?} is not idle",
                    i.task
                );
            }
        } else if status.is_final() {
            prop_assert_eq!(items, 0, "ended case has work items");
            prop_assert_eq!(timers, 0, "ended case has timers");
            prop_assert!(case.enabled_tasks(self.wf).is_empty(), "ended case enabled");
            prop_assert!(busy.is_empty(), "ended case has busy tasks");
            prop_assert!(self.ended >= 1, "ended without a CaseEnded");
        }
        if status == CaseStatus::Running {
            prop_assert!(
                items + timers + triggers.len() + busy.len() > 0,
                "running case waits for nothing; marking {:?}",
                case.marking(self.wf)
            );
            // Busy tasks run through work items, calls, timers or sub-nets holding those.
            prop_assert!(
                items + timers + triggers.len() > 0,
                "running case with busy tasks {:?} but nothing the world can do",
                busy
            );
        }
        let mut want: Vec<String> = Vec::new();
        if !status.is_final() {
            for (id, w) in case.work_items() {
                if w.state == WorkItemState::Calling {
                    want.push(format!("call {id}"));
                } else {
                    want.push(format!("offer {id}"));
                }
            }
            want.extend(case.timers().map(|(t, at)| format!("timer {t} {at:?}")));
            want.extend(triggers.iter().map(|(t, e)| format!("await {t:?} {e}")));
        }
        let mut got: Vec<String> = case
            .outstanding(self.wf)
            .into_iter()
            .map(|e| match e {
                Effect::OfferWorkItem { item, .. } => format!("offer {item}"),
                Effect::CallConnector { item, .. } => format!("call {item}"),
                Effect::ArmTimer { timer, fires_at } => format!("timer {timer} {fires_at:?}"),
                Effect::AwaitTrigger { task, event } => format!("await {task:?} {event}"),
                other => format!("unexpected {other:?}"),
            })
            .collect();
        want.sort();
        got.sort();
        prop_assert_eq!(got, want, "outstanding");
        for (ni, c, n) in case.marking(self.wf) {
            prop_assert!(n > 0);
            prop_assert!(
                !self.ended_nets.contains(&ni),
                "marking() reports {} in net instance {}, which ended",
                c,
                ni
            );
            // A token in a net's output condition ends the net, and in the root net the case.
            prop_assert!(
                status.is_final()
                    || self.ended_nets.contains(&ni)
                    || c.as_str() != self.info_of(ni).output,
                "token in the output condition {} of net instance {} but the case is {}",
                c,
                ni,
                status
            );
        }
        Ok(())
    }
}

/// Counts the moves into a final state among `events`.
fn finals(events: &[Event]) -> usize {
    events
        .iter()
        .filter(|e| matches!(&e.kind, EventKind::CaseStateChanged { to, .. } if to.is_final()))
        .count()
}
