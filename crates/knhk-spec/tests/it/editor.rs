//! The YAWL XML files under `examples/yawl/`, written the way the YAWL editors write them
//! (an AND split on every task, offers left to an administrator, Beta files without
//! resourcing, degenerate splits with `false()` default flows, initial values, tokens removed
//! from a flow, layout): each loads, with the notes expected, and runs as YAWL says.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::path::PathBuf;

use knhk_core::model::TaskBinding;
use knhk_core::{
    Case, CaseId, CaseStatus, Event, EventKind, Input, SequentialIds, Step, Timestamp, WorkItemId,
    Workflow,
};
use knhk_spec::{Options, Source, parse_turtle, write_turtle};
use serde_json::{Value, json};
use uuid::Uuid;

fn file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/yawl")
        .join(name)
}

fn load(name: &str, options: &Options) -> knhk_spec::Loaded {
    knhk_spec::load_file_with(&file(name), options)
        .unwrap_or_else(|e| panic!("{e}"))
        .0
}

/// Tells whether a note on `element` contains `words`.
fn noted(loaded: &knhk_spec::Loaded, element: &str, words: &str) -> bool {
    loaded
        .notes
        .iter()
        .any(|n| n.element == element && n.note.contains(words) && n.iri.ends_with(element))
}

struct Run {
    wf: Workflow,
    case: Case,
    ids: SequentialIds,
    events: Vec<Event>,
    now: i64,
}

impl Run {
    fn start(wf: Workflow, data: Value) -> Run {
        let Value::Object(data) = data else {
            panic!("case data must be an object")
        };
        let (case, step) = Case::create(&wf, CaseId(Uuid::from_u128(7)), Timestamp(0), data);
        let mut run = Run {
            wf,
            case,
            ids: SequentialIds::default(),
            events: step.events,
            now: 0,
        };
        run.apply(Input::Start);
        run
    }

    fn apply(&mut self, input: Input) -> Step {
        self.now += 1;
        let what = format!("{input:?}");
        let step = self
            .case
            .apply(&self.wf, Timestamp(self.now), input, &mut self.ids)
            .unwrap_or_else(|e| panic!("{what} refused: {e}"));
        self.events.extend(step.events.iter().cloned());
        step
    }

    fn items(&self, task: &str) -> Vec<WorkItemId> {
        self.case
            .work_items()
            .filter(|(_, w)| w.task.task.as_str() == task)
            .map(|(id, _)| *id)
            .collect()
    }

    fn item(&self, task: &str) -> WorkItemId {
        match self.items(task).as_slice() {
            [one] => *one,
            other => panic!("expected one work item of {task}, found {other:?}"),
        }
    }

    fn complete(&mut self, task: &str) -> Step {
        let item = self.item(task);
        self.apply(Input::CompleteWorkItem {
            item,
            user: "ann".into(),
            output: json!({}),
        })
    }

    fn completed(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::TaskCompleted { task, .. } => Some(task.task.to_string()),
                _ => None,
            })
            .collect()
    }

    fn check_replay(&self) {
        let replayed = Case::replay(&self.wf, self.case.id(), &self.events).expect("replay");
        assert_eq!(replayed, self.case);
    }

    /// Adds this run of `examples/yawl/FILE` to the corpus of recorded histories (when
    /// `KNHK_RECORD_HISTORIES` is set), as the pattern runs are.
    fn record(&self, file: &str) {
        crate::histories::record_editor(file, &self.wf, &self.case, &self.events);
    }
}

/// The roles a task's work items are offered to, and whether an administrator distributes them.
fn offered_to(wf: &Workflow, task: &str) -> (Vec<String>, bool) {
    let task = wf
        .specification()
        .nets
        .iter()
        .flat_map(|n| &n.tasks)
        .find(|t| t.id.as_str() == task)
        .unwrap_or_else(|| panic!("no task {task}"));
    match &task.binding {
        TaskBinding::Human(h) => (h.roles.clone(), h.distributed_at_runtime),
        other => panic!("{task:?} is not a human task: {other:?}"),
    }
}

