//! `knhk serve`: the real binary on port 0 with a data directory of its own, driven over HTTP
//! by a real client (reqwest).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{example, stderr, stdout};

/// A running `knhk serve`, killed when dropped (unless it has exited).
pub(crate) struct Server {
    child: Child,
    base: String,
    /// The address gRPC listens on.
    pub(crate) grpc: std::net::SocketAddr,
    _dir: tempfile::TempDir,
    client: reqwest::Client,
}

impl Server {
    pub(crate) fn start() -> Server {
        Server::start_with(&[])
    }

    /// Starts the server with extra `KNHK_*` variables; reads its first line for the address.
    pub(crate) fn start_with(env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().expect("temporary data directory");
        let mut command = Command::new(env!("CARGO_BIN_EXE_knhk"));
        command
            .args([
                "serve",
                "--http",
                "127.0.0.1:0",
                "--grpc",
                "127.0.0.1:0",
                "--data-dir",
            ])
            .arg(dir.path())
            .env_remove("KNHK_DATA_DIR")
            .env_remove("KNHK_STORE")
            .env_remove("KNHK_CONFIG")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(match std::env::var_os("KNHK_TEST_SERVER_LOG") {
                // Debugging: the server's log goes to this file.
                Some(file) => Stdio::from(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(file)
                        .expect("the server log file opens"),
                ),
                None => Stdio::null(),
            });
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("knhk serve starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the first line of knhk serve");
        let (addr, grpc) = line
            .trim()
            .strip_prefix("listening http=")
            .and_then(|rest| rest.split_once(" grpc="))
            .unwrap_or_else(|| panic!("first line: {line:?}"));
        let grpc = grpc
            .parse::<std::net::SocketAddr>()
            .unwrap_or_else(|_| panic!("first line: {line:?}"));
        Server {
            child,
            base: format!("http://{addr}"),
            grpc,
            _dir: dir,
            client: reqwest::Client::new(),
        }
    }

    /// Returns the server's base URL, `http://HOST:PORT`.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// Returns the server's data directory.
    pub(crate) fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) async fn get(&self, path: &str) -> (StatusCode, Value) {
        let res = self.client.get(self.url(path)).send().await.expect("GET");
        answer(res).await
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let res = self
            .client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("POST");
        answer(res).await
    }

    pub(crate) async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let res = self
            .client
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("POST");
        answer(res).await
    }

    pub(crate) async fn register(&self, file: &str) -> String {
        let text = std::fs::read(example(file)).expect("example");
        let (status, body) = self.post_raw("/workflows", "text/turtle", text).await;
        assert!(status.is_success(), "{status} {body}");
        body["workflow"]["id"].as_str().expect("id").to_owned()
    }

    /// Everything the store shows through the API: workflows, cases, work items.
    pub(crate) async fn everything(&self) -> Value {
        let (_, workflows) = self.get("/workflows?page_size=1000").await;
        let (_, cases) = self.get("/cases?page_size=1000").await;
        let (_, items) = self.get("/workitems?page_size=1000").await;
        json!([workflows, cases, items])
    }

    /// Sends SIGTERM and returns the exit status, waiting at most 30 s.
    pub(crate) async fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(killed.expect("kill runs").success());
        let mut child = std::mem::replace(
            &mut self.child,
            Command::new("true").spawn().expect("a stand-in process"),
        );
        let waited = tokio::time::timeout(
            Duration::from_secs(30),
            tokio::task::spawn_blocking(move || child.wait()),
        )
        .await;
        waited
            .expect("knhk serve exits within 30 s of SIGTERM")
            .expect("join")
            .expect("wait")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn answer(res: reqwest::Response) -> (StatusCode, Value) {
    let status = res.status();
    let text = res.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

pub(crate) fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("(no error code)")
}

