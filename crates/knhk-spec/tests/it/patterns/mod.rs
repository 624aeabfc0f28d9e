//! The control-flow patterns: every net under `examples/patterns/` is loaded from its Turtle
//! file and run through the engine, and the test checks which tasks completed, in what order,
//! and how the case ended.
//!
//! This file holds the harness, `Run`, that loads a pattern net and drives one case of it; the
//! tests are grouped by pattern family in `basic` (WCP 1-11), `multiple_instances` (WCP 12-15),
//! `state_and_cancel` (WCP 16-33 and 43), `or_join` (WCP 37-38), `more` (WCP 17, 23, 24, 28,
//! 29, 35, 39, 40) and `extra` (WCP 18, 41, 42).

// Test code: a failed expectation is a panic that names what went wrong.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod basic;
mod extra;
mod more;
mod multiple_instances;
mod or_join;
mod state_and_cancel;

use std::collections::BTreeSet;
use std::path::Path;

use knhk_core::driver::Driver;
use knhk_core::{
    Case, CaseId, CaseStatus, Effect, Error, EventKind, Input, TaskRef, Timestamp, WorkItemId,
    Workflow,
};
use serde_json::{Value, json};
use uuid::Uuid;

const CASE: CaseId = CaseId(Uuid::from_u128(1));
const USER: &str = "ann";

/// One case of a pattern net, driven through knhk-core's test-support driver.
struct Run {
    file: &'static str,
    driver: Driver<Workflow>,
}

impl Run {
    /// Loads `examples/patterns/<file>`, creates a case holding `data` and starts it.
    fn start(file: &'static str, data: Value) -> Run {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/patterns")
            .join(file);
        let wf = knhk_spec::load_file(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
        let Value::Object(data) = data else {
            panic!("case data must be a JSON object");
        };
        let mut run = Run {
            file,
            driver: Driver::create(wf, CASE, Timestamp(0), data),
        };
        run.apply(Input::Start);
        run
    }

    fn case(&self) -> &Case {
        self.driver.case()
    }

    /// Applies an input one millisecond after the previous one.
    fn try_apply(&mut self, input: Input) -> Result<(), Error> {
        self.driver.apply(input).map(|_| ())
    }

    fn apply(&mut self, input: Input) {
        let what = format!("{input:?}");
        if let Err(e) = self.try_apply(input) {
            panic!(
                "{}: {what} refused: {e}\ncompleted so far: {:?}",
                self.file,
                self.completed()
            );
        }
    }

    /// Returns the live work items of a task (in any net instance), oldest first.
    fn items(&self, task: &str) -> Vec<WorkItemId> {
        self.case()
            .work_items()
            .filter(|(_, item)| item.task.task.as_str() == task)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Returns the tasks that have live work items, sorted, each once.
    fn offered(&self) -> Vec<String> {
        let tasks: BTreeSet<String> = self
            .case()
            .work_items()
            .map(|(_, item)| item.task.task.to_string())
            .collect();
        tasks.into_iter().collect()
    }

    fn item(&self, task: &str) -> WorkItemId {
        match self.items(task).first() {
            Some(id) => *id,
            None => panic!(
                "{}: no live work item for {task}; offered: {:?}; completed: {:?}",
                self.file,
                self.offered(),
                self.completed()
            ),
        }
    }

    fn task_ref(&self, task: &str) -> TaskRef {
        let item = self.item(task);
        self.case()
            .work_item(&item)
            .map(|w| w.task.clone())
            .expect("live work item")
    }

    /// Starts the first live work item of a task, as a user beginning the work.
    fn begin(&mut self, task: &str) {
        let item = self.item(task);
        self.apply(Input::StartWorkItem {
            item,
            user: USER.into(),
        });
    }

    /// Starts (unless already started) and completes a work item with this output.
    fn complete_item(&mut self, item: WorkItemId, output: Value) {
        let started = self
            .case()
            .work_item(&item)
            .is_some_and(|w| w.state == knhk_core::WorkItemState::Started);
        if !started {
            self.apply(Input::StartWorkItem {
                item,
                user: USER.into(),
            });
        }
        self.apply(Input::CompleteWorkItem {
            item,
            user: USER.into(),
            output,
        });
    }

    /// Completes the first live work item of a task with this output.
    fn complete(&mut self, task: &str, output: Value) {
        let item = self.item(task);
        self.complete_item(item, output);
    }

    fn trigger(&mut self, event: &str) -> Result<(), Error> {
        self.try_apply(Input::TriggerReceived {
            event: event.into(),
            data: json!({}),
        })
    }

    /// Returns the tasks that completed, in order (a task completing twice appears twice).
    fn completed(&self) -> Vec<String> {
        self.driver
            .history()
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::TaskCompleted { task, .. } => Some(task.task.to_string()),
                _ => None,
            })
            .collect()
    }

