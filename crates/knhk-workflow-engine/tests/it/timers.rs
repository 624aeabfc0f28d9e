//! Timers: they fire, and they survive a restart of the engine.

use knhk_core::{CaseStatus, EventKind};
use serde_json::json;

use crate::support::*;

fn timed(ms: u64) -> String {
    // A human task that expires after `ms` if nobody does it, then an empty task.
    let mut t = turtle(
        "Timed",
        &[
            (
                "wait",
                "knhk:role \"clerk\" ; yawl:hasTimer <#timer> ;",
                &["after"],
            ),
            ("after", "", &["end"]),
        ],
    );
    t.push_str(&format!(
        "<#timer> a yawl:Timer ; yawl:hasTrigger yawl:TimerTriggerOnEnabled ; \
         yawl:hasDurationParams [ yawl:ticks {ms} ; yawl:hasInterval yawl:TimerIntervalMsec ] .\n"
    ));
    t
}

#[tokio::test(start_paused = true)]
async fn an_expiry_timer_moves_the_case_on_when_nobody_does_the_work() {
    let engine = memory_engine();
    engine.spawn_timers().await.unwrap();
    let wf = engine
        .register_workflow("t.ttl", &timed(3_600_000))
        .await
        .unwrap();
    let case = engine.create_case(wf.id, json!({}), true).await.unwrap();
    // The paused clock jumps to the timer as soon as everything else is idle.
    let done = engine.wait_until_ended(case.id).await.unwrap();
    assert_eq!(done.status, CaseStatus::Completed);
    let history = engine.history(case.id).await.unwrap();
    let fired = history
        .iter()
        .position(|e| matches!(e.kind, EventKind::TimerFired { .. }))
        .unwrap();
    let armed = history
        .iter()
        .find_map(|e| match e.kind {
            EventKind::TimerArmed { fires_at, .. } => Some(fires_at),
            _ => None,
        })
        .unwrap();
    assert!(history[fired].time >= armed);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_armed_before_a_restart_fires_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.db");
    let first = engine_on(sqlite(&path).await);
    let wf = first.register_workflow("t.ttl", &timed(300)).await.unwrap();
    let case = first.create_case(wf.id, json!({}), true).await.unwrap();
    first.shutdown().await;
    drop(first);
    let second = engine_on(sqlite(&path).await);
    assert_eq!(second.spawn_timers().await.unwrap(), 1);
    let done = second.wait_until_ended(case.id).await.unwrap();
    assert_eq!(done.status, CaseStatus::Completed);
    second.shutdown().await;
}
