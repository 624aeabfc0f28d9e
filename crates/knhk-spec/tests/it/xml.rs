//! YAWL XML: the example files under `examples/yawl-xml/` load and run to completion through
//! knhk-core, read into the same model as the Turtle written from them, and bad or unmappable
//! definitions are refused with errors naming the file, the element and the rule. Whatever the
//! bytes, reading never panics.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::path::{Path, PathBuf};

use knhk_core::model::{
    Allocation, ControlType, CreationMode, Expression, HumanBinding, TaskBinding, TaskTimer,
    TimerAction, TimerTrigger,
};
use knhk_core::{
    Case, CaseId, CaseStatus, Effect, EventKind, Input, SequentialIds, Specification, Step,
    Timestamp, WorkItemId, Workflow,
};
use knhk_spec::{Error, Source, load_yawl_xml, parse_turtle, parse_yawl_xml, write_turtle};
use proptest::prelude::*;

use crate::damage::{Damage, apply};
use serde_json::{Value, json};
use uuid::Uuid;

const BASE: &str = "file:///defs/wf.yawl";

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/yawl-xml")
}

/// The YAWL XML examples: `examples/yawl-xml/`, then the editor-shaped `examples/yawl/`.
fn example_files() -> Vec<PathBuf> {
    let mut all = Vec::new();
    for dir in [examples(), examples().join("../yawl")] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "yawl"))
            .collect();
        files.sort();
        all.extend(files);
    }
    assert!(all.len() >= 6, "the YAWL XML examples are missing");
    all
}

fn source(text: &str) -> Source<'_> {
    Source {
        name: "wf.yawl",
        base_iri: BASE,
        text,
    }
}

// ---------------------------------------------------------------------------------------------
// Running the examples

/// One case of an example, with everything that happened to it so far.
struct Run {
    wf: Workflow,
    case: Case,
    ids: SequentialIds,
    steps: Vec<Step>,
    now: i64,
}

impl Run {
    fn start(file: &str, data: Value) -> Run {
        let wf = knhk_spec::load_file(&examples().join(file)).unwrap_or_else(|e| panic!("{e}"));
        let Value::Object(data) = data else {
            panic!("case data must be an object")
        };
        let (case, step) = Case::create(&wf, CaseId(Uuid::from_u128(7)), Timestamp(0), data);
        let mut run = Run {
            wf,
            case,
            ids: SequentialIds::default(),
            steps: vec![step],
            now: 0,
        };
        run.apply(Input::Start);
        run
    }

    fn apply(&mut self, input: Input) {
        self.now += 1;
        let what = format!("{input:?}");
        let step = self
            .case
            .apply(&self.wf, Timestamp(self.now), input, &mut self.ids)
            .unwrap_or_else(|e| panic!("{what} refused: {e}"));
        self.steps.push(step);
    }

    fn completed(&self) -> Vec<String> {
        self.steps
            .iter()
            .flat_map(|s| &s.events)
            .filter_map(|e| match &e.kind {
                EventKind::TaskCompleted { task, .. } => Some(task.task.to_string()),
                _ => None,
            })
            .collect()
    }

    fn offers(&self) -> Vec<(WorkItemId, String, HumanBinding)> {
        self.steps
            .iter()
            .flat_map(|s| &s.effects)
            .filter_map(|e| match e {
                Effect::OfferWorkItem {
                    item,
                    task,
                    binding,
                    ..
                } => Some((*item, task.task.to_string(), binding.clone())),
                _ => None,
            })
            .collect()
    }

    fn withdrawn(&self) -> Vec<WorkItemId> {
        self.steps
            .iter()
            .flat_map(|s| &s.effects)
            .filter_map(|e| match e {
                Effect::WithdrawWorkItem { item } => Some(*item),
                _ => None,
            })
            .collect()
    }

    /// Starts and completes the live work item of `task`, as a user doing the work.
    fn complete(&mut self, task: &str, output: Value) {
        let item = self
            .case
            .work_items()
            .find(|(_, w)| w.task.task.as_str() == task)
            .map(|(id, _)| *id)
            .unwrap_or_else(|| {
                panic!("no work item for {task}; completed: {:?}", self.completed())
            });
        self.apply(Input::StartWorkItem {
            item,
            user: "ann".into(),
        });
        self.apply(Input::CompleteWorkItem {
            item,
            user: "ann".into(),
            output,
        });
    }
}

