//! The `salesforce` kind against a stand-in for Salesforce (Salesforce is not reachable from
//! here): an axum server on port 0 with the token endpoint of the client-credentials flow, the
//! sObject create, update and upsert resources, the query resource and the versions list, in
//! Salesforce's documented request and response shapes.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Form, Json, Router};
use knhk_connectors::{BreakerPolicy, InstanceConfig, Registry, RetryPolicy, kinds};
use serde_json::{Value, json};

use crate::server::{TestServer, serve};
use crate::settings;

const CLIENT_ID: &str = "knhk-test-client";
const SECRET: &str = "s3cr3t-Do-Not-Show";

/// One API request as the stand-in saw it.
#[derive(Clone, Debug)]
struct Seen {
    method: Method,
    path: String,
    q: Option<String>,
    token: String,
    idempotency_key: Option<String>,
    body: Value,
}

/// What the stand-in holds and has seen.
#[derive(Default)]
struct Org {
    /// The token API calls must carry; `None` after `expire`, until the next token request.
    valid: Option<String>,
    /// Refuses every token on API calls (a revoked app).
    refuse_all: bool,
    issued: u32,
    token_forms: Vec<HashMap<String, String>>,
    seen: Vec<Seen>,
    /// Statuses answered to the next API calls before handling them (5xx, 429).
    fail_next: VecDeque<StatusCode>,
    /// API calls never answer.
    hang: bool,
    /// Records by sObject and id.
    records: HashMap<(String, String), Value>,
    created: u32,
}

type Shared = Arc<Mutex<Org>>;

struct StandIn {
    server: TestServer,
    org: Shared,
}

impl StandIn {
    async fn start() -> StandIn {
        let org = Shared::default();
        let router = Router::new()
            .route("/services/oauth2/token", post(token))
            .route("/services/data/", get(versions))
            .route("/services/data/{v}/sobjects/{sobject}/", post(create))
            .route("/services/data/{v}/sobjects/{sobject}/{id}", patch(update))
            .route(
                "/services/data/{v}/sobjects/{sobject}/{field}/{value}",
                patch(upsert),
            )
            .route("/services/data/{v}/query", get(query))
            .with_state(org.clone());
        StandIn {
            server: serve(router).await,
            org,
        }
    }

    fn url(&self) -> String {
        self.server.url("")
    }

    fn org(&self) -> std::sync::MutexGuard<'_, Org> {
        self.org.lock().unwrap()
    }

    /// Ends the current session, as a timeout or a revocation in Salesforce does.
    fn expire(&self) {
        self.org().valid = None;
    }
}

async fn token(State(org): State<Shared>, Form(form): Form<HashMap<String, String>>) -> Response {
    let mut org = org.lock().unwrap();
    org.token_forms.push(form.clone());
    let field = |k: &str| form.get(k).map(String::as_str);
    if field("grant_type") != Some("client_credentials") {
        let body = json!({"error": "unsupported_grant_type", "error_description": "grant type not supported"});
        return (StatusCode::BAD_REQUEST, Json(body)).into_response();
    }
    if field("client_id") != Some(CLIENT_ID) || field("client_secret") != Some(SECRET) {
        // A careless server echoing what it was sent: the connector must not repeat it.
        let sent = field("client_secret").unwrap_or_default();
        let body = json!({"error": "invalid_client", "error_description": format!("invalid client credentials ({sent})")});
        return (StatusCode::BAD_REQUEST, Json(body)).into_response();
    }
    org.issued += 1;
    let access = format!("00Dxx0000001gPL!tok{}", org.issued);
    org.valid = Some(access.clone());
    Json(json!({
        "access_token": access,
        "signature": "d9+...=",
        "scope": "api",
        "instance_url": "http://instance.invalid",
        "id": "https://login.salesforce.com/id/00Dxx0000001gPLEAY/005xx000001SwiUAAS",
        "token_type": "Bearer",
        "issued_at": "1700000000000"
    }))
    .into_response()
}