pub(crate) async fn create(server: &Server, workflow: &str, data: Value, start: bool) -> Value {
    let (status, case) = server
        .post(
            "/cases",
            json!({"workflow_id": workflow, "data": data, "start": start}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{case}");
    case
}

pub(crate) async fn work_items_of(server: &Server, case: &str) -> Vec<Value> {
    let (status, page) = server.get(&format!("/workitems?case={case}")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["items"].as_array().expect("items").clone()
}

#[tokio::test]
async fn serve_registers_creates_and_runs_cases_to_their_end() {
    let server = Server::start();
    let (status, health) = server.get("/health").await;
    assert_eq!(
        (status, health["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let (status, _) = server.get("/ready").await;
    assert_eq!(status, StatusCode::OK);

    let text = std::fs::read(example("order_approval.ttl")).expect("example");
    let (status, first) = server
        .post_raw("/workflows", "text/turtle", text.clone())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, again) = server.post_raw("/workflows", "text/turtle", text).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["already_registered"], true);
    let id = first["workflow"]["id"].as_str().expect("id");
    let (status, shown) = server.get(&format!("/workflows/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        shown["source"]
            .as_str()
            .expect("source")
            .contains("manager_approval")
    );
    let (_, list) = server.get("/workflows").await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(list["next_page_token"], Value::Null);

    // Small orders run to their end in the creating request; the workflow named by its URI.
    let case = create(
        &server,
        "https://knhk.dev/examples/order-approval",
        json!({"amount": 10}),
        true,
    )
    .await;
    assert_eq!(case["status"], "completed", "{case}");
    let (_, shown) = server
        .get(&format!("/cases/{}", case["id"].as_str().expect("id")))
        .await;
    assert_eq!(shown["status"], "completed");

    // A large one, created and then executed, waits for a manager, who completes it.
    let case = create(&server, id, json!({"amount": 1500}), false).await;
    assert_eq!(case["status"], "created");
    let case_id = case["id"].as_str().expect("id");
    let (status, running) = server
        .post(&format!("/cases/{case_id}/execute"), json!({}))
        .await;
    assert_eq!(
        (status, running["status"].as_str()),
        (StatusCode::OK, Some("running"))
    );
    let items = work_items_of(&server, case_id).await;
    assert_eq!(items.len(), 1, "{items:?}");
    let item = items[0]["id"].as_str().expect("item id");
    let (status, _) = server
        .post(&format!("/workitems/{item}/claim"), json!({"user": "mia"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, mine) = server.get("/workitems?user=mia&status=allocated").await;
    assert_eq!(mine["items"].as_array().map(Vec::len), Some(1));
    let (status, done) = server
        .post(
            &format!("/workitems/{item}/complete"),
            json!({"user": "mia", "output": {"approved": true}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["status"], "completed");
    assert_eq!(done["data"]["approved"], true);
    let (_, completed) = server.get("/cases?status=completed").await;
    assert_eq!(completed["items"].as_array().map(Vec::len), Some(2));

    // Lists come in pages: one case a page, then none left.
    let (_, first) = server.get("/cases?page_size=1").await;
    let token = first["next_page_token"].as_str().expect("a next page");
    let (_, second) = server
        .get(&format!("/cases?page_size=1&page_token={token}"))
        .await;
    assert_eq!(second["next_page_token"], Value::Null, "{second}");
    let ids: Vec<&Value> = [&first, &second]
        .iter()
        .flat_map(|p| p["items"].as_array().expect("items"))
        .map(|c| &c["id"])
        .collect();
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1]);
    let (_, by_workflow) = server
        .get("/cases?workflow=https%3A%2F%2Fknhk.dev%2Fexamples%2Forder-approval&status=running,completed")
        .await;
    assert_eq!(
        by_workflow["items"].as_array().map(Vec::len),
        Some(2),
        "{by_workflow}"
    );
}

#[tokio::test]
async fn two_users_racing_for_one_work_item_one_wins_the_other_gets_409() {
    let server = Server::start();
    let workflow = server.register("order_approval.ttl").await;
    let case = create(&server, &workflow, json!({"amount": 5000}), true).await;
    let case_id = case["id"].as_str().expect("id");
    let item = work_items_of(&server, case_id).await[0]["id"]
        .as_str()
        .expect("item")
        .to_owned();
    let claim = |user: &'static str| {
        let path = format!("/workitems/{item}/claim");
        let server = &server;
        async move { server.post(&path, json!({"user": user})).await }
    };
    let (a, b) = tokio::join!(claim("mia"), claim("noah"));
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::CONFLICT],
        "{a:?} {b:?}"
    );
    let (winner, loser) = if a.0 == StatusCode::OK {
        ("mia", "noah")
    } else {
        ("noah", "mia")
    };
    let lost = if a.0 == StatusCode::OK { &b.1 } else { &a.1 };
    assert_eq!(code(lost), "failed_precondition", "{lost}");

    // The loser may not complete it either, and that changes nothing.
    let before = server.everything().await;
    let complete = format!("/workitems/{item}/complete");
    let (status, body) = server.post(&complete, json!({"user": loser})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(server.everything().await, before);

    let (status, _) = server.post(&complete, json!({"user": winner})).await;
    assert_eq!(status, StatusCode::OK);
    // Done twice: the item is gone.
    let before = server.everything().await;
    let (status, body) = server.post(&complete, json!({"user": winner})).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "not_found"),
        "{body}"
    );
    assert_eq!(server.everything().await, before);
}

#[tokio::test]
async fn history_comes_in_pages_that_add_up_to_the_whole() {
    let server = Server::start();
    let workflow = server.register("bench/w1_sequence.ttl").await;
    let case = create(&server, &workflow, json!({}), true).await;
    let id = case["id"].as_str().expect("id");
    let version = case["version"].as_u64().expect("version");
    let (_, whole) = server.get(&format!("/cases/{id}/history")).await;
    let whole = whole["events"].as_array().expect("events").clone();
    assert_eq!(whole.len() as u64, version);

    let mut paged = Vec::new();
    let mut path = format!("/cases/{id}/history?limit=7");
    let mut pages = 0;
    loop {
        let (status, page) = server.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let events = page["events"].as_array().expect("events");
        assert!(events.len() <= 7);
        paged.extend(events.iter().cloned());
        pages += 1;
        match page["next_page_token"].as_str() {
            Some(token) => path = format!("/cases/{id}/history?limit=7&page_token={token}"),
            None => break,
        }
    }
    assert_eq!(paged, whole);
    assert_eq!(pages, whole.len().div_ceil(7));
    let (_, tail) = server
        .get(&format!("/cases/{id}/history?after=5&limit=3"))
        .await;
    let seqs: Vec<u64> = tail["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["seq"].as_u64())
        .collect();
    assert_eq!(seqs, [6, 7, 8]);
}

/// Reads server-sent events until `event: end`, returning (event name, data) pairs.
async fn read_events(
    res: &mut reqwest::Response,
    until_end: bool,
    at_least: usize,
) -> Vec<(String, Value)> {
    let mut buffer = String::new();
    let mut out = Vec::new();
    loop {
        while let Some(i) = buffer.find("\n\n") {
            let block: String = buffer.drain(..i + 2).collect();
            let mut name = String::new();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim());
                }
            }
            if name.is_empty() {
                continue; // a keep-alive comment
            }
            let ended = name == "end";
            out.push((name, serde_json::from_str(&data).unwrap_or(Value::Null)));
            if ended || (!until_end && out.len() >= at_least) {
                return out;
            }
        }
        let chunk = tokio::time::timeout(Duration::from_secs(30), res.chunk())
            .await
            .expect("an event within 30 s")
            .expect("the stream");
        match chunk {
            Some(bytes) => buffer.push_str(&String::from_utf8_lossy(&bytes)),
            None => return out,
        }
    }
}

#[tokio::test]
async fn watch_sends_the_history_then_each_new_event_until_the_case_ends() {
    let server = Server::start();
    let workflow = server.register("order_approval.ttl").await;
    let case = create(&server, &workflow, json!({"amount": 5000}), true).await;
    let id = case["id"].as_str().expect("id");
    let so_far = case["version"].as_u64().expect("version") as usize;
    let mut res = server
        .client
        .get(server.url(&format!("/cases/{id}/watch")))
        .send()
        .await
        .expect("watch");
    assert_eq!(res.status(), StatusCode::OK);
    let first = read_events(&mut res, false, so_far).await;
    assert_eq!(first.len(), so_far);
    let item = work_items_of(&server, id).await[0]["id"]
        .as_str()
        .expect("item")
        .to_owned();
    let (status, done) = server
        .post(
            &format!("/workitems/{item}/complete"),
            json!({"user": "mia"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let rest = read_events(&mut res, true, 0).await;
    let (last_name, last) = rest.last().expect("an end");
    assert_eq!(last_name, "end");
    assert_eq!(last["status"], "completed");
    let seqs: Vec<u64> = first
        .iter()
        .chain(&rest)
        .filter(|(name, _)| name == "case_event")
        .filter_map(|(_, e)| e["seq"].as_u64())
        .collect();
    let expected: Vec<u64> = (1..=done["version"].as_u64().expect("version")).collect();
    assert_eq!(seqs, expected);

    // A watch of an ended case sends its history and ends; an unknown case is a 404.
    let mut again = server
        .client
        .get(server.url(&format!("/cases/{id}/watch")))
        .send()
        .await
        .expect("watch");
    let all = read_events(&mut again, true, 0).await;
    assert_eq!(all.len(), expected.len() + 1);
    // A client that reconnects with the last id it saw gets what follows it.
    let mut resumed = server
        .client
        .get(server.url(&format!("/cases/{id}/watch")))
        .header("last-event-id", "3")
        .send()
        .await
        .expect("watch");
    let after_3 = read_events(&mut resumed, true, 0).await;
    assert_eq!(
        after_3.first().map(|(_, e)| e["seq"].clone()),
        Some(json!(4))
    );
    assert_eq!(after_3.len(), expected.len() - 3 + 1);
    let (status, body) = server
        .get("/cases/00000000-0000-0000-0000-000000000001/watch")
        .await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
}

#[tokio::test]
async fn cancel_ends_a_waiting_case_once() {
    let server = Server::start();
    let workflow = server.register("order_approval.ttl").await;
    let case = create(&server, &workflow, json!({"amount": 5000}), true).await;
    let id = case["id"].as_str().expect("id");
    let (status, suspended) = server
        .post(&format!("/cases/{id}/suspend"), json!({}))
        .await;
    assert_eq!(
        (status, suspended["status"].as_str()),
        (StatusCode::OK, Some("suspended"))
    );
    let (status, resumed) = server.post(&format!("/cases/{id}/resume"), json!({})).await;
    assert_eq!(
        (status, resumed["status"].as_str()),
        (StatusCode::OK, Some("running"))
    );
    let (status, cancelled) = server
        .post(
            &format!("/cases/{id}/cancel"),
            json!({"reason": "customer withdrew"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    assert!(work_items_of(&server, id).await.is_empty());
    let before = server.everything().await;
    let (status, body) = server.post(&format!("/cases/{id}/cancel"), json!({})).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "failed_precondition"),
        "{body}"
    );
    assert_eq!(server.everything().await, before);
}

#[tokio::test]
async fn an_idempotency_key_gives_the_same_case_and_refuses_another_body() {
    let server = Server::start();
    let workflow = server.register("order_approval.ttl").await;
    let send = |body: Value| {
        let server = &server;
        async move {
            let res = server
                .client
                .post(server.url("/cases"))
                .header("idempotency-key", "order-A-17")
                .json(&body)
                .send()
                .await
                .expect("POST");
            answer(res).await
        }
    };
    let body = json!({"workflow_id": workflow, "data": {"amount": 5000}, "start": true});
    let (status, first) = send(body.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    // The same request again, its keys in another order: the same case.
    let reordered = json!({"start": true, "data": {"amount": 5000}, "workflow_id": workflow});
    let (status, again) = send(reordered).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["id"], first["id"]);
    let before = server.everything().await;
    let (status, other) = send(json!({"workflow_id": workflow, "data": {"amount": 1}})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{other}");
    assert_eq!(code(&other), "idempotency_key_reused");
    assert_eq!(server.everything().await, before);
    let (_, cases) = server.get("/cases").await;
    assert_eq!(cases["items"].as_array().map(Vec::len), Some(1));

    // Eight requests racing with one new key make one case, and all get it.
    let racer = || {
        let server = &server;
        let body = json!({"workflow_id": workflow, "data": {"amount": 7}});
        async move {
            let res = server
                .client
                .post(server.url("/cases"))
                .header("idempotency-key", "order-B-2")
                .json(&body)
                .send()
                .await
                .expect("POST");
            answer(res).await
        }
    };
    let answers = futures_join_all((0..8).map(|_| racer())).await;
    let created = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    let replayed = answers.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!((created, replayed), (1, 7), "{answers:?}");
    let ids: std::collections::BTreeSet<Option<&str>> =
        answers.iter().map(|(_, c)| c["id"].as_str()).collect();
    assert_eq!(ids.len(), 1);
    let (_, cases) = server.get("/cases").await;
    assert_eq!(cases["items"].as_array().map(Vec::len), Some(2));
}

/// Awaits every future at once, in order.
async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futures {
        set.push(Box::pin(f));
    }
    let mut out = Vec::new();
    // Polled together: each is driven by the one join below.
    let joined = std::future::poll_fn(|cx| {
        let mut all_ready = true;
        for (i, f) in set.iter_mut().enumerate() {
            if out.len() <= i {
                out.push(None);
            }
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => all_ready = false,
                }
            }
        }
        if all_ready {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    });
    joined.await;
    out.into_iter().flatten().collect()
}

/// What a bad request is, the status, code and field it must get, and what it got.
type Check = (
    &'static str,
    StatusCode,
    &'static str,
    Option<&'static str>,
    (StatusCode, Value),
);

#[tokio::test]
async fn bad_requests_get_their_documented_error_and_change_nothing() {
    let server = Server::start_with(&[
        ("KNHK_MAX_BODY_BYTES", "65536"),
        ("KNHK_MAX_PAGE_SIZE", "50"),
        ("KNHK_MAX_TASKS", "5"),
    ]);
    let workflow = server.register("order_approval.ttl").await;
    let case = create(&server, &workflow, json!({"amount": 5000}), true).await;
    let id = case["id"].as_str().expect("id").to_owned();
    let before = server.everything().await;
    let unknown = "00000000-0000-0000-0000-000000000001";

    let mut checks: Vec<Check> = Vec::new();
    let raw = |ct: &'static str, body: &[u8]| {
        let server = &server;
        let body = body.to_vec();
        async move { server.post_raw("/workflows", ct, body).await }
    };
    checks.push((
        "malformed Turtle",
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        Some("body"),
        raw("text/turtle", b"<#spec> a yawl:Specification ;; .").await,
    ));
    checks.push((
        "malformed YAWL XML",
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        Some("body"),
        raw("application/xml", b"<specificationSet><unclosed>").await,
    ));
    let w1 = std::fs::read(example("bench/w1_sequence.ttl")).expect("example");
    checks.push((
        "a definition with more tasks than max_tasks",
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        Some("body"),
        raw("text/turtle", &w1).await,
    ));
    checks.push((
        "a definition as JSON",
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        Some("Content-Type"),
        raw("application/json", b"{}").await,
    ));
    checks.push((
        "an oversized body",
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        None,
        raw("text/turtle", &vec![b'#'; 100_000]).await,
    ));
    checks.push((
        "an unknown case",
        StatusCode::NOT_FOUND,
        "not_found",
        None,
        server.get(&format!("/cases/{unknown}")).await,
    ));
    checks.push((
        "a case id that is no UUID",
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        Some("id"),
        server.get("/cases/not-a-uuid").await,
    ));
    checks.push((
        "an unknown work item",
        StatusCode::NOT_FOUND,
        "not_found",
        None,
        server
            .post(
                &format!("/workitems/{unknown}/claim"),
                json!({"user": "mia"}),
            )
            .await,
    ));
    checks.push((
        "an unknown workflow",
        StatusCode::NOT_FOUND,
        "not_found",
        Some("workflow_id"),
        server
            .post(
                "/cases",
                json!({"workflow_id": "https://nowhere.example/wf"}),
            )
            .await,
    ));
    checks.push((
        "an unknown workflow id",
        StatusCode::NOT_FOUND,
        "not_found",
        Some("workflow_id"),
        server
            .post("/cases", json!({"workflow_id": unknown, "start": true}))
            .await,
    ));
    checks.push((
        "resuming a running case",
        StatusCode::CONFLICT,
        "failed_precondition",
        None,
        server.post(&format!("/cases/{id}/resume"), json!({})).await,
    ));
    checks.push((
        "an unknown field",
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        Some("colour"),
        server
            .post("/cases", json!({"workflow_id": workflow, "colour": "red"}))
            .await,
    ));
    let json_raw = |path: String, body: &'static [u8]| {
        let server = &server;
        async move {
            server
                .post_raw(&path, "application/json", body.to_vec())
                .await
        }
    };
    checks.push((
        "a duplicate key",
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        Some("start"),
        json_raw(
            "/cases".into(),
            br#"{"workflow_id": "x", "start": true, "start": false}"#,
        )
        .await,
    ));
    checks.push((
        "a duplicate key in the data",
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        Some("data.amount"),
        json_raw(
            "/cases".into(),
            br#"{"workflow_id": "x", "data": {"amount": 1, "amount": 2}}"#,
        )
        .await,
    ));
    checks.push((
        "a wrong type",
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        Some("start"),
        json_raw("/cases".into(), br#"{"workflow_id": "x", "start": "yes"}"#).await,
    ));
    checks.push((
        "invalid UTF-8",
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        Some("body"),
        json_raw("/cases".into(), b"{\"workflow_id\": \"\xff\xfe\"}").await,
    ));
    checks.push((
        "nesting too deep",
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        None,
        server
            .post_raw(
                "/cases",
                "application/json",
                format!(
                    "{{\"workflow_id\": \"x\", \"data\": {{\"a\": {}1{}}}}}",
                    "[".repeat(100),
                    "]".repeat(100)
                )
                .into_bytes(),
            )
            .await,
    ));
    checks.push((
        "a page larger than the cap",
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        Some("page_size"),
        server.get("/cases?page_size=51").await,
    ));
    checks.push((
        "a page size that is no number",
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        Some("page_size"),
        server.get("/cases?page_size=many").await,
    ));
    checks.push((
        "a forged page token",
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        Some("page_token"),
        server.get("/cases?page_token=zz").await,
    ));
    checks.push((
        "an unknown query parameter",
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        Some("colour"),
        server.get("/cases?colour=red").await,
    ));
    checks.push((
        "a claim without a user",
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        Some("user"),
        server
            .post(&format!("/workitems/{unknown}/claim"), json!({"user": 7}))
            .await,
    ));
    checks.push((
        "an unknown path",
        StatusCode::NOT_FOUND,
        "not_found",
        None,
        server.get("/nowhere").await,
    ));
    checks.push((
        "a method the path does not take",
        StatusCode::METHOD_NOT_ALLOWED,
        "unimplemented",
        None,
        server.post("/health", json!({})).await,
    ));
    let mut failures = Vec::new();
    for (what, status, expected_code, field, (got, body)) in &checks {
        let field_ok = field.is_none_or(|f| body["error"]["details"]["field"] == *f);
        let message_ok = body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty());
        if got != status || code(body) != *expected_code || !field_ok || !message_ok {
            failures.push(format!("{what}: got {got} {body}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(server.everything().await, before);
}

#[tokio::test]
async fn sigterm_stops_the_server_with_status_0_even_with_a_watch_open() {
    let server = Server::start();
    let workflow = server.register("order_approval.ttl").await;
    let case = create(&server, &workflow, json!({"amount": 5000}), true).await;
    let id = case["id"].as_str().expect("id");
    let mut watch = server
        .client
        .get(server.url(&format!("/cases/{id}/watch")))
        .send()
        .await
        .expect("watch");
    let so_far = case["version"].as_u64().expect("version") as usize;
    read_events(&mut watch, false, so_far).await;
    let status = server.terminate().await;
    assert!(status.success(), "{status:?}");
    // The watch was told why it ends.
    let rest = read_events(&mut watch, true, 0).await;
    assert_eq!(
        rest.last()
            .map(|(n, e)| (n.as_str(), e["stopping"].clone())),
        Some(("end", json!(true)))
    );
}

#[test]
fn serve_configuration_comes_from_the_file_then_the_environment_then_flags() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let file: PathBuf = dir.path().join("knhk.toml");
    std::fs::write(
        &file,
        "max_page_size = 5\nmax_tasks = 11\nhttp = \"127.0.0.1:7000\"\n",
    )
    .expect("config file");
    let run = |env: &[(&str, &str)], args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_knhk"));
        command
            .arg("serve")
            .arg("--config")
            .arg(&file)
            .arg("--print-config");
        command.args(args).env_remove("KNHK_DATA_DIR");
        for (k, v) in env {
            command.env(k, v);
        }
        command.output().expect("knhk runs")
    };
    let out = run(&[("KNHK_MAX_TASKS", "12")], &["--http", "127.0.0.1:7001"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("max_page_size = 5"), "{text}");
    assert!(text.contains("max_tasks = 12"), "{text}");
    assert!(text.contains("http = \"127.0.0.1:7001\""), "{text}");
    // A global flag given on the command line wins over the environment.
    let out = run(&[("KNHK_MAX_TASKS", "12")], &["--max-tasks", "13"]);
    assert!(stdout(&out).contains("max_tasks = 13"), "{}", stdout(&out));
    // Each bad key is named.
    let out = run(&[("KNHK_MAX_JSON_DEPTH", "deep")], &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("MAX_JSON_DEPTH"), "{}", stderr(&out));
    let out = run(&[("KNHK_DEFAULT_PAGE_SIZE", "0")], &[]);
    assert!(
        stderr(&out).contains("default_page_size"),
        "{}",
        stderr(&out)
    );
    let out = run(&[], &["--grpc", "not an address"]);
    assert!(stderr(&out).contains("key grpc"), "{}", stderr(&out));
    // durability: normal is taken from the file and shown; full is the default.
    let out = run(&[], &[]);
    assert!(
        stdout(&out).contains("durability = \"full\""),
        "{}",
        stdout(&out)
    );
    std::fs::write(&file, "durability = \"normal\"\n").expect("config file");
    let out = run(&[], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("durability = \"normal\""),
        "{}",
        stdout(&out)
    );
    // The global flag wins over the file.
    let out = run(&[], &["--durability", "full"]);
    assert!(
        stdout(&out).contains("durability = \"full\""),
        "{}",
        stdout(&out)
    );
    std::fs::write(&file, "durability = \"off\"\n").expect("config file");
    let out = run(&[], &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("key durability"), "{}", stderr(&out));
    std::fs::write(&file, "colour = \"red\"\n").expect("config file");
    let out = run(&[], &[]);
    assert!(stderr(&out).contains("colour"), "{}", stderr(&out));
}

#[tokio::test]
async fn work_items_go_through_every_action_and_triggers_reach_their_task() {
    let server = Server::start();
    let workflow = server
        .register("patterns/wcp23_transient_trigger.ttl")
        .await;
    let case = create(&server, &workflow, json!({}), true).await;
    let id = case["id"].as_str().expect("id");
    // An event nobody waits for yet is refused, and changes nothing.
    let before = server.everything().await;
    let (status, body) = server
        .post(&format!("/cases/{id}/triggers/payment"), json!({}))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "failed_precondition"),
        "{body}"
    );
    assert_eq!(server.everything().await, before);

    let item = work_items_of(&server, id).await[0]["id"]
        .as_str()
        .expect("item")
        .to_owned();
    let act = |action: &'static str, body: Value| {
        let server = &server;
        let path = format!("/workitems/{item}/{action}");
        async move {
            let (status, case) = server.post(&path, body).await;
            assert_eq!(status, StatusCode::OK, "{action}: {case}");
            case
        }
    };
    act("claim", json!({"user": "mia"})).await;
    act("release", json!({"user": "mia"})).await;
    let (_, offered) = server.get(&format!("/workitems/{item}")).await;
    assert_eq!(offered["status"], "offered");
    act("claim", json!({"user": "noah"})).await;
    act("delegate", json!({"user": "noah", "to": "mia"})).await;
    let (_, delegated) = server.get(&format!("/workitems/{item}")).await;
    assert_eq!(
        (delegated["status"].as_str(), delegated["owner"].as_str()),
        (Some("allocated"), Some("mia"))
    );
    act("start", json!({"user": "mia"})).await;
    act(
        "complete",
        json!({"user": "mia", "output": {"prepared": true}}),
    )
    .await;

    // Now Pay waits for the event, which carries data into the case.
    let (status, paid) = server
        .post(
            &format!("/cases/{id}/triggers/payment"),
            json!({"data": {"amount": 42}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{paid}");
    assert_eq!(paid["data"]["amount"], 42);
    let ship = work_items_of(&server, id).await[0]["id"]
        .as_str()
        .expect("item")
        .to_owned();
    let (status, failed) = server
        .post(
            &format!("/workitems/{ship}/fail"),
            json!({"user": "mia", "reason": "no stock"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{failed}");
    assert_eq!(failed["status"], "failed");
    let (_, history) = server.get(&format!("/cases/{id}/history?limit=1000")).await;
    let text = history.to_string();
    assert!(text.contains("no stock"), "{text}");
}

#[tokio::test]
async fn work_item_pages_follow_the_store_index_and_survive_an_item_completed_between_them() {
    let server = Server::start();
    let text = std::fs::read(example("order_approval.ttl")).expect("example");
    let (status, registered) = server.post_raw("/workflows", "text/turtle", text).await;
    assert_eq!(status, StatusCode::CREATED, "{registered}");
    let workflow = registered["workflow"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    for _ in 0..3 {
        let case = create(&server, &workflow, json!({"amount": 1500}), true).await;
        assert_eq!(case["status"], "running", "{case}");
    }
    let (status, first) = server.get("/workitems?page_size=2").await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let first_items = first["items"].as_array().expect("items").clone();
    assert_eq!(first_items.len(), 2, "{first}");
    let token = first["next_page_token"].as_str().expect("a next page");
    // The last item of the first page is done before the second page is asked for.
    let last = first_items[1]["id"].as_str().expect("id");
    for action in ["claim", "start"] {
        let (status, body) = server
            .post(
                &format!("/workitems/{last}/{action}"),
                json!({"user": "mia"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{action}: {body}");
    }
    let (status, body) = server
        .post(
            &format!("/workitems/{last}/complete"),
            json!({"user": "mia", "output": {"approved": true}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, second) = server
        .get(&format!("/workitems?page_size=2&page_token={token}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let second_items = second["items"].as_array().expect("items");
    assert_eq!(second_items.len(), 1, "{second}");
    assert_eq!(second["next_page_token"], Value::Null);
    let mut ids: Vec<&str> = first_items
        .iter()
        .chain(second_items)
        .map(|w| w["id"].as_str().expect("id"))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 3, "three items, none twice: {ids:?}");
}

#[tokio::test]
async fn lists_page_by_status_and_after_an_id_the_server_turns_into_its_cursor() {
    let server = Server::start();
    let workflow = server.register("order_approval.ttl").await;
    let mut cases = Vec::new();
    for _ in 0..3 {
        let case = create(&server, &workflow, json!({"amount": 1500}), true).await;
        cases.push(case["id"].as_str().expect("id").to_owned());
    }
    let (_, all) = server.get("/workitems").await;
    let items: Vec<String> = all["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|w| w["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(items.len(), 3, "{all}");
    let (status, body) = server
        .post(
            &format!("/workitems/{}/claim", items[1]),
            json!({"user": "mia"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ids = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|w| w["id"].as_str().expect("id").to_owned())
            .collect()
    };

    // A status is a condition of the page, in pages of their own.
    let (status, allocated) = server.get("/workitems?status=allocated").await;
    assert_eq!(status, StatusCode::OK, "{allocated}");
    assert_eq!(ids(&allocated), [items[1].clone()]);
    let (_, first) = server.get("/workitems?status=offered&page_size=1").await;
    assert_eq!(ids(&first), [items[0].clone()]);
    let token = first["next_page_token"].as_str().expect("a next page");
    let (_, second) = server
        .get(&format!(
            "/workitems?status=offered&page_size=1&page_token={token}"
        ))
        .await;
    assert_eq!(ids(&second), [items[2].clone()]);
    assert_eq!(second["next_page_token"], Value::Null);

    // `after` names the item a page follows, without a token.
    let (status, after) = server.get(&format!("/workitems?after={}", items[0])).await;
    assert_eq!(status, StatusCode::OK, "{after}");
    assert_eq!(ids(&after), items[1..]);
    let (_, after) = server
        .get(&format!("/workitems?status=offered&after={}", items[0]))
        .await;
    assert_eq!(ids(&after), [items[2].clone()]);
    // Once the item is gone, its offer time keeps its place.
    let offered_at = all["items"][0]["offered_at"].as_str().expect("offered_at");
    let (status, body) = server
        .post(
            &format!("/workitems/{}/claim", items[0]),
            json!({"user": "mia"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for (action, body) in [
        ("start", json!({"user": "mia"})),
        (
            "complete",
            json!({"user": "mia", "output": {"approved": true}}),
        ),
    ] {
        let (status, body) = server
            .post(&format!("/workitems/{}/{action}", items[0]), body)
            .await;
        assert_eq!(status, StatusCode::OK, "{action}: {body}");
    }
    let (status, gone) = server.get(&format!("/workitems?after={}", items[0])).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{gone}");
    let (status, placed) = server
        .get(&format!(
            "/workitems?after={}&after_offered_at={offered_at}",
            items[0]
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{placed}");
    assert_eq!(ids(&placed), items[1..]);
    // Refused: both a token and `after`, an offer time alone, not an id, not a time.
    for (query, field) in [
        (format!("after={}&page_token={token}", items[1]), "after"),
        (format!("after_offered_at={offered_at}"), "after_offered_at"),
        ("after=nonsense".to_owned(), "after"),
        (
            format!("after={}&after_offered_at=yesterday", items[1]),
            "after_offered_at",
        ),
    ] {
        let (status, body) = server.get(&format!("/workitems?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["error"]["details"]["field"], field, "{query}: {body}");
    }

    // Cases and workflows take `after` too.
    let (status, page) = server.get(&format!("/cases?after={}", cases[0])).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let listed: Vec<&str> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|c| c["id"].as_str().expect("id"))
        .collect();
    assert_eq!(listed, [cases[1].as_str(), cases[2].as_str()]);
    let (status, page) = server.get(&format!("/workflows?after={workflow}")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["items"], json!([]));
    // Workflows are listed without their sources, with their task counts.
    let (_, page) = server.get("/workflows").await;
    let listed = &page["items"][0];
    assert_eq!(listed["id"], workflow.as_str(), "{page}");
    assert!(listed.get("source").is_none(), "{listed}");
    let (_, one) = server.get(&format!("/workflows/{workflow}")).await;
    assert!(
        one["source"].as_str().is_some_and(|s| !s.is_empty()),
        "{one}"
    );
    assert_eq!(listed["tasks"], one["tasks"]);
    assert!(listed["tasks"].as_u64().is_some_and(|n| n > 0), "{listed}");
}

#[tokio::test]
async fn releasing_a_case_that_is_not_quarantined_is_refused_and_changes_nothing() {
    let server = Server::start();
    let workflow = server.register("order_approval.ttl").await;
    let case = create(&server, &workflow, json!({"amount": 1500}), true).await;
    let id = case["id"].as_str().expect("id");
    let before = server.everything().await;
    let (status, body) = server
        .post(&format!("/cases/{id}/release"), json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(code(&body), "failed_precondition");
    assert_eq!(
        body["error"]["message"],
        format!("case {id} is not quarantined: there is nothing to release")
    );
    let unknown = "00000000-0000-4000-8000-000000000000";
    let (status, body) = server
        .post(&format!("/cases/{unknown}/release"), json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(server.everything().await, before);
}
