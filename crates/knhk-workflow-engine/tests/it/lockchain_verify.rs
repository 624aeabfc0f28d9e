//! `verify_lockchain` over a real SQLite store and git anchor, damaged below the engine the
//! way someone with access to the files would: each damage is found and named exactly (the
//! leaf with its case and event, the checkpoint, the commit), and the untouched log holds.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use knhk_lockchain::note::Signer;
use knhk_lockchain::verify::{Options, Place, Report};
use knhk_lockchain::{LeafRef, TileId};
use knhk_store::Store;
use knhk_workflow_engine::{
    AnchorConfig, EngineConfig, KeySource, LockchainConfig, SourceFormat, VerifyOptions,
    VerifyReport, WorkflowEngine,
};
use serde_json::json;

use crate::support::*;

const ORIGIN: &str = "verify.example/lockchain";

fn signer() -> Signer {
    Signer::from_seed(ORIGIN, [42; 32]).unwrap()
}

fn engine(store: Arc<dyn Store>, git_dir: &Path) -> WorkflowEngine {
    let mut lockchain = LockchainConfig::new(signer());
    lockchain.checkpoint_events = 0;
    lockchain.checkpoint_interval = Duration::from_secs(3600);
    lockchain.anchor = Some(AnchorConfig::new(git_dir.to_path_buf()));
    let mut config = EngineConfig::with_defaults(store, directory());
    config.lockchain = Some(lockchain);
    config.timer_poll = Duration::from_secs(3600);
    WorkflowEngine::new(config)
}

/// A data directory with a log of six cases of a three-task sequence, checkpointed after
/// three and after six, each checkpoint anchored in `anchor/`.
struct Fixture {
    _tmp: tempfile::TempDir,
    db: PathBuf,
    git: PathBuf,
}

impl Fixture {
    async fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let db = tmp.path().join("knhk.db");
        let git = tmp.path().join("anchor");
        let store = sqlite(&db).await;
        let engine = engine(Arc::clone(&store), &git);
        let source = turtle(
            "Sequence",
            &[("a", "", &["b"]), ("b", "", &["c"]), ("c", "", &["end"])],
        );
        let wf = engine
            .register_workflow("seq.ttl", SourceFormat::Turtle, &source)
            .await
            .unwrap()
            .workflow;
        for x in 0..6 {
            engine
                .create_case(wf.id, json!({ "x": x }), true)
                .await
                .unwrap();
            if x == 2 || x == 5 {
                engine.checkpoint_now().await.unwrap().unwrap();
            }
        }
        // The anchor thread commits what it was given before it stops.
        engine.shutdown().await;
        Fixture { _tmp: tmp, db, git }
    }

    /// Verifies the store with the engine's own key and anchor.
    async fn verify(&self) -> VerifyReport {
        let store = sqlite(&self.db).await;
        let engine = engine(store, &self.git);
        let report = engine
            .verify_lockchain(VerifyOptions::default(), Box::new(|_| {}))
            .await
            .unwrap();
        engine.shutdown().await;
        report
    }

    /// Returns the event of leaf `i`, and the log's size.
    async fn leaf(&self, i: u64) -> (LeafRef, u64) {
        let store = sqlite(&self.db).await;
        let size = store.lockchain_head().await.unwrap().size;
        let tile = store
            .lockchain_tiles(&[TileId {
                level: 0,
                index: i / 256,
            }])
            .await
            .unwrap();
        (tile[0].leaves[(i % 256) as usize], size)
    }

    fn sql(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(&self.db).unwrap()
    }

    /// Flips the low bit of one byte in the middle of the stored payload of an event.
    fn flip(&self, r: LeafRef) {
        let conn = self.sql();
        let mut payload: Vec<u8> = conn
            .query_row(
                "SELECT payload FROM events WHERE case_id = ?1 AND seq = ?2",
                rusqlite::params![r.case.to_string(), r.seq as i64],
                |row| row.get::<_, String>(0),
            )
            .unwrap()
            .into_bytes();
        let at = payload.len() / 2;
        payload[at] ^= 1;
        let changed = conn
            .execute(
                "UPDATE events SET payload = ?3 WHERE case_id = ?1 AND seq = ?2",
                rusqlite::params![
                    r.case.to_string(),
                    r.seq as i64,
                    String::from_utf8(payload).unwrap()
                ],
            )
            .unwrap();
        assert_eq!(changed, 1);
    }

    fn delete(&self, r: LeafRef) {
        let changed = self
            .sql()
            .execute(
                "DELETE FROM events WHERE case_id = ?1 AND seq = ?2",
                rusqlite::params![r.case.to_string(), r.seq as i64],
            )
            .unwrap();
        assert_eq!(changed, 1);
    }

    fn git(&self, dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }
}