#[test]
fn every_editor_file_loads_and_reads_back_from_its_turtle_form() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(file(""))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yawl"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "the editor-shaped examples are missing");
    for path in files {
        let (loaded, _) =
            knhk_spec::load_file_with(&path, &Options::default()).unwrap_or_else(|e| panic!("{e}"));
        let spec = loaded.workflow.specification();
        let text = write_turtle(spec);
        let back = parse_turtle(&Source {
            name: "written.ttl",
            base_iri: "file:///elsewhere/written.ttl",
            text: &text,
        })
        .unwrap_or_else(|e| panic!("{}: turtle does not read back: {e}\n{text}", path.display()));
        assert_eq!(&back, spec, "{}", path.display());
        // The Turtle form loads too, with the same validation notes.
        let turtle = knhk_spec::load_turtle_with(
            &Source {
                name: "written.ttl",
                base_iri: "file:///elsewhere/written.ttl",
                text: &text,
            },
            &Options::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            turtle.workflow.notes(),
            loaded.workflow.notes(),
            "{}",
            path.display()
        );
    }
}

#[test]
fn leave_request_notes_its_degenerate_splits_and_its_administrator_queue() {
    let loaded = load("leave_request.yawl", &Options::default());
    // The editor's AND split on every task with one flow, an AND join with one flow, and an OR
    // split whose one flow is `false()` and the default: notes, not errors.
    assert!(noted(
        &loaded,
        "Submit_3",
        "AND split has one outgoing flow"
    ));
    assert!(noted(&loaded, "Route_4", "AND join has one incoming flow"));
    assert!(noted(
        &loaded,
        "Archive_7",
        "OR split has one outgoing flow and behaves as a plain one (taken whatever its predicate)"
    ));
    assert!(noted(
        &loaded,
        "Submit_3",
        "distributed at run time (its offer is made by the user (<offer initiator=\"user\">) and names no role)"
    ));
    assert_eq!(
        offered_to(&loaded.workflow, "Submit_3"),
        (vec!["admin".to_owned()], true)
    );
    assert_eq!(
        offered_to(&loaded.workflow, "Review_5"),
        (vec!["RO-manager".to_owned()], false)
    );
    // The administrators' role is an option of the loader.
    let ops = load(
        "leave_request.yawl",
        &Options {
            admin_role: "ops".to_owned(),
            ..Options::default()
        },
    );
    assert_eq!(
        offered_to(&ops.workflow, "Submit_3"),
        (vec!["ops".to_owned()], true)
    );
}

#[test]
fn leave_request_starts_from_its_initial_values_and_routes_on_one() {
    let wf = load("leave_request.yawl", &Options::default()).workflow;
    let mut run = Run::start(wf, json!({}));
    // A variable without an initial value is not set.
    assert_eq!(
        Value::Object(run.case.data().clone()),
        json!({"days": 3, "paid": true, "reason": "holiday"})
    );
    // The administrator offers Submit to the clerks; a clerk takes it and completes it.
    let submit = run.item("Submit_3");
    run.apply(Input::OfferWorkItem {
        item: submit,
        roles: vec!["clerk".into()],
    });
    assert_eq!(
        run.case
            .work_item(&submit)
            .and_then(|w| w.offered_to.clone()),
        Some(vec!["clerk".into()])
    );
    run.apply(Input::AllocateWorkItem {
        item: submit,
        user: "ann".into(),
    });
    run.complete("Submit_3");
    // days = 3 (the initial value): not above 5, so the default flow: approved at once.
    assert_eq!(
        run.completed(),
        ["Submit_3", "Route_4", "Approve_6", "Archive_7"]
    );
    assert_eq!(run.case.status(), CaseStatus::Completed);
    run.check_replay();
    run.record("leave_request.yawl");
}

#[test]
fn leave_request_data_given_at_creation_overrides_an_initial_value() {
    let wf = load("leave_request.yawl", &Options::default()).workflow;
    let mut run = Run::start(wf, json!({"days": 10}));
    assert_eq!(run.case.data()["days"], json!(10));
    assert_eq!(run.case.data()["reason"], json!("holiday"));
    run.complete("Submit_3");
    // days = 10: the manager reviews; the OR split of Archive takes its `false()` flow.
    run.complete("Review_5");
    assert_eq!(
        run.completed(),
        ["Submit_3", "Route_4", "Review_5", "Archive_7"]
    );
    assert_eq!(run.case.status(), CaseStatus::Completed);
    run.check_replay();
    run.record("leave_request.yawl");
}

