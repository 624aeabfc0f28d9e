//! Conformance tests of concurrent commits: different cases never block each other, and
//! optimistic concurrency lets exactly one of many racing steps of one case through.

use std::sync::Arc;

use knhk_core::{CaseStatus, EventKind};
use knhk_store::{CaseFilter, Error, Store};
use serde_json::json;

use crate::fixtures::*;

pub async fn concurrent_commits_to_64_cases(s: Arc<dyn Store>) {
    let tasks: Vec<_> = (0..64u128)
        .map(|n| {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                let c = create_case(s.as_ref(), n, workflow_id(1), CaseStatus::Running, 1).await;
                let step = next_step(&c, vec![EventKind::TaskEnabled { task: task("a") }]);
                s.commit(step).await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let all = s.cases(&CaseFilter::default()).await.unwrap();
    assert_eq!(all.len(), 64);
    for c in all {
        assert_eq!(c.version, 2);
        let seqs: Vec<u64> = s
            .events(c.id, 0)
            .await
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, vec![1, 2]);
    }
}

pub async fn race_on_one_case_has_one_winner(s: Arc<dyn Store>) {
    let c = create_case(s.as_ref(), 1, workflow_id(1), CaseStatus::Running, 1).await;
    let tasks: Vec<_> = (0..32u64)
        .map(|n| {
            let s = Arc::clone(&s);
            let step = next_step(
                &c,
                vec![EventKind::DataUpdated {
                    changes: data(&[("winner", json!(n))]),
                }],
            );
            tokio::spawn(async move { (n, s.commit(step).await) })
        })
        .collect();
    let mut winners = Vec::new();
    let mut conflicts = 0;
    for t in tasks {
        match t.await.unwrap() {
            (n, Ok(())) => winners.push(n),
            (
                _,
                Err(Error::Conflict {
                    expected: Some(1),
                    actual: Some(2),
                    ..
                }),
            ) => conflicts += 1,
            (_, other) => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    assert_eq!(conflicts, 31);
    let events = s.events(c.id, 0).await.unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(
        events[1].kind,
        EventKind::DataUpdated {
            changes: data(&[("winner", json!(winners[0]))]),
        }
    );
    assert_eq!(s.case(c.id).await.unwrap().unwrap().version, 2);
}
