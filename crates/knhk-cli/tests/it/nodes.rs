//! Several engine nodes on one data directory: a `knhk serve` and two `knhk worker`s share the
//! store; the server is killed with SIGKILL with connector calls in flight and started again,
//! people complete half the reviews through it, and the nodes finish every case: each call's
//! result is taken once, each timer fires at most once, each work item is completed at most
//! once, and each review either is completed or expires, never both.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::http_server::{Reply, serve};
use crate::{PREFIXES, knhk, path_str, stderr, temp_file};

/// The nodes' lease and heartbeat, short so that the test does not wait long for a dead one.
const NODE_ENV: [(&str, &str); 3] = [
    ("KNHK_LEASE_MS", "1500"),
    ("KNHK_HEARTBEAT_MS", "200"),
    ("KNHK_TIMER_POLL_MS", "100"),
];

/// A node process, killed when dropped.
struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn node(dir: &Path, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_knhk"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("KNHK_DATA_DIR")
        .env_remove("KNHK_SERVER")
        .env("RUST_LOG", "error")
        .envs(NODE_ENV)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("a node starts")
}

/// A workflow: a charge (HTTP), a review by a clerk given in turn that expires after 4 s when
/// nobody does it (its timer moves the case on), and a notification (HTTP).
fn workflow(base: &str) -> String {
    let http = |path: &str| {
        format!(
            "knhk:connector \"http\" ; knhk:setting [ knhk:key \"url\" ; knhk:value \"{base}/{path}\" ] ; \
             knhk:maxAttempts 3 ; knhk:backoffMs 10 ; knhk:timeoutMs 10000 ;"
        )
    };
    format!(
        "{PREFIXES}<#spec> a yawl:Specification ; yawl:name \"Nodes\" ; yawl:hasDecomposition <#net> .\n\
         <#net> a yawl:Net ; yawl:isRootNet true ; yawl:hasInputCondition <#start> ; \
         yawl:hasOutputCondition <#end> ; yawl:hasTask <#charge>, <#review>, <#notify> .\n\
         <#start> a yawl:InputCondition ; yawl:flowsInto [ yawl:nextElementRef <#charge> ] .\n\
         <#charge> a yawl:Task ; {} yawl:flowsInto [ yawl:nextElementRef <#review> ] .\n\
         <#review> a yawl:Task ; knhk:role \"clerk\" ; knhk:allocation knhk:RoundRobin ; \
         yawl:hasTimer [ a yawl:Timer ; yawl:hasTrigger yawl:TimerTriggerOnEnabled ; \
         yawl:hasDurationParams [ yawl:ticks 4000 ; yawl:hasInterval yawl:TimerIntervalMsec ] ] ; \
         yawl:flowsInto [ yawl:nextElementRef <#notify> ] .\n\
         <#notify> a yawl:Task ; {} yawl:flowsInto [ yawl:nextElementRef <#end> ] .\n\
         <#end> a yawl:OutputCondition .\n",
        http("charge"),
        http("notify"),
    )
}

/// One stored event: its case, kind and payload.
struct Stored {
    case: String,
    kind: String,
    payload: Value,
}

/// Reads every case's status and every event from the store file, as another process would.
fn read_store(dir: &Path) -> (BTreeMap<String, String>, Vec<Stored>) {
    let conn = rusqlite::Connection::open_with_flags(
        dir.join("knhk.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("the store opens");
    conn.busy_timeout(Duration::from_secs(5)).expect("timeout");
    let statuses = conn
        .prepare("SELECT id, status FROM cases")
        .expect("cases")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("cases")
        .map(|r| r.expect("a case"))
        .collect();
    let events = conn
        .prepare("SELECT case_id, kind, payload FROM events ORDER BY case_id, seq")
        .expect("events")
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get(1)?, r.get::<_, String>(2)?))
        })
        .expect("events")
        .map(|r| {
            let (case, kind, payload) = r.expect("an event");
            Stored {
                case,
                kind,
                payload: serde_json::from_str(&payload).expect("a payload"),
            }
        })
        .collect();
    (statuses, events)
}

