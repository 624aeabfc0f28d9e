//! Crash recovery: `knhk-bench load` is killed with SIGKILL at random points and restarted with
//! `--resume`; afterwards every step it acknowledged is in the store, histories have no gaps,
//! every case has completed, and connector calls made again after a kill carried the key of
//! their first attempt.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Path as UrlPath, State};
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use knhk_core::{CaseId, CaseStatus, EventKind};
use knhk_store::{CaseFilter, SqliteOptions, SqliteStore, Store};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;

const PREFIXES: &str = "@prefix yawl: <http://www.yawlfoundation.org/yawlschema#> .\n\
                        @prefix knhk: <https://knhk.dev/ns#> .\n";
const CASES: usize = 400;
const CONCURRENCY: &str = "32";
/// Kill/restart cycles after the first killed run, before the run to completion.
const RESTARTS: usize = 3;
/// The HTTP tasks of the workflow; each answers with its name mapped to the call's key.
const HTTP_TASKS: [&str; 5] = ["reserve", "charge", "pack", "notify", "invoice"];
/// Every task of the workflow: the HTTP ones plus the empty `fork` and `merge`.
const TASKS: usize = 7;
/// The longest one run may take before the test gives up on it (a stuck case, a hang).
const RUN_DEADLINE: Duration = Duration::from_secs(60);

/// A sequence of three HTTP tasks, then an AND split into two HTTP tasks joined again.
fn workflow(addr: SocketAddr) -> String {
    let http = |task: &str| {
        format!(
            "knhk:connector \"http\" ; \
             knhk:setting [ knhk:key \"url\" ; knhk:value \"http://{addr}/step/{task}\" ] ; \
             knhk:backoffMs 10 ; knhk:timeoutMs 10000 ;"
        )
    };
    let tasks: [(&str, String, &[&str]); TASKS] = [
        ("reserve", http("reserve"), &["charge"]),
        ("charge", http("charge"), &["pack"]),
        ("pack", http("pack"), &["fork"]),
        (
            "fork",
            "yawl:hasSplit yawl:ControlTypeAnd ;".to_owned(),
            &["notify", "invoice"],
        ),
        ("notify", http("notify"), &["merge"]),
        ("invoice", http("invoice"), &["merge"]),
        (
            "merge",
            "yawl:hasJoin yawl:ControlTypeAnd ;".to_owned(),
            &["end"],
        ),
    ];
    let ids: Vec<String> = tasks.iter().map(|(id, _, _)| format!("<#{id}>")).collect();
    let mut t = format!(
        "{}\
         <#spec> a yawl:Specification ; yawl:name \"crash\" ; yawl:hasDecomposition <#net> .\n\
         <#net> a yawl:Net ; yawl:id \"net\" ; yawl:isRootNet true ; yawl:hasInputCondition <#start> ;\n\
             yawl:hasOutputCondition <#end> ; yawl:hasTask {} .\n\
         <#start> a yawl:InputCondition ; yawl:flowsInto [ yawl:nextElementRef <#reserve> ] .\n\
         <#end> a yawl:OutputCondition .\n",
        PREFIXES,
        ids.join(", ")
    );
    for (id, extra, next) in &tasks {
        let flows: Vec<String> = next
            .iter()
            .map(|n| format!("[ yawl:nextElementRef <#{n}> ]"))
            .collect();
        t.push_str(&format!(
            "<#{id}> a yawl:Task ; {extra} yawl:flowsInto {} .\n",
            flows.join(", ")
        ));
    }
    t
}

/// Idempotency keys that arrived, per HTTP task, with how often each one came.
#[derive(Clone, Default)]
struct Arrivals(Arc<Mutex<HashMap<(String, String), usize>>>);

async fn step(
    State(arrivals): State<Arrivals>,
    UrlPath(task): UrlPath<String>,
    headers: HeaderMap,
) -> Json<Value> {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    *arrivals
        .0
        .lock()
        .unwrap()
        .entry((task.clone(), key.clone()))
        .or_default() += 1;
    // The case data keeps the key of the call whose answer the case took.
    Json(json!({ task: key }))
}

async fn serve(arrivals: Arrivals) -> SocketAddr {
    let app = Router::new()
        .route("/step/{task}", post(step))
        .with_state(arrivals);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// A small xorshift generator: the kill points only need to differ from run to run and be
/// reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn between(&mut self, low: usize, high: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        low + usize::try_from(self.0 % (high - low + 1) as u64).unwrap()
    }
}

/// What the load runs printed, over all runs.
#[derive(Default)]
struct Seen {
    created: BTreeSet<CaseId>,
    acks: Vec<(CaseId, u64)>,
}

/// How one run of `knhk-bench load` ended.
struct Run {
    killed: bool,
    acks: usize,
    done: Option<(usize, usize)>,
}

