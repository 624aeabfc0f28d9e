//! The corpus of recorded histories under `tests/histories/`: every history replays through
//! `Case::replay` against its workflow file to the end state its manifest records, and its
//! events encode again to exactly the recorded lines.
//!
//! The histories were produced by the engine as it was when they were recorded, so a change
//! to `evolve` (or to the event encoding) that breaks one breaks cases already stored. Such a
//! history is never edited: the change needs a migration. See `tests/histories/README.md`.
//!
//! `record` adds histories: the pattern tests call it after every `finish` (and the editor
//! tests `record_editor` after every run they check), and it writes the run's history and
//! manifest when `KNHK_RECORD_HISTORIES` is set and the files do not exist.

// Test code: a failed expectation is a panic that names what went wrong.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cell::Cell;
use std::fs;
use std::path::{Path, PathBuf};

use knhk_core::model::TaskBinding;
use knhk_core::{Case, CaseId, Event, Workflow};
use serde_json::{Value, json};

/// The smallest corpus the test accepts: a corpus that silently shrank protects nothing.
const AT_LEAST: usize = 124;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/histories")
}

/// What a case stands at, in the manifest's terms: its status, data, marking and what it waits
/// for (live work items and connector calls, armed timers, enabled trigger tasks).
fn end_state(wf: &Workflow, case: &Case) -> Value {
    let marking: Vec<Value> = case
        .marking(wf)
        .into_iter()
        .map(|(net_instance, condition, tokens)| json!([net_instance, condition, tokens]))
        .collect();
    let work_items: Vec<Value> = case
        .work_items()
        .map(|(id, item)| {
            json!({
                "item": id,
                "task": item.task.task,
                "net_instance": item.task.net_instance,
                "instance": item.instance,
                "state": format!("{:?}", item.state).to_lowercase(),
                "owner": item.owner,
                "connector": match &item.kind {
                    knhk_core::WorkItemKind::Call { connector, .. } => Some(connector.as_str()),
                    knhk_core::WorkItemKind::Human => None,
                },
            })
        })
        .collect();
    let timers: Vec<Value> = case
        .timers()
        .map(|(id, fires_at)| json!({ "timer": id, "fires_at": fires_at }))
        .collect();
    let triggers: Vec<Value> = case
        .enabled_tasks(wf)
        .into_iter()
        .filter_map(|task| match &case.task_model(wf, &task)?.binding {
            TaskBinding::Trigger { event, .. } => Some(json!({
                "task": task.task,
                "net_instance": task.net_instance,
                "event": event,
            })),
            _ => None,
        })
        .collect();
    json!({
        "status": case.status(),
        "data": case.data(),
        "marking": marking,
        "work_items": work_items,
        "timers": timers,
        "triggers": triggers,
    })
}

/// The stored form of one event: its serde JSON, which the store keeps as `seq`, `time` and
/// the `kind` payload.
fn encode(event: &Event) -> String {
    serde_json::to_string(event).expect("an event encodes")
}

thread_local! {
    /// How many histories this test (one thread) recorded, to name the next one.
    static RECORDED: Cell<u32> = const { Cell::new(0) };
}

/// Writes the history of a pattern run and its manifest under `tests/histories/patterns/`,
/// named after the test (`-2`, `-3`... for later runs of the same test), when
/// `KNHK_RECORD_HISTORIES` is set. An existing history is never overwritten.
pub(crate) fn record(file: &str, wf: &Workflow, case: &Case, events: &[Event]) {
    record_under(
        "patterns",
        &format!("examples/patterns/{file}"),
        "knhk-spec pattern test",
        wf,
        case,
        events,
    );
}

/// Writes the history of a run of an editor-shaped YAWL file (`examples/yawl/FILE`) and its
/// manifest under `tests/histories/editor/`, named as `record` names them.
pub(crate) fn record_editor(file: &str, wf: &Workflow, case: &Case, events: &[Event]) {
    record_under(
        "editor",
        &format!("examples/yawl/{file}"),
        "knhk-spec editor test",
        wf,
        case,
        events,
    );
}

fn record_under(dir: &str, workflow: &str, by: &str, wf: &Workflow, case: &Case, events: &[Event]) {
    if std::env::var_os("KNHK_RECORD_HISTORIES").is_none() {
        return;
    }
    let thread = std::thread::current();
    let test = thread
        .name()
        .and_then(|n| n.rsplit("::").next())
        .expect("a test thread is named after its test");
    let n = RECORDED.with(|c| {
        c.set(c.get() + 1);
        c.get()
    });
    let name = if n == 1 {
        test.to_owned()
    } else {
        format!("{test}-{n}")
    };
    let dir = corpus().join(dir);
    let history = dir.join(format!("{name}.events.jsonl"));
    if history.exists() {
        return;
    }
    fs::create_dir_all(&dir).unwrap();
    let lines: String = events.iter().map(|e| encode(e) + "\n").collect();
    fs::write(&history, lines).unwrap();
    let manifest = json!({
        "workflow": workflow,
        "recorded_by": format!("{by} {test}, finish call {n}"),
        "case": case.id(),
        "end": end_state(wf, case),
    });
    fs::write(
        dir.join(format!("{name}.manifest.json")),
        serde_json::to_string_pretty(&manifest).unwrap() + "\n",
    )
    .unwrap();
}