#[test]
fn payment_reminder_removes_the_token_on_the_flow_when_payment_is_recorded() {
    let loaded = load("payment_reminder.yawl", &Options::default());
    let mut run = Run::start(loaded.workflow, json!({}));
    // The reminder was prepared: its token waits on the flow to Send reminder.
    let flow = "PrepareReminder_4__SendReminder_5";
    assert!(
        run.case
            .marking(&run.wf)
            .iter()
            .any(|(_, c, n)| c.as_str() == flow && *n == 1),
        "{:?}",
        run.case.marking(&run.wf)
    );
    let reminder = run.item("SendReminder_5");
    let step = run.complete("RecordPayment_6");
    assert!(
        step.events.iter().any(|e| e.kind
            == EventKind::TokensRemoved {
                net_instance: 0,
                condition: flow.into(),
                count: 1,
            }),
        "{:#?}",
        step.events
    );
    assert!(
        step.events
            .iter()
            .any(|e| e.kind == EventKind::WorkItemCancelled { item: reminder })
    );
    // The case goes on without the reminder: only Close is left to do.
    assert_eq!(run.case.status(), CaseStatus::Running);
    assert!(run.items("SendReminder_5").is_empty());
    assert!(
        !run.case
            .marking(&run.wf)
            .iter()
            .any(|(_, c, _)| c.as_str() == flow)
    );
    run.complete("Close_7");
    assert_eq!(run.case.status(), CaseStatus::Completed);
    assert!(!run.completed().contains(&"SendReminder_5".to_owned()));
    run.check_replay();
    run.record("payment_reminder.yawl");
}

#[test]
fn payment_reminder_sends_the_reminder_when_it_comes_first() {
    let wf = load("payment_reminder.yawl", &Options::default()).workflow;
    let mut run = Run::start(wf, json!({}));
    run.complete("SendReminder_5");
    // Close runs once for the reminder; the payment is still awaited.
    assert_eq!(run.items("RecordPayment_6").len(), 1);
    assert!(run.completed().contains(&"SendReminder_5".to_owned()));
    run.check_replay();
    run.record("payment_reminder.yawl");
}

#[test]
fn a_beta_file_without_resourcing_goes_to_the_administrators_and_caps_its_threshold() {
    let loaded = load("paper_review_beta.yawl", &Options::default());
    for task in ["submit_3", "review_4", "decide_5"] {
        assert!(
            noted(
                &loaded,
                task,
                "its work items go to the administrators' queue, role \"admin\""
            ),
            "{:#?}",
            loaded.notes
        );
        assert_eq!(
            offered_to(&loaded.workflow, task),
            (vec!["admin".to_owned()], true)
        );
    }
    assert!(noted(
        &loaded,
        "review_4",
        "multiple-instance threshold 3 is above the maximum 2"
    ));
    assert!(noted(&loaded, "decide_5", "AND join has one incoming flow"));
    let mut run = Run::start(loaded.workflow, json!({}));
    assert_eq!(run.case.data()["round"], json!(1));
    run.complete("submit_3");
    let reviews = run.items("review_4");
    assert_eq!(reviews.len(), 2);
    run.apply(Input::CompleteWorkItem {
        item: reviews[0],
        user: "ann".into(),
        output: json!({}),
    });
    assert!(run.items("decide_5").is_empty());
    run.apply(Input::CompleteWorkItem {
        item: reviews[1],
        user: "bob".into(),
        output: json!({}),
    });
    // A threshold of 3 over 2 instances: the task completes when both did.
    run.complete("decide_5");
    assert_eq!(run.case.status(), CaseStatus::Completed);
    run.check_replay();
    run.record("paper_review_beta.yawl");
}

#[test]
fn a_yawl_2_file_with_a_system_offer_to_no_one_goes_to_the_administrators() {
    let loaded = load("room_booking_2x.yawl", &Options::default());
    // A system offer that reaches no one: YAWL passes the item to an administrator, and its
    // system allocator (RandomChoice, which knhk does not have) is never consulted.
    assert!(
        noted(
            &loaded,
            "Request_3",
            "its offer is made by the system (<offer initiator=\"system\">) to no one, so an administrator distributes it"
        ),
        "{:#?}",
        loaded.notes
    );
    assert_eq!(
        offered_to(&loaded.workflow, "Request_3"),
        (vec!["admin".to_owned()], true)
    );
    // The root net's input parameter is one the case must be given.
    assert!(noted(
        &loaded,
        "RoomBooking",
        "the root net takes the input parameter \"requester\""
    ));
    // The editor compares a boolean with a string; knhk compares it with the boolean.
    assert!(noted(
        &loaded,
        "Book_4",
        "compares the xs:boolean variable \"urgent\" with the string 'true' or 'false'"
    ));
    assert!(noted(
        &loaded,
        "Book_4",
        "compares the numeric variable \"guests\" with a string holding a number"
    ));
    let mut run = Run::start(loaded.workflow, json!({}));
    assert_eq!(run.case.data()["urgent"], json!(false));
    assert_eq!(run.case.data()["guests"], json!(12));
    // An xs:float initial value is a number, an empty xs:string one the empty string; the
    // sub-net's empty initial values declare nothing.
    assert_eq!(run.case.data()["budget"], json!(120.5));
    assert_eq!(run.case.data()["room"], json!(""));
    assert!(run.case.data().get("confirmation").is_none());
    run.complete("Request_3");
    // The float, the boolean and the number route: 120.5 > 100.0, urgent is 'false' and
    // 12 > '10', so Check runs.
    assert_eq!(
        run.completed(),
        ["Request_3", "Reserve_8", "Book_4", "Check_5"]
    );
    assert_eq!(run.case.status(), CaseStatus::Completed);
    run.check_replay();
    run.record("room_booking_2x.yawl");
}

