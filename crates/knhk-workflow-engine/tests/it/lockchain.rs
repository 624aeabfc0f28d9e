//! The engine's lockchain: leaves in every commit, checkpoints by count and by time, receipts
//! that verify, the git anchor fed by the engine (chained, pushed, refusing what does not
//! extend it), and the health probe.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use knhk_core::CaseId;
use knhk_lockchain::anchor;
use knhk_lockchain::merkle::root_of;
use knhk_lockchain::note::{Signer, Verifier};
use knhk_store::{MemoryStore, Store};
use knhk_workflow_engine::{
    AnchorConfig, EngineConfig, Error, LockchainConfig, SourceFormat, WorkflowEngine,
};
use serde_json::json;

use crate::support::*;

const ORIGIN: &str = "test.example/lockchain";

/// A lockchain signed by a new key, checkpointed only when asked (or after an hour), with an
/// anchor in `git_dir` when given.
fn lockchain(git_dir: Option<&Path>) -> LockchainConfig {
    let mut config = LockchainConfig::new(Signer::generate(ORIGIN).unwrap());
    config.checkpoint_events = 0;
    config.checkpoint_interval = Duration::from_secs(3600);
    config.anchor = git_dir.map(|d| AnchorConfig::new(d.to_path_buf()));
    config
}

fn engine(store: Arc<dyn Store>, lockchain: Option<LockchainConfig>) -> WorkflowEngine {
    let mut config = EngineConfig::with_defaults(store, directory());
    config.lockchain = lockchain;
    // Nothing else of a started engine should wake up during these tests.
    config.timer_poll = Duration::from_secs(3600);
    config.lease = Duration::from_secs(7200);
    config.heartbeat_interval = Duration::from_secs(3600);
    config.node_name = "test".to_owned();
    WorkflowEngine::new(config)
}

/// Runs a case of a three-task sequence to its end; returns it and its number of events.
async fn run_case(engine: &WorkflowEngine, x: i64) -> (CaseId, u64) {
    let source = turtle(
        "Sequence",
        &[("a", "", &["b"]), ("b", "", &["c"]), ("c", "", &["end"])],
    );
    let wf = engine
        .register_workflow("seq.ttl", SourceFormat::Turtle, &source)
        .await
        .unwrap()
        .workflow;
    let case = engine
        .create_case(wf.id, json!({ "x": x }), true)
        .await
        .unwrap();
    let events = engine.history(case.id).await.unwrap().len() as u64;
    (case.id, events)
}

