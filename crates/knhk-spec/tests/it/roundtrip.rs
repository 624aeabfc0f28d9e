//! Writing then reading gives back the same specification: for every example and legacy file
//! that parses, and for random specifications.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use knhk_core::model::{
    Allocation, Condition, ConnectorBinding, ControlType, CreationMode, Expression, Flow,
    HumanBinding, MultipleInstance, Net, RuntimeHints, Task, TaskBinding, TaskTimer, TimerAction,
    TimerTrigger, TriggerKind,
};
use knhk_core::{ElementId, NetId, Specification};
use knhk_spec::{Source, parse_turtle, write_turtle};
use proptest::prelude::*;

const WRITTEN: &str = "file:///elsewhere/written.ttl";

fn round_trip(spec: &Specification) -> Specification {
    let text = write_turtle(spec);
    // Output depends on the specification only.
    assert_eq!(text, write_turtle(spec));
    parse_turtle(&Source {
        name: "written.ttl",
        base_iri: WRITTEN,
        text: &text,
    })
    .unwrap_or_else(|e| panic!("written turtle does not read back: {e}\n{text}"))
}

fn turtle_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "ttl"));
    files.sort();
    files
}

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

#[test]
fn example_and_legacy_files_round_trip() {
    let mut checked = 0;
    for dir in ["legacy", "patterns"] {
        for file in turtle_files(&examples().join(dir)) {
            let text = std::fs::read_to_string(&file).unwrap();
            let name = file.display().to_string();
            let Ok(spec) = parse_turtle(&Source {
                name: &name,
                base_iri: "file:///examples/wf.ttl",
                text: &text,
            }) else {
                continue;
            };
            assert_eq!(round_trip(&spec), spec, "{name}");
            checked += 1;
        }
    }
    // All legacy files but atm_transaction.ttl parse (their refusals come from validation).
    assert!(checked >= 7, "only {checked} files round-tripped");
}

#[test]
fn a_full_task_round_trips() {
    let mut task = Task::empty("review");
    task.name = Some("Review \"it\"\nplease".to_owned());
    task.join = ControlType::Or;
    task.split = ControlType::And;
    task.flows = vec![Flow {
        to: ElementId::new("end"),
        predicate: Some(Expression::xpath("/data/amount > 10")),
        ordering: Some(-3),
        is_default: true,
        on_failure: true,
    }];
    task.binding = TaskBinding::Human(HumanBinding {
        roles: vec!["clerk".to_owned(), "manager".to_owned()],
        allocation: Allocation::ShortestQueue,
        four_eyes: true,
        distributed_at_runtime: true,
    });
    task.timer = Some(TaskTimer {
        trigger: TimerTrigger::OnStarted,
        duration_ms: 90_000,
        action: TimerAction::Delay,
    });
    task.multiple_instance = Some(MultipleInstance {
        minimum: 2,
        maximum: Some(5),
        threshold: Some(3),
        creation: CreationMode::Dynamic,
        split: Some(Expression::cel("items")),
        item_variable: "line".to_owned(),
        join_variable: Some("results".to_owned()),
    });
    task.input_mapping = Some(Expression::cel("{\"x\": x}"));
    task.output_mapping = Some(Expression::cel("output"));
    task.runtime = RuntimeHints {
        max_attempts: Some(3),
        backoff_ms: Some(250),
        timeout_ms: Some(10_000),
        slo_class: Some("gold".to_owned()),
    };
    let spec = single_net(vec![task]);
    assert_eq!(round_trip(&spec), spec);
}

fn single_net(tasks: Vec<Task>) -> Specification {
    Specification {
        id: "urn:example:wf".to_owned(),
        name: Some("wf".to_owned()),
        version: Some("1.0".to_owned()),
        documentation: None,
        root_net: NetId::new("main"),
        nets: vec![Net {
            id: NetId::new("main"),
            name: None,
            input_condition: Condition {
                id: ElementId::new("start"),
                name: None,
                flows: Vec::new(),
            },
            output_condition: Condition {
                id: ElementId::new("end"),
                name: None,
                flows: Vec::new(),
            },
            conditions: Vec::new(),
            tasks,
        }],
        initial_data: Default::default(),
    }
}

#[test]
fn initial_values_and_removed_flow_tokens_round_trip() {
    let mut a = Task::empty("a");
    a.flows = vec![Flow {
        to: ElementId::new("b"),
        predicate: None,
        ordering: None,
        is_default: false,
        on_failure: false,
    }];
    let mut b = Task::empty("b");
    b.flows = vec![Flow {
        to: ElementId::new("end"),
        ..a.flows[0].clone()
    }];
    b.cancellation_set = vec![ElementId::new("a__b")];
    let mut spec = single_net(vec![a, b]);
    spec.initial_data = serde_json::json!({
        "ok": true, "n": -3, "x": 2.5, "s": " text ", "empty": ""
    })
    .as_object()
    .cloned()
    .unwrap_or_default();
    let turtle = knhk_spec::write_turtle(&spec);
    assert!(turtle.contains("yawl:hasRemovesTokensFromFlow"), "{turtle}");
    assert_eq!(round_trip(&spec), spec);
}