/// Runs `knhk-bench load` with `args`; with `kill_after`, kills it with SIGKILL once it has
/// printed that many acks. Every line it printed, even after the kill, goes into `seen`.
async fn load(data_dir: &Path, args: &[&str], kill_after: Option<usize>, seen: &mut Seen) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_knhk-bench"))
        .arg("load")
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("KNHK_DATA_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("knhk-bench starts");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let errors = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let mut run = Run {
        killed: false,
        acks: 0,
        done: None,
    };
    // Zero acks: killed while it opens the store and recovers, before it acknowledges anything.
    if kill_after == Some(0) {
        child.start_kill().expect("SIGKILL is sent");
        run.killed = true;
    }
    let reading = async {
        // After the kill the pipe still holds what was printed before: read it to its end.
        while let Some(line) = lines.next_line().await.expect("stdout reads") {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["created", case] => {
                    seen.created.insert(case.parse().expect("a case id"));
                }
                ["ack", case, version] => {
                    let ack = (case.parse().expect("a case id"), version.parse().unwrap());
                    seen.acks.push(ack);
                    run.acks += 1;
                    if !run.killed && kill_after.is_some_and(|k| run.acks >= k) {
                        child.start_kill().expect("SIGKILL is sent");
                        run.killed = true;
                    }
                }
                ["done", completed, failed] => {
                    run.done = Some((completed.parse().unwrap(), failed.parse().unwrap()));
                }
                _ => panic!("unexpected line from knhk-bench load: {line}"),
            }
        }
    };
    tokio::time::timeout(RUN_DEADLINE, reading)
        .await
        .expect("a load run ends within its deadline");
    let status = child.wait().await.expect("knhk-bench is reaped");
    let errors = errors.await.unwrap_or_default();
    if !run.killed {
        assert!(
            status.success(),
            "knhk-bench load failed: {status}\n{errors}"
        );
    }
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_killed_at_random_points_loses_nothing_acknowledged_and_finishes() {
    let started = Instant::now();
    let arrivals = Arrivals::default();
    let addr = serve(arrivals.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("crash.ttl");
    std::fs::write(&file, workflow(addr)).unwrap();
    let data_dir = dir.path().join("data");
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("kill points seeded with {seed}");
    let mut rng = Rng(seed);
    let mut seen = Seen::default();

    // A full load acknowledges six steps per case. The first kill comes after a third to
    // five sixths of them, so that a few hundred cases exist; the cases it leaves running
    // (up to the concurrency) are what the restarts are killed in.
    let cases = CASES.to_string();
    let kill = rng.between(CASES * 2, CASES * 5);
    let first = load(
        &data_dir,
        &[
            "--workflow",
            file.to_str().unwrap(),
            "--cases",
            &cases,
            "--concurrency",
            CONCURRENCY,
        ],
        Some(kill),
        &mut seen,
    )
    .await;
    println!("run 1: killed after {} acks", first.acks);
    assert!(first.killed, "the first run ended before its kill point");
    // What is left are the cases the first run had in flight, a few steps each: the restarts
    // are killed within that, or right at their start.
    for restart in 0..RESTARTS {
        let kill = rng.between(0, 30);
        let run = load(&data_dir, &["--resume"], Some(kill), &mut seen).await;
        let how = if run.killed { "killed" } else { "finished" };
        println!("run {}: {how} after {} acks", restart + 2, run.acks);
    }
    let last = load(&data_dir, &["--resume"], None, &mut seen).await;
    println!("last run: finished after {} acks", last.acks);

    let store = SqliteStore::open(&data_dir.join("knhk.db"), SqliteOptions::default())
        .await
        .unwrap();
    let stored = store.cases(&CaseFilter::default()).await.unwrap();
    assert_eq!(last.done, Some((stored.len(), 0)), "every case completed");
    assert!(
        stored.len() >= seen.created.len() && stored.len() <= CASES,
        "{} cases stored, {} reported created",
        stored.len(),
        seen.created.len()
    );
    let mut histories = BTreeMap::new();
    for case in &stored {
        let events = store.events(case.id, 0).await.unwrap();
        let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
        let expected: Vec<u64> = (1..=case.version).collect();
        assert_eq!(seqs, expected, "case {} has a gap", case.id);
        assert_eq!(case.status, CaseStatus::Completed, "case {}", case.id);
        let completed = events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::TaskCompleted { .. }))
            .count();
        assert_eq!(completed, TASKS, "case {} completed tasks", case.id);
        histories.insert(case.id, (case, seqs));
    }
    for case in &seen.created {
        assert!(histories.contains_key(case), "created case {case} is lost");
    }
    for (case, version) in &seen.acks {
        let (_, seqs) = histories
            .get(case)
            .unwrap_or_else(|| panic!("acknowledged case {case} is lost"));
        assert!(
            seqs.contains(version),
            "acknowledged step {version} of case {case} is lost"
        );
    }

    // Each task of each case was called with one key only, and the case took that answer.
    let arrivals = arrivals.0.lock().unwrap().clone();
    let mut keys: HashMap<(CaseId, &str), Vec<&str>> = HashMap::new();
    for (task, key) in arrivals.keys() {
        let case: CaseId = key
            .split('/')
            .next()
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("key {key:?} names no case"));
        keys.entry((case, task.as_str())).or_default().push(key);
    }
    for (case, _) in histories.values() {
        for task in HTTP_TASKS {
            let Some(task_keys) = keys.get(&(case.id, task)) else {
                panic!("task {task} of case {} was never called", case.id);
            };
            assert_eq!(task_keys.len(), 1, "task {task} of case {}", case.id);
            assert_eq!(case.data[task], task_keys[0], "case {} data", case.id);
        }
    }
    let repeated = arrivals.values().filter(|n| **n > 1).count();
    println!(
        "{} cases, {} acks checked, {repeated} calls repeated with their first key, {:.1?}",
        stored.len(),
        seen.acks.len(),
        started.elapsed()
    );
}