/// Starts `knhk serve` as a node on the data directory; returns it with its HTTP address.
fn start_server(dir: &Path) -> (Node, String) {
    let mut server = Node(node(
        dir,
        &["serve", "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0"],
    ));
    let mut line = String::new();
    BufReader::new(server.0.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the first line of knhk serve");
    let addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http="))
        .unwrap_or_else(|| panic!("first line of knhk serve: {line:?}"))
        .to_owned();
    (server, addr)
}

/// Does the review of a case once its work item is allocated: its owner starts and completes
/// it. Returns without it once the case has no review waiting any more (it expired).
async fn review(client: &reqwest::Client, addr: &str, case: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "case {case}: no review to do");
        let page: Value = client
            .get(format!("http://{addr}/workitems?case={case}"))
            .send()
            .await
            .expect("the server answers")
            .json()
            .await
            .expect("json");
        let items = page["items"].as_array().expect("items");
        let allocated = items.iter().find(|i| i["owner"].is_string());
        match allocated {
            Some(item) => {
                let (id, user) = (
                    item["id"].as_str().expect("an id"),
                    item["owner"].as_str().expect("an owner"),
                );
                let start = client
                    .post(format!("http://{addr}/workitems/{id}/start"))
                    .json(&json!({ "user": user }))
                    .send()
                    .await
                    .expect("the server answers");
                if start.status().is_success() {
                    let done = client
                        .post(format!("http://{addr}/workitems/{id}/complete"))
                        .json(&json!({ "user": user, "output": { "reviewed": true } }))
                        .send()
                        .await
                        .expect("the server answers");
                    assert!(
                        done.status().is_success(),
                        "{}",
                        done.text().await.unwrap_or_default()
                    );
                }
                return;
            }
            // Still being charged, or offered and not yet allocated: look again shortly.
            None if items.is_empty() && case_waits_no_review(client, addr, case).await => return,
            None => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Returns whether a case is past its review (it expired, or the case ended).
async fn case_waits_no_review(client: &reqwest::Client, addr: &str, case: &str) -> bool {
    let history: Value = client
        .get(format!("http://{addr}/cases/{case}/history"))
        .send()
        .await
        .expect("the server answers")
        .json()
        .await
        .expect("json");
    history["events"]
        .as_array()
        .expect("events")
        .iter()
        .any(|e| e["kind"] == "task_completed" && e["event"]["task"]["task"] == "review")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_share_a_store_and_the_survivors_of_a_sigkill_finish_every_case() {
    const CASES: usize = 24;
    let dir = tempfile::tempdir().expect("data directory");
    std::fs::write(
        dir.path().join("directory.json"),
        r#"{"roles": {"clerk": ["ann", "bob", "cy"]}}"#,
    )
    .expect("directory.json");
    // The service: each request answered after a little while with its own number, so that
    // two answers to one key differ; every key recorded with the answers given to it.
    let answers: Arc<Mutex<BTreeMap<String, Vec<usize>>>> = Arc::default();
    let (arrived_tx, arrived) = mpsc::channel::<String>();
    let recorded = Arc::clone(&answers);
    let base = serve(move |req| {
        let key = req.header("idempotency-key").unwrap_or("").to_owned();
        recorded
            .lock()
            .expect("answers")
            .entry(key.clone())
            .or_default()
            .push(req.n);
        let _ = arrived_tx.send(req.line.clone());
        std::thread::sleep(Duration::from_millis(20));
        Reply::json("200 OK", json!({ "served": req.n }).to_string())
    });
    let file = temp_file("nodes.ttl", &workflow(&base));
    let out = knhk(&[
        "--data-dir",
        path_str(dir.path()),
        "workflow",
        "register",
        path_str(&file),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));

    let (mut server, addr) = start_server(dir.path());
    let workers = [
        Node(node(dir.path(), &["worker"])),
        Node(node(dir.path(), &["worker"])),
    ];

    // Every case is created and started on the server, which makes their calls.
    let client = reqwest::Client::new();
    let mut cases = BTreeSet::new();
    for _ in 0..CASES {
        let created: Value = client
            .post(format!("http://{addr}/cases"))
            .json(&json!({ "workflow_id": "Nodes", "start": true }))
            .send()
            .await
            .expect("the server answers")
            .error_for_status()
            .expect("the case is created")
            .json()
            .await
            .expect("json");
        cases.insert(created["id"].as_str().expect("an id").to_owned());
    }
    // The server dies with calls in flight.
    for _ in 0..4 {
        arrived
            .recv_timeout(Duration::from_secs(30))
            .expect("the server's calls arrive");
    }
    server.0.kill().expect("SIGKILL");
    server.0.wait().expect("the server ends");
    drop(server);

    // The server starts again, and people do the reviews of half the cases through it as they
    // come to them (the others expire).
    let (_server, addr) = start_server(dir.path());
    let reviewed: Vec<&String> = cases.iter().step_by(2).collect();
    for case in &reviewed {
        review(&client, &addr, case).await;
    }

    // The workers take its cases over once its lease expired, and finish every one.
    let deadline = Instant::now() + Duration::from_secs(120);
    let (statuses, events) = loop {
        let (statuses, events) = read_store(dir.path());
        let done = cases
            .iter()
            .all(|c| statuses.get(c).is_some_and(|s| s == "completed"));
        if done {
            break (statuses, events);
        }
        assert!(
            Instant::now() < deadline,
            "cases not completed: {:?}",
            cases
                .iter()
                .filter(|c| statuses.get(*c).is_none_or(|s| s != "completed"))
                .map(|c| (c, statuses.get(c)))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    drop(workers);
    assert_eq!(statuses.len(), CASES);

    // Each call's result was taken once, and it is one the service gave to its key.
    let answers = answers.lock().expect("answers").clone();
    let mut keys_of_items: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut results: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut timers: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut completed_items: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut reviews_done: BTreeMap<String, usize> = BTreeMap::new();
    for e in &events {
        let item = || {
            (
                e.case.clone(),
                e.payload["item"].as_str().unwrap_or("").to_owned(),
            )
        };
        match e.kind.as_str() {
            "connector_call_started" => {
                let key = e.payload["idempotency_key"]
                    .as_str()
                    .expect("a key")
                    .to_owned();
                keys_of_items.insert(item(), key);
            }
            "connector_call_succeeded" => {
                *results.entry(item()).or_default() += 1;
                let key = keys_of_items.get(&item()).expect("a started call");
                let served = e.payload["output"]["served"].as_u64().expect("served") as usize;
                assert!(
                    answers.get(key).is_some_and(|n| n.contains(&served)),
                    "{key}: result {served} is not one the service gave it ({:?})",
                    answers.get(key)
                );
            }
            "connector_call_failed" => panic!("a call failed: {:?}", e.payload),
            "timer_fired" => {
                let timer = e.payload["timer"].as_str().expect("a timer").to_owned();
                *timers.entry((e.case.clone(), timer)).or_default() += 1;
            }
            "work_item_completed" => *completed_items.entry(item()).or_default() += 1,
            "task_completed" if e.payload["task"]["task"] == "review" => {
                *reviews_done.entry(e.case.clone()).or_default() += 1;
            }
            _ => {}
        }
    }
    assert_eq!(keys_of_items.len(), 2 * CASES, "two calls a case");
    for (item, n) in &results {
        assert_eq!(*n, 1, "call {item:?} has {n} results");
    }
    assert_eq!(results.len(), 2 * CASES);
    for (timer, n) in &timers {
        assert_eq!(*n, 1, "timer {timer:?} fired {n} times");
    }
    for (item, n) in &completed_items {
        assert_eq!(*n, 1, "work item {item:?} completed {n} times");
    }
    // Each review was done by a person or expired, once, never both.
    for case in &cases {
        let fired = timers.keys().filter(|(c, _)| c == case).count();
        let done = completed_items.keys().filter(|(c, _)| c == case).count();
        assert_eq!(
            fired + done,
            1,
            "case {case}: {fired} timers fired, {done} reviews done"
        );
        assert_eq!(
            reviews_done.get(case),
            Some(&1),
            "case {case}: review completed once"
        );
    }
    assert!(!completed_items.is_empty(), "people did some reviews");
    // The calls cut off by the kill were made again, with their keys.
    assert!(
        answers.values().any(|n| n.len() > 1),
        "no call was made again after the kill: {answers:?}"
    );
}
