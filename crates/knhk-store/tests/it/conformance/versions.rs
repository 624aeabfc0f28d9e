//! Conformance tests of workflow versions: a workflow's identity is its URI, and no two
//! records share a URI and a version, however many registrations race.

use std::sync::Arc;

use knhk_store::{Error, Store, WorkflowRecord};

use crate::fixtures::*;

/// Returns the fixture workflow `n` as version `version` of `uri`.
fn version_of(n: u128, uri: &str, name: &str, version: u32) -> WorkflowRecord {
    WorkflowRecord {
        uri: uri.to_owned(),
        ..workflow(n, name, version)
    }
}

pub async fn workflow_versions_are_unique_per_uri(s: Arc<dyn Store>) {
    let (a, b) = ("urn:test:approval", "urn:test:other-approval");
    let a1 = version_of(1, a, "approval", 1);
    s.put_workflow(&a1).await.unwrap();
    assert_eq!(s.latest_workflow(a).await.unwrap(), Some(a1.clone()));
    assert_eq!(s.latest_workflow(b).await.unwrap(), None);

    // Version 1 of `a` is taken, whatever the id, the name or the source.
    let mut taken = version_of(2, a, "renamed", 1);
    taken.source = "changed".to_owned();
    match s.put_workflow(&taken).await {
        Err(e @ Error::DuplicateVersion { .. }) => {
            assert_eq!(
                e.to_string(),
                "version 1 of workflow urn:test:approval already exists"
            );
        }
        other => panic!("expected a duplicate version, got {other:?}"),
    }
    assert_eq!(s.workflow(taken.id).await.unwrap(), None);
    assert_eq!(s.workflows().await.unwrap(), vec![a1.clone()]);

    // Another URI with the same display name has versions of its own.
    let b1 = version_of(3, b, "approval", 1);
    s.put_workflow(&b1).await.unwrap();
    let a2 = version_of(4, a, "approval", 2);
    s.put_workflow(&a2).await.unwrap();
    assert_eq!(s.latest_workflow(a).await.unwrap(), Some(a2.clone()));
    assert_eq!(s.latest_workflow(b).await.unwrap(), Some(b1.clone()));

    // Named: the versions of a URI, or of every URI a name has, by URI then version.
    let named = |key: &'static str| {
        let s = Arc::clone(&s);
        async move {
            s.workflows_named(key)
                .await
                .unwrap()
                .into_iter()
                .map(|w| w.id)
                .collect::<Vec<_>>()
        }
    };
    let summary = knhk_store::WorkflowSummary::of;
    assert_eq!(
        s.workflows_named(a).await.unwrap(),
        vec![summary(&a1), summary(&a2)]
    );
    assert_eq!(named(b).await, vec![b1.id]);
    assert_eq!(named("approval").await, vec![a1.id, a2.id, b1.id]);
    assert_eq!(named("Approval").await, vec![]);
    assert_eq!(named("urn:test").await, vec![]);
    // A name that is another workflow's URI finds both, once each.
    let odd = version_of(5, "urn:odd", a, 1);
    s.put_workflow(&odd).await.unwrap();
    assert_eq!(named(a).await, vec![odd.id, a1.id, a2.id]);
}

pub async fn racing_registrations_take_distinct_versions(s: Arc<dyn Store>) {
    let uri = "urn:test:raced";
    let tasks: Vec<_> = (0..16u128)
        .map(|n| {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                // What the engine does: the latest version plus one, again on a lost race.
                loop {
                    let next = match s.latest_workflow(uri).await.unwrap() {
                        Some(latest) => latest.version + 1,
                        None => 1,
                    };
                    match s
                        .put_workflow(&version_of(100 + n, uri, "raced", next))
                        .await
                    {
                        Ok(()) => return next,
                        Err(Error::DuplicateVersion { version, .. }) => assert_eq!(version, next),
                        Err(e) => panic!("unexpected {e}"),
                    }
                }
            })
        })
        .collect();
    let mut versions = Vec::new();
    for t in tasks {
        versions.push(t.await.unwrap());
    }
    versions.sort_unstable();
    assert_eq!(versions, (1..=16).collect::<Vec<u32>>());
    assert_eq!(
        s.latest_workflow(uri).await.unwrap().map(|w| w.version),
        Some(16)
    );
}