fn leaf_place(i: u64, r: LeafRef) -> String {
    format!("leaf {i} (case {} event {})", r.case, r.seq)
}

fn texts(report: &Report) -> Vec<String> {
    report.problems.iter().map(ToString::to_string).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_untouched_log_verifies_with_the_engines_key_and_anchor() {
    let f = Fixture::new().await;
    let verified = f.verify().await;
    let r = &verified.report;
    assert!(r.is_clean(), "{:?}", texts(r));
    assert!(r.size > 6 * 3, "six cases of three tasks: {}", r.size);
    assert_eq!((r.leaves, r.events), (r.size, r.size));
    assert_eq!((r.checkpoints, r.anchors, r.cases), (2, 2, 6));
    assert!(r.signatures);
    assert_eq!(verified.key_source, KeySource::Engine);
    assert_eq!(verified.key_name, ORIGIN);
    assert_eq!(verified.git_dir.as_deref(), Some(f.git.as_path()));

    // The same with the key given, on a store that cannot be written, and progress told.
    let key = signer().verifier();
    let mut permissions = std::fs::metadata(&f.db).unwrap().permissions();
    permissions.set_readonly(true);
    std::fs::set_permissions(&f.db, permissions).unwrap();
    let read_only = sqlite(&f.db).await;
    let engine = WorkflowEngine::new(EngineConfig::with_defaults(read_only, directory()));
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let told = Arc::clone(&seen);
    let verified = engine
        .verify_lockchain(
            VerifyOptions {
                key: Some(key),
                git_dir: Some(f.git.clone()),
                verify: Options {
                    progress_every: 1,
                    ..Options::default()
                },
            },
            Box::new(move |p| told.lock().unwrap().push(p.leaves)),
        )
        .await
        .unwrap();
    assert!(verified.report.is_clean(), "{:?}", texts(&verified.report));
    assert_eq!(verified.key_source, KeySource::Given);
    assert_eq!(verified.report.anchors, 2);
    assert_eq!(*seen.lock().unwrap().last().unwrap(), verified.report.size);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_byte_of_an_event_changed_at_the_start_the_middle_and_the_end_is_named() {
    for at in ["start", "middle", "end"] {
        let f = Fixture::new().await;
        let (_, size) = f.leaf(0).await;
        let i = match at {
            "start" => 0,
            "middle" => size / 2,
            _ => size - 1,
        };
        let (r, _) = f.leaf(i).await;
        f.flip(r);
        let report = f.verify().await.report;
        let first = texts(&report)[0].clone();
        assert!(
            first.starts_with(&format!("{}: the stored event ", leaf_place(i, r))),
            "{at}: {first}"
        );
        assert!(first.ends_with("it was changed") || first.ends_with("the event was changed"));
        assert_eq!(report.problems.len(), 1, "{at}: {:?}", texts(&report));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_event_swapped_events_and_a_truncated_history_are_named() {
    let f = Fixture::new().await;
    let (r, size) = f.leaf(7).await;
    f.delete(r);
    let report = f.verify().await.report;
    assert_eq!(
        texts(&report)[0],
        format!("{}: no such event: it was deleted", leaf_place(7, r))
    );

    // Two events' payloads swapped: the first of them is named first.
    let f = Fixture::new().await;
    let (a, _) = f.leaf(3).await;
    let (b, _) = f.leaf(size - 4).await;
    let conn = f.sql();
    let payload = |r: LeafRef| -> String {
        conn.query_row(
            "SELECT payload FROM events WHERE case_id = ?1 AND seq = ?2",
            rusqlite::params![r.case.to_string(), r.seq as i64],
            |row| row.get(0),
        )
        .unwrap()
    };
    let (pa, pb) = (payload(a), payload(b));
    assert_ne!(pa, pb);
    for (r, p) in [(a, &pb), (b, &pa)] {
        conn.execute(
            "UPDATE events SET payload = ?3 WHERE case_id = ?1 AND seq = ?2",
            rusqlite::params![r.case.to_string(), r.seq as i64, p],
        )
        .unwrap();
    }
    drop(conn);
    let report = f.verify().await.report;
    let places: Vec<String> = report
        .problems
        .iter()
        .map(|p| p.place.to_string())
        .collect();
    assert_eq!(places, [leaf_place(3, a), leaf_place(size - 4, b)]);

    // The last three events deleted, nothing else lowered.
    let f = Fixture::new().await;
    let mut last = Vec::new();
    for i in size - 3..size {
        last.push((i, f.leaf(i).await.0));
    }
    for (_, r) in &last {
        f.delete(*r);
    }
    let report = f.verify().await.report;
    let expected: Vec<String> = last
        .iter()
        .map(|(i, r)| format!("{}: no such event: it was deleted", leaf_place(*i, *r)))
        .collect();
    assert_eq!(texts(&report), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_altered_checkpoint_signature_is_named() {
    let f = Fixture::new().await;
    let conn = f.sql();
    let (size, note): (i64, String) = conn
        .query_row(
            "SELECT size, note FROM lockchain_checkpoints ORDER BY size LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    // One character of the signature (the last line) changed.
    let at = note.len() - 4;
    let c = if &note[at..=at] == "A" { "B" } else { "A" };
    let mut altered = note.clone();
    altered.replace_range(at..=at, c);
    conn.execute(
        "UPDATE lockchain_checkpoints SET note = ?2 WHERE size = ?1",
        rusqlite::params![size, altered],
    )
    .unwrap();
    drop(conn);
    let report = f.verify().await.report;
    let problems = texts(&report);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with(&format!(
            "checkpoint {size}: its note does not verify with the key {ORIGIN}: "
        )),
        "{}",
        problems[0]
    );
    assert!(problems[0].ends_with(": the checkpoint was changed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewritten_anchor_commit_is_named() {
    let f = Fixture::new().await;
    // The last anchor commit amended in a clone, its note's root changed, pushed back.
    let work = f._tmp.path().join("work");
    let out = Command::new("git")
        .arg("clone")
        .arg(&f.git)
        .arg(&work)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = work.join("checkpoint");
    let note = std::fs::read_to_string(&file).unwrap();
    let mut lines: Vec<String> = note.split('\n').map(str::to_owned).collect();
    let root = &mut lines[2];
    let c = if root.starts_with('A') { "B" } else { "A" };
    root.replace_range(0..1, c);
    std::fs::write(&file, lines.join("\n")).unwrap();
    let message = f.git(&work, &["log", "-1", "--format=%s"]);
    f.git(&work, &["commit", "--amend", "-a", "-m", &message]);
    let rewritten = f.git(&work, &["rev-parse", "HEAD"]);
    let branch = f.git(&f.git, &["symbolic-ref", "HEAD"]);
    f.git(
        &work,
        &["push", "--force", "origin", &format!("HEAD:{branch}")],
    );

    let report = f.verify().await.report;
    let problems = texts(&report);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(
        report.problems[0].place,
        Place::Anchor {
            commit: rewritten.clone()
        }
    );
    assert!(
        problems[0].starts_with(&format!(
            "anchor commit {rewritten}: its note does not verify with the key {ORIGIN}: "
        )),
        "{}",
        problems[0]
    );
    assert!(problems[0].ends_with(": the commit was rewritten"));
}
