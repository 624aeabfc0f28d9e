//! Tests of the multiple-instance patterns: WCP 12-15 (without synchronisation, with
//! design-time, runtime and no runtime knowledge).

use knhk_core::{CaseStatus, Error, EventKind, Input};
use serde_json::{Value, json};

use super::Run;

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
    let started = run.driver.history().iter().find_map(|e| match &e.kind {
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
