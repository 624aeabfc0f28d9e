//! The legacy workflows (examples/legacy, copied from an earlier attempt at this engine): each
//! loads, or is refused naming the element at fault and the rule it breaks.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::path::PathBuf;

use knhk_spec::Error;

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/legacy")
        .join(name)
}

/// Loads `name` and returns its violations as (element id, IRI relative to the file, rule).
fn refused(name: &str) -> Vec<(String, String, String)> {
    let file = path(name);
    match knhk_spec::load_file(&file) {
        Ok(_) => panic!("{name} loaded, but it should be refused"),
        Err(Error::Invalid {
            file: f,
            violations,
        }) => {
            assert!(f.ends_with(name), "error names {f}, not {name}");
            let prefix = format!("{}#", base(name));
            violations
                .into_iter()
                .map(|v| {
                    let iri = v
                        .iri
                        .strip_prefix(&prefix)
                        .map_or(v.iri.clone(), |f| format!("#{f}"));
                    (v.element, iri, v.rule)
                })
                .collect()
        }
        Err(other) => panic!("{name}: expected invalid definition, got {other}"),
    }
}

fn base(name: &str) -> String {
    let absolute = std::path::absolute(path(name)).unwrap();
    format!("file://{}", absolute.display())
}

fn v(element: &str, iri: &str, rule: &str) -> (String, String, String) {
    (element.to_owned(), iri.to_owned(), rule.to_owned())
}

#[test]
fn every_legacy_file_is_covered() {
    let mut names: Vec<String> = std::fs::read_dir(path(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".ttl"))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "atm_transaction.ttl",
            "cancellation_pattern.ttl",
            "multi_instance_approval.ttl",
            "or_join.ttl",
            "order_processing.ttl",
            "payroll.ttl",
            "swift_payment.ttl",
            "timer_escalation.ttl",
        ]
    );
}
#[test]
fn swift_payment_loads() {
    let workflow = knhk_spec::load_file(&path("swift_payment.ttl")).unwrap();
    let spec = workflow.specification();
    assert_eq!(spec.id, "http://bitflow.ai/workflows/swift/mt103");
    assert_eq!(spec.name.as_deref(), Some("SWIFT MT103 Payment Processing"));
    assert_eq!(spec.root_net.as_str(), "mt103");
    let net = &spec.nets[0];
    assert_eq!(net.input_condition.id.as_str(), "start");
    assert_eq!(net.tasks.len(), 9);
    let review = net
        .tasks
        .iter()
        .find(|t| t.id.as_str() == "compliance_review")
        .unwrap();
    assert_eq!(review.join, knhk_core::model::ControlType::And);
    assert_eq!(
        review.flows[0].predicate,
        Some(knhk_core::model::Expression::cel(
            "allComplianceChecksPassed == true"
        ))
    );
}

#[test]
fn atm_transaction_is_refused_for_its_cancellation_region_naming_no_element() {
    // The region names .../atm/workflows/atm/withdrawal/dispense_cash, a typo of the task's IRI.
    assert_eq!(
        refused("atm_transaction.ttl"),
        [v(
            "cancel_transaction",
            "http://bitflow.ai/workflows/atm/withdrawal/cancel_transaction",
            "the cancellation region refers to <http://bitflow.ai/workflows/atm/workflows/atm/withdrawal/dispense_cash>, which is no task or condition of any net",
        )]
    );
}

#[test]
fn atm_transaction_reads_timeout_and_retries() {
    let text = std::fs::read_to_string(path("atm_transaction.ttl")).unwrap();
    // Without the typo the file parses; its legacy runtime hints map to knhk's.
    let fixed = text.replace("atm/workflows/atm/withdrawal", "atm/withdrawal");
    let spec = knhk_spec::parse_turtle(&knhk_spec::Source {
        name: "atm_transaction.ttl",
        base_iri: "",
        text: &fixed,
    })
    .unwrap();
    let task = |id: &str| {
        spec.nets[0]
            .tasks
            .iter()
            .find(|t| t.id.as_str() == id)
            .unwrap()
    };
    assert_eq!(task("verify_card").runtime.timeout_ms, Some(30_000));
    assert_eq!(task("verify_pin").runtime.max_attempts, Some(4));
    let cancel = task("cancel_transaction");
    let cancelled: Vec<&str> = cancel.cancellation_set.iter().map(|e| e.as_str()).collect();
    assert_eq!(cancelled, ["check_balance", "dispense_cash"]);
}

