//! PostgreSQL out of reach for a while, under two `knhk serve` nodes: the nodes reach the real
//! server through a TCP relay that this test cuts (every connection closed, new ones refused)
//! and restores. While it is cut, commands fail with a clear `unavailable` error and nothing
//! is acknowledged; connector results that come back meanwhile are not lost. Once it is back
//! the nodes carry on by themselves: every acknowledged case ends, histories have no gaps, each
//! call's attempts carried one idempotency key, and no work item was completed twice.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use crate::multinode::{Node, SharedStore};

/// How long PostgreSQL stays out of reach: longer than a node retries feeding a result back
/// (about 6.4 s), so that the results of the calls that answer meanwhile are given up and the
/// case must be taken up again.
const OUTAGE: Duration = Duration::from_secs(7);
/// The longest anything may take once the server is back.
const DEADLINE: Duration = Duration::from_secs(90);

/// A TCP relay to the real server that can be cut and restored.
struct Relay {
    addr: SocketAddr,
    up: watch::Sender<bool>,
}

impl Relay {
    async fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let addr = listener.local_addr().expect("an address");
        let (up, _) = watch::channel(true);
        let state = up.subscribe();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let mut state = state.clone();
                if !*state.borrow() {
                    // Cut: the connection is closed at once, as by a server that is down.
                    drop(client);
                    continue;
                }
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (mut client, mut server) = (client, server);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = state.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Relay { addr, up }
    }

    fn cut(&self) {
        self.up.send_replace(false);
    }

    fn restore(&self) {
        self.up.send_replace(true);
    }
}

/// `charge` (HTTP, to the gate) then `approve` (a clerk).
fn workflow(gate: SocketAddr) -> String {
    format!(
        "@prefix yawl: <http://www.yawlfoundation.org/yawlschema#> .\n\
         @prefix knhk: <https://knhk.dev/ns#> .\n\
         <#spec> a yawl:Specification ; yawl:name \"Outage order\" ; yawl:hasDecomposition <#net> .\n\
         <#net> a yawl:Net ; yawl:id \"net\" ; yawl:isRootNet true ;\n\
           yawl:hasInputCondition <#start> ; yawl:hasOutputCondition <#end> ;\n\
           yawl:hasTask <#charge>, <#approve> ;\n\
           yawl:hasLocalVariable [ yawl:name \"n\" ; yawl:type \"long\" ] ,\n\
             [ yawl:name \"approved\" ; yawl:type \"boolean\" ] ,\n\
             [ yawl:name \"charged\" ; yawl:type \"string\" ] .\n\
         <#start> a yawl:InputCondition ; yawl:flowsInto [ yawl:nextElementRef <#charge> ] .\n\
         <#charge> a yawl:Task ; yawl:id \"charge\" ; knhk:connector \"http\" ;\n\
           knhk:setting [ knhk:key \"url\" ; knhk:value \"http://{gate}/charge/{{n}}\" ] ;\n\
           knhk:backoffMs 20 ; knhk:maxAttempts 10 ; knhk:timeoutMs 30000 ;\n\
           yawl:flowsInto [ yawl:nextElementRef <#approve> ] .\n\
         <#approve> a yawl:Task ; yawl:id \"approve\" ; knhk:role \"clerk\" ;\n\
           yawl:flowsInto [ yawl:nextElementRef <#end> ] .\n\
         <#end> a yawl:OutputCondition ; yawl:id \"end\" .\n"
    )
}

/// The HTTP service of `charge`: answers once `open` says so, and records, per case number,
/// the idempotency key of every call it received.
#[derive(Clone)]
struct Gate {
    open: watch::Receiver<bool>,
    calls: Arc<Mutex<BTreeMap<u64, Vec<String>>>>,
    arrived: mpsc::UnboundedSender<u64>,
}

async fn charge(
    State(gate): State<Gate>,
    UrlPath(n): UrlPath<u64>,
    headers: HeaderMap,
) -> Json<Value> {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("(none)")
        .to_owned();
    gate.calls
        .lock()
        .expect("the calls")
        .entry(n)
        .or_default()
        .push(key.clone());
    let _ = gate.arrived.send(n);
    let mut open = gate.open.clone();
    let _ = open.wait_for(|open| *open).await;
    Json(json!({ "charged": key }))
}