#[test]
fn expense_claim_takes_the_xor_branch_its_xpath_predicates_choose() {
    for (amount, expected) in [
        (150.0, &["Register_3", "Check_4", "Approve_5", "Pay_6"][..]),
        (50.0, &["Register_3", "Check_4", "Pay_6"][..]),
        (-5.0, &["Register_3", "Check_4", "Reject_7"][..]),
    ] {
        let run = Run::start("expense_claim.yawl", json!({ "amount": amount }));
        assert_eq!(run.completed(), expected, "amount {amount}");
        assert_eq!(run.case.status(), CaseStatus::Completed, "amount {amount}");
    }
}

#[test]
fn order_fulfilment_offers_picking_to_the_role_and_ships_after_both_branches() {
    let mut run = Run::start(
        "order_fulfilment.yawl",
        json!({ "order": { "total": 12.5 } }),
    );
    assert_eq!(run.completed(), ["Receive_Order_3", "Bill_Customer_5"]);
    let offers = run.offers();
    assert_eq!(offers.len(), 1, "{offers:?}");
    assert_eq!(offers[0].1, "Pick_Goods_4");
    assert_eq!(offers[0].2.roles, ["RO-warehouse-clerk"]);
    assert_eq!(offers[0].2.allocation, Allocation::RoleOffer);
    // The 48 hour timer of the picking task is armed when it is enabled.
    assert!(
        run.steps.iter().flat_map(|s| &s.effects).any(
            |e| matches!(e, Effect::ArmTimer { fires_at, .. } if fires_at.0 >= 48 * 3_600_000)
        ),
        "no timer armed"
    );
    assert_eq!(run.case.status(), CaseStatus::Running);
    run.complete("Pick_Goods_4", json!({ "picked": true }));
    assert_eq!(
        run.completed(),
        [
            "Receive_Order_3",
            "Bill_Customer_5",
            "Pick_Goods_4",
            "Ship_6"
        ]
    );
    assert_eq!(run.case.status(), CaseStatus::Completed);
    assert_eq!(run.case.data().get("picked"), Some(&json!(true)));
}

#[test]
fn claim_investigation_fraud_check_cancels_the_pending_review_and_the_or_join_goes_on() {
    let mut run = Run::start(
        "claim_investigation.yawl",
        json!({ "amount": 5000, "suspicious": true }),
    );
    assert_eq!(run.completed(), ["Assess_3"]);
    let offers = run.offers();
    let offered: Vec<(&str, &[String])> = offers
        .iter()
        .map(|(_, task, binding)| (task.as_str(), binding.roles.as_slice()))
        .collect();
    assert_eq!(
        offered,
        [
            ("Check_Fraud_4", &["RO-fraud-analyst".to_owned()][..]),
            (
                "Review_5",
                &["RO-adjuster".to_owned(), "RO-senior-adjuster".to_owned()][..]
            ),
        ]
    );
    run.complete("Check_Fraud_4", json!({ "fraud": false }));
    // The review was cancelled (its work item withdrawn) and the OR join did not wait for it.
    assert_eq!(run.withdrawn(), [offers[1].0]);
    assert_eq!(run.completed(), ["Assess_3", "Check_Fraud_4", "Decide_7"]);
    assert_eq!(run.case.status(), CaseStatus::Completed);
}

#[test]
fn claim_investigation_or_join_waits_for_the_review() {
    let mut run = Run::start(
        "claim_investigation.yawl",
        json!({ "amount": 5000, "suspicious": false }),
    );
    assert_eq!(run.completed(), ["Assess_3"]);
    assert_eq!(run.case.status(), CaseStatus::Running);
    run.complete("Review_5", json!({ "approved": true }));
    assert_eq!(run.completed(), ["Assess_3", "Review_5", "Decide_7"]);
    assert_eq!(run.case.status(), CaseStatus::Completed);
}

