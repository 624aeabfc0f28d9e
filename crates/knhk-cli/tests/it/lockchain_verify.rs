//! `knhk lockchain verify` and `verify-receipt` on a data directory damaged below the engine,
//! the way someone with access to its files would: one byte of an event at the start, the
//! middle and the end of the log, a deleted event, two events swapped, the last events
//! deleted, a checkpoint's signature, a rewritten anchor commit. Each fails the command naming
//! exactly the record at fault; the untouched log verifies.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::{DataDir, example, path_str, stderr, stdout};

/// The checkpoint origin and key name of a data directory's generated key.
const ORIGIN: &str = "knhk.local/lockchain";

/// Runs of the sequence pattern, each of seven events, each checkpointed (and anchored) by
/// `knhk run` as it ends.
const RUNS: u64 = 4;
const EVENTS: u64 = 7;

/// A data directory with a log of four runs of the sequence pattern.
fn logged() -> DataDir {
    let data = DataDir::local();
    for _ in 0..RUNS {
        data.ok(&["run", &example("patterns/wcp01_sequence.ttl")]);
    }
    data
}

fn db(data: &DataDir) -> rusqlite::Connection {
    rusqlite::Connection::open(data.path().join("knhk.db")).expect("the store file opens")
}

/// Returns the case (as stored) and seq of the event of leaf `i`.
fn leaf(data: &DataDir, i: u64) -> (String, i64) {
    db(data)
        .query_row(
            "SELECT case_id, seq FROM events WHERE leaf = ?1",
            [i as i64],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("the event of the leaf")
}

fn place(i: u64, (case, seq): &(String, i64)) -> String {
    format!("leaf {i} (case {case} event {seq})")
}

fn payload(data: &DataDir, (case, seq): &(String, i64)) -> String {
    db(data)
        .query_row(
            "SELECT payload FROM events WHERE case_id = ?1 AND seq = ?2",
            rusqlite::params![case, seq],
            |r| r.get(0),
        )
        .expect("the event's payload")
}

fn set_payload(data: &DataDir, (case, seq): &(String, i64), payload: &str) {
    let changed = db(data)
        .execute(
            "UPDATE events SET payload = ?3 WHERE case_id = ?1 AND seq = ?2",
            rusqlite::params![case, seq, payload],
        )
        .expect("the payload is written");
    assert_eq!(changed, 1);
}

fn verify(data: &DataDir, extra: &[&str]) -> Output {
    let mut args = vec!["lockchain", "verify"];
    args.extend_from_slice(extra);
    data.knhk(&args)
}

/// Returns the problems a failed verification printed, checking that it failed.
fn problems(out: &Output) -> Vec<String> {
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout: {}\nstderr: {}",
        stdout(out),
        stderr(out)
    );
    stdout(out)
        .lines()
        .filter_map(|l| l.strip_prefix("problem: "))
        .map(str::to_owned)
        .collect()
}

