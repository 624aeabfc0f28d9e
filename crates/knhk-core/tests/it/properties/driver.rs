//! The driver of the properties: one case of a workflow, fed chosen inputs (valid ones that move
//! it on, and invalid ones it must refuse), following the history and checking every step.

use std::collections::{BTreeMap, BTreeSet};

use knhk_core::model::ControlType::{And, Or, Xor};
use knhk_core::model::*;
use knhk_core::*;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{Map, Value, json};

use super::checks::{NetInfo, expected_route, spec_info};
use super::{Check, USERS, pick};

pub(super) struct Driver<'w> {
    pub(super) wf: &'w Workflow,
    pub(super) info: BTreeMap<String, NetInfo>,
    /// The case and its history, driven through the crate's test-support driver.
    pub(super) driver: knhk_core::driver::Driver<&'w Workflow>,
    /// The case data as the history says, for evaluating predicates.
    pub(super) data: Map<String, Value>,
    /// Net of each net instance, from the history.
    pub(super) nets: Vec<String>,
    /// Net instances that ended.
    pub(super) ended_nets: BTreeSet<u32>,
    pub(super) ended: usize,
    pub(super) dead: Vec<WorkItemId>,
}

impl<'w> Driver<'w> {
    pub(super) fn start(
        wf: &'w Workflow,
        data: Map<String, Value>,
    ) -> Result<Driver<'w>, TestCaseError> {
        let id = CaseId(uuid::Uuid::from_u128(7));
        let driver = knhk_core::driver::Driver::create(wf, id, Timestamp(0), data.clone());
        let mut d = Driver {
            wf,
            info: spec_info(wf.specification()),
            driver,
            data: Map::new(),
            nets: vec![wf.specification().root_net.to_string()],
            ended_nets: BTreeSet::new(),
            ended: 0,
            dead: Vec::new(),
        };
        prop_assert_eq!(d.events().len(), 1);
        d.follow(0)?;
        prop_assert_eq!(d.data.clone(), data);
        d.apply(Input::Start, false, 1)?;
        Ok(d)
    }

    pub(super) fn case(&self) -> &Case {
        self.driver.case()
    }

    pub(super) fn events(&self) -> &[Event] {
        self.driver.history()
    }

    /// Applies one input and checks the step and the state after it. `refused`: the input is
    /// invalid and must be refused.
    pub(super) fn apply(&mut self, input: Input, refused: bool, dt: i64) -> Check {
        let before = self.case().clone();
        let from = self.events().len();
        let at = Timestamp(self.driver.now().0 + dt);
        // The same step reconsidering every OR-join on every token change, as the engine
        // first did: the agenda must decide exactly as it.
        let mut twin = self.driver.clone();
        twin.set_options(ApplyOptions::default().reconsidering_every_or_join());
        let twin = twin.apply_at(at, input.clone());
        let taken = self.driver.apply_at(at, input.clone());
        match (&taken, &twin) {
            (Ok(step), Ok(twin)) => prop_assert_eq!(step, twin, "the reference decided otherwise"),
            (Err(_), Err(_)) => {}
            _ => prop_assert!(
                false,
                "the reference took or refused otherwise: {:?} / {:?}",
                taken,
                twin
            ),
        }
        match taken {
            Err(e) => {
                prop_assert_eq!(self.case(), &before, "refused {:?} changed the case", input);
                if ended(&before) {
                    prop_assert!(
                        matches!(e, Error::WrongCaseState { .. } | Error::CannotRetry(_)),
                        "ended case refused {:?} with {:?}",
                        input,
                        e
                    );
                }
            }
            Ok(step) => {
                prop_assert!(!refused, "invalid input {:?} was taken", input);
                prop_assert!(!ended(&before), "ended case took {:?}", input);
                if before.status() == CaseStatus::Failed {
                    // A case failed by a task takes results of calls it made, a retry or a
                    // cancellation, nothing else.
                    prop_assert!(
                        matches!(
                            input,
                            Input::ConnectorSucceeded { .. }
                                | Input::ConnectorFailed { .. }
                                | Input::RetryTask { .. }
                                | Input::Cancel { .. }
                        ),
                        "failed case took {:?}",
                        input
                    );
                }
                prop_assert!(!step.events.is_empty(), "{:?} took without an event", input);
                for (k, e) in step.events.iter().enumerate() {
                    prop_assert_eq!(e.seq, (from + k + 1) as u64, "seq gap");
                }
                self.check_effects(&before, &step)?;
                self.follow(from)?;
            }
        }
        for (id, _) in before.work_items() {
            if self.case().work_item(id).is_none() {
                self.dead.push(*id);
            }
        }
        self.check_state()
    }

    /// Follows new events: net instances, case data, and what each split produced.
    fn follow(&mut self, from: usize) -> Check {
        for at in from..self.events().len() {
            let e = &self.driver.history()[at];
            match &e.kind {
                EventKind::CaseCreated { data, .. } => self.data = data.clone(),
                EventKind::DataUpdated { changes } => {
                    for (k, v) in changes {
                        self.data.insert(k.clone(), v.clone());
                    }
                }
                EventKind::NetStarted {
                    net_instance, net, ..
                } => {
                    prop_assert_eq!(*net_instance as usize, self.nets.len());
                    self.nets.push(net.to_string());
                }
                EventKind::TaskCompleted { task, produced } => {
                    let t = self.task_info(task)?;
                    let set: BTreeSet<String> = produced.iter().map(|c| c.to_string()).collect();
                    prop_assert_eq!(set.len(), produced.len(), "duplicate tokens {:?}", produced);
                    let net = &self.info[&self.nets[task.net_instance as usize]];
                    for c in &set {
                        prop_assert!(net.conditions.contains(c), "{} is not a condition", c);
                    }
                    let want = expected_route(t, &self.data);
                    prop_assert!(
                        want.is_some(),
                        "{} completed although a predicate it needs cannot be evaluated",
                        task.task
                    );
                    if !t.cancels.is_empty() {
                        self.check_cancellation(at, task, t, &set)?;
                    }
                    prop_assert_eq!(
                        Some(set),
                        want,
                        "{} split of {} routed wrongly, data {:?}",
                        format!("{:?}", t.split),
                        task.task,
                        self.data
                    );
                }
                EventKind::NetEnded { net_instance } => {
                    prop_assert!(self.ended_nets.insert(*net_instance), "net ended twice");
                }
                EventKind::CaseDeadlocked { marked } => {
                    // A deadlock is real: no task of the stuck net has its join satisfied.
                    let marked: BTreeSet<String> = marked.iter().map(|c| c.to_string()).collect();
                    let net = self.info.values().find(|n| marked.is_subset(&n.conditions));
                    prop_assert!(net.is_some(), "deadlock in no net: {:?}", marked);
                    for (id, t) in net.map(|n| &n.tasks).into_iter().flatten() {
                        let fires = match t.join {
                            And => t.inputs.is_subset(&marked),
                            Xor | Or => !t.inputs.is_disjoint(&marked),
                        };
                        prop_assert!(
                            !fires,
                            "deadlock reported but {} can fire: {:?}",
                            id,
                            marked
                        );
                    }
                }
                EventKind::TaskFailed { task, produced, .. } if !produced.is_empty() => {
                    let t = self.task_info(task)?;
                    let failure: Vec<&str> = t
                        .flows
                        .iter()
                        .filter(|(_, f)| f.on_failure)
                        .map(|(c, _)| c.as_str())
                        .collect();
                    let got: Vec<&str> = produced.iter().map(|c| c.as_str()).collect();
                    prop_assert_eq!(got, failure);
                }
                _ => {}
            }
        }
        Ok(())
    }

    pub(super) fn enabled_triggers(&self, case: &Case) -> Vec<(TaskRef, String)> {
        case.enabled_tasks(self.wf)
            .into_iter()
            .filter_map(|t| match &case.task_model(self.wf, &t)?.binding {
                TaskBinding::Trigger { event, .. } => Some((t, event.clone())),
                _ => None,
            })
            .collect()
    }

    pub(super) fn humans(&self) -> Vec<(WorkItemId, WorkItem)> {
        self.case()
            .work_items()
            .filter(|(_, w)| w.state != WorkItemState::Calling)
            .map(|(i, w)| (*i, w.clone()))
            .collect()
    }

    fn calls(&self) -> Vec<WorkItemId> {
        self.case()
            .work_items()
            .filter(|(_, w)| w.state == WorkItemState::Calling)
            .map(|(i, _)| *i)
            .collect()
    }

    /// An input that moves the case on, if there is one. A failed case is retried.
    fn progress(&self, a: usize, b: usize) -> Option<Input> {
        if self.case().status() == CaseStatus::Suspended {
            return Some(Input::Resume);
        }
        if let Some(i) = pick(self.case().incidents(), a) {
            return Some(Input::RetryTask {
                task: Some(i.task.clone()),
            });
        }
        let humans = self.humans();
        if let Some((item, w)) = pick(&humans, a) {
            let user = w.owner.clone().unwrap_or_else(|| USERS[b % 3].into());
            return Some(Input::CompleteWorkItem {
                item: *item,
                user,
                output: output(b),
            });
        }
        if let Some(item) = pick(&self.calls(), a) {
            return Some(Input::ConnectorSucceeded {
                item: *item,
                output: json!({"b1": b.is_multiple_of(2)}),
                failed_attempts: Vec::new(),
            });
        }
        let timers: Vec<TimerId> = self.case().timers().map(|(t, _)| *t).collect();
        if let Some(timer) = pick(&timers, a) {
            return Some(Input::TimerFired { timer: *timer });
        }
        let triggers = self.enabled_triggers(self.case());
        pick(&triggers, a).map(|(_, event)| Input::TriggerReceived {
            event: event.clone(),
            data: json!({"b0": b % 2 == 1}),
        })
    }

    /// Chooses an input from what the case offers now; `true` when it must be refused.
    pub(super) fn choose(&self, kind: u8, a: usize, b: usize) -> (Input, bool) {
        let humans = self.humans();
        let calls = self.calls();
        let timers: Vec<TimerId> = self.case().timers().map(|(t, _)| *t).collect();
        let busy = self.case().busy_tasks(self.wf);
        let dynamic: Vec<TaskRef> = busy
            .iter()
            .filter(|t| {
                self.case()
                    .task_model(self.wf, t)
                    .and_then(|m| m.multiple_instance.as_ref())
                    .is_some_and(|m| m.creation == CreationMode::Dynamic)
            })
            .cloned()
            .collect();
        let user = || String::from(USERS[b % 3]);
        let chosen = match kind {
            0..=29 => pick(&humans, a).map(|(item, w)| Input::CompleteWorkItem {
                item: *item,
                user: if b.is_multiple_of(7) {
                    user()
                } else {
                    w.owner.clone().unwrap_or_else(user)
                },
                output: output(b),
            }),
            30..=37 => pick(&humans, a).map(|(item, _)| Input::StartWorkItem {
                item: *item,
                user: user(),
            }),
            38..=43 => pick(&humans, a).map(|(item, _)| Input::AllocateWorkItem {
                item: *item,
                user: user(),
            }),
            44..=53 => pick(&calls, a).map(|item| Input::ConnectorSucceeded {
                item: *item,
                output: json!({"b1": b.is_multiple_of(2)}),
                failed_attempts: Vec::new(),
            }),
            54..=56 => pick(&calls, a).map(|item| Input::ConnectorFailed {
                item: *item,
                error: "boom".into(),
                failed_attempts: Vec::new(),
            }),
            57..=58 => pick(&humans, a).map(|(item, _)| Input::FailWorkItem {
                item: *item,
                reason: "gave up".into(),
            }),
            59..=69 => pick(&timers, a).map(|timer| Input::TimerFired { timer: *timer }),
            70..=77 => Some(Input::TriggerReceived {
                event: pick(&self.enabled_triggers(self.case()), a)
                    .map_or_else(|| format!("e{}", b % 2), |(_, e)| e.clone()),
                data: json!({"b0": b % 2 == 1}),
            }),
            78..=79 => pick(&busy, a).map(|task| Input::CompleteTask { task: task.clone() }),
            80..=81 => pick(&dynamic, a).map(|task| Input::AddInstance {
                task: task.clone(),
                item: json!(b % 10),
            }),
            82 => Some(Input::Suspend),
            83..=85 => Some(Input::Resume),
            86 => Some(Input::Cancel {
                reason: "test".into(),
            }),
            87..=88 => {
                let mut changes = Map::new();
                changes.insert("b1".into(), json!(b.is_multiple_of(2)));
                Some(Input::UpdateData { changes })
            }
            89..=91 => match self.case().incidents() {
                [] => None,
                [_] if b.is_multiple_of(2) => Some(Input::RetryTask { task: None }),
                all => pick(all, a).map(|i| Input::RetryTask {
                    task: Some(i.task.clone()),
                }),
            },
            _ => return self.invalid(a, b),
        };
        match chosen.or_else(|| self.progress(a, b)) {
            Some(input) => (input, false),
            None => self.invalid(a, b),
        }
    }

    /// An input the case must refuse.
    fn invalid(&self, a: usize, b: usize) -> (Input, bool) {
        let unknown = WorkItemId(uuid::Uuid::from_u128(u128::MAX - a as u128));
        let humans = self.humans();
        let owned: Vec<&(WorkItemId, WorkItem)> =
            humans.iter().filter(|(_, w)| w.owner.is_some()).collect();
        if b % 7 == 6 {
            return (Input::Start, true);
        }
        let item = match b % 7 {
            1 => pick(&self.dead, a).copied().unwrap_or(unknown),
            2 => {
                if let Some((item, w)) = pick(&owned, a) {
                    let owner = w.owner.clone().unwrap_or_default();
                    let other = USERS.iter().find(|u| **u != owner).copied();
                    return (
                        Input::CompleteWorkItem {
                            item: *item,
                            user: other.unwrap_or("zed").into(),
                            output: json!({}),
                        },
                        true,
                    );
                }
                unknown
            }
            3 => {
                if let Some((item, _)) = pick(&owned, a) {
                    let input = Input::AllocateWorkItem {
                        item: *item,
                        user: USERS[0].into(),
                    };
                    return (input, true);
                }
                unknown
            }
            4 => {
                if let Some((item, _)) = pick(&humans, a) {
                    let input = Input::ConnectorSucceeded {
                        item: *item,
                        output: json!({}),
                        failed_attempts: Vec::new(),
                    };
                    return (input, true);
                }
                unknown
            }
            5 => {
                let timer = TimerId(uuid::Uuid::from_u128(u128::MAX - a as u128));
                return (Input::TimerFired { timer }, true);
            }
            _ => unknown,
        };
        let input = Input::CompleteWorkItem {
            item,
            user: USERS[b % 3].into(),
            output: json!({}),
        };
        (input, true)
    }
}

/// What a user returns: sometimes nothing, sometimes new values for the guarded variables.
fn output(b: usize) -> Value {
    match b % 3 {
        0 => json!({}),
        1 => json!({"b0": b.is_multiple_of(2)}),
        _ => json!({"b0": b % 4 < 2, "n": (b / 4 % 4) as i64}),
    }
}

/// Returns whether a case has ended for good: a final state with no incident to retry.
pub(super) fn ended(case: &Case) -> bool {
    case.status().is_final() && case.incidents().is_empty()
}