/// Sends a request to a node; `None` when it cannot be reached at all.
async fn send(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    body: Option<&Value>,
) -> Option<(StatusCode, Value)> {
    let url = format!("{base}{path}");
    let request = match body {
        None => http.get(url),
        Some(body) => http.post(url).json(body),
    };
    let res = request.send().await.ok()?;
    let status = res.status();
    let text = res.text().await.ok()?;
    Some((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

/// Repeats a request until it answers 2xx, within the deadline.
async fn until_ok(http: &reqwest::Client, base: &str, path: &str, body: Option<&Value>) -> Value {
    let started = Instant::now();
    loop {
        if let Some((status, value)) = send(http, base, path, body).await {
            if status.is_success() {
                return value;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "{path} still fails after {DEADLINE:?}: {status} {value}"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Creates case `n`; returns its id.
async fn create(http: &reqwest::Client, base: &str, n: u64) -> String {
    let body = json!({"workflow_id": "Outage order", "data": {"n": n}, "start": true});
    let (status, case) = send(http, base, "/cases", Some(&body))
        .await
        .expect("the node answers");
    assert_eq!(status, StatusCode::CREATED, "creating case {n}: {case}");
    case["id"].as_str().expect("a case id").to_owned()
}

/// Asserts that a command failed for want of the store: 503 `unavailable`, saying so.
fn assert_unavailable(what: &str, answer: Option<(StatusCode, Value)>) {
    let (status, body) = answer.unwrap_or_else(|| panic!("{what}: the node does not answer"));
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{what}: {body}");
    assert_eq!(body["error"]["code"], "unavailable", "{what}: {body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("PostgreSQL"),
        "{what}: the message names the store: {body}"
    );
    assert!(
        !message.contains("postgres://"),
        "{what}: no connection string: {body}"
    );
}

/// Claims and completes every offered clerk item, until `cases` have all completed.
async fn finish(http: &reqwest::Client, bases: &[String], cases: &BTreeSet<String>) {
    let started = Instant::now();
    let user = json!({"user": "mia"});
    let done = json!({"user": "mia", "output": {"approved": true}});
    loop {
        let mut open = 0;
        for id in cases {
            let (_, case) = send(http, &bases[0], &format!("/cases/{id}"), None)
                .await
                .expect("the node answers");
            if case["status"] != "completed" {
                open += 1;
            }
        }
        if open == 0 {
            return;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "{open} cases have not completed after {DEADLINE:?}"
        );
        let items = until_ok(
            http,
            &bases[1],
            "/workitems?role=clerk&status=offered",
            None,
        )
        .await;
        for item in items["items"].as_array().into_iter().flatten() {
            let id = item["id"].as_str().expect("an item id");
            let claimed = send(
                http,
                &bases[0],
                &format!("/workitems/{id}/claim"),
                Some(&user),
            )
            .await;
            if matches!(claimed, Some((s, _)) if s.is_success()) {
                let completed = send(
                    http,
                    &bases[1],
                    &format!("/workitems/{id}/complete"),
                    Some(&done),
                )
                .await;
                assert!(
                    matches!(completed, Some((s, _)) if s.is_success()),
                    "completing {id}: {completed:?}"
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The outage outlasts the nodes' lease: they find it lapsed, register again and take their
/// own cases back as another node's.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_out_of_reach_past_the_lease_fails_commands_clearly_and_the_nodes_carry_on() {
    out_of_reach(Duration::from_secs(2)).await;
}

/// The outage is shorter than the lease: the nodes keep it, and take up again the cases whose
/// results they gave up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_out_of_reach_within_the_lease_fails_commands_clearly_and_the_nodes_carry_on() {
    out_of_reach(Duration::from_secs(30)).await;
}

async fn out_of_reach(lease: Duration) {
    let schema = crate::postgres::Schema::fresh();
    let mut url = reqwest::Url::parse(&schema.url).expect("the store URL");
    let target: SocketAddr = format!(
        "{}:{}",
        url.host_str().expect("a host"),
        url.port().unwrap_or(5432)
    )
    .parse()
    .expect("the server's address");
    let relay = Relay::start(target).await;
    url.set_port(Some(relay.addr.port())).expect("a port");
    let dir = tempfile::tempdir().expect("a data directory");
    let log = dir.path().join("nodes.log");
    let store = SharedStore::Postgres(url.to_string(), dir.path().to_owned());

    let (open_tx, open) = watch::channel(true);
    let (arrived, mut arrivals) = mpsc::unbounded_channel();
    let gate = Gate {
        open,
        calls: Arc::default(),
        arrived,
    };
    let app = Router::new()
        .route("/charge/{n}", post(charge))
        .with_state(gate.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let gate_addr = listener.local_addr().expect("an address");
    tokio::spawn(async move { axum::serve(listener, app).await });

    let nodes: Vec<Node> = (0..2)
        .map(|_| Node::start_with_lease(&store, &log, lease))
        .collect();
    let bases: Vec<String> = nodes.iter().map(|n| n.base.clone()).collect();
    let http = reqwest::Client::new();
    let definition = workflow(gate_addr);
    let res = http
        .post(format!("{}/workflows", bases[0]))
        .header("content-type", "text/turtle")
        .body(definition)
        .send()
        .await
        .expect("registering");
    assert!(res.status().is_success(), "{:?}", res.text().await);

    // Ten cases run up to their clerk's work item; ten more wait on calls held by the gate.
    let mut acked = BTreeSet::new();
    for n in 0..10 {
        acked.insert(create(&http, &bases[(n % 2) as usize], n).await);
    }
    open_tx.send_replace(false);
    for n in 10..20 {
        acked.insert(create(&http, &bases[(n % 2) as usize], n).await);
    }
    let mut held = BTreeSet::new();
    while held.len() < 10 {
        let n = arrivals.recv().await.expect("a call");
        if n >= 10 {
            held.insert(n);
        }
    }

    // The server goes out of reach; the held calls answer meanwhile.
    relay.cut();
    open_tx.send_replace(true);
    let cut_at = Instant::now();
    let mut tries = 0;
    while cut_at.elapsed() < OUTAGE {
        for base in &bases {
            let body = json!({"workflow_id": "Outage order", "data": {"n": 99}, "start": true});
            assert_unavailable(
                "creating a case during the outage",
                send(&http, base, "/cases", Some(&body)).await,
            );
            tries += 1;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(tries > 0);
    relay.restore();

    // The nodes carry on: new cases are taken again, and every case acknowledged ends.
    for n in 20..22 {
        let body = json!({"workflow_id": "Outage order", "data": {"n": n}, "start": true});
        let case = until_ok(&http, &bases[(n % 2) as usize], "/cases", Some(&body)).await;
        acked.insert(case["id"].as_str().expect("a case id").to_owned());
    }
    finish(&http, &bases, &acked).await;

    let calls = gate.calls.lock().expect("the calls").clone();
    let mut completed_items = 0;
    for id in &acked {
        let history = until_ok(
            &http,
            &bases[0],
            &format!("/cases/{id}/history?limit=500"),
            None,
        )
        .await;
        let events = history["events"].as_array().expect("events");
        let seqs: Vec<u64> = events
            .iter()
            .map(|e| e["seq"].as_u64().expect("seq"))
            .collect();
        let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
        assert_eq!(seqs, expected, "the history of {id} has no gaps");
        let mut items = BTreeSet::new();
        for e in events.iter().filter(|e| e["kind"] == "work_item_completed") {
            let item = e["event"]["item"].to_string();
            assert!(
                items.insert(item.clone()),
                "{id}: item {item} completed twice"
            );
            completed_items += 1;
        }
    }
    // Every case's call: all its attempts (a result lost to the outage means the call is
    // made again) carried one key.
    for (n, keys) in &calls {
        let first = &keys[0];
        assert!(keys.iter().all(|k| k == first), "case {n}: keys {keys:?}");
    }
    assert!(
        calls.len() >= 22,
        "every case's charge was called: {calls:?}"
    );
    assert!(
        completed_items >= acked.len(),
        "each case's work items completed"
    );
    drop(nodes);
    if std::env::var_os("KNHK_TEST_KEEP_LOG").is_some() {
        eprintln!("{}", std::fs::read_to_string(&log).unwrap_or_default());
    }
}