/// Writes the log's public key, as `knhk lockchain public-key` prints it, to a file.
fn public_key(data: &DataDir) -> PathBuf {
    let key = data.ok(&["lockchain", "public-key"]);
    let file = data.path().join("log.pub");
    std::fs::write(&file, key).expect("the key file");
    file
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com", "-C"])
        .arg(dir)
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn the_untouched_log_verifies_saying_with_what_key_and_anchor() {
    let data = logged();
    let size = RUNS * EVENTS;
    let text = data.ok(&["lockchain", "verify"]);
    let anchor = data.path().join("lockchain/anchor.git");
    assert!(
        text.contains(&format!("key {ORIGIN} (the engine's own)\n")),
        "{text}"
    );
    assert!(
        text.contains(&format!("anchors {}\n", anchor.display())),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "checked {size} of {size} leaves, {size} events, {RUNS} checkpoints, {RUNS} \
             anchors, {RUNS} cases (0 without leaves) in "
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("ok: the log holds: {size} leaves, root ")),
        "{text}"
    );

    // With the key given, progress asked for, as JSON.
    let key = public_key(&data);
    let out = verify(
        &data,
        &["--public-key", path_str(&key), "--progress", "--json"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: Value = serde_json::from_str(&stdout(&out)).expect("one JSON document");
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["key"]["name"], ORIGIN);
    assert_eq!(doc["key"]["from"], path_str(&key));
    assert_eq!(doc["leaves"], size);
    assert_eq!(doc["events"], size);
    assert_eq!(doc["checkpoints"], RUNS);
    assert_eq!(doc["anchors"], RUNS);
    assert_eq!(doc["problems"], serde_json::json!([]));
    assert!(
        stderr(&out).contains(&format!("verified {size} of {size} leaves (100%)")),
        "{}",
        stderr(&out)
    );

    // On a store that cannot be written.
    let file = data.path().join("knhk.db");
    let mut permissions = std::fs::metadata(&file).expect("the store").permissions();
    permissions.set_readonly(true);
    std::fs::set_permissions(&file, permissions).expect("read-only");
    let text = data.ok(&["lockchain", "verify", "--public-key", path_str(&key)]);
    assert!(text.contains("ok: the log holds"), "{text}");
}

#[test]
fn another_key_fails_every_checkpoint_and_anchor_naming_the_first() {
    let data = logged();
    let other = knhk_lockchain::note::Signer::from_seed(ORIGIN, [9; 32])
        .expect("a key")
        .verifier_key();
    let key = data.path().join("other.pub");
    std::fs::write(&key, format!("{other}\n")).expect("the key file");
    let found = problems(&verify(&data, &["--public-key", path_str(&key)]));
    assert_eq!(found.len() as u64, 2 * RUNS, "{found:?}");
    assert!(
        found[0].starts_with(&format!(
            "checkpoint {EVENTS}: its note does not verify with the key {ORIGIN}: "
        )),
        "{found:?}"
    );
}

#[test]
fn one_byte_of_an_event_changed_is_named_at_the_start_the_middle_and_the_end() {
    let size = RUNS * EVENTS;
    for i in [0, size / 2, size - 1] {
        let data = logged();
        let event = leaf(&data, i);
        let mut bytes = payload(&data, &event).into_bytes();
        let at = bytes.len() / 2;
        bytes[at] ^= 1;
        set_payload(
            &data,
            &event,
            &String::from_utf8(bytes).expect("still text"),
        );
        let found = problems(&verify(&data, &[]));
        assert_eq!(found.len(), 1, "leaf {i}: {found:?}");
        assert!(
            found[0].starts_with(&format!("{}: the stored event ", place(i, &event))),
            "{found:?}"
        );
        assert!(found[0].ends_with("was changed"), "{found:?}");
    }
}

#[test]
fn a_deleted_event_two_swapped_and_the_last_ones_deleted_are_named() {
    let size = RUNS * EVENTS;
    let data = logged();
    let event = leaf(&data, 9);
    let changed = db(&data)
        .execute(
            "DELETE FROM events WHERE case_id = ?1 AND seq = ?2",
            rusqlite::params![event.0, event.1],
        )
        .expect("deleted");
    assert_eq!(changed, 1);
    assert_eq!(
        problems(&verify(&data, &[])),
        [format!(
            "{}: no such event: it was deleted",
            place(9, &event)
        )]
    );

    let data = logged();
    let (a, b) = (leaf(&data, 2), leaf(&data, size - 3));
    let (pa, pb) = (payload(&data, &a), payload(&data, &b));
    assert_ne!(pa, pb);
    set_payload(&data, &a, &pb);
    set_payload(&data, &b, &pa);
    let found = problems(&verify(&data, &[]));
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found[0].starts_with(&format!("{}: ", place(2, &a))),
        "{found:?}"
    );
    assert!(
        found[1].starts_with(&format!("{}: ", place(size - 3, &b))),
        "{found:?}"
    );

    // The last three events deleted, and nothing else lowered.
    let data = logged();
    let last: Vec<(u64, (String, i64))> = (size - 3..size).map(|i| (i, leaf(&data, i))).collect();
    let deleted = db(&data)
        .execute("DELETE FROM events WHERE leaf >= ?1", [(size - 3) as i64])
        .expect("deleted");
    assert_eq!(deleted, 3);
    let expected: Vec<String> = last
        .iter()
        .map(|(i, e)| format!("{}: no such event: it was deleted", place(*i, e)))
        .collect();
    assert_eq!(problems(&verify(&data, &[])), expected);
}