// Random specifications: ids are made unique by a counter suffix, so that any text (spaces,
// quotes, '#', '<', non-ASCII) can appear in them.

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{1,6}",
        any::<String>().prop_map(|s| s.chars().take(12).collect()),
        Just(String::new()),
    ]
}

fn expression() -> impl Strategy<Value = Expression> {
    (text(), any::<bool>()).prop_map(|(source, cel)| {
        if cel {
            Expression::cel(source)
        } else {
            Expression::xpath(source)
        }
    })
}

fn control() -> impl Strategy<Value = ControlType> {
    prop_oneof![
        Just(ControlType::And),
        Just(ControlType::Xor),
        Just(ControlType::Or)
    ]
}

fn binding() -> impl Strategy<Value = TaskBinding> {
    prop_oneof![
        Just(TaskBinding::Empty),
        (
            proptest::collection::btree_set("[a-z ]{1,5}", 1..3),
            prop_oneof![
                Just(Allocation::RoleOffer),
                Just(Allocation::RoundRobin),
                Just(Allocation::ShortestQueue)
            ],
            any::<bool>(),
            any::<bool>()
        )
            .prop_map(|(roles, allocation, four_eyes, distributed_at_runtime)| {
                TaskBinding::Human(HumanBinding {
                    roles: roles.into_iter().collect(),
                    allocation,
                    four_eyes,
                    distributed_at_runtime,
                })
            }),
        (
            text(),
            proptest::collection::btree_map(text(), text(), 0..3)
        )
            .prop_map(
                |(connector, settings): (String, BTreeMap<String, String>)| {
                    TaskBinding::Connector(ConnectorBinding {
                        connector,
                        settings,
                    })
                }
            ),
        (text(), any::<bool>()).prop_map(|(event, persistent)| TaskBinding::Trigger {
            event,
            trigger_kind: if persistent {
                TriggerKind::Persistent
            } else {
                TriggerKind::Transient
            },
        }),
    ]
}

fn multiple_instance() -> impl Strategy<Value = Option<MultipleInstance>> {
    proptest::option::of(
        (
            any::<u32>(),
            proptest::option::of(any::<u32>()),
            proptest::option::of(1..u32::MAX),
            any::<bool>(),
            proptest::option::of(expression().prop_map(|e| Expression::cel(e.source))),
            prop_oneof![Just("item".to_owned()), text()],
            proptest::option::of(text()),
        )
            .prop_map(
                |(minimum, maximum, threshold, dynamic, split, item, join)| MultipleInstance {
                    minimum,
                    maximum,
                    threshold,
                    creation: if dynamic {
                        CreationMode::Dynamic
                    } else {
                        CreationMode::Static
                    },
                    split,
                    item_variable: item,
                    join_variable: join,
                },
            ),
    )
}

fn timer() -> impl Strategy<Value = Option<TaskTimer>> {
    proptest::option::of(
        (
            any::<bool>(),
            prop_oneof![any::<u64>(), (0..100u64).prop_map(|n| n * 60_000)],
            any::<bool>(),
        )
            .prop_map(|(started, duration_ms, delay)| TaskTimer {
                trigger: if started {
                    TimerTrigger::OnStarted
                } else {
                    TimerTrigger::OnEnabled
                },
                duration_ms,
                action: if delay {
                    TimerAction::Delay
                } else {
                    TimerAction::Expire
                },
            }),
    )
}

fn runtime() -> impl Strategy<Value = RuntimeHints> {
    (
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<u64>()),
        proptest::option::of(any::<u64>()),
        proptest::option::of(text()),
    )
        .prop_map(
            |(max_attempts, backoff_ms, timeout_ms, slo_class)| RuntimeHints {
                max_attempts,
                backoff_ms,
                timeout_ms,
                slo_class,
            },
        )
}

/// A flow as indices: target (modulo the number of elements), predicate, ordering, default.
type FlowSeed = (usize, Option<Expression>, Option<i64>, bool);

fn flows() -> impl Strategy<Value = Vec<FlowSeed>> {
    proptest::collection::vec(
        (
            any::<usize>(),
            proptest::option::of(expression()),
            proptest::option::of(any::<i64>()),
            any::<bool>(),
        ),
        0..3,
    )
}

#[derive(Debug, Clone)]
struct TaskSeed {
    name: Option<String>,
    join: ControlType,
    split: ControlType,
    flows: Vec<FlowSeed>,
    cancels: Vec<usize>,
    mi: Option<MultipleInstance>,
    decomposes: Option<usize>,
    binding: TaskBinding,
    timer: Option<TaskTimer>,
    input: Option<Expression>,
    output: Option<Expression>,
    runtime: RuntimeHints,
}