#[test]
fn a_sub_net_variable_with_an_empty_initial_value_declares_none() {
    for ty in ["string", "long", "boolean"] {
        let text = with_variables(
            &format!(
                "<localVariable><index>0</index><name>v</name><type>{ty}</type><namespace>{XSD}</namespace><initialValue /></localVariable>"
            ),
            true,
        );
        let loaded = knhk_spec::load_yawl_xml_with(
            &Source {
                name: "wf.yawl",
                base_iri: "file:///defs/wf.yawl",
                text: &text,
            },
            &Options::default(),
        )
        .unwrap_or_else(|e| panic!("{ty}: {e}"));
        assert!(loaded.workflow.specification().initial_data.is_empty());
    }
}

/// A YAWL 4 net start -> A -> end with `variables` in the root net and, when `sub` is given, a
/// sub-net `Sub` (the decomposition of A) holding those variables instead.
fn with_variables(variables: &str, sub: bool) -> String {
    let decomposes = if sub {
        r#"<decomposesTo id="Sub"/>"#
    } else {
        ""
    };
    let (root_vars, sub_net) = if sub {
        (
            String::new(),
            format!(
                r#"<decomposition id="Sub" xsi:type="NetFactsType">{variables}<processControlElements>
                <inputCondition id="si"><flowsInto><nextElementRef id="S"/></flowsInto></inputCondition>
                <task id="S"><flowsInto><nextElementRef id="so"/></flowsInto><join code="xor"/><split code="and"/></task>
                <outputCondition id="so"/></processControlElements></decomposition>"#
            ),
        )
    } else {
        (variables.to_owned(), String::new())
    };
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<specificationSet xmlns="http://www.yawlfoundation.org/yawlschema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" version="4.0">
  <specification uri="Spec">
    <metaData/>
    <decomposition id="Net" isRootNet="true" xsi:type="NetFactsType">
      {root_vars}
      <processControlElements>
        <inputCondition id="start"><flowsInto><nextElementRef id="A"/></flowsInto></inputCondition>
        <task id="A"><flowsInto><nextElementRef id="end"/></flowsInto><join code="xor"/><split code="and"/>{decomposes}</task>
        <outputCondition id="end"/>
      </processControlElements>
    </decomposition>
    {sub_net}
  </specification>
</specificationSet>"#
    )
}

fn variable(name: &str, ty: &str, namespace: &str, value: &str) -> String {
    format!(
        "<localVariable><index>0</index><name>{name}</name><type>{ty}</type><namespace>{namespace}</namespace><initialValue>{value}</initialValue></localVariable>"
    )
}

const XSD: &str = "http://www.w3.org/2001/XMLSchema";

fn xml_refusal(text: &str) -> Vec<(String, String)> {
    match knhk_spec::load_yawl_xml(&Source {
        name: "wf.yawl",
        base_iri: "file:///defs/wf.yawl",
        text,
    }) {
        Ok(_) => panic!("loaded, but it should be refused:\n{text}"),
        Err(knhk_spec::Error::Invalid { violations, .. }) => violations
            .into_iter()
            .map(|v| (v.element, v.rule))
            .collect(),
        Err(other) => panic!("expected an invalid definition, got: {other}"),
    }
}