#[test]
fn an_altered_checkpoint_signature_is_named() {
    let data = logged();
    let conn = db(&data);
    let size = 2 * EVENTS;
    let note: String = conn
        .query_row(
            "SELECT note FROM lockchain_checkpoints WHERE size = ?1",
            [size as i64],
            |r| r.get(0),
        )
        .expect("the checkpoint of the second run");
    // One character of the signature line (the note's last) changed.
    let at = note.len() - 4;
    let c = if &note[at..=at] == "A" { "B" } else { "A" };
    let mut altered = note.clone();
    altered.replace_range(at..=at, c);
    conn.execute(
        "UPDATE lockchain_checkpoints SET note = ?2 WHERE size = ?1",
        rusqlite::params![size as i64, altered],
    )
    .expect("written");
    drop(conn);
    let found = problems(&verify(&data, &[]));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with(&format!(
            "checkpoint {size}: its note does not verify with the key {ORIGIN}: "
        )),
        "{found:?}"
    );
    assert!(
        found[0].ends_with(": the checkpoint was changed"),
        "{found:?}"
    );
}

#[test]
fn a_rewritten_anchor_commit_is_named() {
    let data = logged();
    let anchor = data.path().join("lockchain/anchor.git");
    // The last anchor commit amended in a clone, one character of its note's root changed,
    // and pushed back over the original.
    let work = data.path().join("work");
    let out = Command::new("git")
        .arg("clone")
        .arg(&anchor)
        .arg(&work)
        .output()
        .expect("git clone runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = work.join("checkpoint");
    let note = std::fs::read_to_string(&file).expect("the checkpoint file");
    let mut lines: Vec<String> = note.split('\n').map(str::to_owned).collect();
    let c = if lines[2].starts_with('A') { "B" } else { "A" };
    lines[2].replace_range(0..1, c);
    std::fs::write(&file, lines.join("\n")).expect("written");
    let message = git(&work, &["log", "-1", "--format=%s"]);
    git(&work, &["commit", "--amend", "-a", "-m", &message]);
    let rewritten = git(&work, &["rev-parse", "HEAD"]);
    let branch = git(&anchor, &["symbolic-ref", "HEAD"]);
    git(
        &work,
        &["push", "--force", "origin", &format!("HEAD:{branch}")],
    );

    let found = problems(&verify(&data, &[]));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with(&format!(
            "anchor commit {rewritten}: its note does not verify with the key {ORIGIN}: "
        )),
        "{found:?}"
    );
    assert!(
        found[0].ends_with(": the commit was rewritten"),
        "{found:?}"
    );

    // --git names another repository: there the chain holds.
    let copy = data.path().join("copy.git");
    let out = Command::new("git")
        .args(["clone", "--bare"])
        .arg(&anchor)
        .arg(&copy)
        .output()
        .expect("git clone runs");
    assert!(out.status.success());
    git(&copy, &["update-ref", &branch, &format!("{rewritten}~1")]);
    let text = data.ok(&["lockchain", "verify", "--git", path_str(&copy)]);
    assert!(
        text.contains(&format!("{} checkpoints, {} anchors", RUNS, RUNS - 1)),
        "{text}"
    );
}

