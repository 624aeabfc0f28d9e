//! Engines over a fresh store, and small Turtle workflows.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use knhk_connectors::Registry;
use knhk_store::{MemoryStore, SqliteOptions, SqliteStore, Store};
use knhk_workflow_engine::{Clock, Directory, EngineConfig, WorkflowEngine};

pub const PREFIXES: &str = "@prefix yawl: <http://www.yawlfoundation.org/yawlschema#> .\n@prefix knhk: <https://knhk.dev/ns#> .\n";

/// Builds a workflow: `tasks` are (id, extra Turtle for the task, flows-into ids); the first
/// task follows the input condition.
pub fn turtle(name: &str, tasks: &[(&str, &str, &[&str])]) -> String {
    let mut t = String::from(PREFIXES);
    let ids: Vec<String> = tasks.iter().map(|(id, _, _)| format!("<#{id}>")).collect();
    t.push_str(&format!(
        "<#spec> a yawl:Specification ; yawl:name \"{name}\" ; yawl:hasDecomposition <#net> .\n\
         <#net> a yawl:Net ; yawl:id \"net\" ; yawl:isRootNet true ; yawl:hasInputCondition <#start> ; \
         yawl:hasOutputCondition <#end> ; yawl:hasTask {} .\n\
         <#start> a yawl:InputCondition ; yawl:flowsInto [ yawl:nextElementRef <#{}> ] .\n\
         <#end> a yawl:OutputCondition .\n",
        ids.join(", "),
        tasks[0].0
    ));
    for (id, extra, next) in tasks {
        let flows: Vec<String> = next
            .iter()
            .map(|n| format!("[ yawl:nextElementRef <#{n}> ]"))
            .collect();
        t.push_str(&format!(
            "<#{id}> a yawl:Task ; yawl:id \"{id}\" ; {extra} yawl:flowsInto {} .\n",
            flows.join(", ")
        ));
    }
    t
}

pub fn directory() -> Directory {
    let mut roles = BTreeMap::new();
    roles.insert(
        "clerk".to_string(),
        vec!["ann".to_string(), "bob".to_string(), "cy".to_string()],
    );
    roles.insert("manager".to_string(), vec!["max".to_string()]);
    Directory::new(roles)
}

pub fn engine_on(store: Arc<dyn Store>) -> WorkflowEngine {
    engine_caching(store, EngineConfig::DEFAULT_CASE_CACHE)
}

/// An engine on `store` that keeps at most `case_cache` cases in memory between steps.
pub fn engine_caching(store: Arc<dyn Store>, case_cache: usize) -> WorkflowEngine {
    engine_with(store, case_cache, EngineConfig::DEFAULT_SNAPSHOT_EVERY)
}

/// An engine on `store` that snapshots a case every `snapshot_every` events (0: never, and
/// loads every case from its whole history).
pub fn engine_snapshotting(store: Arc<dyn Store>, snapshot_every: u64) -> WorkflowEngine {
    engine_with(store, EngineConfig::DEFAULT_CASE_CACHE, snapshot_every)
}

fn engine_with(store: Arc<dyn Store>, case_cache: usize, snapshot_every: u64) -> WorkflowEngine {
    engine_calling(store, Registry::with_builtins(), case_cache, snapshot_every)
}

/// An engine in memory whose tasks call the instances of `connectors`.
pub fn engine_with_connectors(connectors: Registry) -> WorkflowEngine {
    engine_calling(
        Arc::new(MemoryStore::default()),
        connectors,
        EngineConfig::DEFAULT_CASE_CACHE,
        EngineConfig::DEFAULT_SNAPSHOT_EVERY,
    )
}

fn engine_calling(
    store: Arc<dyn Store>,
    connectors: Registry,
    case_cache: usize,
    snapshot_every: u64,
) -> WorkflowEngine {
    WorkflowEngine::new(EngineConfig {
        store,
        connectors,
        directory: directory(),
        clock: Clock::system(),
        admin_role: EngineConfig::DEFAULT_ADMIN_ROLE.to_owned(),
        step: knhk_core::ApplyOptions::default(),
        // These engines share their store with no other process; on a paused clock a short
        // poll would wake the runtime every simulated second of a days-long timer.
        timer_poll: std::time::Duration::from_secs(3600),
        max_input_bytes: EngineConfig::DEFAULT_MAX_INPUT_BYTES,
        definition_limits: knhk_spec::Limits::default(),
        case_cache,
        snapshot_every,
        ids: knhk_workflow_engine::IdOrder::default(),
        // As the timer poll: no heartbeat wakes a paused clock; the lease outlasts it.
        lease: std::time::Duration::from_secs(7200),
        heartbeat_interval: std::time::Duration::from_secs(3600),
        node_name: "test".to_owned(),
        lockchain: None,
    })
}

pub fn memory_engine() -> WorkflowEngine {
    engine_on(Arc::new(MemoryStore::default()))
}

pub async fn sqlite(path: &Path) -> Arc<dyn Store> {
    Arc::new(
        SqliteStore::open(path, SqliteOptions::default())
            .await
            .unwrap(),
    )
}

/// Polls `check` until it holds, for at most ten seconds (the intake tests: a broker's
/// delivery has no event to wait on).
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Counts the cases the engine holds.
pub async fn case_count(engine: &WorkflowEngine) -> usize {
    engine
        .cases(&knhk_workflow_engine::CaseQuery::default())
        .await
        .unwrap()
        .len()
}