/// Returns the sizes of the checkpoints anchored in `dir`, oldest first.
fn anchored_sizes(dir: &Path) -> Vec<u64> {
    if !dir.join("HEAD").is_file() {
        return Vec::new();
    }
    anchor::chain(dir).unwrap().iter().map(|a| a.size).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_event_gets_the_next_leaf_in_its_commit_and_none_without_the_lockchain() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(&dir.path().join("knhk.db")).await;
    let on = engine(Arc::clone(&store), Some(lockchain(None)));
    let (first, n1) = run_case(&on, 1).await;
    let (second, n2) = run_case(&on, 2).await;
    assert!(
        n1 > 3,
        "a case of three tasks has more events than that: {n1}"
    );

    let head = store.lockchain_head().await.unwrap();
    assert_eq!(head.size, n1 + n2, "one leaf per event");
    let mut leaves = Vec::new();
    for (case, n, offset) in [(first, n1, 0), (second, n2, n1)] {
        let history = on.history(case).await.unwrap();
        for event in &history {
            let leaf = store.event_leaf(case, event.seq).await.unwrap();
            assert_eq!(leaf, Some(offset + event.seq - 1), "event {}", event.seq);
            leaves.push(knhk_lockchain::canonical::event_leaf(case, event).unwrap());
        }
        assert_eq!(history.len() as u64, n);
    }
    assert_eq!(
        head.root,
        root_of(&leaves),
        "the head is the tree of the events' leaves"
    );

    // An engine without the lockchain commits no leaves, and has no receipts to give.
    let off = engine(Arc::clone(&store), None);
    let (third, _) = run_case(&off, 3).await;
    assert_eq!(store.lockchain_head().await.unwrap(), head);
    assert_eq!(store.event_leaf(third, 1).await.unwrap(), None);
    assert!(matches!(
        off.receipt(first, 1).await,
        Err(Error::LockchainOff)
    ));
    assert!(matches!(
        off.lockchain_public_key(),
        Err(Error::LockchainOff)
    ));
    let e = on.receipt(third, 1).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("event 1 of case {third} has no leaf: committed without the lockchain")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_verify_with_the_public_key_alone() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
    let engine = engine(Arc::clone(&store), Some(lockchain(None)));
    let verifier = Verifier::parse(&engine.lockchain_public_key().unwrap()).unwrap();
    let (first, n1) = run_case(&engine, 1).await;
    assert_eq!(engine.latest_checkpoint().await.unwrap(), None);

    // No checkpoint covers the event yet: the receipt takes one.
    let receipt = engine.receipt(first, 2).await.unwrap();
    let verified = receipt.verify(&verifier).unwrap();
    assert_eq!(
        (verified.origin.as_str(), verified.case, verified.seq),
        (ORIGIN, first, 2)
    );
    assert_eq!((verified.leaf_index, verified.tree_size), (1, n1));
    let latest = engine.latest_checkpoint().await.unwrap().unwrap();
    assert_eq!(latest.size, n1);
    assert_eq!(receipt.checkpoint, latest.note);

    // Later events are covered by later checkpoints; earlier receipts use the latest.
    let (second, n2) = run_case(&engine, 2).await;
    for seq in 1..=n2 {
        let v = engine
            .receipt(second, seq)
            .await
            .unwrap()
            .verify(&verifier)
            .unwrap();
        assert_eq!((v.leaf_index, v.tree_size), (n1 + seq - 1, n1 + n2));
    }
    let v = engine
        .receipt(first, n1)
        .await
        .unwrap()
        .verify(&verifier)
        .unwrap();
    assert_eq!((v.leaf_index, v.tree_size), (n1 - 1, n1 + n2));
    // Taking a checkpoint with nothing new gives the latest again.
    let again = engine.checkpoint_now().await.unwrap().unwrap();
    assert_eq!(again.size, n1 + n2);
    assert_eq!(store.checkpoints(0, 10).await.unwrap().len(), 2);

    // A receipt checked against another key fails.
    let other = Signer::generate(ORIGIN).unwrap().verifier();
    assert!(
        engine
            .receipt(first, 1)
            .await
            .unwrap()
            .verify(&other)
            .is_err()
    );

    let e = engine.receipt(first, n1 + 1).await.unwrap_err();
    assert!(
        matches!(e, Error::UnknownEvent { seq, .. } if seq == n1 + 1),
        "{e}"
    );
    assert_eq!(e.code(), knhk_workflow_engine::ErrorCode::NotFound);
    let nobody = CaseId(uuid::Uuid::from_u128(7));
    assert!(matches!(
        engine.receipt(nobody, 1).await,
        Err(Error::UnknownCase(c)) if c == nobody
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_started_engine_checkpoints_after_n_leaves() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
    let mut config = lockchain(None);
    config.checkpoint_events = 20;
    let engine = engine(Arc::clone(&store), Some(config));
    engine.start().await.unwrap();
    let mut events = 0;
    while events < 20 {
        assert_eq!(
            engine.latest_checkpoint().await.unwrap(),
            None,
            "no checkpoint before 20 leaves ({events} so far)"
        );
        events += run_case(&engine, events as i64).await.1;
    }
    eventually("a checkpoint after 20 leaves", || async {
        engine
            .latest_checkpoint()
            .await
            .unwrap()
            .is_some_and(|c| c.size >= 20)
    })
    .await;
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_started_engine_checkpoints_after_t_when_the_tree_grew_and_at_shutdown() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
    let mut config = lockchain(None);
    config.checkpoint_interval = Duration::from_millis(100);
    let engine = engine(Arc::clone(&store), Some(config));
    engine.start().await.unwrap();
    let (_, n1) = run_case(&engine, 1).await;
    eventually("a checkpoint after the interval", || async {
        engine
            .latest_checkpoint()
            .await
            .unwrap()
            .is_some_and(|c| c.size == n1)
    })
    .await;
    // The interval passes again and again with nothing new: no new checkpoint. The one at
    // shutdown covers what came last.
    let (_, n2) = run_case(&engine, 2).await;
    engine.shutdown().await;
    let sizes: Vec<u64> = store
        .checkpoints(0, 100)
        .await
        .unwrap()
        .iter()
        .map(|c| c.size)
        .collect();
    assert!(sizes.contains(&n1), "{sizes:?}");
    assert_eq!(sizes.last(), Some(&(n1 + n2)), "{sizes:?}");
    assert!(sizes.windows(2).all(|w| w[0] < w[1]), "{sizes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_are_anchored_in_git_chained_and_pushed() {
    let tmp = tempfile::tempdir().unwrap();
    let git_dir = tmp.path().join("anchor");
    let remote = tmp.path().join("remote.git");
    let init = std::process::Command::new("git")
        .args(["init", "--bare", "--quiet"])
        .arg(&remote)
        .status()
        .unwrap();
    assert!(init.success());
    let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
    let mut config = lockchain(Some(&git_dir));
    if let Some(anchor) = config.anchor.as_mut() {
        anchor.remote = Some(remote.display().to_string());
    }
    let engine = engine(Arc::clone(&store), Some(config));
    assert_eq!(
        engine.lockchain_health().await.result,
        Ok(format!(
            "git anchor {} is writable; the tree is empty",
            git_dir.display()
        ))
    );
    engine.start().await.unwrap();
    let mut sizes = Vec::new();
    for x in 0..3 {
        run_case(&engine, x).await;
        sizes.push(engine.checkpoint_now().await.unwrap().unwrap().size);
    }
    eventually("three checkpoints anchored", || async {
        anchored_sizes(&git_dir) == sizes
    })
    .await;
    let chain = anchor::chain(&git_dir).unwrap();
    assert_eq!(chain[0].parent, None);
    assert_eq!(chain[1].parent.as_deref(), Some(chain[0].commit.as_str()));
    assert_eq!(chain[2].parent.as_deref(), Some(chain[1].commit.as_str()));
    let stored = store.checkpoints(0, 10).await.unwrap();
    assert_eq!(
        chain.iter().map(|a| a.note.clone()).collect::<Vec<_>>(),
        stored.iter().map(|c| c.note.clone()).collect::<Vec<_>>()
    );
    eventually("the chain pushed", || async {
        anchored_sizes(&remote) == sizes
    })
    .await;
    let health = engine.lockchain_health().await.result.unwrap();
    assert!(
        health.contains("is writable; the last anchored checkpoint, of size"),
        "{health}"
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anchor_refuses_a_tree_that_does_not_extend_it_and_health_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let git_dir = tmp.path().join("anchor");
    // A first log anchors its checkpoint.
    let first = engine(
        Arc::new(MemoryStore::default()),
        Some(lockchain(Some(&git_dir))),
    );
    run_case(&first, 1).await;
    run_case(&first, 2).await;
    let anchored = first.checkpoint_now().await.unwrap().unwrap().size;
    first.shutdown().await;
    assert_eq!(anchored_sizes(&git_dir), [anchored]);

    // Another log on the same anchor: smaller, then larger but of other events.
    let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
    let second = engine(Arc::clone(&store), Some(lockchain(Some(&git_dir))));
    let (_, n) = run_case(&second, 3).await;
    assert!(n < anchored);
    second.checkpoint_now().await.unwrap();
    let health = || async { second.lockchain_health().await.result };
    eventually("the smaller checkpoint refused", || async {
        health().await.is_err()
    })
    .await;
    let e = health().await.unwrap_err();
    assert!(
        e.contains(&format!(
            "checkpoint of size {n} refused: the last anchored checkpoint is of size \
             {anchored}: an anchor never goes backwards"
        )),
        "{e}"
    );
    while store.lockchain_head().await.unwrap().size <= anchored {
        run_case(&second, 4).await;
    }
    let larger = second.checkpoint_now().await.unwrap().unwrap().size;
    eventually("the inconsistent checkpoint refused", || async {
        health()
            .await
            .is_err_and(|e| e.contains(&format!("checkpoint of size {larger} refused")))
    })
    .await;
    let e = health().await.unwrap_err();
    assert!(
        e.contains(&format!(
            "it is not consistent with the last anchored checkpoint, of size {anchored}"
        )),
        "{e}"
    );
    second.shutdown().await;
    assert_eq!(
        anchored_sizes(&git_dir),
        [anchored],
        "nothing refused was committed"
    );
}

#[tokio::test(start_paused = true)]
async fn health_says_when_the_last_anchor_is_too_old_for_a_grown_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let git_dir = tmp.path().join("anchor");
    let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
    let engine = engine(Arc::clone(&store), Some(lockchain(Some(&git_dir))));
    run_case(&engine, 1).await;
    let size = engine.checkpoint_now().await.unwrap().unwrap().size;
    // The anchor's thread commits it; nothing to wait on but the repository.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while anchored_sizes(&git_dir) != [size] {
        assert!(std::time::Instant::now() < deadline, "not anchored in time");
        // The paused clock does not pass here: poll the repository on the wall clock.
        std::thread::sleep(Duration::from_millis(5));
    }
    // Ten minutes later, the tree has grown and no checkpoint was anchored since.
    tokio::time::advance(Duration::from_secs(600)).await;
    assert!(engine.lockchain_health().await.result.is_ok());
    let (_, n) = run_case(&engine, 2).await;
    let e = engine.lockchain_health().await.result.unwrap_err();
    // The commit's time is the wall clock's, in whole seconds, and the wall clock went on
    // while the test's clock was paused: the age is ten minutes, give or take a few seconds.
    let prefix = format!("the last anchored checkpoint, of size {size}, is ");
    let age: u64 = e
        .split_once(&prefix)
        .and_then(|(_, rest)| rest.split_once(" s old"))
        .and_then(|(age, _)| age.parse().ok())
        .unwrap_or_else(|| panic!("no age in {e:?}"));
    assert!((590..=601).contains(&age), "{e}");
    assert!(
        e.contains(&format!(
            " s old (the bound is 300 s), and the tree has grown to {} leaves",
            size + n
        )),
        "{e}"
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistency_proofs_between_stored_checkpoints_verify_with_the_public_key_alone() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
    let engine = engine(Arc::clone(&store), Some(lockchain(None)));
    let verifier = Verifier::parse(&engine.lockchain_public_key().unwrap()).unwrap();
    let e = engine.consistency_proof(1, None).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "no checkpoint of tree size 1 is stored (no checkpoint is stored yet)"
    );
    let mut sizes = Vec::new();
    for x in 0..3 {
        run_case(&engine, x).await;
        sizes.push(engine.checkpoint_now().await.unwrap().unwrap().size);
    }
    let (a, b, c) = (sizes[0], sizes[1], sizes[2]);

    // Between any two stored checkpoints, and to the latest by default.
    for (old, new) in [
        (a, Some(b)),
        (a, Some(c)),
        (b, Some(c)),
        (b, Some(b)),
        (a, None),
    ] {
        let p = engine.consistency_proof(old, new).await.unwrap();
        let v = p.verify(&verifier).unwrap();
        assert_eq!((v.old_size, v.new_size), (old, new.unwrap_or(c)));
        assert_eq!(v.origin, ORIGIN);
    }
    let p = engine.consistency_proof(a, None).await.unwrap();
    let latest = engine.latest_checkpoint().await.unwrap().unwrap();
    assert_eq!(p.new_checkpoint, latest.note);

    // An altered proof, a root of another tree, or a note not signed by the key fail.
    let mut altered = p.clone();
    altered.proof[0] = knhk_lockchain::merkle::to_base64(&[9; 32]);
    let e = altered.verify(&verifier).unwrap_err().to_string();
    assert!(e.starts_with("the consistency proof:"), "{e}");
    let mut other_root = p.clone();
    other_root.old_checkpoint = engine
        .consistency_proof(b, None)
        .await
        .unwrap()
        .old_checkpoint;
    let e = other_root.verify(&verifier).unwrap_err().to_string();
    assert!(e.contains("the old checkpoint signs a tree of"), "{e}");
    let mut forged = p.clone();
    forged.new_checkpoint = Signer::generate(ORIGIN)
        .unwrap()
        .sign(&knhk_lockchain::note::Checkpoint {
            origin: ORIGIN.to_owned(),
            size: c,
            root: [1; 32],
            extensions: vec![],
        })
        .unwrap();
    let e = forged.verify(&verifier).unwrap_err().to_string();
    assert!(e.starts_with("the new checkpoint:"), "{e}");

    // Unknown sizes are named with the nearest stored ones; old after new is refused.
    let e = engine.consistency_proof(a + 1, None).await.unwrap_err();
    assert_eq!(e.code(), knhk_workflow_engine::ErrorCode::NotFound);
    assert_eq!(
        e.to_string(),
        format!(
            "no checkpoint of tree size {} is stored (the nearest stored are {a} and {b})",
            a + 1
        )
    );
    let e = engine.consistency_proof(a, Some(c + 5)).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "no checkpoint of tree size {} is stored (the nearest stored is {c}, the latest)",
            c + 5
        )
    );
    let e = engine.consistency_proof(c + 5, None).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "no checkpoint of tree size {} is stored (the nearest stored is {c}, the latest)",
            c + 5
        )
    );
    let e = engine.consistency_proof(1, Some(c)).await.unwrap_err();
    assert!(
        e.to_string()
            .ends_with(&format!("(the nearest stored is {a}, the first)")),
        "{e}"
    );
    let e = engine.consistency_proof(c, Some(a)).await.unwrap_err();
    assert_eq!(e.code(), knhk_workflow_engine::ErrorCode::InvalidArgument);
    assert!(
        matches!(e, Error::NotAPrefix { old, new } if old == c && new == a),
        "{e}"
    );

    // A lockchain that is off has no proofs.
    let off = engine_off();
    assert!(matches!(
        off.consistency_proof(1, None).await,
        Err(Error::LockchainOff)
    ));
}

fn engine_off() -> WorkflowEngine {
    engine(Arc::new(MemoryStore::default()), None)
}