#[test]
fn initial_values_that_cannot_be_applied_are_refused_naming_the_variable() {
    let cases = [
        (
            with_variables(&variable("when", "date", XSD, "2024-01-01"), false),
            "Net",
            "the initial value of variable \"when\" cannot be applied: its type \"date\"",
        ),
        (
            with_variables(
                &variable("order", "OrderType", "urn:orders", "<id>1</id>"),
                false,
            ),
            "Net",
            "the initial value of variable \"order\" cannot be applied",
        ),
        (
            with_variables(&variable("ok", "boolean", XSD, "yes"), false),
            "Net",
            "the initial value of variable \"ok\" cannot be applied: \"yes\" is not an xs:boolean",
        ),
        (
            with_variables(&variable("n", "long", XSD, "7"), true),
            "Sub",
            "variable \"n\" of the sub-net \"Sub\" has an initial value",
        ),
    ];
    for (text, element, rule) in cases {
        let found = xml_refusal(&text);
        assert!(
            found.iter().any(|(e, r)| e == element && r.contains(rule)),
            "expected {element}: {rule}, got {found:#?}"
        );
    }
}

#[test]
fn turtle_initial_values_apply_and_a_task_left_to_run_time_goes_to_the_admin_role() {
    let text = r#"@prefix yawl: <http://www.yawlfoundation.org/yawlschema#> .
@prefix knhk: <https://knhk.dev/ns#> .
<#Spec> a yawl:Specification ; yawl:hasDecomposition <#Net> .
<#Net> a yawl:Net ; yawl:isRootNet true ;
    yawl:hasLocalVariable [ yawl:name "limit" ; yawl:type "int" ; yawl:initialValue "5" ] ,
        [ yawl:name "label" ; yawl:type "string" ] ;
    yawl:hasInputCondition <#start> ; yawl:hasOutputCondition <#end> ; yawl:hasTask <#A> .
<#start> a yawl:InputCondition ; yawl:flowsInto [ yawl:nextElementRef <#A> ] .
<#A> a yawl:Task ; knhk:distributedAtRuntime true ; yawl:flowsInto [ yawl:nextElementRef <#end> ] .
<#end> a yawl:OutputCondition .
"#;
    let loaded = knhk_spec::load_turtle_with(
        &Source {
            name: "wf.ttl",
            base_iri: "file:///defs/wf.ttl",
            text,
        },
        &Options {
            admin_role: "supervisor".to_owned(),
            ..Options::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        offered_to(&loaded.workflow, "A"),
        (vec!["supervisor".to_owned()], true)
    );
    let run = Run::start(loaded.workflow, json!({}));
    assert_eq!(Value::Object(run.case.data().clone()), json!({"limit": 5}));
    assert_eq!(run.items("A").len(), 1);
}

#[test]
fn turtle_predicates_compare_a_boolean_variable_with_true_or_false() {
    let text = r#"@prefix yawl: <http://www.yawlfoundation.org/yawlschema#> .
<#Spec> a yawl:Specification ; yawl:hasDecomposition <#Net> .
<#Net> a yawl:Net ; yawl:isRootNet true ;
    yawl:hasLocalVariable [ yawl:name "urgent" ; yawl:type "boolean" ; yawl:initialValue "false" ] ;
    yawl:hasInputCondition <#start> ; yawl:hasOutputCondition <#end> ;
    yawl:hasTask <#A>, <#Normal>, <#Rush> .
<#start> a yawl:InputCondition ; yawl:flowsInto [ yawl:nextElementRef <#A> ] .
<#A> a yawl:Task ; yawl:hasSplit yawl:ControlTypeXor ;
    yawl:flowsInto
        [ yawl:nextElementRef <#Normal> ; yawl:hasPredicate [ yawl:query "/Net/urgent/text() = 'false'" ; yawl:ordering 1 ] ],
        [ yawl:nextElementRef <#Rush> ; yawl:isDefaultFlow true ] .
<#Normal> a yawl:Task ; yawl:flowsInto [ yawl:nextElementRef <#end> ] .
<#Rush> a yawl:Task ; yawl:flowsInto [ yawl:nextElementRef <#end> ] .
<#end> a yawl:OutputCondition .
"#;
    let loaded = knhk_spec::load_turtle_with(
        &Source {
            name: "wf.ttl",
            base_iri: "file:///defs/wf.ttl",
            text,
        },
        &Options::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        noted(
            &loaded,
            "A",
            "compares the xs:boolean variable \"urgent\" with the string 'true' or 'false'"
        ),
        "{:#?}",
        loaded.notes
    );
    let run = Run::start(loaded.workflow, json!({}));
    assert_eq!(run.completed(), ["A", "Normal"]);
    assert_eq!(run.case.status(), CaseStatus::Completed);
}
