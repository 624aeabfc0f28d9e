//! Property tests: random valid nets driven by random inputs, checked after every step against
//! the invariants of the semantics (refusals change nothing, replay rebuilds the case, effects
//! agree with the state, splits route as defined, ended cases hold nothing, running cases never
//! hang, `outstanding` is what is live), and the OR-join on random split/merge blocks.
//!
//! This file holds the properties, the minimal cases they found and what the parts share: the
//! predicates the generators use and how they evaluate. `generator` builds random nets, `driver`
//! runs a case on them, `checks` asserts the invariants after each step, and `orjoin` builds and
//! checks OR-split/OR-join blocks.

mod checks;
mod driver;
mod generator;
mod orjoin;
mod snapshots;

use knhk_core::model::*;
use knhk_core::*;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{Map, Value, json};

use driver::Driver;
use generator::{Generated, random_workflow};
use orjoin::{OrNet, block};

type Check = Result<(), TestCaseError>;

const USERS: [&str; 3] = ["ann", "bob", "cy"];
/// Predicates of generated splits; `holds` evaluates them the way CEL does.
const GUARDS: [&str; 8] = [
    "b0", "!b0", "b1", "b0 && b1", "n > 1", "n <= 1", "true", "false",
];
const LOOP_GUARD: &str = "loops < 2";
const UNDEFINED_GUARD: &str = "undefined_flag";

fn holds(src: &str, data: &Map<String, Value>) -> Option<bool> {
    let b = |k: &str| data.get(k).and_then(Value::as_bool);
    let i = |k: &str| data.get(k).and_then(Value::as_i64);
    match src {
        "true" => Some(true),
        "false" => Some(false),
        "b0" | "b1" | "b2" | "b3" => b(src),
        "!b0" => b("b0").map(|x| !x),
        "b0 && b1" => Some(b("b0")? && b("b1")?),
        "b1 && b2" => Some(b("b1")? && b("b2")?),
        "n > 1" => i("n").map(|n| n > 1),
        "n <= 1" => i("n").map(|n| n <= 1),
        LOOP_GUARD => i("loops").map(|n| n < 2),
        _ => None,
    }
}

fn flow(to: &str) -> Flow {
    Flow {
        to: to.into(),
        predicate: None,
        ordering: None,
        is_default: false,
        on_failure: false,
    }
}

fn spec(nets: Vec<Net>) -> Specification {
    Specification {
        id: "urn:prop".into(),
        name: None,
        version: None,
        documentation: None,
        root_net: nets[0].id.clone(),
        nets,
        initial_data: Default::default(),
    }
}

fn human_binding(four_eyes: bool) -> TaskBinding {
    TaskBinding::Human(HumanBinding {
        roles: vec!["r".into()],
        allocation: Allocation::RoleOffer,
        four_eyes,
        distributed_at_runtime: false,
    })
}

fn pick<T>(xs: &[T], a: usize) -> Option<&T> {
    if xs.is_empty() {
        None
    } else {
        xs.get(a % xs.len())
    }
}

// ---------------------------------------------------------------------------------------------
// Properties

