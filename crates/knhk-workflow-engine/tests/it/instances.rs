//! Named connector instances in the engine: a task names one with `knhk:connector "NAME"`,
//! its settings are prepared once when the workflow is registered, the engine lists and probes
//! its instances, and its shutdown closes them. The instance is an in-process stand-in that
//! counts what the engine asks of it (the kinds' own tests use the real services).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use knhk_connectors::{
    Binding, CallError, CallRequest, Connector, PoolStatus, Probe, Registry, SettingsError,
};
use knhk_core::CaseStatus;
use knhk_workflow_engine::{ConnectorPool, ErrorCode, SourceFormat};
use serde_json::{Value, json};

use crate::support::*;

#[derive(Debug, Default)]
struct Counts {
    prepared: AtomicU32,
    calls: AtomicU32,
    closed: AtomicU32,
}

#[derive(Debug)]
struct Ledger(Arc<Counts>);

#[derive(Debug)]
struct Entry {
    account: String,
    counts: Arc<Counts>,
}

#[async_trait::async_trait]
impl Connector for Ledger {
    fn name(&self) -> &str {
        "ledger"
    }

    fn kind(&self) -> &str {
        "test"
    }

    fn prepare(
        &self,
        settings: &BTreeMap<String, String>,
    ) -> Result<Arc<dyn Binding>, SettingsError> {
        self.0.prepared.fetch_add(1, Ordering::SeqCst);
        let account = settings
            .get("account")
            .cloned()
            .ok_or_else(|| SettingsError::Missing {
                setting: "account".to_owned(),
            })?;
        Ok(Arc::new(Entry {
            account,
            counts: self.0.clone(),
        }))
    }

    async fn probe(&self) -> Result<Probe, CallError> {
        Ok(Probe {
            detail: Some("ledger 1.0".to_owned()),
        })
    }

    async fn close(&self) {
        self.0.closed.fetch_add(1, Ordering::SeqCst);
    }

    fn pool(&self) -> Option<PoolStatus> {
        Some(PoolStatus {
            max_size: 3,
            active: 0,
            idle: 1,
            waiters: 0,
            created: 1,
            closed: 0,
            failed: 0,
        })
    }
}

#[async_trait::async_trait]
impl Binding for Entry {
    async fn call(&self, _: CallRequest) -> Result<Value, CallError> {
        self.counts.calls.fetch_add(1, Ordering::SeqCst);
        Ok(json!({ "posted_to": self.account }))
    }
}

fn ledger_task(account: &str) -> String {
    format!(
        "knhk:connector \"ledger\" ; knhk:setting [ knhk:key \"account\" ; knhk:value \"{account}\" ] ;"
    )
}

fn engine(counts: &Arc<Counts>) -> knhk_workflow_engine::WorkflowEngine {
    let mut registry = Registry::with_builtins();
    registry.register(Arc::new(Ledger(counts.clone())));
    engine_with_connectors(registry)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_are_prepared_once_at_registration_not_per_call() {
    let counts = Arc::new(Counts::default());
    let engine = engine(&counts);
    let wf = turtle(
        "Ledger",
        &[
            ("debit", &ledger_task("cash"), &["credit"]),
            ("credit", &ledger_task("sales"), &["again"]),
            ("again", &ledger_task("cash"), &["end"]),
        ],
    );
    let wf = engine
        .register_workflow("ledger.ttl", SourceFormat::Turtle, &wf)
        .await
        .unwrap()
        .workflow;
    // Two different settings: two preparations, at registration.
    assert_eq!(counts.prepared.load(Ordering::SeqCst), 2);
    for _ in 0..3 {
        let case = engine.create_case(wf.id, json!({}), true).await.unwrap();
        let done = engine.wait_until_ended(case.id).await.unwrap();
        assert_eq!(done.status, CaseStatus::Completed);
        assert_eq!(done.data["posted_to"], "cash");
    }
    assert_eq!(counts.calls.load(Ordering::SeqCst), 9);
    assert_eq!(counts.prepared.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_naming_an_unknown_instance_is_refused_naming_it() {
    let counts = Arc::new(Counts::default());
    let engine = engine(&counts);
    let wf = turtle(
        "Orders",
        &[(
            "post",
            "knhk:connector \"orders_db\" ; knhk:setting [ knhk:key \"statement\" ; knhk:value \"select 1\" ] ;",
            &["end"],
        )],
    );
    let err = engine
        .register_workflow("orders.ttl", SourceFormat::Turtle, &wf)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::FailedPrecondition, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("orders_db") && text.contains("post"),
        "{text}"
    );
    // Bad settings of a known instance are refused naming the setting.
    let wf = turtle(
        "Orders",
        &[("post", "knhk:connector \"ledger\" ;", &["end"])],
    );
    let err = engine
        .register_workflow("orders.ttl", SourceFormat::Turtle, &wf)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument, "{err}");
    assert!(err.to_string().contains("account"), "{err}");
}

#[tokio::test]
async fn the_engine_lists_and_probes_its_instances_and_closes_them_at_shutdown() {
    let counts = Arc::new(Counts::default());
    let engine = engine(&counts);
    let listed = engine.connectors();
    let names: Vec<(&str, &str)> = listed
        .iter()
        .map(|c| (c.name.as_str(), c.kind.as_str()))
        .collect();
    assert_eq!(names, [("http", "http"), ("ledger", "test")]);
    assert_eq!(listed[0].pool, None);
    assert_eq!(
        listed[1].pool,
        Some(ConnectorPool {
            max_size: 3,
            active: 0,
            idle: 1,
            waiters: 0
        })
    );
    let probed = engine
        .probe_connectors(Some("ledger"), Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(probed.len(), 1);
    assert!(probed[0].ok);
    assert_eq!(probed[0].detail.as_deref(), Some("ledger 1.0"));
    assert_eq!(
        engine
            .probe_connectors(None, Duration::from_secs(1))
            .await
            .unwrap()
            .len(),
        2
    );
    let err = engine
        .probe_connectors(Some("nope"), Duration::from_secs(1))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound);
    assert_eq!(
        err.to_string(),
        "unknown connector nope (known: http, ledger)"
    );
    assert_eq!(counts.closed.load(Ordering::SeqCst), 0);
    engine.shutdown().await;
    assert_eq!(counts.closed.load(Ordering::SeqCst), 1);
}