/// One recorded history with its manifest.
struct Recorded {
    name: String,
    manifest: Value,
    lines: Vec<String>,
}

/// Returns every history of the corpus, by manifest path, sorted.
fn recorded() -> Vec<Recorded> {
    let mut manifests = Vec::new();
    let mut dirs = vec![corpus()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.to_string_lossy().ends_with(".manifest.json") {
                manifests.push(path);
            }
        }
    }
    manifests.sort();
    manifests
        .into_iter()
        .map(|path| {
            let text = path.to_string_lossy();
            let stem = text.trim_end_matches(".manifest.json");
            let name = stem
                .strip_prefix(&*corpus().to_string_lossy())
                .unwrap_or(stem)
                .trim_start_matches('/')
                .to_owned();
            let manifest: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap())
                .unwrap_or_else(|e| panic!("{name}: manifest: {e}"));
            let history = PathBuf::from(format!("{stem}.events.jsonl"));
            let lines = fs::read_to_string(&history)
                .unwrap_or_else(|e| panic!("{name}: {}: {e}", history.display()))
                .lines()
                .map(str::to_owned)
                .collect();
            Recorded {
                name,
                manifest,
                lines,
            }
        })
        .collect()
}

fn events(h: &Recorded) -> Vec<Event> {
    h.lines
        .iter()
        .enumerate()
        .map(|(n, line)| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{}: line {}: {e}", h.name, n + 1))
        })
        .collect()
}

#[test]
fn every_recorded_history_replays_to_its_recorded_end_state() {
    let histories = recorded();
    assert!(
        histories.len() >= AT_LEAST,
        "the corpus holds {} histories, fewer than {AT_LEAST}",
        histories.len()
    );
    for h in &histories {
        let file = h.manifest["workflow"]
            .as_str()
            .unwrap_or_else(|| panic!("{}: manifest names no workflow", h.name));
        let wf = knhk_spec::load_file(&repo_root().join(file))
            .unwrap_or_else(|e| panic!("{}: {file}: {e}", h.name));
        let id: CaseId = serde_json::from_value(h.manifest["case"].clone())
            .unwrap_or_else(|e| panic!("{}: case id: {e}", h.name));
        let events = events(h);
        match events.first().map(|e| &e.kind) {
            // A file without `yawl:uri` is named by its path, which includes where the
            // recording ran: such a history must name the same file under the repository.
            Some(knhk_core::EventKind::CaseCreated { workflow, .. }) => assert!(
                workflow == wf.id()
                    || (workflow.starts_with("file:") && workflow.contains(&format!("/{file}#"))),
                "{}: history of workflow {workflow}, not {}",
                h.name,
                wf.id()
            ),
            other => panic!("{}: history starts with {other:?}", h.name),
        }
        let case = Case::replay(&wf, id, &events)
            .unwrap_or_else(|e| panic!("{}: replay failed: {e}", h.name));
        assert_eq!(case.last_seq(), events.len() as u64, "{}", h.name);
        assert_eq!(
            end_state(&wf, &case),
            h.manifest["end"],
            "{}: the replayed case differs from the recorded end state",
            h.name
        );
    }
}

#[test]
fn recorded_events_encode_again_to_the_recorded_lines_byte_for_byte() {
    for h in &recorded() {
        for (line, event) in h.lines.iter().zip(events(h)) {
            assert_eq!(&encode(&event), line, "{}: event {}", h.name, event.seq);
        }
    }
}

/// A case failed by a task before incidents were recorded had the rest of its work torn
/// down: it replays as it was, and a retry is refused, naming how it failed.
#[test]
fn a_case_failed_before_incidents_existed_is_refused_a_retry_naming_its_failure() {
    let h = recorded()
        .into_iter()
        .find(|h| h.name == "cli/charge_call_failed_and_the_case_failed")
        .expect("the recorded failed charge");
    let file = h.manifest["workflow"].as_str().unwrap();
    let wf = knhk_spec::load_file(&repo_root().join(file)).unwrap();
    let id: CaseId = serde_json::from_value(h.manifest["case"].clone()).unwrap();
    let mut case = Case::replay(&wf, id, &events(&h)).unwrap();
    assert!(case.incidents().is_empty());
    let before = case.clone();
    let mut ids = knhk_core::SequentialIds(1);
    let err = case
        .apply(
            &wf,
            knhk_core::Timestamp(1_795_984_500_000),
            knhk_core::Input::RetryTask { task: None },
            &mut ids,
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the case failed with no task to run again (task charge failed: \
         connector http failed: http failed after 1 attempt: 400 Bad Request: \
         {\"error\": \"card declined\"})"
    );
    assert_eq!(case, before);
}
