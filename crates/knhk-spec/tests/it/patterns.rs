//! The control-flow patterns: every net under `examples/patterns/` is loaded from its Turtle
//! file and run through the engine, and the test checks which tasks completed, in what order,
//! and how the case ended.

// Test code: a failed expectation is a panic that names what went wrong.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::Path;

use knhk_core::{
    Case, CaseId, CaseStatus, Effect, Error, Event, EventKind, Input, SequentialIds, Step, TaskRef,
    Timestamp, WorkItemId, Workflow,
};
use serde_json::{Value, json};
use uuid::Uuid;

const CASE: CaseId = CaseId(Uuid::from_u128(1));
const USER: &str = "ann";

/// One case of a pattern net, with everything that happened to it so far.
struct Run {
    file: &'static str,
    wf: Workflow,
    case: Case,
    ids: SequentialIds,
    events: Vec<Event>,
    effects: Vec<Effect>,
    now: i64,
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
        let (case, step) = Case::create(&wf, CASE, Timestamp(0), data);
        let mut run = Run {
            file,
            wf,
            case,
            ids: SequentialIds::default(),
            events: Vec::new(),
            effects: Vec::new(),
            now: 0,
        };
        run.record(step);
        run.apply(Input::Start);
        run
    }

    fn record(&mut self, step: Step) {
        self.events.extend(step.events);
        self.effects.extend(step.effects);
    }

    /// Applies an input one millisecond after the previous one.
    fn try_apply(&mut self, input: Input) -> Result<(), Error> {
        self.now += 1;
        let step = self
            .case
            .apply(&self.wf, Timestamp(self.now), input, &mut self.ids)?;
        self.record(step);
        Ok(())
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
        self.case
            .work_items()
            .filter(|(_, item)| item.task.task.as_str() == task)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Returns the tasks that have live work items, sorted, each once.
    fn offered(&self) -> Vec<String> {
        let tasks: BTreeSet<String> = self
            .case
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
        self.case
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
            .case
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
        self.events
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
        self.events.iter().any(|e| match &e.kind {
            EventKind::TaskCancelled { task: t } | EventKind::TaskWithdrawn { task: t } => {
                t.task.as_str() == task
            }
            _ => false,
        })
    }

    fn cancelled(&self, task: &str) -> bool {
        self.events.iter().any(
            |e| matches!(&e.kind, EventKind::TaskCancelled { task: t } if t.task.as_str() == task),
        )
    }

    fn withdrawn_items(&self) -> BTreeSet<WorkItemId> {
        self.effects
            .iter()
            .filter_map(|e| match e {
                Effect::WithdrawWorkItem { item } => Some(*item),
                _ => None,
            })
            .collect()
    }

    fn offered_items(&self) -> Vec<(WorkItemId, String, u32, Value)> {
        let instances: Vec<(WorkItemId, u32)> = self
            .events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::WorkItemOffered { item, instance, .. } => Some((*item, *instance)),
                _ => None,
            })
            .collect();
        self.effects
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
        self.events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::NetStarted { .. }))
            .count()
    }

    fn data(&self, key: &str) -> Option<&Value> {
        self.case.data().get(key)
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
    fn finish(&self, status: CaseStatus) {
        assert_eq!(
            self.case.status(),
            status,
            "{}: completed: {:?}, offered: {:?}",
            self.file,
            self.completed(),
            self.offered()
        );
        for (n, event) in self.events.iter().enumerate() {
            assert_eq!(event.seq, n as u64 + 1, "{}: history has a gap", self.file);
        }
        assert!(
            !self
                .events
                .iter()
                .any(|e| matches!(e.kind, EventKind::CaseDeadlocked { .. })),
            "{}: case deadlocked",
            self.file
        );
        let replayed = Case::replay(&self.wf, CASE, &self.events)
            .unwrap_or_else(|e| panic!("{}: replay failed: {e}", self.file));
        assert_eq!(replayed, self.case, "{}: replay differs", self.file);
        if status.is_final() {
            assert_eq!(
                self.offered(),
                Vec::<String>::new(),
                "{}: work left",
                self.file
            );
            let ended: Vec<CaseStatus> = self
                .effects
                .iter()
                .filter_map(|e| match e {
                    Effect::CaseEnded { status } => Some(*status),
                    _ => None,
                })
                .collect();
            assert_eq!(ended, [status], "{}: CaseEnded effects", self.file);
            let done: BTreeSet<WorkItemId> = self
                .events
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
    }
}

// ---------------------------------------------------------------------------------------------
// Basic control flow

#[test]
fn wcp01_sequence_runs_tasks_one_after_the_other() {
    let mut run = Run::start("wcp01_sequence.ttl", json!({}));
    assert_eq!(run.completed(), ["A"]);
    assert_eq!(run.offered(), ["B"]);
    run.complete("B", json!({}));
    assert_eq!(run.completed(), ["A", "B", "C"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp02_parallel_split_starts_both_branches_at_once() {
    let mut run = Run::start("wcp02_parallel_split.ttl", json!({}));
    assert_eq!(run.completed(), ["A"]);
    assert_eq!(run.offered(), ["B", "C"]);
    // The branches are independent: C may finish first.
    run.complete("C", json!({}));
    assert_eq!(run.offered(), ["B"]);
    run.complete("B", json!({}));
    assert_eq!(run.completed(), ["A", "C", "B", "D"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp03_synchronization_waits_for_every_branch() {
    let mut run = Run::start("wcp03_synchronization.ttl", json!({}));
    assert_eq!(run.offered(), ["B", "C", "D"]);
    run.complete("B", json!({}));
    run.complete("D", json!({}));
    assert_eq!(run.times_completed("E"), 0, "E fired before C completed");
    assert_eq!(run.offered(), ["C"]);
    run.finish(CaseStatus::Running);
    run.complete("C", json!({}));
    assert_eq!(run.completed(), ["A", "B", "D", "C", "E"]);
    run.finish(CaseStatus::Completed);
}

fn exclusive_choice(amount: i64) -> Vec<String> {
    let mut run = Run::start("wcp04_exclusive_choice.ttl", json!({}));
    run.complete("A", json!({ "amount": amount }));
    run.finish(CaseStatus::Completed);
    run.completed()
}

#[test]
fn wcp04_exclusive_choice_takes_the_first_flow_by_ordering_that_holds() {
    // 5000 satisfies both predicates; Large has the lower ordering.
    assert_eq!(exclusive_choice(5000), ["A", "Large"]);
    assert_eq!(exclusive_choice(500), ["A", "Medium"]);
}

#[test]
fn wcp04_exclusive_choice_takes_the_default_flow_when_no_predicate_holds() {
    assert_eq!(exclusive_choice(5), ["A", "Small"]);
}

#[test]
fn wcp05_simple_merge_continues_once_after_the_branch_taken() {
    let mut run = Run::start("wcp05_simple_merge.ttl", json!({ "amount": 500 }));
    assert_eq!(run.offered(), ["B"]);
    run.complete("B", json!({}));
    assert_eq!(run.completed(), ["A", "B", "D"]);
    run.finish(CaseStatus::Completed);

    let mut run = Run::start("wcp05_simple_merge.ttl", json!({ "amount": 50 }));
    assert_eq!(run.offered(), ["C"]);
    run.complete("C", json!({}));
    assert_eq!(run.completed(), ["A", "C", "D"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp06_multi_choice_starts_every_branch_whose_predicate_holds() {
    let data = json!({ "ship": true, "invoice": true, "notify": false });
    let mut run = Run::start("wcp06_multi_choice.ttl", data);
    assert_eq!(run.offered(), ["Invoice", "Ship"]);
    run.complete("Ship", json!({}));
    assert_eq!(
        run.times_completed("E"),
        0,
        "E fired before Invoice completed"
    );
    run.complete("Invoice", json!({}));
    assert_eq!(run.completed(), ["A", "Ship", "Invoice", "E"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp06_multi_choice_takes_the_default_flow_too_when_its_own_predicate_holds() {
    // Notify is the default flow, but it also carries a predicate: on an OR-split every flow
    // whose predicate holds is taken (YAWL's doOrSplit); the default is only the fallback.
    let data = json!({ "ship": true, "invoice": false, "notify": true });
    let mut run = Run::start("wcp06_multi_choice.ttl", data);
    assert_eq!(run.offered(), ["Notify", "Ship"]);
    run.complete("Ship", json!({}));
    assert_eq!(
        run.times_completed("E"),
        0,
        "E fired before Notify completed"
    );
    run.complete("Notify", json!({}));
    assert_eq!(run.completed(), ["A", "Ship", "Notify", "E"]);
    run.finish(CaseStatus::Completed);

    let data = json!({ "ship": true, "invoice": true, "notify": true });
    let mut run = Run::start("wcp06_multi_choice.ttl", data);
    assert_eq!(run.offered(), ["Invoice", "Notify", "Ship"]);
    for task in ["Invoice", "Ship", "Notify"] {
        run.complete(task, json!({}));
    }
    assert_eq!(run.completed(), ["A", "Invoice", "Ship", "Notify", "E"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp06_multi_choice_takes_the_default_branch_when_no_predicate_holds() {
    let data = json!({ "ship": false, "invoice": false, "notify": false });
    let mut run = Run::start("wcp06_multi_choice.ttl", data);
    assert_eq!(run.offered(), ["Notify"]);
    run.complete("Notify", json!({}));
    assert_eq!(run.completed(), ["A", "Notify", "E"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp07_structured_synchronizing_merge_waits_for_both_chosen_branches() {
    let mut run = Run::start("wcp07_structured_synchronizing_merge.ttl", json!({}));
    run.complete("A", json!({ "needB": true, "needC": true }));
    assert_eq!(run.offered(), ["B", "C"]);
    run.complete("B", json!({}));
    assert_eq!(run.times_completed("E"), 0, "E fired before C completed");
    assert_eq!(run.offered(), ["C"]);
    run.complete("C", json!({}));
    assert_eq!(run.completed(), ["A", "B", "C", "E"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp07_structured_synchronizing_merge_fires_at_once_after_the_only_chosen_branch() {
    let mut run = Run::start("wcp07_structured_synchronizing_merge.ttl", json!({}));
    run.complete("A", json!({ "needB": false, "needC": true }));
    assert_eq!(run.offered(), ["C"]);
    run.complete("C", json!({}));
    assert_eq!(run.completed(), ["A", "C", "E"]);
    run.finish(CaseStatus::Completed);

    let mut run = Run::start("wcp07_structured_synchronizing_merge.ttl", json!({}));
    run.complete("A", json!({ "needB": true, "needC": false }));
    assert_eq!(run.offered(), ["B"]);
    run.complete("B", json!({}));
    assert_eq!(run.completed(), ["A", "B", "E"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp07_structured_synchronizing_merge_runs_the_default_branch_when_nothing_was_chosen() {
    let mut run = Run::start("wcp07_structured_synchronizing_merge.ttl", json!({}));
    run.complete("A", json!({ "needB": false, "needC": false }));
    assert_eq!(run.offered(), ["D"]);
    run.complete("D", json!({}));
    assert_eq!(run.completed(), ["A", "D", "E"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp08_multi_merge_runs_the_merge_once_per_arriving_branch() {
    let mut run = Run::start("wcp08_multi_merge.ttl", json!({}));
    assert_eq!(run.offered(), ["B", "C"]);
    run.complete("B", json!({}));
    assert_eq!(run.completed(), ["A", "B", "D"]);
    assert_eq!(run.offered(), ["C", "E"]);
    run.complete("C", json!({}));
    assert_eq!(run.completed(), ["A", "B", "D", "C", "D"]);
    run.complete("E", json!({}));
    assert_eq!(run.completed(), ["A", "B", "D", "C", "D", "E"]);
    run.finish(CaseStatus::Completed);
}

// ---------------------------------------------------------------------------------------------
// Advanced branching and synchronisation

#[test]
fn wcp09_structured_discriminator_fires_on_the_first_branch_only() {
    let mut run = Run::start("wcp09_structured_discriminator.ttl", json!({}));
    assert_eq!(run.offered(), ["B", "C", "D"]);
    run.complete("C", json!({}));
    assert_eq!(run.completed(), ["A", "C", "Disc"]);
    // The other branches keep running: the discriminator does not cancel them.
    assert_eq!(run.offered(), ["B", "D", "Follow"]);
    run.complete("B", json!({}));
    run.assert_before("Disc", "B");
    assert_eq!(
        run.times_completed("Disc"),
        1,
        "a later branch re-fired Disc"
    );
    run.complete("Follow", json!({}));
    assert_eq!(run.times_completed("Z"), 0, "Z fired before D completed");
    run.finish(CaseStatus::Running);
    run.complete("D", json!({}));
    assert_eq!(run.completed(), ["A", "C", "Disc", "B", "Follow", "D", "Z"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp10_arbitrary_cycles_enter_the_cycle_at_either_task() {
    let mut run = Run::start("wcp10_arbitrary_cycles.ttl", json!({}));
    run.complete("A", json!({ "startAt": "C" }));
    assert_eq!(run.offered(), ["C"]);
    run.complete("C", json!({ "again": true }));
    assert_eq!(run.offered(), ["B"]);
    run.complete("B", json!({}));
    run.complete("C", json!({ "again": false }));
    assert_eq!(run.completed(), ["A", "C", "B", "C", "D"]);
    run.finish(CaseStatus::Completed);

    let mut run = Run::start("wcp10_arbitrary_cycles.ttl", json!({}));
    run.complete("A", json!({ "startAt": "B" }));
    assert_eq!(run.offered(), ["B"]);
    run.complete("B", json!({}));
    run.complete("C", json!({ "again": true }));
    run.complete("B", json!({}));
    run.complete("C", json!({ "again": false }));
    assert_eq!(run.completed(), ["A", "B", "C", "B", "C", "D"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp11_implicit_termination_completes_when_nothing_is_left_to_do() {
    // DESIGN.md: the case completes "when nothing is enabled or running any more". B and C end
    // their branches without an outgoing flow, which is the only way a net can run dry without
    // a token reaching the output condition.
    let mut run = Run::start("wcp11_implicit_termination.ttl", json!({ "abort": false }));
    assert_eq!(run.completed(), ["A", "Fork"]);
    run.complete("B", json!({}));
    run.finish(CaseStatus::Running);
    run.complete("C", json!({}));
    assert_eq!(run.completed(), ["A", "Fork", "B", "C"]);
    let reached_end = run.events.iter().any(|e| {
        matches!(&e.kind, EventKind::TaskCompleted { produced, .. }
            if produced.iter().any(|c| c.as_str() == "end"))
    });
    assert!(
        !reached_end,
        "no token was meant to reach the output condition"
    );
    run.finish(CaseStatus::Completed);
}

// ---------------------------------------------------------------------------------------------
// Multiple instances

#[test]
fn wcp12_mi_without_synchronization_lets_the_case_go_on_beside_the_instances() {
    let data = json!({ "items": ["a", "b", "c"] });
    let mut run = Run::start("wcp12_mi_without_synchronization.ttl", data);
    assert_eq!(run.items("Review").len(), 3);
    assert_eq!(run.offered(), ["Review", "Ship"]);
    // Nothing waits for the instances: the other thread goes on while all three are running.
    run.complete("Ship", json!({}));
    run.complete("Invoice", json!({}));
    assert_eq!(run.items("Review").len(), 3);
    assert_eq!(run.completed(), ["Fork", "Ship", "Invoice"]);
    run.finish(CaseStatus::Running);
    for item in run.items("Review") {
        run.complete_item(item, json!({}));
    }
    assert_eq!(
        run.completed(),
        ["Fork", "Ship", "Invoice", "Review", "Close"]
    );
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp13_mi_with_design_time_knowledge_runs_a_fixed_number_of_instances() {
    let mut run = Run::start("wcp13_mi_design_time.ttl", json!({}));
    let signers = run.items("Sign");
    assert_eq!(signers.len(), 3);
    let started = run.events.iter().find_map(|e| match &e.kind {
        EventKind::TaskStarted { task, instances } if task.task.as_str() == "Sign" => {
            Some(instances.len())
        }
        _ => None,
    });
    assert_eq!(started, Some(3));
    run.complete_item(signers[0], json!({}));
    run.complete_item(signers[2], json!({}));
    assert_eq!(
        run.completed(),
        ["A"],
        "Sign completed before all instances did"
    );
    run.finish(CaseStatus::Running);
    run.complete_item(signers[1], json!({}));
    assert_eq!(run.completed(), ["A", "Sign", "C"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp14_mi_with_runtime_knowledge_runs_one_instance_per_item() {
    let mut run = Run::start("wcp14_mi_runtime.ttl", json!({}));
    let lines = json!(["bolts", "nuts", "washers", "screws"]);
    run.complete("A", json!({ "items": lines }));
    let items = run.items("Pick");
    assert_eq!(items.len(), 4);
    // Each instance sees its own item; complete them in reverse to check the join's order.
    let offered: Vec<_> = run
        .offered_items()
        .into_iter()
        .filter(|(_, task, _, _)| task == "Pick")
        .collect();
    for (_, _, instance, input) in &offered {
        assert_eq!(input.get("item"), Some(&lines[*instance as usize]));
    }
    for (n, (item, _, instance, _)) in offered.iter().rev().enumerate() {
        if n == 3 {
            assert_eq!(
                run.completed(),
                ["A"],
                "Pick completed before all instances did"
            );
        }
        run.complete_item(*item, json!({ "picked": instance }));
    }
    assert_eq!(run.completed(), ["A", "Pick", "C"]);
    assert_eq!(
        run.data("results"),
        Some(&json!([{ "picked": 0 }, { "picked": 1 }, { "picked": 2 }, { "picked": 3 }]))
    );
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp15_mi_without_runtime_knowledge_takes_instances_while_running() {
    let mut run = Run::start(
        "wcp15_mi_no_runtime_knowledge.ttl",
        json!({ "suppliers": ["s1"] }),
    );
    assert_eq!(run.items("Quote").len(), 1);
    let quote = run.task_ref("Quote");
    run.apply(Input::AddInstance {
        task: quote.clone(),
        item: json!("s2"),
    });
    assert_eq!(run.items("Quote").len(), 2);
    let first = run.items("Quote")[0];
    run.complete_item(first, json!({ "price": 1 }));
    assert_eq!(
        run.completed(),
        ["A"],
        "Quote completed with an instance still running"
    );
    run.apply(Input::AddInstance {
        task: quote.clone(),
        item: json!("s3"),
    });
    run.apply(Input::AddInstance {
        task: quote.clone(),
        item: json!("s4"),
    });
    assert_eq!(run.items("Quote").len(), 3);
    // The maximum is 4 instances.
    let refused = run.try_apply(Input::AddInstance {
        task: quote,
        item: json!("s5"),
    });
    assert!(
        matches!(refused, Err(Error::CannotAddInstance { .. })),
        "{refused:?}"
    );
    for item in run.items("Quote") {
        run.complete_item(item, json!({ "price": 2 }));
    }
    assert_eq!(run.completed(), ["A", "Quote", "C"]);
    let quotes = run.data("quotes").and_then(Value::as_array).map(Vec::len);
    assert_eq!(quotes, Some(4));
    run.finish(CaseStatus::Completed);
}

// ---------------------------------------------------------------------------------------------
// State-based: deferred choice

#[test]
fn wcp16_deferred_choice_starting_one_task_withdraws_the_other() {
    let mut run = Run::start("wcp16_deferred_choice.ttl", json!({}));
    assert_eq!(run.offered(), ["Approve"]);
    assert!(run.effects.iter().any(|e| matches!(e,
        Effect::AwaitTrigger { task, event }
            if task.task.as_str() == "CustomerCancel" && event == "customer_cancelled")));
    run.begin("Approve");
    assert!(
        run.stopped("CustomerCancel"),
        "CustomerCancel was not withdrawn"
    );
    let late = run.trigger("customer_cancelled");
    assert!(matches!(late, Err(Error::NoTriggerWaiting(_))), "{late:?}");
    run.complete("Approve", json!({}));
    assert_eq!(run.completed(), ["A", "Approve"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp16_deferred_choice_outside_event_withdraws_the_work_item() {
    let mut run = Run::start("wcp16_deferred_choice.ttl", json!({}));
    let approve = run.item("Approve");
    run.trigger("customer_cancelled")
        .expect("CustomerCancel waits for the event");
    assert_eq!(run.completed(), ["A", "CustomerCancel"]);
    assert!(run.stopped("Approve"), "Approve was not withdrawn");
    assert!(run.withdrawn_items().contains(&approve));
    run.finish(CaseStatus::Completed);
}

// ---------------------------------------------------------------------------------------------
// Cancellation and termination

#[test]
fn wcp19_cancel_task_cancels_a_running_task() {
    let mut run = Run::start("wcp19_cancel_task.ttl", json!({}));
    let work = run.item("Work");
    run.begin("Work");
    run.complete("Abort", json!({}));
    assert!(run.cancelled("Work"), "Work was not cancelled");
    assert!(run.withdrawn_items().contains(&work));
    assert_eq!(run.completed(), ["A", "Abort", "D"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp19_cancel_task_has_no_effect_when_the_task_finished_first() {
    let mut run = Run::start("wcp19_cancel_task.ttl", json!({}));
    run.complete("Work", json!({}));
    assert_eq!(run.completed(), ["A", "Work", "D"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp20_cancel_case_by_a_task_whose_cancellation_set_is_the_net() {
    let mut run = Run::start("wcp20_cancel_case.ttl", json!({}));
    run.complete("B", json!({}));
    assert_eq!(run.offered(), ["D", "Kill"]);
    run.complete("Kill", json!({}));
    assert!(run.stopped("D"), "D was not withdrawn");
    assert_eq!(run.completed(), ["A", "B", "Kill"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp20_cancel_case_from_outside() {
    let mut run = Run::start("wcp20_cancel_case.ttl", json!({}));
    run.begin("B");
    let live: Vec<WorkItemId> = run.case.work_items().map(|(id, _)| *id).collect();
    assert_eq!(live.len(), 2);
    run.apply(Input::Cancel {
        reason: "customer withdrew".into(),
    });
    let withdrawn = run.withdrawn_items();
    assert!(live.iter().all(|item| withdrawn.contains(item)));
    assert_eq!(run.completed(), ["A"]);
    let after = run.try_apply(Input::CompleteWorkItem {
        item: live[0],
        user: USER.into(),
        output: json!({}),
    });
    assert!(after.is_err(), "a cancelled case took more work");
    run.finish(CaseStatus::Cancelled);
}

#[test]
fn wcp21_structured_loop_repeats_until_the_condition_fails() {
    let mut run = Run::start("wcp21_structured_loop.ttl", json!({}));
    run.complete("Work", json!({ "again": true }));
    assert_eq!(run.offered(), ["Work"]);
    run.complete("Work", json!({ "again": true }));
    run.complete("Work", json!({ "again": false }));
    assert_eq!(
        run.completed(),
        [
            "A", "Work", "Check", "Work", "Check", "Work", "Check", "Done"
        ]
    );
    run.finish(CaseStatus::Completed);

    let mut run = Run::start("wcp21_structured_loop.ttl", json!({}));
    run.complete("Work", json!({ "again": false }));
    assert_eq!(run.completed(), ["A", "Work", "Check", "Done"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp22_recursion_runs_the_sub_net_inside_itself() {
    let mut run = Run::start("wcp22_recursion.ttl", json!({}));
    assert_eq!(run.net_starts(), 1);
    let outer = run.task_ref("X").net_instance;
    run.complete("X", json!({ "more": true }));
    assert_eq!(run.net_starts(), 2);
    let middle = run.task_ref("X").net_instance;
    assert_ne!(middle, outer);
    run.complete("X", json!({ "more": true }));
    assert_eq!(run.net_starts(), 3);
    let inner = run.task_ref("X").net_instance;
    assert_ne!(inner, middle);
    run.complete("X", json!({ "more": false }));
    assert_eq!(run.completed(), ["X", "X", "X", "Recurse", "Recurse", "A"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp25_cancel_region_withdraws_the_active_part_of_the_region() {
    let mut run = Run::start("wcp25_cancel_region.ttl", json!({}));
    run.complete("B", json!({}));
    let c = run.item("C");
    run.complete("Withdraw", json!({}));
    assert!(run.stopped("C"), "C was not withdrawn");
    assert!(run.withdrawn_items().contains(&c));
    assert_eq!(run.completed(), ["A", "B", "Withdraw", "F"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp25_cancel_region_cancels_work_in_progress() {
    let mut run = Run::start("wcp25_cancel_region.ttl", json!({}));
    run.begin("B");
    run.complete("Withdraw", json!({}));
    assert!(run.cancelled("B"), "B was not cancelled");
    assert_eq!(run.completed(), ["A", "Withdraw", "F"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp25_outside_the_region_the_net_runs_normally() {
    let mut run = Run::start("wcp25_cancel_region.ttl", json!({}));
    run.complete("B", json!({}));
    run.complete("C", json!({}));
    assert_eq!(run.completed(), ["A", "B", "C", "F"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp26_cancel_mi_activity_cancels_the_remaining_instances() {
    let data = json!({ "items": [1, 2, 3] });
    let mut run = Run::start("wcp26_cancel_mi_activity.ttl", data);
    let reviews = run.items("Review");
    assert_eq!(reviews.len(), 3);
    run.complete_item(reviews[1], json!({}));
    run.complete("Stop", json!({}));
    assert!(run.cancelled("Review"), "Review was not cancelled");
    let withdrawn = run.withdrawn_items();
    assert!(withdrawn.contains(&reviews[0]) && withdrawn.contains(&reviews[2]));
    assert_eq!(run.completed(), ["A", "Stop", "D"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp26_without_cancellation_all_instances_complete() {
    let data = json!({ "items": [1, 2, 3] });
    let mut run = Run::start("wcp26_cancel_mi_activity.ttl", data);
    for item in run.items("Review") {
        run.complete_item(item, json!({}));
    }
    assert_eq!(run.completed(), ["A", "Review", "D"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp27_complete_mi_activity_completes_at_the_threshold() {
    let data = json!({ "items": ["n", "e", "s", "w"] });
    let mut run = Run::start("wcp27_complete_mi_activity.ttl", data);
    let bids = run.items("Bid");
    assert_eq!(bids.len(), 4);
    run.complete_item(bids[2], json!({ "bid": 10 }));
    assert_eq!(run.completed(), ["A"]);
    run.complete_item(bids[0], json!({ "bid": 12 }));
    assert_eq!(run.completed(), ["A", "Bid"]);
    let withdrawn = run.withdrawn_items();
    assert!(withdrawn.contains(&bids[1]) && withdrawn.contains(&bids[3]));
    assert!(run.items("Bid").is_empty());
    assert_eq!(run.offered(), ["C"]);
    run.complete("C", json!({}));
    assert_eq!(run.completed(), ["A", "Bid", "C"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp33_generalized_and_join_fires_once_per_set_of_tokens() {
    let mut run = Run::start("wcp33_generalized_and_join.ttl", json!({}));
    assert_eq!(run.offered(), ["P", "Q", "R", "S"]);
    run.complete("P", json!({}));
    run.complete("Q", json!({}));
    assert_eq!(run.times_completed("J"), 0, "J fired without a right token");
    run.complete("R", json!({}));
    assert_eq!(run.times_completed("J"), 1);
    run.finish(CaseStatus::Running);
    run.complete("S", json!({}));
    assert_eq!(
        run.completed(),
        ["A", "P", "Q", "R", "J", "First", "S", "J", "Second"]
    );
    run.finish(CaseStatus::Completed);
}

// ---------------------------------------------------------------------------------------------
// The OR-join: local and general synchronizing merge

#[test]
fn wcp37_local_synchronizing_merge_waits_for_the_longer_path() {
    let data = json!({ "needB": true, "needC": true, "viaD": true });
    let mut run = Run::start("wcp37_local_synchronizing_merge.ttl", data);
    assert_eq!(run.offered(), ["B", "C"]);
    run.complete("B", json!({}));
    run.complete("C", json!({}));
    assert_eq!(run.offered(), ["D"]);
    assert_eq!(
        run.times_completed("J"),
        0,
        "J fired while D could still reach it"
    );
    run.complete("D", json!({}));
    assert_eq!(run.completed(), ["A", "B", "C", "D", "J"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp37_local_synchronizing_merge_fires_when_the_active_paths_are_done() {
    let data = json!({ "needB": false, "needC": true, "viaD": false });
    let mut run = Run::start("wcp37_local_synchronizing_merge.ttl", data);
    assert_eq!(run.offered(), ["C"]);
    run.complete("C", json!({}));
    assert_eq!(run.completed(), ["A", "C", "J"]);
    run.finish(CaseStatus::Completed);

    let data = json!({ "needB": true, "needC": true, "viaD": false });
    let mut run = Run::start("wcp37_local_synchronizing_merge.ttl", data);
    run.complete("C", json!({}));
    assert_eq!(run.times_completed("J"), 0, "J fired while B was running");
    run.complete("B", json!({}));
    assert_eq!(run.completed(), ["A", "C", "B", "J"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp38_or_join_in_a_loop_waits_for_a_token_travelling_in_the_loop() {
    let data = json!({ "needB": true, "needC": true, "redoC": false, "again": false });
    let mut run = Run::start("wcp38_general_synchronizing_merge_loop.ttl", data);
    assert_eq!(run.offered(), ["B", "C"]);
    run.complete("B", json!({}));
    run.complete("C", json!({}));
    assert_eq!(run.times_completed("J"), 0, "J fired while E was running");
    // E sends the token back into the C..E loop: it can still reach J, so J keeps waiting.
    run.complete("E", json!({ "redoC": true }));
    assert_eq!(run.offered(), ["C"]);
    assert_eq!(
        run.times_completed("J"),
        0,
        "J fired while a token was in the loop"
    );
    run.complete("C", json!({}));
    run.complete("E", json!({ "redoC": false }));
    assert_eq!(run.completed(), ["A", "B", "C", "E", "C", "E", "J"]);
    assert_eq!(run.offered(), ["F"]);
    // Second round of the outer loop, with only B chosen: J must not wait for C.
    run.complete("F", json!({ "again": true, "needC": false }));
    assert_eq!(run.offered(), ["B"]);
    run.complete("B", json!({}));
    assert_eq!(
        run.times_completed("J"),
        2,
        "J waited for the unchosen C branch"
    );
    run.complete("F", json!({ "again": false }));
    assert_eq!(
        run.completed(),
        ["A", "B", "C", "E", "C", "E", "J", "F", "A", "B", "J", "F"]
    );
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp38_or_join_fires_without_waiting_for_a_dead_branch() {
    let data = json!({ "needB": true, "needC": false });
    let mut run = Run::start("wcp38_general_synchronizing_merge_dead_branch.ttl", data);
    assert_eq!(run.completed(), ["A", "S"]);
    assert_eq!(run.offered(), ["B", "P"]);
    run.complete("B", json!({}));
    // C was not chosen, and the token at P cannot reach J: J fires now.
    assert_eq!(run.completed(), ["A", "S", "B", "J"]);
    run.complete("P", json!({}));
    run.assert_before("J", "P");
    assert_eq!(run.completed(), ["A", "S", "B", "J", "P", "Z"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp38_or_join_waits_for_a_live_longer_branch() {
    let data = json!({ "needB": true, "needC": true });
    let mut run = Run::start("wcp38_general_synchronizing_merge_dead_branch.ttl", data);
    assert_eq!(run.offered(), ["B", "C", "P"]);
    run.complete("B", json!({}));
    run.complete("C", json!({}));
    assert_eq!(
        run.times_completed("J"),
        0,
        "J fired while D could still reach it"
    );
    run.complete("P", json!({}));
    assert_eq!(
        run.times_completed("J"),
        0,
        "J fired while D could still reach it"
    );
    run.complete("D", json!({}));
    assert_eq!(run.completed(), ["A", "S", "B", "C", "P", "D", "J", "Z"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp38_or_join_fires_after_its_waiting_branch_is_cancelled() {
    let mut run = Run::start(
        "wcp38_general_synchronizing_merge_cancellation.ttl",
        json!({}),
    );
    assert_eq!(run.offered(), ["B", "C", "X"]);
    run.complete("B", json!({}));
    run.complete("C", json!({}));
    assert_eq!(run.offered(), ["D", "X"]);
    let d = run.item("D");
    // X removes the token in cC and withdraws D: J has nothing left to wait for.
    run.complete("X", json!({}));
    assert!(run.stopped("D"), "D was not withdrawn");
    assert!(run.withdrawn_items().contains(&d));
    assert_eq!(run.completed(), ["A", "B", "C", "X", "J"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp38_or_join_fires_after_a_running_task_is_cancelled() {
    let mut run = Run::start(
        "wcp38_general_synchronizing_merge_cancellation.ttl",
        json!({}),
    );
    run.complete("B", json!({}));
    run.begin("C");
    run.complete("X", json!({}));
    assert!(run.cancelled("C"), "C was not cancelled");
    assert_eq!(run.completed(), ["A", "B", "X", "J"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp38_or_join_after_cancellation_still_waits_for_live_branches() {
    let mut run = Run::start(
        "wcp38_general_synchronizing_merge_cancellation.ttl",
        json!({}),
    );
    run.complete("X", json!({}));
    assert!(run.stopped("C"), "C was not withdrawn");
    assert_eq!(run.times_completed("J"), 0, "J fired while B was running");
    assert_eq!(run.offered(), ["B"]);
    run.complete("B", json!({}));
    assert_eq!(run.completed(), ["A", "X", "B", "J"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp38_or_join_waits_for_the_cancelling_task_itself() {
    let mut run = Run::start(
        "wcp38_general_synchronizing_merge_cancellation.ttl",
        json!({}),
    );
    run.complete("B", json!({}));
    run.complete("C", json!({}));
    run.complete("D", json!({}));
    assert_eq!(run.times_completed("J"), 0, "J fired while X was running");
    run.complete("X", json!({}));
    assert_eq!(run.completed(), ["A", "B", "C", "D", "X", "J"]);
    run.finish(CaseStatus::Completed);
}

#[test]
fn wcp43_explicit_termination_ends_the_case_and_withdraws_other_work() {
    let mut run = Run::start("wcp43_explicit_termination.ttl", json!({}));
    run.complete("C", json!({}));
    assert_eq!(run.offered(), ["B", "D"]);
    let d = run.item("D");
    run.complete("B", json!({}));
    assert_eq!(run.completed(), ["A", "C", "B"]);
    assert!(run.stopped("D"), "D was not withdrawn");
    assert!(run.withdrawn_items().contains(&d));
    run.finish(CaseStatus::Completed);
}
