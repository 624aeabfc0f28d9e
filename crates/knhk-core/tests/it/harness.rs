//! A tiny net builder and a driver that records the whole history for replay checks.

use knhk_core::driver::Driver;
use knhk_core::model::*;
use knhk_core::*;
use serde_json::{Map, Value};

pub fn flow(to: &str) -> Flow {
    Flow {
        to: to.into(),
        predicate: None,
        ordering: None,
        is_default: false,
        on_failure: false,
    }
}

pub fn when(to: &str, cel: &str) -> Flow {
    Flow {
        predicate: Some(Expression::cel(cel)),
        ..flow(to)
    }
}

pub fn default_flow(to: &str) -> Flow {
    Flow {
        is_default: true,
        ..flow(to)
    }
}

pub fn task(id: &str, join: ControlType, split: ControlType, flows: Vec<Flow>) -> Task {
    Task {
        join,
        split,
        flows,
        ..Task::empty(id)
    }
}

pub fn human(mut t: Task, role: &str) -> Task {
    t.binding = TaskBinding::Human(HumanBinding {
        roles: vec![role.to_string()],
        allocation: Allocation::RoleOffer,
        four_eyes: false,
        distributed_at_runtime: false,
    });
    t
}

pub fn cond(id: &str, flows: Vec<Flow>) -> Condition {
    Condition {
        id: id.into(),
        name: None,
        flows,
    }
}

pub fn net(id: &str, start: Vec<Flow>, conditions: Vec<Condition>, tasks: Vec<Task>) -> Net {
    Net {
        id: NetId::new(id),
        name: None,
        input_condition: cond("start", start),
        output_condition: cond("end", vec![]),
        conditions,
        tasks,
    }
}

pub fn spec(nets: Vec<Net>) -> Specification {
    Specification {
        id: "urn:test".into(),
        name: None,
        version: None,
        documentation: None,
        root_net: nets[0].id.clone(),
        nets,
        initial_data: Default::default(),
    }
}

pub fn workflow(nets: Vec<Net>) -> Workflow {
    Workflow::new(spec(nets)).expect("valid test net")
}

/// One case driven through the crate's test-support driver, which it dereferences to
/// (`case()`, `history()`, `effects()`); inputs that must be taken go through [`Run::input`].
pub struct Run<'w> {
    pub driver: Driver<&'w Workflow>,
}

impl<'w> std::ops::Deref for Run<'w> {
    type Target = Driver<&'w Workflow>;
    fn deref(&self) -> &Driver<&'w Workflow> {
        &self.driver
    }
}

impl std::ops::DerefMut for Run<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.driver
    }
}

impl<'w> Run<'w> {
    pub fn start(wf: &'w Workflow, data: Value) -> Run<'w> {
        let mut run = Run::created(wf, data);
        run.input(Input::Start).expect("start");
        run
    }

    /// Creates a case without starting it.
    pub fn created(wf: &'w Workflow, data: Value) -> Run<'w> {
        let data: Map<String, Value> = data.as_object().cloned().unwrap_or_default();
        Run {
            driver: Driver::create(wf, CaseId(uuid::Uuid::from_u128(7)), Timestamp(0), data),
        }
    }

    pub fn input(&mut self, input: Input) -> Result<Step, Error> {
        self.driver.apply(input)
    }

    /// Returns the live work item of a task.
    pub fn item(&self, task: &str) -> WorkItemId {
        self.items(task)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no live work item for {task}"))
    }

    pub fn items(&self, task: &str) -> Vec<WorkItemId> {
        self.case()
            .work_items()
            .filter(|(_, w)| w.task.task.as_str() == task)
            .map(|(id, _)| *id)
            .collect()
    }

    pub fn complete(&mut self, task: &str, output: Value) {
        let item = self.item(task);
        self.input(Input::CompleteWorkItem {
            item,
            user: "ann".into(),
            output,
        })
        .unwrap_or_else(|e| panic!("complete {task}: {e}"));
    }

    pub fn completed(&self) -> Vec<String> {
        self.names(|k| matches!(k, EventKind::TaskCompleted { .. }))
    }

    pub fn names(&self, f: impl Fn(&EventKind) -> bool) -> Vec<String> {
        self.history()
            .iter()
            .filter(|e| f(&e.kind))
            .filter_map(|e| e.kind.task().map(|t| t.task.to_string()))
            .collect()
    }

    /// Checks that replaying the recorded history rebuilds the case exactly, and that
    /// sequence numbers run from 1 without gaps.
    pub fn check_replay(&self) {
        if let Err(e) = self.driver.check_replay() {
            panic!("{e}");
        }
    }
}