#[test]
fn payroll_is_refused_for_its_disconnected_tasks() {
    // Neither task has a flow in; a task without flow out is allowed (implicit termination).
    let iri = |id: &str| format!("http://bitflow.ai/workflows/payroll/monthly/{id}");
    assert_eq!(
        refused("payroll.ttl"),
        [
            v("calculate_benefits", &iri("calculate_benefits"), NO_FLOW_IN),
            v("generate_reports", &iri("generate_reports"), NO_FLOW_IN),
        ]
    );
}

#[test]
fn payroll_threshold_zero_means_no_threshold() {
    let text = std::fs::read_to_string(path("payroll.ttl")).unwrap();
    let spec = knhk_spec::parse_turtle(&knhk_spec::Source {
        name: "payroll.ttl",
        base_iri: "",
        text: &text,
    })
    .unwrap();
    let salary = spec.nets[0]
        .tasks
        .iter()
        .find(|t| t.id.as_str() == "calculate_salary")
        .unwrap();
    let mi = salary.multiple_instance.as_ref().unwrap();
    assert_eq!(
        (mi.minimum, mi.maximum, mi.threshold),
        (1, Some(10_000), None)
    );
    assert_eq!(mi.creation, knhk_core::model::CreationMode::Static);
}

const NO_FLOW_OUT_OF_START: &str = "the input condition has no outgoing flow";
const NO_FLOW_IN: &str = "task has no incoming flow";
const UNREACHABLE: &str = "not reachable from the input condition";

#[test]
fn cancellation_pattern_is_refused_for_its_input_condition_without_flow() {
    assert_eq!(
        refused("cancellation_pattern.ttl"),
        [
            v("start", "#start", NO_FLOW_OUT_OF_START),
            v("start_process", "#startProcess", NO_FLOW_IN),
            v("long_running_task", "#longRunningTask", UNREACHABLE),
            v("monitor_task", "#monitorTask", UNREACHABLE),
            v("cancel_task", "#cancelTask", UNREACHABLE),
            v("cleanup", "#cleanup", UNREACHABLE),
        ]
    );
}

#[test]
fn multi_instance_approval_is_refused_for_its_input_condition_without_flow() {
    assert_eq!(
        refused("multi_instance_approval.ttl"),
        [
            v("start", "#start", NO_FLOW_OUT_OF_START),
            v("submit_request", "#submitRequest", NO_FLOW_IN),
            v("approve_request", "#approveRequest", UNREACHABLE),
            v("finalize_decision", "#finalizeDecision", UNREACHABLE),
        ]
    );
}

#[test]
fn or_join_is_refused_for_its_input_condition_without_flow_and_unused_conditions() {
    assert_eq!(
        refused("or_join.ttl"),
        [
            v("start", "#start", NO_FLOW_OUT_OF_START),
            v("c1", "#c1", UNREACHABLE),
            v("c2", "#c2", UNREACHABLE),
            v("c3", "#c3", UNREACHABLE),
            v("task_a", "#taskA", NO_FLOW_IN),
            v("task_b", "#taskB", UNREACHABLE),
            v("task_c", "#taskC", UNREACHABLE),
            v("task_d", "#taskD", UNREACHABLE),
            v("task_e", "#taskE", UNREACHABLE),
        ]
    );
}

#[test]
fn order_processing_is_refused_for_its_unused_conditions() {
    assert_eq!(
        refused("order_processing.ttl"),
        [v("c1", "#c1", UNREACHABLE), v("c2", "#c2", UNREACHABLE)]
    );
}

#[test]
fn timer_escalation_is_refused_for_its_input_condition_without_flow() {
    assert_eq!(
        refused("timer_escalation.ttl"),
        [
            v("start", "#start", NO_FLOW_OUT_OF_START),
            v("assign_task", "#assignTask", NO_FLOW_IN),
            v("process_task", "#processTask", UNREACHABLE),
            v("escalate_task", "#escalateTask", NO_FLOW_IN),
            v("resolve_task", "#resolveTask", UNREACHABLE),
        ]
    );
}

