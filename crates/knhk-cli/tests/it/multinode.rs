//! Several engine nodes on one store: three `knhk serve` processes share it, 1,000 cases of a
//! workflow of HTTP tasks, a human task and a timer are driven through all three, and one node
//! is killed with SIGKILL in the middle and started again later. Afterwards every acknowledged
//! step is in the histories, which have no gaps, every case has completed, each call's attempts
//! all carried one idempotency key, no work item was completed twice and no timer fired twice.
//!
//! The driver is event-driven: each case is followed with `GET /cases/{id}/watch` (reconnecting
//! to another node, after the last event seen, when its node dies), and its human task is done
//! when the watch shows it offered. Nothing sleeps to wait.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

const CASES: usize = 1000;
const NODES: usize = 3;
/// Cases followed at once.
const CONCURRENCY: usize = 48;
/// Completed cases after which node 1 is killed, and after which it is started again.
const KILL_AT: usize = CASES / 3;
const RESTART_AT: usize = 2 * CASES / 3;
/// The longest the whole drive may take before the test gives up (a stuck case, a hang).
const DEADLINE: Duration = Duration::from_secs(240);
/// The HTTP tasks of the workflow.
const HTTP_TASKS: [&str; 2] = ["reserve", "charge"];

/// `reserve` (HTTP), `approve` (a clerk), `pause` (held one second by a delay timer), `charge`
/// (HTTP).
fn workflow(recorder: SocketAddr) -> String {
    let http = |task: &str| {
        format!(
            "knhk:connector \"http\" ; \
             knhk:setting [ knhk:key \"url\" ; knhk:value \"http://{recorder}/{task}/{{n}}\" ] ; \
             knhk:backoffMs 20 ; knhk:maxAttempts 10 ; knhk:timeoutMs 10000 ;"
        )
    };
    format!(
        "@prefix yawl: <http://www.yawlfoundation.org/yawlschema#> .\n\
         @prefix knhk: <https://knhk.dev/ns#> .\n\
         <#spec> a yawl:Specification ; yawl:name \"Multinode order\" ; yawl:hasDecomposition <#net> .\n\
         <#net> a yawl:Net ; yawl:id \"net\" ; yawl:isRootNet true ;\n\
           yawl:hasInputCondition <#start> ; yawl:hasOutputCondition <#end> ;\n\
           yawl:hasTask <#reserve>, <#approve>, <#pause>, <#charge> ;\n\
           yawl:hasLocalVariable [ yawl:name \"n\" ; yawl:type \"long\" ] ,\n\
             [ yawl:name \"approved\" ; yawl:type \"boolean\" ] ,\n\
             [ yawl:name \"reserved\" ; yawl:type \"string\" ] ,\n\
             [ yawl:name \"charged\" ; yawl:type \"string\" ] .\n\
         <#start> a yawl:InputCondition ; yawl:flowsInto [ yawl:nextElementRef <#reserve> ] .\n\
         <#reserve> a yawl:Task ; yawl:id \"reserve\" ; {reserve}\n\
           yawl:flowsInto [ yawl:nextElementRef <#approve> ] .\n\
         <#approve> a yawl:Task ; yawl:id \"approve\" ; knhk:role \"clerk\" ;\n\
           yawl:flowsInto [ yawl:nextElementRef <#pause> ] .\n\
         <#pause> a yawl:Task ; yawl:id \"pause\" ;\n\
           yawl:hasTimer [ a yawl:Timer ; yawl:hasTrigger yawl:TimerTriggerOnEnabled ;\n\
                           yawl:duration \"PT1S\" ; knhk:timerAction knhk:Delay ] ;\n\
           yawl:flowsInto [ yawl:nextElementRef <#charge> ] .\n\
         <#charge> a yawl:Task ; yawl:id \"charge\" ; {charge}\n\
           yawl:flowsInto [ yawl:nextElementRef <#end> ] .\n\
         <#end> a yawl:OutputCondition ; yawl:id \"end\" .\n",
        reserve = http("reserve"),
        charge = http("charge"),
    )
}

/// What the recording HTTP service saw: for each call (task, case number), every idempotency
/// key its attempts carried.
type Calls = Arc<Mutex<BTreeMap<(String, u64), Vec<String>>>>;