fn task_seed() -> impl Strategy<Value = TaskSeed> {
    (
        (
            proptest::option::of(text()),
            control(),
            control(),
            flows(),
            proptest::collection::vec(any::<usize>(), 0..3),
        ),
        (
            multiple_instance(),
            proptest::option::of(any::<usize>()),
            binding(),
            timer(),
        ),
        (
            proptest::option::of(expression().prop_map(|e| Expression::cel(e.source))),
            proptest::option::of(expression().prop_map(|e| Expression::cel(e.source))),
            runtime(),
        ),
    )
        .prop_map(
            |(
                (name, join, split, flows, cancels),
                (mi, decomposes, binding, timer),
                (input, output, runtime),
            )| {
                TaskSeed {
                    name,
                    join,
                    split,
                    flows,
                    cancels,
                    mi,
                    decomposes,
                    binding,
                    timer,
                    input,
                    output,
                    runtime,
                }
            },
        )
}

#[derive(Debug, Clone)]
struct NetSeed {
    id: String,
    name: Option<String>,
    condition_names: Vec<Option<String>>,
    condition_flows: Vec<Vec<FlowSeed>>,
    tasks: Vec<(String, TaskSeed)>,
}

fn net_seed() -> impl Strategy<Value = NetSeed> {
    (
        text(),
        proptest::option::of(text()),
        proptest::collection::vec((proptest::option::of(text()), flows()), 2..4),
        proptest::collection::vec((text(), task_seed()), 1..4),
    )
        .prop_map(|(id, name, conditions, tasks)| NetSeed {
            id,
            name,
            condition_names: conditions.iter().map(|(n, _)| n.clone()).collect(),
            condition_flows: conditions.into_iter().map(|(_, f)| f).collect(),
            tasks,
        })
}

fn specification() -> impl Strategy<Value = Specification> {
    (
        prop_oneof![text(), Just("http://example.org/wf".to_owned())],
        proptest::option::of(text()),
        proptest::option::of(text()),
        proptest::option::of(text()),
        proptest::collection::vec(net_seed(), 1..3),
        any::<usize>(),
    )
        .prop_map(|(id, name, version, documentation, nets, root)| {
            build(id, name, version, documentation, nets, root)
        })
}

fn build(
    id: String,
    name: Option<String>,
    version: Option<String>,
    documentation: Option<String>,
    seeds: Vec<NetSeed>,
    root: usize,
) -> Specification {
    let mut counter = 0;
    let mut unique = |base: &str| {
        counter += 1;
        format!("{base}{counter}")
    };
    let net_ids: Vec<NetId> = seeds.iter().map(|s| NetId::new(unique(&s.id))).collect();
    let mut nets = Vec::new();
    for seed in &seeds {
        // Conditions first (input, output, others), then tasks: flows pick targets among them.
        let condition_ids: Vec<ElementId> = seed
            .condition_names
            .iter()
            .map(|_| ElementId::new(unique("c")))
            .collect();
        let task_ids: Vec<ElementId> = seed
            .tasks
            .iter()
            .map(|(base, _)| ElementId::new(unique(base)))
            .collect();
        let all: Vec<ElementId> = condition_ids.iter().chain(&task_ids).cloned().collect();
        let make_flows = |seeds: &[FlowSeed]| -> Vec<Flow> {
            seeds
                .iter()
                .map(|(to, predicate, ordering, is_default)| Flow {
                    to: all[to % all.len()].clone(),
                    predicate: predicate.clone(),
                    ordering: *ordering,
                    is_default: *is_default,
                    on_failure: ordering.is_some_and(|o| o % 2 == 0),
                })
                .collect()
        };
        let mut conditions: Vec<Condition> = condition_ids
            .iter()
            .zip(&seed.condition_names)
            .zip(&seed.condition_flows)
            .map(|((id, name), flows)| Condition {
                id: id.clone(),
                name: name.clone(),
                flows: make_flows(flows),
            })
            .collect();
        let tasks = task_ids
            .iter()
            .zip(&seed.tasks)
            .map(|(id, (_, t))| {
                let mut cancellation_set: Vec<ElementId> = Vec::new();
                for c in &t.cancels {
                    let e = all[c % all.len()].clone();
                    if !cancellation_set.contains(&e) {
                        cancellation_set.push(e);
                    }
                }
                Task {
                    id: id.clone(),
                    name: t.name.clone(),
                    join: t.join,
                    split: t.split,
                    flows: make_flows(&t.flows),
                    cancellation_set,
                    multiple_instance: t.mi.clone(),
                    decomposition: t.decomposes.map(|d| net_ids[d % net_ids.len()].clone()),
                    binding: t.binding.clone(),
                    timer: t.timer,
                    input_mapping: t.input.clone(),
                    output_mapping: t.output.clone(),
                    runtime: t.runtime.clone(),
                }
            })
            .collect();
        let input_condition = conditions.remove(0);
        let output_condition = conditions.remove(0);
        nets.push(Net {
            id: net_ids[nets.len()].clone(),
            name: seed.name.clone(),
            input_condition,
            output_condition,
            conditions,
            tasks,
        });
    }
    Specification {
        id,
        name,
        version,
        documentation,
        root_net: net_ids[root % net_ids.len()].clone(),
        nets,
        initial_data: Default::default(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn random_specifications_round_trip(spec in specification()) {
        prop_assert_eq!(round_trip(&spec), spec);
    }
}