    fn times_completed(&self, task: &str) -> usize {
        self.completed().iter().filter(|t| *t == task).count()
    }

    /// Returns whether the task was cancelled while running or withdrawn while enabled.
    fn stopped(&self, task: &str) -> bool {
        self.driver.history().iter().any(|e| match &e.kind {
            EventKind::TaskCancelled { task: t } | EventKind::TaskWithdrawn { task: t } => {
                t.task.as_str() == task
            }
            _ => false,
        })
    }

    fn cancelled(&self, task: &str) -> bool {
        self.driver.history().iter().any(
            |e| matches!(&e.kind, EventKind::TaskCancelled { task: t } if t.task.as_str() == task),
        )
    }

    fn withdrawn_items(&self) -> BTreeSet<WorkItemId> {
        self.driver
            .effects()
            .iter()
            .filter_map(|e| match e {
                Effect::WithdrawWorkItem { item } => Some(*item),
                _ => None,
            })
            .collect()
    }

    fn offered_items(&self) -> Vec<(WorkItemId, String, u32, Value)> {
        let instances: Vec<(WorkItemId, u32)> = self
            .driver
            .history()
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::WorkItemOffered { item, instance, .. } => Some((*item, *instance)),
                _ => None,
            })
            .collect();
        self.driver
            .effects()
            .iter()
            .filter_map(|e| match e {
                Effect::OfferWorkItem {
                    item, task, input, ..
                } => {
                    let instance = instances
                        .iter()
                        .find(|(i, _)| i == item)
                        .map_or(u32::MAX, |(_, n)| *n);
                    Some((*item, task.task.to_string(), instance, input.clone()))
                }
                _ => None,
            })
            .collect()
    }

    fn net_starts(&self) -> usize {
        self.driver
            .history()
            .iter()
            .filter(|e| matches!(e.kind, EventKind::NetStarted { .. }))
            .count()
    }

    fn data(&self, key: &str) -> Option<&Value> {
        self.case().data().get(key)
    }

    fn assert_before(&self, first: &str, then: &str) {
        let order = self.completed();
        let a = order.iter().position(|t| t == first);
        let b = order.iter().position(|t| t == then);
        assert!(
            matches!((a, b), (Some(a), Some(b)) if a < b),
            "{}: expected {first} to complete before {then}, completed: {order:?}",
            self.file
        );
    }

    /// Checks the case ended (or stands) in `status`, and what holds for every pattern run:
    /// a gapless history whose replay rebuilds the same case, no deadlock, and, once the case
    /// is over, no work left behind: every work item offered was completed or withdrawn.
    /// With `KNHK_RECORD_HISTORIES` set, the run joins the corpus of recorded histories.
    fn finish(&self, status: CaseStatus) {
        assert_eq!(
            self.case().status(),
            status,
            "{}: completed: {:?}, offered: {:?}",
            self.file,
            self.completed(),
            self.offered()
        );
        for (n, event) in self.driver.history().iter().enumerate() {
            assert_eq!(event.seq, n as u64 + 1, "{}: history has a gap", self.file);
        }
        assert!(
            !self
                .driver
                .history()
                .iter()
                .any(|e| matches!(e.kind, EventKind::CaseDeadlocked { .. })),
            "{}: case deadlocked",
            self.file
        );
        if let Err(e) = self.driver.check_replay() {
            panic!("{}: {e}", self.file);
        }
        if status.is_final() {
            assert_eq!(
                self.offered(),
                Vec::<String>::new(),
                "{}: work left",
                self.file
            );
            let ended: Vec<CaseStatus> = self
                .driver
                .effects()
                .iter()
                .filter_map(|e| match e {
                    Effect::CaseEnded { status } => Some(*status),
                    _ => None,
                })
                .collect();
            assert_eq!(ended, [status], "{}: CaseEnded effects", self.file);
            let done: BTreeSet<WorkItemId> = self
                .driver
                .history()
                .iter()
                .filter_map(|e| match &e.kind {
                    EventKind::WorkItemCompleted { item, .. } => Some(*item),
                    _ => None,
                })
                .collect();
            let withdrawn = self.withdrawn_items();
            for (item, task, _, _) in self.offered_items() {
                assert!(
                    done.contains(&item) || withdrawn.contains(&item),
                    "{}: work item {item} of {task} neither completed nor withdrawn",
                    self.file
                );
            }
        }
        crate::histories::record(
            self.file,
            self.driver.workflow(),
            self.driver.case(),
            self.driver.history(),
        );
    }
}