async fn versions() -> Json<Value> {
    Json(json!([
        {"label": "Winter '24", "url": "/services/data/v59.0", "version": "59.0"},
        {"label": "Spring '24", "url": "/services/data/v60.0", "version": "60.0"}
    ]))
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!([{ "message": message, "errorCode": code }])),
    )
        .into_response()
}

/// Records the request, checks its session, and answers a scripted failure if one is due.
async fn arrive(org: &Shared, seen: Seen) -> Result<(), Response> {
    let hang = {
        let mut org = org.lock().unwrap();
        let authorized = !org.refuse_all && org.valid.as_deref() == Some(seen.token.as_str());
        org.seen.push(seen);
        if !authorized {
            return Err(error(
                StatusCode::UNAUTHORIZED,
                "INVALID_SESSION_ID",
                "Session expired or invalid",
            ));
        }
        if let Some(status) = org.fail_next.pop_front() {
            return Err(error(status, "SERVER_UNAVAILABLE", "try again later"));
        }
        org.hang
    };
    if hang {
        std::future::pending::<()>().await;
    }
    Ok(())
}

fn seen(method: Method, path: String, q: Option<String>, headers: &HeaderMap, body: Value) -> Seen {
    let header = |n: &str| headers.get(n).map(|v| v.to_str().unwrap().to_owned());
    Seen {
        method,
        path,
        q,
        token: header("authorization")
            .and_then(|a| a.strip_prefix("Bearer ").map(str::to_owned))
            .unwrap_or_default(),
        idempotency_key: header("idempotency-key"),
        body,
    }
}