proptest! {
    // Failures print their minimal input; no regression file is written into the tree.
    // KNHK_PROPTEST_CASES=20000 runs a deeper search than the default 1,000 cases.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("KNHK_PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(1000),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Random nets under random inputs keep every invariant after every step.
    #[test]
    fn random_cases_keep_the_invariants_after_every_step(
        generated in random_workflow(),
        acts in vec((0u8..100, any::<u16>(), any::<u16>()), 1..=60),
    ) {
        let Generated { spec, data } = generated;
        let wf = Workflow::new(spec);
        prop_assume!(wf.is_ok(), "refused: {:?}", wf.err());
        let wf = wf.map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut d = Driver::start(&wf, data)?;
        let mut after_end = 0;
        for (kind, a, b) in acts {
            if driver::ended(d.case()) {
                after_end += 1;
                if after_end > 3 {
                    break;
                }
            }
            let (input, refused) = d.choose(kind, a as usize, b as usize);
            d.apply(input, refused, 1 + i64::from(a % 500))?;
        }
    }

    /// OR-split/OR-join blocks: the join fires exactly once per activation of its split, only
    /// after every chosen branch finished, never for branches not chosen, and the case ends.
    #[test]
    fn or_join_fires_once_after_every_chosen_branch(
        blocks in vec(block(1), 1..=2),
        data in vec(any::<bool>(), 4),
        picks in vec(any::<u16>(), 40),
    ) {
        let mut b = OrNet::default();
        let mut next = "end".to_string();
        for blk in blocks.iter().rev() {
            next = b.block(blk, &next);
        }
        let net = Net {
            id: NetId::new("or"),
            name: None,
            input_condition: Condition { id: "start".into(), name: None, flows: vec![flow(&next)] },
            output_condition: Condition { id: "end".into(), name: None, flows: vec![] },
            conditions: vec![],
            tasks: b.tasks.clone(),
        };
        let wf = Workflow::new(spec(vec![net]));
        prop_assert!(wf.is_ok(), "refused: {:?}", wf.err());
        let wf = wf.map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut data: Map<String, Value> = data
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("b{i}"), json!(v)))
            .collect();
        data.insert("loops".into(), json!(0));
        let mut d = Driver::start(&wf, data)?;
        if !b.tasks.iter().any(|t| matches!(t.binding, TaskBinding::Human(_))) {
            prop_assert_eq!(d.case().status(), CaseStatus::Completed, "all-empty net did not complete");
        }
        for p in picks {
            if d.case().status().is_final() {
                break;
            }
            let humans = d.humans();
            let Some((item, _)) = pick(&humans, p as usize) else { break };
            let input = Input::CompleteWorkItem { item: *item, user: "ann".into(), output: json!({}) };
            d.apply(input, false, 1)?;
        }
        prop_assert_eq!(d.case().status(), CaseStatus::Completed);
        b.check(d.events())?;
    }
}

// ---------------------------------------------------------------------------------------------
// Minimal cases the properties found

/// start -> a (human; fails into `end`) / b -> end. A routed failure that puts a token in the
/// root net's output condition ends the case, as a completion would.
#[test]
fn failure_flow_into_the_output_condition_completes_the_case() {
    let a = Task {
        binding: human_binding(false),
        flows: vec![
            flow("b"),
            Flow {
                on_failure: true,
                ..flow("end")
            },
        ],
        ..Task::empty("a")
    };
    let b = Task {
        flows: vec![flow("end")],
        ..Task::empty("b")
    };
    let net = Net {
        id: NetId::new("n"),
        name: None,
        input_condition: Condition {
            id: "start".into(),
            name: None,
            flows: vec![flow("a")],
        },
        output_condition: Condition {
            id: "end".into(),
            name: None,
            flows: vec![],
        },
        conditions: vec![],
        tasks: vec![a, b],
    };
    let wf = Workflow::new(spec(vec![net])).expect("valid");
    let mut d = Driver::start(&wf, Map::new()).expect("start");
    let (item, _) = d.humans()[0].clone();
    let fail = Input::FailWorkItem {
        item,
        reason: "gave up".into(),
    };
    d.apply(fail, false, 1).expect("invariants hold");
    assert_eq!(d.case().status(), CaseStatus::Completed);
}

/// A composite task whose sub-net ran to its end: `marking` lists live net instances only,
/// so the ended sub-net's token in its output condition is not reported.
#[test]
fn marking_leaves_out_ended_sub_nets() {
    let net = |id: &str, task: Task| Net {
        id: NetId::new(id),
        name: None,
        input_condition: Condition {
            id: format!("{id}_start").as_str().into(),
            name: None,
            flows: vec![flow(task.id.as_str())],
        },
        output_condition: Condition {
            id: format!("{id}_end").as_str().into(),
            name: None,
            flows: vec![],
        },
        conditions: vec![],
        tasks: vec![task],
    };
    let composite = Task {
        decomposition: Some(NetId::new("sub")),
        flows: vec![flow("wait")],
        ..Task::empty("composite")
    };
    let mut root = net("root", composite);
    root.tasks.push(Task {
        binding: human_binding(false),
        flows: vec![flow("root_end")],
        ..Task::empty("wait")
    });
    let inner = Task {
        flows: vec![flow("sub_end")],
        ..Task::empty("inner")
    };
    let wf = Workflow::new(spec(vec![root, net("sub", inner)])).expect("valid");
    let d = Driver::start(&wf, Map::new()).expect("start");
    assert_eq!(
        d.case().marking(&wf),
        vec![(0, ElementId::new("composite__wait"), 1)]
    );
}