#[test]
fn claim_investigation_takes_the_default_flow_when_no_predicate_holds() {
    let run = Run::start(
        "claim_investigation.yawl",
        json!({ "amount": 100, "suspicious": false }),
    );
    assert_eq!(run.completed(), ["Assess_3", "Fast_Track_6", "Decide_7"]);
    assert_eq!(run.case.status(), CaseStatus::Completed);
}

// ---------------------------------------------------------------------------------------------
// The model read

fn parse_example(file: &Path) -> Specification {
    let text = std::fs::read_to_string(file).unwrap();
    let name = file.display().to_string();
    parse_yawl_xml(&Source {
        name: &name,
        base_iri: "file:///examples/wf.yawl",
        text: &text,
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Reads back the Turtle written from `spec`.
fn via_turtle(spec: &Specification) -> Specification {
    let text = write_turtle(spec);
    parse_turtle(&Source {
        name: "written.ttl",
        base_iri: "file:///elsewhere/written.ttl",
        text: &text,
    })
    .unwrap_or_else(|e| panic!("written turtle does not read back: {e}\n{text}"))
}

#[test]
fn examples_read_into_the_model_their_turtle_form_reads_into() {
    for file in example_files() {
        let spec = parse_example(&file);
        assert_eq!(via_turtle(&spec), spec, "{}", file.display());
    }
}

#[test]
fn the_expense_claim_model_is_what_the_file_says() {
    let spec = parse_example(&examples().join("expense_claim.yawl"));
    assert_eq!(spec.id, "ExpenseClaim");
    assert_eq!(spec.name.as_deref(), Some("Expense claim"));
    assert_eq!(spec.version.as_deref(), Some("1.2"));
    assert!(
        spec.documentation
            .unwrap()
            .starts_with("A claim is registered")
    );
    assert_eq!(spec.root_net.as_str(), "ExpenseClaim");
    let [net] = spec.nets.as_slice() else {
        panic!("one net expected")
    };
    assert_eq!(net.input_condition.id.as_str(), "InputCondition_1");
    assert_eq!(net.input_condition.name.as_deref(), Some("start"));
    assert_eq!(net.output_condition.id.as_str(), "OutputCondition_2");
    let ids: Vec<&str> = net.tasks.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(
        ids,
        ["Register_3", "Check_4", "Approve_5", "Pay_6", "Reject_7"]
    );
    let check = &net.tasks[1];
    assert_eq!(check.name.as_deref(), Some("Check"));
    assert_eq!(check.split, ControlType::Xor);
    assert_eq!(check.flows.len(), 3);
    assert_eq!(
        check.flows[0].predicate,
        Some(Expression::xpath("/net/data/amount > 100"))
    );
    assert_eq!(check.flows[0].ordering, Some(0));
    assert_eq!(
        check.flows[1].predicate,
        Some(Expression::xpath("/ExpenseClaim/amount <= 0"))
    );
    assert!(check.flows[2].is_default);
    // `<split code="and"/>` with one outgoing flow, as the editor writes it, is kept as written;
    // validation notes it and runs it as the one flow it has.
    assert_eq!(net.tasks[0].split, ControlType::And);
    // Automated decompositions (a YAWL service, a codelet) are run as empty tasks.
    assert!(net.tasks.iter().all(|t| t.binding == TaskBinding::Empty));
}

/// A YAWL 4 specification with `net` as the processControlElements of its root net `Net`,
/// `tasks_extra` appended to the task `A`, and `decompositions` after the net.
fn yawl4(elements: &str, decompositions: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<specificationSet xmlns="http://www.yawlfoundation.org/yawlschema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" version="4.0">
  <specification uri="Spec">
    <metaData/>
    <decomposition id="Net" isRootNet="true" xsi:type="NetFactsType">
      <processControlElements>
        <inputCondition id="start"><flowsInto><nextElementRef id="A"/></flowsInto></inputCondition>
{elements}
        <outputCondition id="end"/>
      </processControlElements>
    </decomposition>
{decompositions}
  </specification>
</specificationSet>"#
    )
}

/// A net start -> A -> end where task A has `inner` besides its flow.
fn with_task_a(inner: &str, decompositions: &str) -> String {
    yawl4(
        &format!(
            r#"<task id="A"><flowsInto><nextElementRef id="end"/></flowsInto><join code="xor"/><split code="and"/>{inner}</task>"#
        ),
        decompositions,
    )
}

fn task_a(text: &str) -> knhk_core::model::Task {
    let spec = parse_yawl_xml(&source(text)).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(via_turtle(&spec), spec);
    spec.nets[0].tasks[0].clone()
}

#[test]
fn multiple_instance_tasks_read_bounds_creation_and_a_translatable_split() {
    let text = with_task_a(
        r#"<minimum>2</minimum><maximum>5</maximum><threshold>3</threshold>
           <creationMode code="dynamic"/>
           <miDataInput>
             <expression query="/Net/order/lines"/>
             <splittingExpression query="for $s in /lines/* return &lt;line&gt;{$s/*}&lt;/line&gt;"/>
             <formalInputParam>line</formalInputParam>
           </miDataInput>
           <miDataOutput>
             <formalOutputExpression query="/A/line"/>
             <outputJoiningExpression query="/lines"/>
             <resultAppliedToLocalVariable>checked</resultAppliedToLocalVariable>
           </miDataOutput>"#,
        "",
    )
    .replace(r#"<task id="A">"#, r#"<task id="A" xsi:type="MultipleInstanceExternalTaskFactsType">"#);
    let mi = task_a(&text).multiple_instance.unwrap();
    assert_eq!(mi.minimum, 2);
    assert_eq!(mi.maximum, Some(5));
    assert_eq!(mi.threshold, Some(3));
    assert_eq!(mi.creation, CreationMode::Dynamic);
    // The XPath is translated to CEL: `/Net/order/lines` reads `order.lines` of the case data.
    assert_eq!(mi.split, Some(Expression::cel("order.lines")));
    assert_eq!(mi.item_variable, "line");
    assert_eq!(mi.join_variable.as_deref(), Some("checked"));
    load_yawl_xml(&source(&text)).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn timers_read_iso_durations_and_duration_params() {
    let human = r#"<resourcing><offer initiator="system"><distributionSet><initialSet><role>clerk</role></initialSet></distributionSet></offer>
        <allocate initiator="system"><allocator><name>ShortestQueue</name></allocator></allocate></resourcing>
        <decomposesTo id="Work"/>"#;
    let gateway = r#"<decomposition id="Work" xsi:type="WebServiceGatewayFactsType"><externalInteraction>manual</externalInteraction></decomposition>"#;
    let task = task_a(&with_task_a(
        &format!(
            "<timer><trigger>OnExecuting</trigger><durationparams><ticks>90</ticks><interval>MIN</interval></durationparams></timer>{human}"
        ),
        gateway,
    ));
    assert_eq!(
        task.timer,
        Some(TaskTimer {
            trigger: TimerTrigger::OnStarted,
            duration_ms: 90 * 60_000,
            action: TimerAction::Expire,
        })
    );
    assert_eq!(
        task.binding,
        TaskBinding::Human(HumanBinding {
            roles: vec!["clerk".into()],
            allocation: Allocation::ShortestQueue,
            four_eyes: false,
            distributed_at_runtime: false,
        })
    );
    // On a task without decomposition, the timer is how long it takes: a delay.
    let task = task_a(&with_task_a(
        "<timer><trigger>OnEnabled</trigger><duration>PT1H30M</duration></timer>",
        "",
    ));
    assert_eq!(
        task.timer,
        Some(TaskTimer {
            trigger: TimerTrigger::OnEnabled,
            duration_ms: 5_400_000,
            action: TimerAction::Delay,
        })
    );
}

#[test]
fn composite_tasks_decompose_into_their_sub_net() {
    let sub = r#"<decomposition id="Sub" xsi:type="NetFactsType">
      <processControlElements>
        <inputCondition id="s_in"><flowsInto><nextElementRef id="S"/></flowsInto></inputCondition>
        <task id="S"><flowsInto><nextElementRef id="s_out"/></flowsInto><join code="xor"/><split code="and"/></task>
        <outputCondition id="s_out"/>
      </processControlElements>
    </decomposition>"#;
    let text = with_task_a(r#"<decomposesTo id="Sub"/>"#, sub);
    assert_eq!(
        task_a(&text)
            .decomposition
            .map(|n| n.to_string())
            .as_deref(),
        Some("Sub")
    );
    let spec = parse_yawl_xml(&source(&text)).unwrap();
    assert_eq!(spec.root_net.as_str(), "Net");
    assert_eq!(spec.nets.len(), 2);
    load_yawl_xml(&source(&text)).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn beta_specifications_load_and_run() {
    // Beta 2 names the root net `rootNet`; Beta 3 and later use `isRootNet` like YAWL 4.
    for root in [
        ("<rootNet id=\"top\">", "</rootNet>"),
        (
            "<decomposition id=\"top\" isRootNet=\"true\" xsi:type=\"NetFactsType\">",
            "</decomposition>",
        ),
    ] {
        let text = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<specificationSet xmlns="http://www.citi.qut.edu.au/yawl" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" version="Beta 3">
  <specification uri="Timer.xml">
    <name>Invoke</name>
    <metaData/>
    {}
      <localVariable name="time"><type>xs:string</type></localVariable>
      <processControlElements>
        <inputCondition id="i"><flowsInto><nextElementRef id="a"/></flowsInto></inputCondition>
        <task id="a">
          <flowsInto><nextElementRef id="p"/><predicate ordering="1">/data/go = 'yes'</predicate></flowsInto>
          <flowsInto><nextElementRef id="x"/><isDefaultFlow/></flowsInto>
          <join code="xor"/><split code="xor"/>
          <completedMappings><mapping><expression query="/data/time"/><mapsTo>time</mapsTo></mapping></completedMappings>
          <decomposesTo id="read_time"/>
        </task>
        <task id="p"><flowsInto><nextElementRef id="o"/></flowsInto><join code="xor"/><split code="and"/></task>
        <task id="x"><flowsInto><nextElementRef id="o"/></flowsInto><join code="xor"/><split code="and"/></task>
        <outputCondition id="o"><name>o</name></outputCondition>
      </processControlElements>
    {}
    <decomposition id="read_time" xsi:type="WebServiceGatewayFactsType">
      <outputExpression query="/data/time"/>
      <yawlService id="http://localhost:8080/timeService/ib"/>
    </decomposition>
  </specification>
</specificationSet>"#,
            root.0, root.1
        );
        let wf = load_yawl_xml(&source(&text)).unwrap_or_else(|e| panic!("{e}"));
        let data = json!({ "go": "yes" });
        let Value::Object(data) = data else {
            unreachable!()
        };
        let (mut case, _) = Case::create(&wf, CaseId(Uuid::from_u128(1)), Timestamp(0), data);
        let step = case
            .apply(
                &wf,
                Timestamp(1),
                Input::Start,
                &mut SequentialIds::default(),
            )
            .unwrap();
        let completed: Vec<String> = step
            .events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::TaskCompleted { task, .. } => Some(task.task.to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(completed, ["a", "p"]);
        assert_eq!(case.status(), CaseStatus::Completed);
    }
}

#[test]
fn load_file_reads_yawl_and_xml_extensions() {
    let wf = knhk_spec::load_file(&examples().join("order_fulfilment.yawl")).unwrap();
    assert_eq!(wf.specification().id, "OrderFulfilment");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let xml = dir.join("knhk-spec-order_fulfilment.xml");
    std::fs::copy(examples().join("order_fulfilment.yawl"), &xml).unwrap();
    let wf = knhk_spec::load_file(&xml).unwrap();
    assert_eq!(wf.specification().id, "OrderFulfilment");
    let other = dir.join("knhk-spec-order_fulfilment.json");
    std::fs::copy(examples().join("order_fulfilment.yawl"), &other).unwrap();
    assert!(matches!(
        knhk_spec::load_file(&other),
        Err(Error::UnsupportedFormat { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// Refusals

/// Loads `text`, expecting it refused as invalid; returns (IRI fragment, element, rule).
fn violations(text: &str) -> Vec<(String, String, String)> {
    match load_yawl_xml(&source(text)) {
        Ok(_) => panic!("definition loaded, but it should be refused:\n{text}"),
        Err(Error::Invalid { file, violations }) => {
            assert_eq!(file, "wf.yawl");
            violations
                .into_iter()
                .map(|v| {
                    let iri = v.iri.strip_prefix(BASE).unwrap_or(&v.iri).to_owned();
                    (iri, v.element, v.rule)
                })
                .collect()
        }
        Err(other) => panic!("expected an invalid definition, got: {other}"),
    }
}

/// Asserts that `text` is refused with one violation on `element` whose rule contains `rule`.
fn refused(text: &str, element: &str, rule: &str) {
    let found = violations(text);
    assert!(
        found
            .iter()
            .any(|(iri, e, r)| e == element && iri == &format!("#{element}") && r.contains(rule)),
        "expected {element}: ...{rule}..., got {found:#?}"
    );
}

#[test]
fn malformed_xml_is_refused_with_its_position() {
    let text = "<?xml version=\"1.0\"?>\n<specificationSet xmlns=\"http://www.yawlfoundation.org/yawlschema\">\n  <specification uri=\"S\">\n  </specificatio>\n</specificationSet>\n";
    match parse_yawl_xml(&source(text)) {
        Err(e @ Error::XmlSyntax { line, column, .. }) => {
            assert_eq!((line, column), (4, 3), "{e}");
            let message = e.to_string();
            assert!(
                message.starts_with("wf.yawl:4:3: xml syntax error:"),
                "{message}"
            );
        }
        other => panic!("expected an xml syntax error, got {other:?}"),
    }
    // A document cut short is placed at its end.
    match parse_yawl_xml(&source("<specificationSet>\n  <specification>")) {
        Err(Error::XmlSyntax { line, column, .. }) => assert_eq!((line, column), (2, 18)),
        other => panic!("expected an xml syntax error, got {other:?}"),
    }
    // DTDs (and so entity expansion) are refused.
    let dtd = "<!DOCTYPE s [<!ENTITY a \"aaaa\">]><specificationSet/>";
    assert!(matches!(
        parse_yawl_xml(&source(dtd)),
        Err(Error::XmlSyntax { .. })
    ));
}

#[test]
fn a_document_that_is_no_yawl_specification_set_is_refused() {
    let found = violations("<specificationSet xmlns=\"urn:other\"/>");
    assert_eq!(found.len(), 1);
    assert!(
        found[0].2.contains("not a YAWL <specificationSet>"),
        "{found:?}"
    );
    let found =
        violations("<specificationSet xmlns=\"http://www.yawlfoundation.org/yawlschema\"/>");
    assert!(found[0].2.contains("no <specification>"), "{found:?}");
}

#[test]
fn an_unknown_next_element_ref_is_refused_naming_the_flow_owner() {
    let text = with_task_a("", "").replace(
        r#"<nextElementRef id="end"/>"#,
        r#"<nextElementRef id="nowhere"/>"#,
    );
    refused(
        &text,
        "A",
        "a flow (<flowsInto><nextElementRef>) refers to \"nowhere\", which is no task or condition of net \"Net\"",
    );
    let message = load_yawl_xml(&source(&text)).unwrap_err().to_string();
    assert!(
        message.starts_with("wf.yawl: <file:///defs/wf.yawl#A>: a flow"),
        "{message}"
    );
}

#[test]
fn removes_tokens_from_a_flow_that_is_not_between_two_tasks_is_refused() {
    // Only a flow between two tasks has an implicit condition to empty.
    let text = with_task_a(
        r#"<removesTokensFromFlow><flowSource id="start"/><flowDestination id="A"/></removesTokensFromFlow>"#,
        "",
    );
    refused(
        &text,
        "A",
        "cancellation set names unknown element start__A",
    );
    let text = with_task_a(
        r#"<removesTokensFromFlow><flowSource id="A"/></removesTokensFromFlow>"#,
        "",
    );
    refused(&text, "A", "has no <flowDestination");
}

#[test]
fn a_specification_without_a_root_net_is_refused() {
    let no_net = r#"<specificationSet xmlns="http://www.yawlfoundation.org/yawlschema"><specification uri="S"><metaData/></specification></specificationSet>"#;
    refused(no_net, "S", "no root net");
    let net = |id: &str| {
        format!(
            r#"<decomposition id="{id}" xsi:type="NetFactsType"><processControlElements>
            <inputCondition id="{id}_i"><flowsInto><nextElementRef id="{id}_o"/></flowsInto></inputCondition>
            <outputCondition id="{id}_o"/></processControlElements></decomposition>"#
        )
    };
    let two_unmarked = format!(
        r#"<specificationSet xmlns="http://www.yawlfoundation.org/yawlschema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><specification uri="S">{}{}</specification></specificationSet>"#,
        net("N1"),
        net("N2")
    );
    refused(&two_unmarked, "S", "none of its nets is marked isRootNet");
}

#[test]
fn semantic_violations_name_the_element() {
    // A task with no path to the output condition: knhk_core's rule, named by the task's IRI.
    let text = yawl4(
        r#"<task id="A"><flowsInto><nextElementRef id="end"/></flowsInto><flowsInto><nextElementRef id="B"/></flowsInto><join code="xor"/><split code="and"/></task>
           <task id="B"><flowsInto><nextElementRef id="C"/></flowsInto><join code="xor"/><split code="and"/></task>
           <task id="C"><flowsInto><nextElementRef id="B"/></flowsInto><join code="and"/><split code="and"/></task>"#,
        "",
    );
    refused(&text, "B", "no path from here to the output condition");
    // An XPath predicate outside the subset that translates to CEL.
    let text = yawl4(
        r#"<task id="A"><flowsInto><nextElementRef id="end"/><predicate ordering="0">count(/Net/items/*) &gt; 2</predicate></flowsInto>
             <flowsInto><nextElementRef id="B"/><isDefaultFlow/></flowsInto><join code="xor"/><split code="xor"/></task>
           <task id="B"><flowsInto><nextElementRef id="end"/></flowsInto><join code="xor"/><split code="and"/></task>"#,
        "",
    );
    refused(&text, "A", "count()");
}

#[test]
fn what_cannot_be_mapped_is_refused_naming_the_task() {
    let manual = r#"<decomposition id="Work" xsi:type="WebServiceGatewayFactsType"><externalInteraction>manual</externalInteraction></decomposition>"#;
    // Offers to single participants.
    refused(
        &with_task_a(
            r#"<resourcing><offer initiator="system"><distributionSet><initialSet><participant>PA-1</participant><role>clerk</role></initialSet></distributionSet></offer></resourcing><decomposesTo id="Work"/>"#,
            manual,
        ),
        "A",
        "<participant>",
    );
    // A splitting query that is more than "each child".
    let mi = with_task_a(
        r#"<minimum>1</minimum><maximum>4</maximum><threshold>4</threshold><creationMode code="static"/>
           <miDataInput><expression query="/Net/songs"/><splittingExpression query="for $d in /songs/* return &lt;s&gt;{ for $e in $d/* return $e }&lt;/s&gt;"/><formalInputParam>s</formalInputParam></miDataInput>"#,
        "",
    );
    refused(&mi, "A", "splitting query");
    // An input expression that is XQuery, named as such.
    let mi = with_task_a(
        r#"<minimum>1</minimum><maximum>4</maximum><threshold>4</threshold><creationMode code="static"/>
           <miDataInput><expression query="&lt;songs&gt;{ if (count(/Net/songs/*) &gt; 0) then /Net/songs/* else /Net/spare/* }&lt;/songs&gt;"/><splittingExpression query="for $s in /songs/* return $s"/><formalInputParam>s</formalInputParam></miDataInput>"#,
        "",
    );
    refused(
        &mi,
        "A",
        "is an XQuery element constructor (<x>{...}</x>), which knhk does not run",
    );
    // A timer that expires at a fixed time.
    refused(
        &with_task_a(
            "<timer><trigger>OnEnabled</trigger><expiry>1700000000000</expiry></timer>",
            "",
        ),
        "A",
        "<expiry>",
    );
    // An element knhk does not know, in a place where it may change behaviour.
    refused(&with_task_a("<somethingNew/>", ""), "A", "<somethingNew>");
    // A decomposition that does not exist.
    refused(
        &with_task_a(r#"<decomposesTo id="Missing"/>"#, ""),
        "A",
        "no decomposition",
    );
}

#[test]
fn duplicate_ids_and_missing_ids_are_refused() {
    let text = yawl4(
        r#"<task id="A"><flowsInto><nextElementRef id="end"/></flowsInto></task><condition id="A"/><task><flowsInto><nextElementRef id="end"/></flowsInto></task>"#,
        "",
    );
    let found = violations(&text);
    assert!(
        found
            .iter()
            .any(|(_, e, r)| e == "A" && r.contains("used by two elements")),
        "{found:#?}"
    );
    assert!(
        found.iter().any(|(iri, e, r)| iri.is_empty()
            && e.starts_with("<task> at line")
            && r.contains("needs an id")),
        "{found:#?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Robustness

/// Reads `bytes` both ways; the results are only required to exist.
fn read(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    for base_iri in [BASE, ""] {
        let src = Source {
            name: "fuzz.yawl",
            base_iri,
            text: &text,
        };
        let parsed = parse_yawl_xml(&src);
        let loaded = load_yawl_xml(&src);
        assert!(loaded.is_err() || parsed.is_ok());
        if let Err(e) = parsed {
            assert!(!e.to_string().is_empty());
        }
    }
}

fn corpus() -> Vec<String> {
    example_files()
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

fn damage() -> impl Strategy<Value = Damage> {
    let tokens = prop_oneof![
        Just("<".to_owned()),
        Just("/>".to_owned()),
        Just("\"".to_owned()),
        Just("&amp;".to_owned()),
        Just("<task id=\"A\">".to_owned()),
        Just("</task>".to_owned()),
        Just("<nextElementRef id=\"Pay_6\"/>".to_owned()),
        Just("<removesTokens id=\"InputCondition_1\"/>".to_owned()),
        Just("<removesTokensFromFlow/>".to_owned()),
        Just("<join code=\"or\"/>".to_owned()),
        Just("<split code=\"nand\"/>".to_owned()),
        Just("<minimum>-1</minimum>".to_owned()),
        Just("<timer><duration>P1Y</duration></timer>".to_owned()),
        Just("<decomposesTo id=\"ExpenseClaim\"/>".to_owned()),
        Just(" isRootNet=\"true\"".to_owned()),
        Just("<predicate ordering=\"x\">(</predicate>".to_owned()),
        any::<String>(),
    ];
    crate::damage::damage(tokens)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        read(&bytes);
    }

    #[test]
    fn random_xml_like_text_never_panics(text in "(<specificationSet xmlns=\"http://www.yawlfoundation.org/yawlschema\">|<specification uri=\"s\">|<decomposition id=\"[a-c]\" isRootNet=\"true\">|<processControlElements>|<(inputCondition|outputCondition|condition|task) id=\"[a-c]\">|<flowsInto>|<nextElementRef id=\"[a-c]\"/>|<(join|split) code=\"(and|or|xor)\"/>|<removesTokens id=\"[a-c]\"/>|</[a-zA-Z]{1,12}>|<[a-zA-Z]{1,12}/>|[a-z0-9 ]{0,3})*") {
        read(text.as_bytes());
    }

    #[test]
    fn damaged_examples_never_panic(
        file in any::<prop::sample::Index>(),
        damages in proptest::collection::vec(damage(), 1..4),
    ) {
        let corpus = corpus();
        let mut text = corpus[file.index(corpus.len())].clone();
        for d in &damages {
            text = String::from_utf8_lossy(&apply(&text, d)).into_owned();
        }
        read(text.as_bytes());
    }
}

#[test]
fn every_example_reads_without_panic_after_each_line_is_deleted() {
    for text in corpus() {
        for line in 0..text.lines().count() {
            read(&apply(&text, &Damage::DeleteLine { line }));
        }
    }
}