async fn create(
    State(org): State<Shared>,
    Path((v, sobject)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let path = format!("/services/data/{v}/sobjects/{sobject}/");
    if let Err(r) = arrive(&org, seen(Method::POST, path, None, &headers, body.clone())).await {
        return r;
    }
    if body.get("Name").is_none() {
        return error(
            StatusCode::BAD_REQUEST,
            "REQUIRED_FIELD_MISSING",
            "Required fields are missing: [Name]",
        );
    }
    let mut org = org.lock().unwrap();
    org.created += 1;
    let id = format!("001xx00000{:05}AAA", org.created);
    org.records.insert((sobject, id.clone()), body);
    (
        StatusCode::CREATED,
        Json(json!({"id": id, "errors": [], "success": true})),
    )
        .into_response()
}

async fn update(
    State(org): State<Shared>,
    Path((v, sobject, id)): Path<(String, String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let path = format!("/services/data/{v}/sobjects/{sobject}/{id}");
    if let Err(r) = arrive(
        &org,
        seen(Method::PATCH, path, None, &headers, body.clone()),
    )
    .await
    {
        return r;
    }
    let mut org = org.lock().unwrap();
    let Some(record) = org.records.get_mut(&(sobject, id)) else {
        return error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource does not exist",
        );
    };
    for (k, v) in body.as_object().unwrap() {
        record[k] = v.clone();
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn upsert(
    State(org): State<Shared>,
    Path((v, sobject, field, value)): Path<(String, String, String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let path = format!("/services/data/{v}/sobjects/{sobject}/{field}/{value}");
    if let Err(r) = arrive(
        &org,
        seen(Method::PATCH, path, None, &headers, body.clone()),
    )
    .await
    {
        return r;
    }
    let mut org = org.lock().unwrap();
    let found = org
        .records
        .iter()
        .find(|((s, _), r)| *s == sobject && r[&field] == json!(value))
        .map(|((_, id), _)| id.clone());
    match found {
        Some(id) => {
            let record = org.records.get_mut(&(sobject, id.clone())).unwrap();
            for (k, v) in body.as_object().unwrap() {
                record[k] = v.clone();
            }
            let answer = json!({"id": id, "success": true, "errors": [], "created": false});
            (StatusCode::OK, Json(answer)).into_response()
        }
        None => {
            org.created += 1;
            let id = format!("001xx00000{:05}AAA", org.created);
            let mut record = body;
            record[&field] = json!(value);
            org.records.insert((sobject, id.clone()), record);
            let answer = json!({"id": id, "success": true, "errors": [], "created": true});
            (StatusCode::CREATED, Json(answer)).into_response()
        }
    }
}

async fn query(
    State(org): State<Shared>,
    Path(v): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let q = params.get("q").cloned();
    let path = format!("/services/data/{v}/query");
    if let Err(r) = arrive(&org, seen(Method::GET, path, q, &headers, Value::Null)).await {
        return r;
    }
    Json(json!({
        "totalSize": 1,
        "done": true,
        "records": [{
            "attributes": {"type": "Account", "url": format!("/services/data/{v}/sobjects/Account/001xx0000000001AAA")},
            "Id": "001xx0000000001AAA",
            "Name": "O'Brien & Sons"
        }]
    }))
    .into_response()
}

/// A registry with one `salesforce` instance per (name, base URL), whose circuits open after
/// 5 failures in a row.
fn registry(instances: &[(&str, String)]) -> Registry {
    registry_opening_after(5, instances)
}

fn registry_opening_after(failures: u32, instances: &[(&str, String)]) -> Registry {
    let mut registry = Registry::default().with_breaker_policy(BreakerPolicy {
        failure_threshold: failures,
        cooldown: Duration::from_secs(600),
    });
    for (name, url) in instances {
        let table = json!({
            "kind": "salesforce",
            "login_url": url,
            "instance_url": url,
            "client_id": CLIENT_ID,
            "client_secret": SECRET,
            "pool": {"max_size": 4, "acquire_timeout_ms": 2000}
        });
        let config = InstanceConfig::parse(name, table.as_object().unwrap()).unwrap();
        registry.register(kinds::build(&config).unwrap());
    }
    registry
}

fn policy(max_attempts: u32, timeout: Duration) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(40),
        timeout,
    }
}

fn once() -> RetryPolicy {
    policy(1, Duration::from_secs(10))
}

#[tokio::test]
async fn creates_a_record_with_a_token_from_the_client_credentials_flow() {
    let sf = StandIn::start().await;
    let registry = registry(&[("crm", sf.url())]);
    let task = settings([
        ("operation", "create".into()),
        ("sobject", "Account".into()),
    ]);
    let answer = registry
        .call(
            "crm",
            &task,
            json!({"Name": "Acme", "Industry": "Energy"}),
            "case-1/t/1",
            &once(),
        )
        .await
        .unwrap();
    assert_eq!(
        answer.output,
        json!({"id": "001xx0000000001AAA", "errors": [], "success": true})
    );
    let org = sf.org();
    assert_eq!(org.token_forms.len(), 1);
    let form = &org.token_forms[0];
    assert_eq!(form["grant_type"], "client_credentials");
    assert_eq!(form["client_id"], CLIENT_ID);
    assert_eq!(form["client_secret"], SECRET);
    let call = &org.seen[0];
    assert_eq!(call.method, Method::POST);
    assert_eq!(call.path, "/services/data/v60.0/sobjects/Account/");
    assert_eq!(call.token, "00Dxx0000001gPL!tok1");
    assert_eq!(call.idempotency_key.as_deref(), Some("case-1/t/1"));
    assert_eq!(call.body, json!({"Name": "Acme", "Industry": "Energy"}));
}

#[tokio::test]
async fn an_expired_token_is_refreshed_once_and_the_request_sent_again() {
    let sf = StandIn::start().await;
    let registry = registry(&[("crm", sf.url())]);
    let task = settings([
        ("operation", "create".into()),
        ("sobject", "Account".into()),
    ]);
    registry
        .call("crm", &task, json!({"Name": "A"}), "k1", &once())
        .await
        .unwrap();
    sf.expire();
    let answer = registry
        .call("crm", &task, json!({"Name": "B"}), "k2", &once())
        .await
        .unwrap();
    assert_eq!(answer.output["id"], "001xx0000000002AAA");
    // Within one attempt: the refused request, a new token, the request again.
    assert!(answer.failed_attempts.is_empty());
    let org = sf.org();
    assert_eq!(org.issued, 2);
    let tokens: Vec<&str> = org.seen.iter().map(|s| s.token.as_str()).collect();
    assert_eq!(
        tokens,
        [
            "00Dxx0000001gPL!tok1",
            "00Dxx0000001gPL!tok1",
            "00Dxx0000001gPL!tok2"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_that_meet_the_same_expired_token_share_one_refresh() {
    let sf = StandIn::start().await;
    let registry = registry(&[("crm", sf.url())]);
    let task = settings([
        ("operation", "create".into()),
        ("sobject", "Account".into()),
    ]);
    registry
        .call("crm", &task, json!({"Name": "A"}), "k0", &once())
        .await
        .unwrap();
    sf.expire();
    let mut calls = tokio::task::JoinSet::new();
    for n in 1..=8 {
        let (registry, task) = (registry.clone(), task.clone());
        calls.spawn(async move {
            registry
                .call("crm", &task, json!({"Name": n}), &format!("k{n}"), &once())
                .await
        });
    }
    while let Some(answer) = calls.join_next().await {
        answer.unwrap().unwrap();
    }
    assert_eq!(
        sf.org().issued,
        2,
        "one token at first, one refresh for all"
    );
}

#[tokio::test]
async fn a_token_refused_again_after_the_refresh_fails_permanently() {
    let sf = StandIn::start().await;
    sf.org().refuse_all = true;
    let registry = registry(&[("crm", sf.url())]);
    let task = settings([
        ("operation", "create".into()),
        ("sobject", "Account".into()),
    ]);
    let failure = registry
        .call(
            "crm",
            &task,
            json!({"Name": "A"}),
            "k",
            &policy(3, Duration::from_secs(10)),
        )
        .await
        .unwrap_err();
    assert_eq!(failure.attempts, 1);
    assert_eq!(
        failure.error.to_string(),
        "salesforce crm: 401 Unauthorized: INVALID_SESSION_ID: Session expired or invalid"
    );
    assert!(!failure.error.is_retryable());
    assert_eq!(sf.org().issued, 2);
    assert_eq!(sf.org().seen.len(), 2);
}

#[tokio::test]
async fn updates_the_record_the_input_names_without_sending_its_id() {
    let sf = StandIn::start().await;
    let registry = registry(&[("crm", sf.url())]);
    let create = settings([
        ("operation", "create".into()),
        ("sobject", "Account".into()),
    ]);
    let made = registry
        .call("crm", &create, json!({"Name": "Acme"}), "k1", &once())
        .await
        .unwrap();
    let id = made.output["id"].as_str().unwrap().to_owned();

    let by_default = settings([
        ("operation", "update".into()),
        ("sobject", "Account".into()),
    ]);
    let answer = registry
        .call(
            "crm",
            &by_default,
            json!({"Id": id, "Phone": "555"}),
            "k2",
            &once(),
        )
        .await
        .unwrap();
    assert_eq!(answer.output, json!({"id": id}));
    let by_field = settings([
        ("operation", "update".into()),
        ("sobject", "Account".into()),
        ("id", "{account}".into()),
    ]);
    registry
        .call(
            "crm",
            &by_field,
            json!({"account": id, "Rating": "Hot"}),
            "k3",
            &once(),
        )
        .await
        .unwrap();
    let org = sf.org();
    assert_eq!(
        org.seen[1].path,
        format!("/services/data/v60.0/sobjects/Account/{id}")
    );
    assert_eq!(org.seen[1].body, json!({"Phone": "555"}));
    assert_eq!(org.seen[2].body, json!({"Rating": "Hot"}));
    assert_eq!(
        org.records[&("Account".to_owned(), id)],
        json!({"Name": "Acme", "Phone": "555", "Rating": "Hot"})
    );
}

#[tokio::test]
async fn a_create_with_an_idempotency_field_makes_one_record_however_often_it_is_sent() {
    let sf = StandIn::start().await;
    let registry = registry(&[("crm", sf.url())]);
    let task = settings([
        ("operation", "create".into()),
        ("sobject", "Account".into()),
        ("idempotency_field", "Knhk_Key__c".into()),
    ]);
    let first = registry
        .call("crm", &task, json!({"Name": "Acme"}), "case-9/t/1", &once())
        .await
        .unwrap();
    let again = registry
        .call("crm", &task, json!({"Name": "Acme"}), "case-9/t/1", &once())
        .await
        .unwrap();
    assert_eq!(first.output["created"], true);
    assert_eq!(again.output["created"], false);
    assert_eq!(first.output["id"], again.output["id"]);
    let org = sf.org();
    assert_eq!(org.records.len(), 1);
    // The key went as one path segment, its slashes encoded (the route has one segment there).
    assert_eq!(
        org.seen[0].path,
        "/services/data/v60.0/sobjects/Account/Knhk_Key__c/case-9/t/1"
    );
}

#[tokio::test]
async fn upserts_by_an_external_id_from_the_input() {
    let sf = StandIn::start().await;
    let registry = registry(&[("crm", sf.url())]);
    let task = settings([
        ("operation", "upsert".into()),
        ("sobject", "Order__c".into()),
        ("external_id_field", "Order_Number__c".into()),
    ]);
    let input = json!({"Order_Number__c": "PO-7", "Amount__c": 12.5});
    let made = registry
        .call("crm", &task, input, "k1", &once())
        .await
        .unwrap();
    assert_eq!(made.output["created"], true);
    let org = sf.org();
    assert_eq!(
        org.seen[0].path,
        "/services/data/v60.0/sobjects/Order__c/Order_Number__c/PO-7"
    );
    assert_eq!(org.seen[0].body, json!({"Amount__c": 12.5}));
}

#[tokio::test]
async fn a_query_fills_its_placeholders_with_escaped_literals() {
    let sf = StandIn::start().await;
    let registry = registry(&[("crm", sf.url())]);
    let task = settings([
        ("operation", "query".into()),
        (
            "soql",
            "SELECT Id, Name FROM Account WHERE Name = {name} AND Rating IN {ratings} LIMIT {n}"
                .into(),
        ),
    ]);
    let input = json!({"name": "O'Brien\\' OR Name != '", "ratings": ["Hot", "Warm"], "n": 5});
    let answer = registry
        .call("crm", &task, input, "k", &once())
        .await
        .unwrap();
    assert_eq!(answer.output["totalSize"], 1);
    assert_eq!(answer.output["records"][0]["Name"], "O'Brien & Sons");
    assert_eq!(
        sf.org().seen[0].q.as_deref(),
        Some(
            r"SELECT Id, Name FROM Account WHERE Name = 'O\'Brien\\\' OR Name != \'' AND Rating IN ('Hot', 'Warm') LIMIT 5"
        )
    );
}

#[tokio::test]
async fn a_refusal_carries_salesforces_error_body_and_is_not_retried() {
    let sf = StandIn::start().await;
    let registry = registry(&[("crm", sf.url())]);
    let task = settings([
        ("operation", "create".into()),
        ("sobject", "Account".into()),
    ]);
    let failure = registry
        .call(
            "crm",
            &task,
            json!({"Phone": "555"}),
            "k",
            &policy(3, Duration::from_secs(10)),
        )
        .await
        .unwrap_err();
    assert_eq!(failure.attempts, 1);
    assert_eq!(
        failure.error.to_string(),
        "salesforce crm: 400 Bad Request: REQUIRED_FIELD_MISSING: Required fields are missing: [Name]"
    );
    let update = settings([
        ("operation", "update".into()),
        ("sobject", "Account".into()),
    ]);
    let missing = registry
        .call(
            "crm",
            &update,
            json!({"Id": "001000000000000AAA"}),
            "k",
            &once(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        missing.error.to_string(),
        "salesforce crm: 404 Not Found: NOT_FOUND: The requested resource does not exist"
    );
}

#[tokio::test]
async fn the_client_secret_appears_in_no_error() {
    let sf = StandIn::start().await;
    let table = json!({
        "kind": "salesforce", "instance_url": sf.url(), "client_id": "someone-else",
        "client_secret_env": "KNHK_TEST_SF_SECRET"
    });
    let config = InstanceConfig::parse("crm", table.as_object().unwrap()).unwrap();
    let env = |_: &str| Some(SECRET.to_owned());
    // The reader takes the secret from the variable; the instance is built the same way.
    assert_eq!(
        config
            .keys_with_env(&env)
            .secret("client_secret")
            .unwrap()
            .unwrap()
            .expose(),
        SECRET
    );
    let table = json!({
        "kind": "salesforce", "instance_url": sf.url(), "client_id": "someone-else",
        "client_secret": SECRET
    });
    let config = InstanceConfig::parse("crm", table.as_object().unwrap()).unwrap();
    let connector = kinds::build(&config).unwrap();
    assert!(!format!("{connector:?}").contains(SECRET));
    let mut registry = Registry::default();
    registry.register(connector);
    let task = settings([
        ("operation", "create".into()),
        ("sobject", "Account".into()),
    ]);
    let failure = registry
        .call("crm", &task, json!({"Name": "A"}), "k", &once())
        .await
        .unwrap_err();
    let message = failure.to_string();
    assert!(
        message.contains("invalid_client: invalid client credentials (***)"),
        "{message}"
    );
    assert!(!message.contains(SECRET), "{message}");
    let health = registry.health(Duration::from_secs(5)).await;
    let probe = health[0].result.as_ref().unwrap_err().to_string();
    assert!(!probe.contains(SECRET), "{probe}");
}

#[tokio::test]
async fn the_probe_lists_the_api_versions() {
    let sf = StandIn::start().await;
    let registry = registry(&[("crm", sf.url())]);
    let health = registry.health(Duration::from_secs(5)).await;
    assert_eq!(health[0].kind, "salesforce");
    let probe = health[0].result.as_ref().unwrap();
    assert_eq!(
        probe.detail.as_deref(),
        Some("API versions up to v60.0; using v60.0")
    );
}

#[tokio::test]
async fn settings_are_checked_naming_the_one_at_fault() {
    let sf = StandIn::start().await;
    let registry = registry(&[("crm", sf.url())]);
    let refused = |pairs: Vec<(&str, &str)>| {
        let task = pairs
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        registry
            .check_settings("crm", &task)
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        refused(vec![("sobject", "Account")]),
        "connector crm: operation: missing"
    );
    assert_eq!(
        refused(vec![("operation", "delete")]),
        "connector crm: operation: expected `create`, `update`, `upsert` or `query`, found `delete`"
    );
    assert_eq!(
        refused(vec![
            ("operation", "create"),
            ("sobject", "Account"),
            ("soql", "SELECT Id FROM A")
        ]),
        "connector crm: soql: conflicts with operation create"
    );
    assert!(
        refused(vec![
            ("operation", "query"),
            ("soql", "SELECT Id FROM A WHERE N = '{n}'")
        ])
        .starts_with("connector crm: soql: placeholder {n} is inside quotes")
    );
    assert!(
        refused(vec![
            ("operation", "create"),
            ("sobject", "Account/../User")
        ])
        .starts_with("connector crm: sobject: `Account/../User` is not a Salesforce API name")
    );
    assert_eq!(
        refused(vec![("operation", "upsert"), ("sobject", "Order__c")]),
        "connector crm: external_id_field: missing"
    );
}

#[tokio::test]
async fn config_errors_name_the_key() {
    let refused = |table: Value| {
        let config = InstanceConfig::parse("crm", table.as_object().unwrap()).unwrap();
        kinds::build(&config).unwrap_err().to_string()
    };
    assert_eq!(
        refused(json!({"kind": "salesforce", "client_id": "c", "client_secret": "s"})),
        "connectors.crm.instance_url: missing (give instance_url or login_url)"
    );
    assert_eq!(
        refused(
            json!({"kind": "salesforce", "instance_url": "https://x.my.salesforce.com", "client_id": "c"})
        ),
        "connectors.crm.client_secret: missing (or client_secret_env)"
    );
    assert_eq!(
        refused(
            json!({"kind": "salesforce", "instance_url": "https://x", "client_id": "c", "client_secret": "s", "api_version": "sixty"})
        ),
        "connectors.crm.api_version: `sixty` is not an API version such as v60.0"
    );
    assert!(
        refused(json!({"kind": "salesforce", "instance_url": "https://x", "client_id": "c", "client_secret": "s", "username": "u"}))
            .starts_with("connectors.crm.username: unknown key for kind salesforce")
    );
}

// The registry's behaviours with this kind: a timeout per attempt, retries with backoff on
// retryable errors only, a circuit breaker per instance.

#[tokio::test]
async fn an_attempt_that_outlasts_its_timeout_fails_retryably() {
    let sf = StandIn::start().await;
    sf.org().hang = true;
    let registry = registry(&[("crm", sf.url())]);
    let task = settings([
        ("operation", "create".into()),
        ("sobject", "Account".into()),
    ]);
    let started = tokio::time::Instant::now();
    let failure = registry
        .call(
            "crm",
            &task,
            json!({"Name": "A"}),
            "k",
            &policy(2, Duration::from_millis(300)),
        )
        .await
        .unwrap_err();
    assert_eq!(failure.attempts, 2);
    assert!(failure.error.is_retryable());
    assert!(
        failure.error.to_string().contains("timed out after 300ms"),
        "{}",
        failure.error
    );
    assert!(started.elapsed() >= Duration::from_millis(600));
    assert_eq!(sf.org().seen.len(), 2);
}

#[tokio::test]
async fn retryable_statuses_are_retried_with_backoff_and_the_same_key() {
    let sf = StandIn::start().await;
    sf.org().fail_next = VecDeque::from([
        StatusCode::SERVICE_UNAVAILABLE,
        StatusCode::TOO_MANY_REQUESTS,
    ]);
    let registry = registry(&[("crm", sf.url())]);
    let task = settings([
        ("operation", "create".into()),
        ("sobject", "Account".into()),
    ]);
    let started = tokio::time::Instant::now();
    let answer = registry
        .call(
            "crm",
            &task,
            json!({"Name": "A"}),
            "case/t/1",
            &policy(3, Duration::from_secs(10)),
        )
        .await
        .unwrap();
    // Backoff of 20 ms after the first failure, 40 ms after the second, each at least halved
    // by the jitter.
    assert!(started.elapsed() >= Duration::from_millis(30));
    let errors: Vec<&str> = answer
        .failed_attempts
        .iter()
        .map(|f| f.error.as_str())
        .collect();
    assert_eq!(
        errors,
        [
            "salesforce crm: 503 Service Unavailable",
            "salesforce crm: 429 Too Many Requests"
        ]
    );
    let keys: Vec<Option<String>> = sf
        .org()
        .seen
        .iter()
        .map(|s| s.idempotency_key.clone())
        .collect();
    assert_eq!(keys, vec![Some("case/t/1".to_owned()); 3]);
}

#[tokio::test]
async fn the_circuit_of_a_failing_instance_opens_and_leaves_the_others_alone() {
    let down = StandIn::start().await;
    down.org().fail_next = VecDeque::from(vec![StatusCode::INTERNAL_SERVER_ERROR; 10]);
    let up = StandIn::start().await;
    let registry = registry_opening_after(2, &[("crm-down", down.url()), ("crm-up", up.url())]);
    let task = settings([
        ("operation", "create".into()),
        ("sobject", "Account".into()),
    ]);
    for _ in 0..2 {
        let failure = registry
            .call("crm-down", &task, json!({"Name": "A"}), "k", &once())
            .await
            .unwrap_err();
        assert_eq!(
            failure.error.to_string(),
            "salesforce crm-down: 500 Internal Server Error"
        );
    }
    let refused = registry
        .call("crm-down", &task, json!({"Name": "A"}), "k", &once())
        .await
        .unwrap_err();
    assert!(
        refused
            .error
            .to_string()
            .starts_with("circuit of connector crm-down is open"),
        "{}",
        refused.error
    );
    assert_eq!(down.org().seen.len(), 2, "an open circuit sends nothing");
    registry
        .call("crm-up", &task, json!({"Name": "A"}), "k", &once())
        .await
        .unwrap();
}
