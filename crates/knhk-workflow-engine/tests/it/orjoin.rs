//! The OR-join's exact rule seen from the engine: decisions past the rule's budget are
//! counted by `WorkflowEngine::or_join_stats` (and logged), and the OR-join then waits as the
//! conservative rule does, without harming the case.

use knhk_core::{CaseStatus, OR_JOIN_BUDGET};
use knhk_workflow_engine::{SourceFormat, WorkItemQuery};
use serde_json::json;

use crate::support::*;

/// `a` marks `p1`, which feeds the OR-join `t` and the human task `u`; `u` leads through a
/// chain of `k` empty tasks to `p2`, `t`'s other input. With a token on `p1`, `p2` can be
/// marked only by `u`, which takes `p1`'s token: YAWL's rule lets `t` fire at once.
fn consumed(k: usize) -> String {
    let mut t = String::from(PREFIXES);
    let chain: Vec<String> = (1..=k).map(|i| format!("<#c{i}>")).collect();
    t.push_str(&format!(
        "<#spec> a yawl:Specification ; yawl:name \"Consumed\" ; yawl:hasDecomposition <#net> .\n\
         <#net> a yawl:Net ; yawl:id \"net\" ; yawl:isRootNet true ; yawl:hasInputCondition <#start> ; \
         yawl:hasOutputCondition <#end> ; yawl:hasCondition <#p1>, <#p2> ; \
         yawl:hasTask <#a>, <#u>, <#t>, {} .\n\
         <#start> a yawl:InputCondition ; yawl:id \"start\" ; yawl:flowsInto [ yawl:nextElementRef <#a> ] .\n\
         <#end> a yawl:OutputCondition ; yawl:id \"end\" .\n\
         <#p1> a yawl:Condition ; yawl:id \"p1\" ; \
         yawl:flowsInto [ yawl:nextElementRef <#t> ], [ yawl:nextElementRef <#u> ] .\n\
         <#p2> a yawl:Condition ; yawl:id \"p2\" ; yawl:flowsInto [ yawl:nextElementRef <#t> ] .\n\
         <#a> a yawl:Task ; yawl:id \"a\" ; yawl:flowsInto [ yawl:nextElementRef <#p1> ] .\n\
         <#u> a yawl:Task ; yawl:id \"u\" ; knhk:role \"clerk\" ; yawl:flowsInto [ yawl:nextElementRef <#c1> ] .\n\
         <#t> a yawl:Task ; yawl:id \"t\" ; yawl:hasJoin yawl:ControlTypeOr ; \
         yawl:flowsInto [ yawl:nextElementRef <#end> ] .\n",
        chain.join(", ")
    ));
    for i in 1..=k {
        let next = if i == k {
            "p2".to_owned()
        } else {
            format!("c{}", i + 1)
        };
        t.push_str(&format!(
            "<#c{i}> a yawl:Task ; yawl:id \"c{i}\" ; yawl:flowsInto [ yawl:nextElementRef <#{next}> ] .\n"
        ));
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn within_the_budget_the_or_join_fires_where_yawl_fires_and_nothing_is_counted_past_it() {
    let engine = memory_engine();
    let wf = engine
        .register_workflow("consumed.ttl", SourceFormat::Turtle, &consumed(10))
        .await
        .unwrap()
        .workflow;
    let case = engine.create_case(wf.id, json!({}), true).await.unwrap();
    assert_eq!(case.status, CaseStatus::Completed);
    let stats = engine.or_join_stats();
    assert!(stats.exact_checks >= 1, "{stats:?}");
    assert_eq!(stats.over_budget, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_budget_the_or_join_waits_the_engine_counts_it_and_the_case_still_ends() {
    let engine = memory_engine();
    // Six basis elements per task of the chain: a quarter of the budget in tasks is past it.
    let wf = engine
        .register_workflow(
            "consumed.ttl",
            SourceFormat::Turtle,
            &consumed(OR_JOIN_BUDGET / 4),
        )
        .await
        .unwrap()
        .workflow;
    let case = engine.create_case(wf.id, json!({}), true).await.unwrap();
    // The conservative answer: `t` waits for `u`.
    assert_eq!(case.status, CaseStatus::Running);
    assert!(engine.or_join_stats().over_budget >= 1);
    let items = engine
        .work_items(&WorkItemQuery {
            case: Some(case.id),
            ..WorkItemQuery::default()
        })
        .await
        .unwrap();
    let [item] = items.as_slice() else {
        panic!("one work item for u, got {items:?}");
    };
    engine.claim(item.id, "ann").await.unwrap();
    engine.start_work_item(item.id, "ann").await.unwrap();
    let case = engine
        .complete_work_item(item.id, "ann", json!({}))
        .await
        .unwrap();
    assert_eq!(case.status, CaseStatus::Completed);
}