async fn record(
    State(calls): State<Calls>,
    UrlPath((task, n)): UrlPath<(String, u64)>,
    headers: HeaderMap,
) -> Json<Value> {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("(none)")
        .to_owned();
    let output = format!("{task}-{key}");
    let mut calls = calls.lock().expect("the calls");
    calls.entry((task.clone(), n)).or_default().push(key);
    // The output names the key, so that the case data shows which attempt's answer it took.
    let field = if task == "reserve" {
        "reserved"
    } else {
        "charged"
    };
    Json(json!({ field: output }))
}

/// Starts the recording service on a loopback port.
async fn recorder() -> (SocketAddr, Calls) {
    let calls: Calls = Arc::default();
    let app = Router::new()
        .route("/{task}/{n}", post(record))
        .with_state(calls.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let addr = listener.local_addr().expect("an address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, calls)
}

/// Where the nodes keep their state: the arguments that name one shared store.
#[derive(Clone, Debug)]
pub(crate) enum SharedStore {
    /// One SQLite data directory, shared by the processes (WAL allows it).
    Sqlite(std::path::PathBuf),
    /// One PostgreSQL schema (`--store URL`); each node gets an empty data directory of its
    /// own besides, which it must not need.
    Postgres(String, std::path::PathBuf),
}

impl SharedStore {
    fn args(&self) -> Vec<String> {
        match self {
            SharedStore::Sqlite(dir) => vec!["--data-dir".into(), dir.display().to_string()],
            SharedStore::Postgres(url, dir) => vec![
                "--data-dir".into(),
                dir.display().to_string(),
                "--store".into(),
                url.clone(),
            ],
        }
    }
}

/// One `knhk serve` process.
pub(crate) struct Node {
    child: Child,
    pub(crate) base: String,
}

impl Node {
    pub(crate) fn start(store: &SharedStore, log: &Path) -> Node {
        // A dead node's work is taken over two seconds after its last heartbeat.
        Node::start_with_lease(store, log, Duration::from_secs(2))
    }

    /// Starts a node whose lease lasts `lease`, renewed four times as often.
    pub(crate) fn start_with_lease(store: &SharedStore, log: &Path, lease: Duration) -> Node {
        let mut child = Command::new(env!("CARGO_BIN_EXE_knhk"))
            .arg("serve")
            .args(["--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0"])
            .args(store.args())
            .env_remove("KNHK_DATA_DIR")
            .env_remove("KNHK_SERVER")
            .env("RUST_LOG", "warn")
            .env("KNHK_LEASE_MS", lease.as_millis().to_string())
            .env("KNHK_HEARTBEAT_MS", (lease.as_millis() / 4).to_string())
            .stdout(Stdio::piped())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(log)
                    .expect("a log file"),
            )
            .spawn()
            .expect("knhk serve starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the first line of knhk serve");
        let addr = line
            .trim()
            .strip_prefix("listening http=")
            .and_then(|rest| rest.split_once(" grpc="))
            .map(|(http, _)| http.to_owned())
            .unwrap_or_else(|| panic!("first line: {line:?}"));
        Node {
            child,
            base: format!("http://{addr}"),
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The nodes as the driver sees them: the base URL of each live one.
#[derive(Clone, Default)]
struct Cluster {
    live: Arc<RwLock<Vec<Option<String>>>>,
}

impl Cluster {
    /// Returns a live node's base URL, chosen by `pick` among the live ones.
    fn node(&self, pick: usize) -> String {
        let live = self.live.read().expect("the nodes");
        let bases: Vec<&String> = live.iter().flatten().collect();
        bases[pick % bases.len()].clone()
    }
}

/// What the driver was told had happened: acknowledged steps.
#[derive(Default)]
struct Acks {
    /// Case number -> case id, from each 2xx answer to `POST /cases`.
    cases: Mutex<HashMap<u64, String>>,
    /// Work item id -> case id, from each 2xx answer to `POST /workitems/{id}/complete`.
    completed: Mutex<HashMap<String, String>>,
}

/// Sends a request to live nodes, starting with the one `pick` names, until one answers (a
/// node being killed refuses connections; its requests go to another).
async fn send(
    http: &reqwest::Client,
    cluster: &Cluster,
    pick: usize,
    path: &str,
    body: Option<(&Value, Option<&str>)>,
) -> (StatusCode, Value) {
    for attempt in 0..200 {
        let url = format!("{}{path}", cluster.node(pick + attempt));
        let request = match body {
            None => http.get(url),
            Some((body, key)) => {
                let r = http.post(url).json(body);
                match key {
                    Some(key) => r.header("Idempotency-Key", key),
                    None => r,
                }
            }
        };
        let Ok(res) = request.send().await else {
            tokio::task::yield_now().await;
            continue;
        };
        let status = res.status();
        let Ok(text) = res.text().await else { continue };
        // A node that is stopping (or not yet ready) says so; another one takes the request.
        if status == StatusCode::SERVICE_UNAVAILABLE {
            continue;
        }
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        return (status, body);
    }
    panic!("no node answered {path}");
}

/// Drives one case from creation to its end; returns its id.
async fn drive(http: reqwest::Client, cluster: Cluster, acks: Arc<Acks>, n: u64) -> String {
    let pick = n as usize;
    let (status, case) = send(
        &http,
        &cluster,
        pick,
        "/cases",
        Some((
            &json!({"workflow_id": "Multinode order", "data": {"n": n}, "start": true}),
            Some(&format!("multinode-{n}")),
        )),
    )
    .await;
    assert!(status.is_success(), "creating case {n}: {status} {case}");
    let id = case["id"].as_str().expect("a case id").to_owned();
    acks.cases.lock().expect("acks").insert(n, id.clone());

    // Follow the case's events; reconnect after the last one seen when the stream breaks.
    let mut after = 0u64;
    let mut attempt = pick;
    loop {
        let url = format!("{}/cases/{id}/watch?after={after}", cluster.node(attempt));
        attempt += 1;
        let Ok(mut res) = http.get(url).send().await else {
            continue;
        };
        if !res.status().is_success() {
            continue;
        }
        let mut buffer = String::new();
        let mut event = String::new();
        loop {
            let chunk = match res.chunk().await {
                Ok(Some(chunk)) => chunk,
                // The node went away (or ended the stream): reconnect elsewhere.
                Ok(None) | Err(_) => break,
            };
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find('\n') {
                let line = buffer[..end].trim_end_matches('\r').to_owned();
                buffer.drain(..=end);
                if let Some(name) = line.strip_prefix("event: ") {
                    event = name.to_owned();
                } else if let Some(data) = line.strip_prefix("data: ") {
                    let data: Value = serde_json::from_str(data).expect("an event's data");
                    if event == "end" {
                        if data["stopping"] == json!(true) {
                            break;
                        }
                        assert_eq!(data["status"], "completed", "case {n} ({id}) ended: {data}");
                        return id;
                    }
                    if event != "case_event" {
                        // An error: what the node said goes into the failure if the case
                        // never ends; the watch starts again after the last event seen.
                        eprintln!("multinode: watch of case {n} ({id}): {event} {data}");
                        break;
                    }
                    after = data["seq"].as_u64().expect("a seq");
                    if data["kind"] == "work_item_offered" {
                        let item = data["event"]["item"].as_str().expect("an item").to_owned();
                        approve(&http, &cluster, &acks, pick, &id, &item).await;
                    }
                }
            }
        }
    }
}

/// Claims and completes the clerk's work item; a refusal because it was done already (the
/// answer to an earlier attempt was lost with its node) is fine.
async fn approve(
    http: &reqwest::Client,
    cluster: &Cluster,
    acks: &Acks,
    pick: usize,
    case: &str,
    item: &str,
) {
    let user = json!({"user": "mia"});
    let (status, body) = send(
        http,
        cluster,
        pick,
        &format!("/workitems/{item}/claim"),
        Some((&user, None)),
    )
    .await;
    // 409: claimed already (by this driver, before its node died); 404: done already.
    assert!(
        status.is_success() || status == StatusCode::CONFLICT || status == StatusCode::NOT_FOUND,
        "claiming {item}: {status} {body}"
    );
    if status == StatusCode::NOT_FOUND {
        return;
    }
    let done = json!({"user": "mia", "output": {"approved": true}});
    let (status, body) = send(
        http,
        cluster,
        pick,
        &format!("/workitems/{item}/complete"),
        Some((&done, None)),
    )
    .await;
    assert!(
        status.is_success() || status == StatusCode::NOT_FOUND,
        "completing {item}: {status} {body}"
    );
    if status.is_success() {
        acks.completed
            .lock()
            .expect("acks")
            .insert(item.to_owned(), case.to_owned());
    }
}

/// Reads a case's whole history through the API, page by page.
async fn history(http: &reqwest::Client, cluster: &Cluster, id: &str) -> Vec<Value> {
    let mut events = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let path = match &token {
            Some(t) => format!("/cases/{id}/history?limit=500&page_token={t}"),
            None => format!("/cases/{id}/history?limit=500"),
        };
        let (status, page) = send(http, cluster, 0, &path, None).await;
        assert_eq!(status, StatusCode::OK, "history of {id}: {page}");
        events.extend(page["events"].as_array().expect("events").iter().cloned());
        match page["next_page_token"].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => return events,
        }
    }
}

/// Runs the whole scenario on `store`.
async fn three_nodes_kill_one(store: SharedStore, log: &Path) {
    let started = Instant::now();
    let (recorder, calls) = recorder().await;
    // In the test's own folder (beside its log): the SQLite and PostgreSQL runs go at once in
    // one process, and each definition names its own recorder's port.
    let definition = log.with_file_name("multinode.ttl");
    std::fs::write(&definition, workflow(recorder)).expect("the definition written");

    let mut nodes: Vec<Node> = (0..NODES).map(|_| Node::start(&store, log)).collect();
    let cluster = Cluster::default();
    *cluster.live.write().expect("the nodes") =
        nodes.iter().map(|node| Some(node.base.clone())).collect();
    let http = reqwest::Client::new();
    let text = std::fs::read(&definition).expect("the definition");
    let res = http
        .post(format!("{}/workflows", nodes[0].base))
        .header("content-type", "text/turtle")
        .body(text)
        .send()
        .await
        .expect("registering");
    assert!(
        res.status().is_success(),
        "{}",
        res.text().await.unwrap_or_default()
    );

    let acks = Arc::new(Acks::default());
    let done = Arc::new(AtomicUsize::new(0));
    let (progress_tx, mut progress) = tokio::sync::watch::channel(0usize);
    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    let mut drivers = tokio::task::JoinSet::new();
    for n in 0..CASES as u64 {
        let permit = permits.clone().acquire_owned().await.expect("a permit");
        let (http, cluster, acks, done, progress_tx) = (
            http.clone(),
            cluster.clone(),
            acks.clone(),
            done.clone(),
            progress_tx.clone(),
        );
        drivers.spawn(async move {
            let id = drive(http, cluster, acks, n).await;
            progress_tx.send_replace(done.fetch_add(1, Ordering::SeqCst) + 1);
            drop(permit);
            id
        });
    }
    drop(progress_tx);

    // Node 1 dies with SIGKILL a third of the way through, and comes back at two thirds.
    let controller = {
        let cluster = cluster.clone();
        let store = store.clone();
        let log = log.to_owned();
        let mut killed = nodes.remove(1);
        tokio::spawn(async move {
            progress
                .wait_for(|&n| n >= KILL_AT)
                .await
                .expect("progress");
            cluster.live.write().expect("the nodes")[1] = None;
            killed.child.kill().expect("SIGKILL");
            killed.child.wait().expect("the killed node");
            progress
                .wait_for(|&n| n >= RESTART_AT)
                .await
                .expect("progress");
            let again = tokio::task::spawn_blocking(move || Node::start(&store, &log))
                .await
                .expect("the node starts again");
            cluster.live.write().expect("the nodes")[1] = Some(again.base.clone());
            again
        })
    };

    let ended = Arc::new(Mutex::new(BTreeSet::new()));
    let all = async {
        while let Some(id) = drivers.join_next().await {
            ended.lock().expect("ended").insert(id.expect("a driver"));
        }
    };
    if tokio::time::timeout(DEADLINE, all).await.is_err() {
        let log = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        let mut waiting = Vec::new();
        let acked: Vec<String> = acks.cases.lock().expect("acks").values().cloned().collect();
        for id in acked {
            if !ended.lock().expect("ended").contains(&id) {
                let (_, case) = send(&http, &cluster, 0, &format!("/cases/{id}/waits"), None).await;
                waiting.push(format!("{id}: {case}"));
            }
        }
        panic!(
            "the cases did not all end within {DEADLINE:?}; {} of them ended; these wait:\n{}\n\
             the nodes' log ends with:\n{}",
            done.load(Ordering::SeqCst),
            waiting.join("\n"),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    let restarted = controller.await.expect("the controller");
    let ids = ended.lock().expect("ended").clone();
    assert_eq!(ids.len(), CASES, "every case was driven to its end");
    let drive_time = started.elapsed();

    // Every acknowledged step is there, histories have no gaps, and nothing happened twice.
    let acked_cases = acks.cases.lock().expect("acks").clone();
    let acked_items = acks.completed.lock().expect("acks").clone();
    let mut timers_fired = 0;
    // Every case has ended: the service has seen every call of theirs.
    let calls_seen = calls.lock().expect("the calls").clone();
    for (n, id) in &acked_cases {
        let events = history(&http, &cluster, id).await;
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e["seq"], json!(i as u64 + 1), "case {id}: a gap before {e}");
        }
        let kinds = |kind: &'static str| events.iter().filter(move |e| e["kind"] == kind);
        assert_eq!(kinds("case_created").count(), 1, "case {id}");
        let mut completed = BTreeSet::new();
        for e in kinds("work_item_completed") {
            let item = e["event"]["item"].as_str().expect("an item");
            assert!(completed.insert(item), "case {id}: {item} completed twice");
        }
        for (item, case) in &acked_items {
            if case == id {
                assert!(
                    completed.contains(item.as_str()),
                    "case {id}: acknowledged {item} lost"
                );
            }
        }
        let mut fired = BTreeSet::new();
        for e in kinds("timer_fired") {
            let timer = e["event"]["timer"].as_str().expect("a timer");
            assert!(fired.insert(timer), "case {id}: timer {timer} fired twice");
        }
        assert_eq!(fired.len(), 1, "case {id}: the pause's timer fired once");
        timers_fired += fired.len();
        // Each call's result is one call's: its key is the one every attempt carried.
        for e in kinds("connector_call_started") {
            let task = e["event"]["task"]["task"]
                .as_str()
                .expect("a task")
                .to_owned();
            let key = e["event"]["idempotency_key"].as_str().expect("a key");
            let seen = calls_seen
                .get(&(task.clone(), *n))
                .unwrap_or_else(|| panic!("case {id}: no {task} call reached the service"));
            assert!(
                seen.iter().all(|k| k == key),
                "case {id}: the {task} call's attempts carried keys {seen:?}, not only {key}"
            );
        }
        let (status, case) = send(&http, &cluster, 0, &format!("/cases/{id}"), None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(case["status"], "completed", "case {id}");
        assert_eq!(case["data"]["approved"], json!(true), "case {id}");
    }
    assert_eq!(acked_cases.len(), CASES);
    assert_eq!(timers_fired, CASES);
    for task in HTTP_TASKS {
        let reached = calls_seen.keys().filter(|(t, _)| t == task).count();
        assert_eq!(
            reached, CASES,
            "every case's {task} call reached the service"
        );
    }
    let repeated: usize = calls_seen.values().map(|keys| keys.len() - 1).sum();
    eprintln!(
        "multinode: {CASES} cases on {NODES} nodes in {drive_time:?}, node 1 killed at \
         {KILL_AT} and restarted at {RESTART_AT}; {} work items acknowledged, {repeated} calls \
         made again with their first key",
        acked_items.len()
    );
    drop(restarted);
    drop(nodes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_on_one_sqlite_store_survive_a_killed_node() {
    let dir = tempfile::tempdir().expect("a data directory");
    let log = dir.path().join("nodes.log");
    let data = dir.path().join("data");
    three_nodes_kill_one(SharedStore::Sqlite(data), &log).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_on_one_postgres_schema_survive_a_killed_node() {
    let schema = crate::postgres::Schema::fresh();
    let dir = tempfile::tempdir().expect("a data directory");
    let log = dir.path().join("nodes.log");
    let store = SharedStore::Postgres(schema.url.clone(), dir.path().join("data"));
    three_nodes_kill_one(store, &log).await;
    drop(schema);
}