#[test]
fn timer_escalation_timer_is_read() {
    let text = std::fs::read_to_string(path("timer_escalation.ttl")).unwrap();
    let spec = knhk_spec::parse_turtle(&knhk_spec::Source {
        name: "timer_escalation.ttl",
        base_iri: "file:///legacy/timer_escalation.ttl",
        text: &text,
    })
    .unwrap();
    let task = spec.nets[0]
        .tasks
        .iter()
        .find(|t| t.id.as_str() == "process_task")
        .unwrap();
    let timer = task.timer.unwrap();
    assert_eq!(timer.duration_ms, 3_600_000);
    assert_eq!(timer.trigger, knhk_core::model::TimerTrigger::OnEnabled);
    assert_eq!(timer.action, knhk_core::model::TimerAction::Expire);
}

#[test]
fn refusals_display_file_iri_and_rule() {
    let err = knhk_spec::load_file(&path("order_processing.ttl")).unwrap_err();
    let text = err.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(
        lines[0].contains("order_processing.ttl: <file://"),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].ends_with("order_processing.ttl#c1>: not reachable from the input condition"),
        "{}",
        lines[0]
    );
}

/// Runs a loaded legacy workflow to its end (its tasks are all empty) and returns the case
/// and the order in which tasks completed.
fn run(
    name: &str,
    data: serde_json::Value,
) -> (knhk_core::Case, Vec<String>, Vec<knhk_core::Event>) {
    use knhk_core::{Case, CaseId, EventKind, Input, SequentialIds, Timestamp};
    let wf = knhk_spec::load_file(&path(name)).unwrap();
    let data = data.as_object().cloned().unwrap_or_default();
    let (mut case, step) = Case::create(&wf, CaseId(uuid::Uuid::from_u128(1)), Timestamp(0), data);
    let mut events = step.events;
    let step = case
        .apply(
            &wf,
            Timestamp(1),
            Input::Start,
            &mut SequentialIds::default(),
        )
        .unwrap();
    events.extend(step.events);
    let replayed = Case::replay(&wf, case.id(), &events).unwrap();
    assert_eq!(replayed, case);
    let done = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::TaskCompleted { .. }))
        .filter_map(|e| e.kind.task().map(|t| t.task.to_string()))
        .collect();
    (case, done, events)
}

#[test]
fn swift_payment_runs_to_completion_when_compliance_passes() {
    let (case, done, _) = run(
        "swift_payment.ttl",
        serde_json::json!({"allComplianceChecksPassed": true}),
    );
    assert_eq!(case.status(), knhk_core::CaseStatus::Completed);
    assert_eq!(done.len(), 9, "{done:?}");
    let at = |t: &str| done.iter().position(|d| d == t).unwrap();
    assert_eq!(at("validate_message"), 0);
    for check in ["sanctions_screening", "aml_check", "fraud_detection"] {
        assert!(at(check) < at("compliance_review"));
    }
    assert!(at("compliance_review") < at("debit_sender"));
    assert!(at("credit_beneficiary") < at("send_confirmation"));
    assert!(at("send_mt202") < at("send_confirmation"));
    assert_eq!(done.last().map(String::as_str), Some("send_confirmation"));
}

#[test]
fn swift_payment_fails_at_compliance_review_when_a_check_fails() {
    let (case, done, events) = run(
        "swift_payment.ttl",
        serde_json::json!({"allComplianceChecksPassed": false}),
    );
    assert_eq!(case.status(), knhk_core::CaseStatus::Failed);
    assert!(!done.contains(&"debit_sender".to_string()));
    let reason = events.iter().find_map(|e| match &e.kind {
        knhk_core::EventKind::TaskFailed { task, reason, .. } => {
            Some((task.task.to_string(), reason.clone()))
        }
        _ => None,
    });
    let (task, reason) = reason.unwrap();
    assert_eq!(task, "compliance_review");
    assert!(reason.contains("no flow of the XOR split"), "{reason}");
}
