//! Cases created under an idempotency key: the key is stored with the case, in its commit.

use knhk_workflow_engine::{CaseQuery, ErrorCode, SourceFormat};
use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_case_is_found_by_its_key_and_the_key_makes_no_second_case() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_on(sqlite(&dir.path().join("knhk.db")).await);
    let text = turtle("Keyed", &[("a", "", &["end"])]);
    let wf = engine
        .register_workflow("keyed.ttl", SourceFormat::Turtle, &text)
        .await
        .unwrap()
        .workflow;
    assert_eq!(engine.keyed_case("order-17").await.unwrap(), None);
    let case = engine
        .create_case_keyed(wf.id, json!({"n": 1}), true, "order-17", "digest-1")
        .await
        .unwrap();
    let made = engine.keyed_case("order-17").await.unwrap().unwrap();
    assert_eq!(
        (made.case, made.fingerprint.as_str()),
        (case.id, "digest-1")
    );
    // A second create under the same key fails whole: no second case.
    let again = engine
        .create_case_keyed(wf.id, json!({"n": 2}), true, "order-17", "digest-2")
        .await
        .unwrap_err();
    assert_eq!(again.code(), ErrorCode::AlreadyExists, "{again}");
    assert_eq!(engine.cases(&CaseQuery::default()).await.unwrap().len(), 1);
    // A case that is refused stores no key.
    let refused = engine
        .create_case_keyed(wf.id, json!([1]), true, "order-18", "digest-3")
        .await;
    assert!(refused.is_err());
    assert_eq!(engine.keyed_case("order-18").await.unwrap(), None);
}