#[test]
fn a_receipt_verifies_with_the_key_alone_and_an_altered_one_says_why_not() {
    let data = logged();
    let key = public_key(&data);
    let cases: Value = serde_json::from_str(&data.ok(&["case", "list", "--json"])).expect("JSON");
    let case = cases[0]["case_id"].as_str().expect("a case id").to_owned();
    let file = data.path().join("receipt.json");
    data.ok(&["lockchain", "receipt", &case, "3", "--out", path_str(&file)]);

    // Checked with nothing but the files: no data directory.
    let check = |receipt: &Path, key: &Path| {
        crate::knhk(&[
            "lockchain",
            "verify-receipt",
            path_str(receipt),
            "--public-key",
            path_str(key),
        ])
    };
    let out = check(&file, &key);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with(&format!("ok: event 3 of case {case} is leaf ")),
        "{}",
        stdout(&out)
    );

    let receipt: Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("the receipt")).expect("JSON");
    let altered = |name: &str, change: &dyn Fn(&mut Value)| {
        let mut r = receipt.clone();
        change(&mut r);
        let path = data.path().join(name);
        std::fs::write(&path, r.to_string()).expect("written");
        path
    };
    // A hash of the proof replaced by another.
    let proof = altered("proof.json", &|r| {
        r["inclusion"][0] = Value::from("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
    });
    let out = check(&proof, &key);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("does not hold: the inclusion proof: "),
        "{}",
        stderr(&out)
    );
    // The event's bytes of another event.
    let other = receipt["event"].as_str().expect("event bytes").to_owned();
    let event = altered("event.json", &|r| {
        let mut bytes = base64_decode(&other);
        let last = bytes.len() - 2;
        bytes[last] ^= 1;
        r["event"] = Value::from(base64_encode(&bytes));
    });
    let out = check(&event, &key);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("does not hold: "), "{}", stderr(&out));
    // Another key.
    let wrong = data.path().join("wrong.pub");
    let other = knhk_lockchain::note::Signer::from_seed(ORIGIN, [3; 32])
        .expect("a key")
        .verifier_key();
    std::fs::write(&wrong, other).expect("written");
    let out = check(&file, &wrong);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("does not hold: "), "{}", stderr(&out));
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("base64")
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn a_log_on_postgres_verifies_and_a_changed_event_is_named() {
    let schema = crate::postgres::Schema::fresh();
    let dir = tempfile::tempdir().expect("a data directory for the key and the anchor");
    let run = |args: &[&str]| {
        let mut all = vec!["--data-dir", path_str(dir.path()), "--store", &schema.url];
        all.extend_from_slice(args);
        crate::knhk(&all)
    };
    for _ in 0..3 {
        let out = run(&["run", &example("patterns/wcp01_sequence.ttl")]);
        assert!(
            out.status.success(),
            "{} (PostgreSQL not reachable? run .ci/services)",
            stderr(&out)
        );
    }
    let out = run(&["lockchain", "verify"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let size = 3 * EVENTS;
    assert!(
        stdout(&out).contains(&format!("ok: the log holds: {size} leaves")),
        "{}",
        stdout(&out)
    );

    // The time of the event of leaf 10 moved by a millisecond, in the database itself.
    let url = schema.url.clone();
    let event = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        rt.block_on(async move {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .expect("PostgreSQL");
            tokio::spawn(conn);
            let row = client
                .query_one("SELECT case_id, seq FROM events WHERE leaf = 10", &[])
                .await
                .expect("the event of leaf 10");
            let changed = client
                .execute("UPDATE events SET time = time + 1 WHERE leaf = 10", &[])
                .await
                .expect("changed");
            assert_eq!(changed, 1);
            (row.get::<_, String>(0), row.get::<_, i64>(1))
        })
    })
    .join()
    .expect("the change is made");
    let found = problems(&run(&["lockchain", "verify"]));
    assert_eq!(
        found,
        [format!(
            "{}: the stored event does not hash to its leaf: the event was changed",
            place(10, &event)
        )]
    );
}

#[test]
fn a_copy_of_the_store_alone_verifies_with_the_key_and_the_anchor_named() {
    let data = logged();
    let key = public_key(&data);
    let anchor = data.path().join("lockchain/anchor.git");
    // The store alone, elsewhere (with its write-ahead log, if a process left one).
    let copy = DataDir::local();
    for file in ["knhk.db", "knhk.db-wal"] {
        if data.path().join(file).is_file() {
            std::fs::copy(data.path().join(file), copy.path().join(file)).expect("copied");
        }
    }
    let text = copy.ok(&["lockchain", "verify", "--public-key", path_str(&key)]);
    // The copy has no key: verifying makes none, so its engine keeps no lockchain and no anchor.
    assert!(
        text.contains("anchors not checked (no --git DIR, and the engine has none)"),
        "{text}"
    );
    assert!(
        !copy.path().join("lockchain").exists(),
        "verify made no key"
    );
    assert!(text.contains("ok: the log holds"), "{text}");
    let text = copy.ok(&[
        "lockchain",
        "verify",
        "--public-key",
        path_str(&key),
        "--git",
        path_str(&anchor),
    ]);
    assert!(
        text.contains(&format!("{RUNS} checkpoints, {RUNS} anchors")),
        "{text}"
    );
}

#[test]
fn a_log_whose_lockchain_is_off_needs_the_key_given_and_counts_the_cases_without_leaves() {
    let data = logged();
    let key = public_key(&data);
    // The lockchain turned off: one more case, with no leaf.
    std::fs::write(
        data.path().join("knhk.toml"),
        "[lockchain]\nenabled = false\n",
    )
    .expect("the config file");
    data.ok(&["run", &example("patterns/wcp01_sequence.ttl")]);
    let err = data.fails(&["lockchain", "verify"]);
    assert!(
        err.contains("give the log's public key with --public-key FILE"),
        "{err}"
    );
    let text = data.ok(&["lockchain", "verify", "--public-key", path_str(&key)]);
    assert!(
        text.contains(&format!("{RUNS} cases (1 without leaves)")),
        "{text}"
    );
    assert!(text.contains("ok: the log holds"), "{text}");
}
