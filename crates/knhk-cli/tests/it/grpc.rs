//! `knhk serve` over gRPC: the real binary on port 0, driven by a real tonic client (the stubs
//! knhk-api generates from `proto/knhk/v1/workflow.proto`), and the same scenario through REST
//! and gRPC compared field by field.

use knhk_api::grpc::pb;
use knhk_api::grpc::pb::workflow_service_client::WorkflowServiceClient;
use reqwest::StatusCode;
use serde_json::{Map, Value, json};
use tonic::Code;
use tonic::transport::Channel;

use crate::example;
use crate::serve::{Server, create, work_items_of};

type Client = WorkflowServiceClient<Channel>;

async fn client(server: &Server) -> Client {
    WorkflowServiceClient::connect(format!("http://{}", server.grpc))
        .await
        .expect("a gRPC connection")
}

fn object(v: Value) -> prost_types::Struct {
    match v {
        Value::Object(m) => knhk_api::grpc::json_to_struct(m),
        other => panic!("not an object: {other}"),
    }
}

fn json_of(s: Option<prost_types::Struct>) -> Value {
    Value::Object(
        s.map(|s| knhk_api::grpc::struct_to_json("x", s, 128, 1).expect("JSON"))
            .unwrap_or_default(),
    )
}

/// A gRPC case in the shape of REST's JSON case.
fn case_json(c: &pb::Case) -> Value {
    json!({
        "id": c.id, "workflow_id": c.workflow_id, "status": c.status,
        "data": json_of(c.data.clone()),
        "marking": c.marking.iter().map(|m| json!({
            "net_instance": m.net_instance, "condition": m.condition, "tokens": m.tokens
        })).collect::<Vec<_>>(),
        "version": c.version, "created_at": c.created_at, "updated_at": c.updated_at,
    })
}

fn item_json(w: &pb::WorkItem) -> Value {
    let input = w.input.clone().map_or(Value::Null, |v| {
        let mut s = prost_types::Struct::default();
        s.fields.insert("v".into(), v);
        json_of(Some(s))["v"].clone()
    });
    json!({
        "id": w.id, "case_id": w.case_id, "task": w.task, "net_instance": w.net_instance,
        "instance": w.instance, "roles": w.roles, "allocation": w.allocation,
        "status": w.status, "owner": w.owner, "input": input, "offered_at": w.offered_at,
    })
}

fn event_json(e: &pb::CaseEvent) -> Value {
    json!({
        "seq": e.seq, "time": e.time, "time_ms": e.time_ms, "kind": e.kind,
        "event": json_of(e.detail.clone()),
    })
}

/// A value with what differs between two runs of one scenario replaced: ids (UUIDs) and
/// times.
fn without_ids(v: &Value) -> Value {
    match v {
        Value::String(s) if uuid_like(s) => json!("<id>"),
        Value::String(s) if s.len() == 24 && s.ends_with('Z') && s.contains('T') => {
            json!("<time>")
        }
        Value::Array(a) => Value::Array(a.iter().map(without_ids).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let v = if k == "time_ms" {
                        json!(0)
                    } else {
                        without_ids(v)
                    };
                    (k.clone(), v)
                })
                .collect::<Map<_, _>>(),
        ),
        other => other.clone(),
    }
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4
}

fn turtle(file: &str) -> pb::RegisterWorkflowRequest {
    pb::RegisterWorkflowRequest {
        format: pb::SourceFormat::Turtle as i32,
        source: std::fs::read_to_string(example(file)).expect("example"),
    }
}

async fn register(c: &mut Client, file: &str) -> String {
    let r = c.register_workflow(turtle(file)).await.expect("register");
    r.into_inner().workflow.expect("workflow").id
}

async fn create_case(c: &mut Client, workflow: &str, data: Value, start: bool) -> pb::Case {
    let r = c
        .create_case(pb::CreateCaseRequest {
            workflow_id: workflow.to_owned(),
            data: Some(object(data)),
            start,
            idempotency_key: None,
        })
        .await
        .expect("create");
    r.into_inner().case.expect("case")
}

async fn items_of(c: &mut Client, case: &str) -> Vec<pb::WorkItem> {
    c.list_work_items(pb::ListWorkItemsRequest {
        case_id: Some(case.to_owned()),
        ..Default::default()
    })
    .await
    .expect("work items")
    .into_inner()
    .items
}

fn user(id: &str, user: &str) -> pb::WorkItemUserRequest {
    pb::WorkItemUserRequest {
        id: id.to_owned(),
        user: user.to_owned(),
    }
}

fn api_code(s: &tonic::Status) -> &str {
    s.metadata()
        .get(knhk_api::grpc::ERROR_CODE_KEY)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("(no code)")
}

#[tokio::test]
async fn grpc_registers_creates_executes_and_serves_health_and_reflection() {
    let server = Server::start();
    let mut c = client(&server).await;

    let first = c
        .register_workflow(turtle("order_approval.ttl"))
        .await
        .expect("register")
        .into_inner();
    assert!(!first.already_registered);
    let again = c
        .register_workflow(turtle("order_approval.ttl"))
        .await
        .expect("register")
        .into_inner();
    assert!(again.already_registered);
    let id = first.workflow.expect("workflow").id;
    let shown = c
        .get_workflow(pb::GetWorkflowRequest { id: id.clone() })
        .await
        .expect("get")
        .into_inner();
    assert!(shown.source.expect("source").contains("manager_approval"));
    let list = c
        .list_workflows(pb::ListWorkflowsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert_eq!((list.items.len(), list.next_page_token.as_str()), (1, ""));

    // A small order runs to its end in the creating call, named by its URI.
    let small = create_case(
        &mut c,
        "https://knhk.dev/examples/order-approval",
        json!({"amount": 10}),
        true,
    )
    .await;
    assert_eq!(small.status, "completed");
    assert_eq!(json_of(small.data.clone())["amount"], 10);

    // A large one, created and executed, waits for a manager, who completes it.
    let case = create_case(&mut c, &id, json!({"amount": 1500}), false).await;
    assert_eq!(case.status, "created");
    let running = c
        .execute_case(pb::CaseRequest {
            id: case.id.clone(),
        })
        .await
        .expect("execute")
        .into_inner();
    assert_eq!(running.status, "running");
    let items = items_of(&mut c, &case.id).await;
    assert_eq!(items.len(), 1);
    c.claim_work_item(user(&items[0].id, "mia"))
        .await
        .expect("claim");
    let done = c
        .complete_work_item(pb::CompleteWorkItemRequest {
            id: items[0].id.clone(),
            user: "mia".into(),
            output: Some(object(json!({"approved": true}))),
        })
        .await
        .expect("complete")
        .into_inner();
    assert_eq!(done.status, "completed");
    assert_eq!(json_of(done.data)["approved"], true);
    let completed = c
        .list_cases(pb::ListCasesRequest {
            status: vec!["completed".into()],
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(completed.items.len(), 2);
    // The REST view of the same case says the same.
    let (_, rest) = server.get(&format!("/cases/{}", case.id)).await;
    assert_eq!(rest["status"], "completed");

    // The standard health service says the workflow service serves.
    let channel = Channel::from_shared(format!("http://{}", server.grpc))
        .expect("uri")
        .connect()
        .await
        .expect("channel");
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    for service in ["", "knhk.v1.WorkflowService"] {
        let answer = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health")
            .into_inner();
        assert_eq!(
            answer.status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32,
            "{service:?}"
        );
    }
    // Reflection lists the services.
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection
        .server_reflection_info(futures_util::stream::iter([request]))
        .await
        .expect("reflection")
        .into_inner();
    let answer = answers.message().await.expect("answer").expect("one");
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("{answer:?}")
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"knhk.v1.WorkflowService"), "{names:?}");
    // And describes it: the file that defines the service, and the file it imports.
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol(
            "knhk.v1.WorkflowService".into(),
        )),
    };
    let mut answers = reflection
        .server_reflection_info(futures_util::stream::iter([request]))
        .await
        .expect("reflection")
        .into_inner();
    let answer = answers.message().await.expect("answer").expect("one");
    let Some(MessageResponse::FileDescriptorResponse(files)) = answer.message_response else {
        panic!("{answer:?}")
    };
    let text: Vec<String> = files
        .file_descriptor_proto
        .iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect();
    assert!(
        text.iter().any(|t| t.contains("knhk/v1/workflow.proto")),
        "{text:?}"
    );
}

#[tokio::test]
async fn two_users_racing_over_grpc_for_one_work_item_one_wins_the_other_is_refused() {
    let server = Server::start();
    let mut c = client(&server).await;
    let workflow = register(&mut c, "order_approval.ttl").await;
    let case = create_case(&mut c, &workflow, json!({"amount": 5000}), true).await;
    let item = items_of(&mut c, &case.id).await[0].id.clone();
    let (mut a, mut b) = (c.clone(), c.clone());
    let (ra, rb) = tokio::join!(
        a.claim_work_item(user(&item, "mia")),
        b.claim_work_item(user(&item, "noah"))
    );
    let (winner, loser, lost) = match (&ra, &rb) {
        (Ok(_), Err(e)) => ("mia", "noah", e),
        (Err(e), Ok(_)) => ("noah", "mia", e),
        _ => panic!("exactly one claim wins: {ra:?} {rb:?}"),
    };
    // The status REST's 409 maps to.
    assert_eq!(lost.code(), Code::FailedPrecondition, "{lost:?}");
    assert_eq!(api_code(lost), "failed_precondition");

    let before = server.everything().await;
    let complete = |who: &str| pb::CompleteWorkItemRequest {
        id: item.clone(),
        user: who.to_owned(),
        output: None,
    };
    let e = c.complete_work_item(complete(loser)).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert_eq!(server.everything().await, before);
    c.complete_work_item(complete(winner))
        .await
        .expect("the winner completes");
    // Done twice: the item is gone, and nothing changes.
    let before = server.everything().await;
    let e = c.complete_work_item(complete(winner)).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    assert_eq!(server.everything().await, before);
}

#[tokio::test]
async fn grpc_history_comes_in_pages_and_watch_streams_until_the_end() {
    let server = Server::start();
    let mut c = client(&server).await;
    let workflow = register(&mut c, "order_approval.ttl").await;
    let case = create_case(&mut c, &workflow, json!({"amount": 5000}), true).await;

    // Pages of 3 add up to the whole history.
    let whole = c
        .get_history(pb::GetHistoryRequest {
            id: case.id.clone(),
            ..Default::default()
        })
        .await
        .expect("history")
        .into_inner();
    assert_eq!(whole.events.len() as u64, case.version);
    assert!(whole.next_page_token.is_empty());
    let mut paged = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = c
            .get_history(pb::GetHistoryRequest {
                id: case.id.clone(),
                page_token: token.clone(),
                limit: 3,
                ..Default::default()
            })
            .await
            .expect("page")
            .into_inner();
        assert!(page.events.len() <= 3);
        paged.extend(page.events);
        pages += 1;
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(paged, whole.events);
    assert_eq!(pages, whole.events.len().div_ceil(3));
    let tail = c
        .get_history(pb::GetHistoryRequest {
            id: case.id.clone(),
            after: Some(2),
            limit: 2,
            ..Default::default()
        })
        .await
        .expect("tail")
        .into_inner();
    let seqs: Vec<u64> = tail.events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [3, 4]);
    // Events are typed: the first is the case's creation with its data.
    assert_eq!(whole.events[0].kind, "case_created");
    assert_eq!(
        json_of(whole.events[0].detail.clone())["data"]["amount"],
        5000
    );

    // A watch sends the history so far, then each new event, then the end.
    let mut stream = c
        .watch_case(pb::WatchCaseRequest {
            id: case.id.clone(),
            after: 0,
        })
        .await
        .expect("watch")
        .into_inner();
    let mut seen = Vec::new();
    for _ in 0..case.version {
        let m = stream.message().await.expect("message").expect("an event");
        match m.message {
            Some(pb::watch_case_response::Message::Event(e)) => seen.push(e),
            other => panic!("{other:?}"),
        }
    }
    let item = items_of(&mut c, &case.id).await[0].id.clone();
    c.claim_work_item(user(&item, "mia")).await.expect("claim");
    let done = c
        .complete_work_item(pb::CompleteWorkItemRequest {
            id: item.clone(),
            user: "mia".into(),
            output: Some(object(json!({"approved": false}))),
        })
        .await
        .expect("complete")
        .into_inner();
    let end = loop {
        let m = stream
            .message()
            .await
            .expect("message")
            .expect("until the end");
        match m.message {
            Some(pb::watch_case_response::Message::Event(e)) => seen.push(e),
            Some(pb::watch_case_response::Message::End(end)) => break end,
            None => panic!("an empty message"),
        }
    };
    assert_eq!((end.status.as_str(), end.stopping), ("completed", false));
    let seqs: Vec<u64> = seen.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=done.version).collect::<Vec<_>>());
    assert!(stream.message().await.expect("closed").is_none());
    // The typed fields of the work item's events.
    let allocated = seen
        .iter()
        .find(|e| e.kind == "work_item_allocated")
        .expect("allocated");
    assert_eq!(
        (allocated.work_item_id.as_deref(), allocated.user.as_deref()),
        (Some(item.as_str()), Some("mia"))
    );
    let changed = seen
        .iter()
        .rfind(|e| e.kind == "case_state_changed")
        .expect("the case's end");
    assert_eq!(changed.to_status.as_deref(), Some("completed"));
    // An unknown case cannot be watched.
    let e = c
        .watch_case(pb::WatchCaseRequest {
            id: "00000000-0000-0000-0000-000000000001".into(),
            after: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
}

#[tokio::test]
async fn grpc_cancel_ends_a_waiting_case_once() {
    let server = Server::start();
    let mut c = client(&server).await;
    let workflow = register(&mut c, "order_approval.ttl").await;
    let case = create_case(&mut c, &workflow, json!({"amount": 5000}), true).await;
    let id = || pb::CaseRequest {
        id: case.id.clone(),
    };
    let s = c.suspend_case(id()).await.expect("suspend").into_inner();
    assert_eq!(s.status, "suspended");
    let r = c.resume_case(id()).await.expect("resume").into_inner();
    assert_eq!(r.status, "running");
    let cancel = || pb::CancelCaseRequest {
        id: case.id.clone(),
        reason: Some("customer withdrew".into()),
    };
    let done = c.cancel_case(cancel()).await.expect("cancel").into_inner();
    assert_eq!(done.status, "cancelled");
    assert!(items_of(&mut c, &case.id).await.is_empty());
    let history = c
        .get_history(pb::GetHistoryRequest {
            id: case.id.clone(),
            ..Default::default()
        })
        .await
        .expect("history")
        .into_inner();
    assert!(
        history
            .events
            .iter()
            .any(|e| e.reason.as_deref() == Some("customer withdrew")),
        "{history:?}"
    );
    let before = server.everything().await;
    let e = c.cancel_case(cancel()).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert_eq!(server.everything().await, before);
}

#[tokio::test]
async fn bad_grpc_requests_get_their_documented_status_and_change_nothing() {
    let server = Server::start_with(&[("KNHK_MAX_BODY_BYTES", "20000")]);
    let mut c = client(&server).await;
    let workflow = register(&mut c, "order_approval.ttl").await;
    let case = create_case(&mut c, &workflow, json!({"amount": 5000}), true).await;
    let ended = create_case(&mut c, &workflow, json!({"amount": 1}), true).await;
    assert_eq!(ended.status, "completed");
    let keyed = |amount: i64| pb::CreateCaseRequest {
        workflow_id: workflow.clone(),
        data: Some(object(json!({"amount": amount}))),
        start: true,
        idempotency_key: Some("order-A-17".into()),
    };
    let first = c.create_case(keyed(5)).await.expect("keyed").into_inner();
    assert!(!first.replayed);
    let again = c.create_case(keyed(5)).await.expect("again").into_inner();
    assert!(again.replayed);
    assert_eq!(again.case.map(|c| c.id), first.case.map(|c| c.id));
    let before = server.everything().await;

    let unknown = "00000000-0000-0000-0000-000000000001".to_owned();
    let mut failures = Vec::new();
    let mut check = |what: &str, got: Result<(), tonic::Status>, code: Code, api: &str| match got {
        Err(e) if e.code() == code && api_code(&e) == api => {}
        other => failures.push(format!("{what}: want {code:?} {api}, got {other:?}")),
    };
    let malformed = pb::RegisterWorkflowRequest {
        format: pb::SourceFormat::Turtle as i32,
        source: "@prefix : <x> . this is not turtle".into(),
    };
    check(
        "malformed definition",
        c.register_workflow(malformed).await.map(drop),
        Code::InvalidArgument,
        "invalid_argument",
    );
    let no_format = pb::RegisterWorkflowRequest {
        format: 0,
        source: "x".into(),
    };
    check(
        "no format",
        c.register_workflow(no_format).await.map(drop),
        Code::InvalidArgument,
        "invalid_argument",
    );
    let big = pb::RegisterWorkflowRequest {
        format: pb::SourceFormat::Turtle as i32,
        source: "#".repeat(30_000),
    };
    check(
        "a message over max_body_bytes",
        c.register_workflow(big).await.map(drop),
        Code::ResourceExhausted,
        "payload_too_large",
    );
    check(
        "unknown case",
        c.get_case(pb::CaseRequest {
            id: unknown.clone(),
        })
        .await
        .map(drop),
        Code::NotFound,
        "not_found",
    );
    check(
        "an id that is no UUID",
        c.get_case(pb::CaseRequest { id: "nope".into() })
            .await
            .map(drop),
        Code::InvalidArgument,
        "invalid_argument",
    );
    check(
        "unknown workflow",
        c.create_case(pb::CreateCaseRequest {
            workflow_id: "https://nowhere.example/none".into(),
            ..Default::default()
        })
        .await
        .map(drop),
        Code::NotFound,
        "not_found",
    );
    check(
        "unknown work item",
        c.claim_work_item(user(&unknown, "mia")).await.map(drop),
        Code::NotFound,
        "not_found",
    );
    check(
        "resume of a running case",
        c.resume_case(pb::CaseRequest {
            id: case.id.clone(),
        })
        .await
        .map(drop),
        Code::FailedPrecondition,
        "failed_precondition",
    );
    check(
        "execute of an ended case",
        c.execute_case(pb::CaseRequest {
            id: ended.id.clone(),
        })
        .await
        .map(drop),
        Code::FailedPrecondition,
        "failed_precondition",
    );
    check(
        "an idempotency key with another request",
        c.create_case(keyed(6)).await.map(drop),
        Code::FailedPrecondition,
        "idempotency_key_reused",
    );
    check(
        "a page larger than the cap",
        c.list_cases(pb::ListCasesRequest {
            page_size: 1_000_000,
            ..Default::default()
        })
        .await
        .map(drop),
        Code::InvalidArgument,
        "invalid_argument",
    );
    check(
        "an unknown case status",
        c.list_cases(pb::ListCasesRequest {
            status: vec!["asleep".into()],
            ..Default::default()
        })
        .await
        .map(drop),
        Code::InvalidArgument,
        "invalid_argument",
    );
    check(
        "an empty user",
        c.claim_work_item(user(&unknown, " ")).await.map(drop),
        Code::InvalidArgument,
        "invalid_argument",
    );
    let item = items_of(&mut c, &case.id).await[0].id.clone();
    let nan = {
        let mut s = prost_types::Struct::default();
        s.fields.insert(
            "x".into(),
            prost_types::Value {
                kind: Some(prost_types::value::Kind::NumberValue(f64::NAN)),
            },
        );
        s
    };
    check(
        "output JSON cannot hold",
        c.complete_work_item(pb::CompleteWorkItemRequest {
            id: item,
            user: "mia".into(),
            output: Some(nan),
        })
        .await
        .map(drop),
        Code::InvalidArgument,
        "invalid_argument",
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(server.everything().await, before);
}

/// The key test: one scenario through REST and through gRPC on one server, its
/// answers compared field by field, ids and times aside.
#[tokio::test]
async fn one_scenario_through_rest_and_grpc_gives_the_same_answers() {
    let server = Server::start();
    let workflow = server.register("order_approval.ttl").await;
    let mut c = client(&server).await;

    // REST.
    let rest_case = create(
        &server,
        &workflow,
        json!({"amount": 5000, "who": "ada"}),
        true,
    )
    .await;
    let rest_id = rest_case["id"].as_str().expect("id").to_owned();
    let rest_items = work_items_of(&server, &rest_id).await;
    let rest_item_id = rest_items[0]["id"].as_str().expect("item").to_owned();
    let (_, rest_item) = server.get(&format!("/workitems/{rest_item_id}")).await;
    let (_, rest_claimed) = server
        .post(
            &format!("/workitems/{rest_item_id}/claim"),
            json!({"user": "mia"}),
        )
        .await;
    let (_, rest_started) = server
        .post(
            &format!("/workitems/{rest_item_id}/start"),
            json!({"user": "mia"}),
        )
        .await;
    let (status, rest_done) = server
        .post(
            &format!("/workitems/{rest_item_id}/complete"),
            json!({"user": "mia", "output": {"approved": true, "note": "ok", "score": 2.5}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rest_done}");
    let (_, rest_history) = server.get(&format!("/cases/{rest_id}/history")).await;
    let (_, rest_shown) = server.get(&format!("/cases/{rest_id}")).await;
    let (_, rest_error) = server
        .post(
            &format!("/workitems/{rest_item_id}/complete"),
            json!({"user": "mia"}),
        )
        .await;

    // gRPC.
    let g_case = create_case(
        &mut c,
        &workflow,
        json!({"amount": 5000, "who": "ada"}),
        true,
    )
    .await;
    let g_items = items_of(&mut c, &g_case.id).await;
    let g_item_id = g_items[0].id.clone();
    let g_item = c
        .get_work_item(pb::WorkItemRequest {
            id: g_item_id.clone(),
        })
        .await
        .expect("item")
        .into_inner();
    let g_claimed = c
        .claim_work_item(user(&g_item_id, "mia"))
        .await
        .expect("claim")
        .into_inner();
    let g_started = c
        .start_work_item(user(&g_item_id, "mia"))
        .await
        .expect("start")
        .into_inner();
    let g_done = c
        .complete_work_item(pb::CompleteWorkItemRequest {
            id: g_item_id.clone(),
            user: "mia".into(),
            output: Some(object(
                json!({"approved": true, "note": "ok", "score": 2.5}),
            )),
        })
        .await
        .expect("complete")
        .into_inner();
    let g_history = c
        .get_history(pb::GetHistoryRequest {
            id: g_case.id.clone(),
            ..Default::default()
        })
        .await
        .expect("history")
        .into_inner();
    let g_shown = c
        .get_case(pb::CaseRequest {
            id: g_case.id.clone(),
        })
        .await
        .expect("case")
        .into_inner();
    let g_error = c
        .complete_work_item(pb::CompleteWorkItemRequest {
            id: g_item_id.clone(),
            user: "mia".into(),
            output: None,
        })
        .await
        .unwrap_err();

    let pairs = [
        ("created case", rest_case, case_json(&g_case)),
        (
            "work items",
            json!(rest_items),
            json!(g_items.iter().map(item_json).collect::<Vec<_>>()),
        ),
        ("work item", rest_item, item_json(&g_item)),
        ("claimed", rest_claimed, case_json(&g_claimed)),
        ("started", rest_started, case_json(&g_started)),
        ("completed", rest_done, case_json(&g_done)),
        ("shown", rest_shown, case_json(&g_shown)),
        (
            "history",
            rest_history["events"].clone(),
            json!(g_history.events.iter().map(event_json).collect::<Vec<_>>()),
        ),
    ];
    for (what, rest, grpc) in &pairs {
        assert_eq!(without_ids(rest), without_ids(grpc), "{what}");
    }
    // The same failure, in each protocol's terms of one code.
    assert_eq!(rest_error["error"]["code"], api_code(&g_error));
    let rest_message = rest_error["error"]["message"].as_str().expect("message");
    assert_eq!(
        rest_message.replace(&rest_item_id, "<item>"),
        g_error.message().replace(&g_item_id, "<item>")
    );
    // Not a trivial comparison: the cases did run and differ by id.
    assert_ne!(rest_id, g_case.id);
    assert_eq!(g_done.status, "completed");
}

#[tokio::test]
async fn sigterm_stops_both_servers_and_ends_an_open_grpc_watch() {
    let server = Server::start();
    let mut c = client(&server).await;
    let workflow = register(&mut c, "order_approval.ttl").await;
    let case = create_case(&mut c, &workflow, json!({"amount": 5000}), true).await;
    let mut stream = c
        .watch_case(pb::WatchCaseRequest {
            id: case.id.clone(),
            after: case.version,
        })
        .await
        .expect("watch")
        .into_inner();
    let addr = server.grpc;
    let status = server.terminate().await;
    assert!(status.success(), "{status:?}");
    // The watch was told why it ends, then closed.
    let m = stream.message().await.expect("the end").expect("a message");
    match m.message {
        Some(pb::watch_case_response::Message::End(end)) => {
            assert_eq!((end.status.as_str(), end.stopping), ("running", true));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(stream.message().await, Ok(None) | Err(_)));
    // Nothing listens any more.
    assert!(
        Channel::from_shared(format!("http://{addr}"))
            .expect("uri")
            .connect()
            .await
            .is_err()
    );
}

/// Every work item action and a trigger, through REST and through gRPC on one server, each
/// answer compared field by field (ids and times aside), and the refused early trigger in both.
#[tokio::test]
async fn every_work_item_action_and_a_trigger_answer_alike_in_rest_and_grpc() {
    let server = Server::start();
    let workflow = server
        .register("patterns/wcp23_transient_trigger.ttl")
        .await;
    let mut c = client(&server).await;

    // REST.
    let case = create(&server, &workflow, json!({}), true).await;
    let id = case["id"].as_str().expect("id").to_owned();
    let (_, early) = server
        .post(&format!("/cases/{id}/triggers/payment"), json!({}))
        .await;
    let item = work_items_of(&server, &id).await[0]["id"]
        .as_str()
        .expect("item")
        .to_owned();
    let mut rest = vec![case.clone()];
    for (action, body) in [
        ("claim", json!({"user": "mia"})),
        ("release", json!({"user": "mia"})),
        ("claim", json!({"user": "noah"})),
        ("delegate", json!({"user": "noah", "to": "mia"})),
        ("start", json!({"user": "mia"})),
        (
            "complete",
            json!({"user": "mia", "output": {"prepared": true}}),
        ),
    ] {
        let (status, answer) = server
            .post(&format!("/workitems/{item}/{action}"), body)
            .await;
        assert_eq!(status, StatusCode::OK, "{action}: {answer}");
        rest.push(answer);
    }
    let (_, paid) = server
        .post(
            &format!("/cases/{id}/triggers/payment"),
            json!({"data": {"amount": 42}}),
        )
        .await;
    rest.push(paid);
    let ship = work_items_of(&server, &id).await[0]["id"]
        .as_str()
        .expect("item")
        .to_owned();
    let (_, failed) = server
        .post(
            &format!("/workitems/{ship}/fail"),
            json!({"user": "mia", "reason": "no stock"}),
        )
        .await;
    rest.push(failed);
    let (_, history) = server.get(&format!("/cases/{id}/history?limit=1000")).await;
    rest.push(history["events"].clone());

    // gRPC.
    let case = create_case(&mut c, &workflow, json!({}), true).await;
    let early_g = c
        .trigger_case(pb::TriggerCaseRequest {
            id: case.id.clone(),
            event: "payment".into(),
            data: None,
        })
        .await
        .unwrap_err();
    let item = items_of(&mut c, &case.id).await[0].id.clone();
    let mut grpc = vec![case_json(&case)];
    grpc.push(case_json(
        &c.claim_work_item(user(&item, "mia"))
            .await
            .expect("claim")
            .into_inner(),
    ));
    grpc.push(case_json(
        &c.release_work_item(user(&item, "mia"))
            .await
            .expect("release")
            .into_inner(),
    ));
    grpc.push(case_json(
        &c.claim_work_item(user(&item, "noah"))
            .await
            .expect("claim")
            .into_inner(),
    ));
    grpc.push(case_json(
        &c.delegate_work_item(pb::DelegateWorkItemRequest {
            id: item.clone(),
            user: "noah".into(),
            to: "mia".into(),
        })
        .await
        .expect("delegate")
        .into_inner(),
    ));
    grpc.push(case_json(
        &c.start_work_item(user(&item, "mia"))
            .await
            .expect("start")
            .into_inner(),
    ));
    grpc.push(case_json(
        &c.complete_work_item(pb::CompleteWorkItemRequest {
            id: item.clone(),
            user: "mia".into(),
            output: Some(object(json!({"prepared": true}))),
        })
        .await
        .expect("complete")
        .into_inner(),
    ));
    grpc.push(case_json(
        &c.trigger_case(pb::TriggerCaseRequest {
            id: case.id.clone(),
            event: "payment".into(),
            data: Some(object(json!({"amount": 42}))),
        })
        .await
        .expect("trigger")
        .into_inner(),
    ));
    let ship = items_of(&mut c, &case.id).await[0].id.clone();
    grpc.push(case_json(
        &c.fail_work_item(pb::FailWorkItemRequest {
            id: ship,
            user: "mia".into(),
            reason: Some("no stock".into()),
        })
        .await
        .expect("fail")
        .into_inner(),
    ));
    let history = c
        .get_history(pb::GetHistoryRequest {
            id: case.id.clone(),
            limit: 1000,
            ..Default::default()
        })
        .await
        .expect("history")
        .into_inner();
    grpc.push(json!(
        history.events.iter().map(event_json).collect::<Vec<_>>()
    ));

    assert_eq!(rest.len(), grpc.len());
    for (i, (r, g)) in rest.iter().zip(&grpc).enumerate() {
        assert_eq!(without_ids(r), without_ids(g), "answer {i}");
    }
    assert_eq!(grpc[8]["status"], "failed");
    // Typed fields: a delegation's users are not statuses.
    let delegated = history
        .events
        .iter()
        .find(|e| e.kind == "work_item_delegated")
        .expect("delegated");
    assert_eq!(delegated.to_status, None);
    assert_eq!(json_of(delegated.detail.clone())["to"], "mia");
    assert_eq!(early["error"]["code"], api_code(&early_g));
    assert_eq!(early_g.code(), Code::FailedPrecondition);
}

/// A gRPC wait in the shape of REST's JSON wait: its kind and the fields that kind has.
fn wait_json(w: &pb::CaseWait) -> Value {
    let mut m = Map::new();
    m.insert("kind".into(), json!(w.kind));
    if let Some(t) = &w.task {
        m.insert("task".into(), json!(t.task));
        m.insert("net_instance".into(), json!(t.net_instance));
    }
    if w.kind == "work_item" {
        m.insert("roles".into(), json!(w.roles));
        m.insert("user".into(), json!(w.user));
    }
    let fields = [
        ("item", &w.item),
        ("state", &w.state),
        ("since", &w.since),
        ("connector", &w.connector),
        ("idempotency_key", &w.idempotency_key),
        ("timer", &w.timer),
        ("fires_at", &w.fires_at),
        ("reason", &w.reason),
        ("event", &w.event),
    ];
    for (k, v) in fields {
        if let Some(v) = v {
            m.insert(k.into(), json!(v));
        }
    }
    if let Some(a) = w.attempt {
        m.insert("attempt".into(), json!(a));
    }
    Value::Object(m)
}

fn last_group(id: &str) -> &str {
    id.rsplit('-').next().expect("a group")
}

/// A REST refusal and a gRPC one: the same API code, the gRPC status the code maps to.
fn same_refusal(what: &str, rest: &(StatusCode, Value), grpc: &tonic::Status, expected: Code) {
    assert!(rest.0.is_client_error(), "{what}: {} {}", rest.0, rest.1);
    assert_eq!(rest.1["error"]["code"], api_code(grpc), "{what}: {grpc:?}");
    assert_eq!(grpc.code(), expected, "{what}: {grpc:?}");
}

/// The operations the CLI uses as a client (a case's waits, a workflow's specification,
/// lookups by shortened id and by reference, retry, set data, offer and allocate by an
/// administrator, adding an instance, completing a task early, the quarantine) through REST
/// and through gRPC on one server: each answer compared field by field, ids and times aside.
#[tokio::test]
async fn the_operator_operations_answer_alike_in_rest_and_grpc() {
    let server = Server::start();
    let loan = server.register("loan_application.ttl").await;
    let quotes = server
        .register("patterns/wcp15_mi_no_runtime_knowledge.ttl")
        .await;
    let mut c = client(&server).await;
    let applicant = json!({"applicant": "Ada", "amount": 25000});
    let suppliers = json!({"suppliers": ["acme", "globex"]});

    // REST.
    let mut rest: Vec<(&str, Value)> = Vec::new();
    let case = create(&server, &loan, applicant.clone(), true).await;
    let id = case["id"].as_str().expect("id").to_owned();
    let item = work_items_of(&server, &id).await[0]["id"]
        .as_str()
        .expect("item")
        .to_owned();
    let ok = |what: &'static str, (status, body): (StatusCode, Value)| {
        assert_eq!(status, StatusCode::OK, "{what}: {body}");
        (what, body)
    };
    rest.push(ok(
        "spec",
        server.get(&format!("/workflows/{loan}/spec")).await,
    ));
    rest.push(ok("waits", server.get(&format!("/cases/{id}/waits")).await));
    rest.push(ok(
        "lookup case",
        server
            .get(&format!("/lookup/cases/{}", last_group(&id)))
            .await,
    ));
    rest.push(ok(
        "lookup work item",
        server
            .get(&format!("/lookup/workitems/{}", last_group(&item)))
            .await,
    ));
    rest.push(ok(
        "lookup workflow",
        server.get("/lookup/workflows/Loan%20application@1").await,
    ));
    server
        .post(&format!("/workitems/{item}/claim"), json!({"user": "uma"}))
        .await;
    rest.push(ok(
        "failed",
        server
            .post(
                &format!("/workitems/{item}/fail"),
                json!({"user": "uma", "reason": "no papers"}),
            )
            .await,
    ));
    rest.push(ok(
        "retry waits",
        server.get(&format!("/cases/{id}/waits")).await,
    ));
    rest.push(ok(
        "retried",
        server.post(&format!("/cases/{id}/retry"), json!({})).await,
    ));
    rest.push(ok(
        "data set",
        server
            .post(
                &format!("/cases/{id}/data"),
                json!({"data": {"note": "papers came", "n": 2}}),
            )
            .await,
    ));
    let again = work_items_of(&server, &id).await[0]["id"]
        .as_str()
        .expect("item")
        .to_owned();
    rest.push(ok(
        "offered",
        server
            .post(
                &format!("/workitems/{again}/offer"),
                json!({"user": "admin", "roles": ["clerk"]}),
            )
            .await,
    ));
    rest.push(ok(
        "allocated",
        server
            .post(
                &format!("/workitems/{again}/allocate"),
                json!({"user": "admin", "to": "uma"}),
            )
            .await,
    ));
    let quote_case = create(&server, &quotes, suppliers.clone(), true).await;
    let qid = quote_case["id"].as_str().expect("id").to_owned();
    rest.push(ok(
        "instance added",
        server
            .post(
                &format!("/cases/{qid}/instances"),
                json!({"task": "Quote", "item": "initech"}),
            )
            .await,
    ));
    rest.push(ok(
        "task completed",
        server
            .post(
                &format!("/cases/{qid}/complete-task"),
                json!({"task": "Quote"}),
            )
            .await,
    ));
    rest.push(ok("quarantine", server.get("/quarantine").await));
    let unknown = "00000000-0000-7000-8000-000000000000";
    let rest_errors = [
        server.get(&format!("/cases/{unknown}/waits")).await,
        server.get(&format!("/workflows/{unknown}/spec")).await,
        server.get("/lookup/workitems/ffffffff").await,
        server.get("/lookup/workflows/Loan%20application@9").await,
        server.post(&format!("/cases/{id}/retry"), json!({})).await,
        server
            .post(
                &format!("/workitems/{again}/offer"),
                json!({"user": "admin", "roles": ["clerk"]}),
            )
            .await,
        server
            .post(
                &format!("/workitems/{again}/offer"),
                json!({"user": "admin", "roles": []}),
            )
            .await,
        server
            .post(
                &format!("/workitems/{again}/allocate"),
                json!({"user": "admin", "to": ""}),
            )
            .await,
        server
            .post(
                &format!("/cases/{qid}/instances"),
                json!({"task": "Quote", "item": 1}),
            )
            .await,
        server
            .post(&format!("/cases/{unknown}/data"), json!({"data": {}}))
            .await,
        server
            .post(&format!("/cases/{id}/release"), json!({}))
            .await,
        server
            .post(&format!("/cases/{unknown}/release"), json!({}))
            .await,
        server
            .get(&format!("/cases?after={id}&page_token=00"))
            .await,
    ];

    // gRPC.
    let mut grpc: Vec<Value> = Vec::new();
    let case = create_case(&mut c, &loan, applicant, true).await;
    let gid = case.id.clone();
    let gitem = items_of(&mut c, &gid).await[0].id.clone();
    let spec = c
        .get_workflow_spec(pb::GetWorkflowRequest { id: loan.clone() })
        .await
        .expect("spec")
        .into_inner();
    grpc.push(json_of(spec.spec));
    let waits =
        |w: pb::CaseWaits| json!({"waits": w.waits.iter().map(wait_json).collect::<Vec<_>>()});
    grpc.push(waits(
        c.get_case_waits(pb::CaseRequest { id: gid.clone() })
            .await
            .expect("waits")
            .into_inner(),
    ));
    let lookup = |reference: &str| pb::LookupRequest {
        reference: reference.to_owned(),
    };
    let found = |f: pb::Found| json!({"id": f.id});
    grpc.push(found(
        c.lookup_case(lookup(last_group(&gid)))
            .await
            .expect("lookup case")
            .into_inner(),
    ));
    grpc.push(found(
        c.lookup_work_item(lookup(last_group(&gitem)))
            .await
            .expect("lookup work item")
            .into_inner(),
    ));
    grpc.push(found(
        c.lookup_workflow(lookup("Loan application@1"))
            .await
            .expect("lookup workflow")
            .into_inner(),
    ));
    c.claim_work_item(user(&gitem, "uma")).await.expect("claim");
    grpc.push(case_json(
        &c.fail_work_item(pb::FailWorkItemRequest {
            id: gitem.clone(),
            user: "uma".into(),
            reason: Some("no papers".into()),
        })
        .await
        .expect("fail")
        .into_inner(),
    ));
    grpc.push(waits(
        c.get_case_waits(pb::CaseRequest { id: gid.clone() })
            .await
            .expect("waits")
            .into_inner(),
    ));
    grpc.push(case_json(
        &c.retry_case(pb::RetryCaseRequest {
            id: gid.clone(),
            ..Default::default()
        })
        .await
        .expect("retry")
        .into_inner(),
    ));
    grpc.push(case_json(
        &c.set_case_data(pb::SetCaseDataRequest {
            id: gid.clone(),
            data: Some(object(json!({"note": "papers came", "n": 2}))),
        })
        .await
        .expect("set data")
        .into_inner(),
    ));
    let gagain = items_of(&mut c, &gid).await[0].id.clone();
    let offer = |roles: &[&str]| pb::OfferWorkItemRequest {
        id: gagain.clone(),
        user: "admin".into(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
    };
    grpc.push(case_json(
        &c.offer_work_item(offer(&["clerk"]))
            .await
            .expect("offer")
            .into_inner(),
    ));
    let allocate = |to: &str| pb::AllocateWorkItemRequest {
        id: gagain.clone(),
        user: "admin".into(),
        to: to.to_owned(),
    };
    grpc.push(case_json(
        &c.allocate_work_item(allocate("uma"))
            .await
            .expect("allocate")
            .into_inner(),
    ));
    let gq = create_case(&mut c, &quotes, suppliers, true).await.id;
    let instance = |item: Value| pb::AddInstanceRequest {
        id: gq.clone(),
        task: "Quote".into(),
        net_instance: 0,
        item: Some(knhk_api::grpc::json_to_value(item)),
    };
    grpc.push(case_json(
        &c.add_instance(instance(json!("initech")))
            .await
            .expect("add instance")
            .into_inner(),
    ));
    grpc.push(case_json(
        &c.complete_task(pb::CompleteTaskRequest {
            id: gq.clone(),
            task: "Quote".into(),
            net_instance: 0,
        })
        .await
        .expect("complete task")
        .into_inner(),
    ));
    let q = c
        .list_quarantine(pb::ListQuarantineRequest {})
        .await
        .expect("quarantine")
        .into_inner();
    grpc.push(json!({"items": q.items.iter().map(|i| json!({
        "case_id": i.case_id, "reason": i.reason, "quarantined_at": i.quarantined_at,
    })).collect::<Vec<_>>()}));
    let grpc_errors = [
        c.get_case_waits(pb::CaseRequest { id: unknown.into() })
            .await
            .unwrap_err(),
        c.get_workflow_spec(pb::GetWorkflowRequest { id: unknown.into() })
            .await
            .unwrap_err(),
        c.lookup_work_item(lookup("ffffffff")).await.unwrap_err(),
        c.lookup_workflow(lookup("Loan application@9"))
            .await
            .unwrap_err(),
        c.retry_case(pb::RetryCaseRequest {
            id: gid.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err(),
        c.offer_work_item(offer(&["clerk"])).await.unwrap_err(),
        c.offer_work_item(offer(&[])).await.unwrap_err(),
        c.allocate_work_item(allocate("")).await.unwrap_err(),
        c.add_instance(instance(json!(1))).await.unwrap_err(),
        c.set_case_data(pb::SetCaseDataRequest {
            id: unknown.into(),
            data: None,
        })
        .await
        .unwrap_err(),
        c.release_case(pb::CaseRequest { id: gid.clone() })
            .await
            .unwrap_err(),
        c.release_case(pb::CaseRequest { id: unknown.into() })
            .await
            .unwrap_err(),
        c.list_cases(pb::ListCasesRequest {
            after: Some(gid.clone()),
            page_token: "00".into(),
            ..Default::default()
        })
        .await
        .unwrap_err(),
    ];

    assert_eq!(rest.len(), grpc.len());
    for ((what, r), g) in rest.iter().zip(&grpc) {
        assert_eq!(without_ids(r), without_ids(g), "{what}");
    }
    // Not trivial: the operations did what they name.
    assert_eq!(grpc[1]["waits"][0]["kind"], "work_item");
    assert_eq!(grpc[2]["id"], gid.as_str());
    assert_eq!(grpc[3]["id"], gitem.as_str());
    assert_eq!(grpc[4]["id"], loan.as_str());
    assert_eq!(grpc[5]["status"], "failed");
    assert_eq!(grpc[6]["waits"][0]["kind"], "retry");
    assert_eq!(grpc[7]["status"], "running");
    assert_eq!(grpc[8]["data"]["note"], "papers came");
    assert_eq!(grpc[13]["items"], json!([]));

    let expected = [
        ("unknown case's waits", Code::NotFound),
        ("unknown workflow's spec", Code::NotFound),
        ("unknown work item prefix", Code::NotFound),
        ("unknown workflow version", Code::NotFound),
        ("retry of a running case", Code::FailedPrecondition),
        ("offer of an allocated item", Code::FailedPrecondition),
        ("offer to no role", Code::InvalidArgument),
        ("allocation to nobody", Code::InvalidArgument),
        ("instance of a completed task", Code::FailedPrecondition),
        ("data of an unknown case", Code::NotFound),
        (
            "release of a case not quarantined",
            Code::FailedPrecondition,
        ),
        ("release of an unknown case", Code::NotFound),
        ("both a page token and after", Code::InvalidArgument),
    ];
    for ((what, code), (r, g)) in expected.iter().zip(rest_errors.iter().zip(&grpc_errors)) {
        same_refusal(what, r, g, *code);
    }
    // Refused, they changed nothing: the cases are as the last answers left them.
    let shown = c
        .get_case(pb::CaseRequest { id: gid.clone() })
        .await
        .expect("case")
        .into_inner();
    assert_eq!(without_ids(&case_json(&shown)), without_ids(&grpc[10]));
}

/// The lists through gRPC: `after` (an id the server turns into its cursor) and a status, as
/// REST takes them, with the same answers; workflows come with their task counts.
#[tokio::test]
async fn lists_page_after_an_id_and_by_status_alike_in_rest_and_grpc() {
    let server = Server::start();
    let workflow = server.register("order_approval.ttl").await;
    let mut cases = Vec::new();
    for _ in 0..3 {
        let case = create(&server, &workflow, json!({"amount": 1500}), true).await;
        cases.push(case["id"].as_str().expect("id").to_owned());
    }
    let mut c = client(&server).await;
    let first_item = work_items_of(&server, &cases[0]).await[0]["id"]
        .as_str()
        .expect("item")
        .to_owned();
    let second_item = work_items_of(&server, &cases[1]).await[0]["id"]
        .as_str()
        .expect("item")
        .to_owned();
    c.claim_work_item(pb::WorkItemUserRequest {
        id: second_item.clone(),
        user: "mia".into(),
    })
    .await
    .expect("claim");

    let listed = c
        .list_cases(pb::ListCasesRequest {
            after: Some(cases[0].clone()),
            ..Default::default()
        })
        .await
        .expect("cases")
        .into_inner();
    let ids: Vec<&str> = listed.items.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, [cases[1].as_str(), cases[2].as_str()]);
    let (_, rest) = server.get(&format!("/cases?after={}", cases[0])).await;
    let rest_ids: Vec<&str> = rest["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|c| c["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, rest_ids);

    let offered = c
        .list_work_items(pb::ListWorkItemsRequest {
            status: Some("offered".into()),
            after: Some(first_item.clone()),
            ..Default::default()
        })
        .await
        .expect("work items")
        .into_inner();
    let (_, rest) = server
        .get(&format!("/workitems?status=offered&after={first_item}"))
        .await;
    let ids: Vec<&str> = offered.items.iter().map(|w| w.id.as_str()).collect();
    let rest_ids: Vec<&str> = rest["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|w| w["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, rest_ids);
    assert_eq!(ids.len(), 1, "the third case's item: {ids:?}");
    assert!(!ids.contains(&second_item.as_str()));
    let allocated = c
        .list_work_items(pb::ListWorkItemsRequest {
            status: Some("allocated".into()),
            ..Default::default()
        })
        .await
        .expect("work items")
        .into_inner();
    assert_eq!(allocated.items.len(), 1);
    assert_eq!(allocated.items[0].id, second_item);

    let workflows = c
        .list_workflows(pb::ListWorkflowsRequest::default())
        .await
        .expect("workflows")
        .into_inner();
    assert_eq!(workflows.items.len(), 1);
    assert_eq!(workflows.items[0].source, None);
    let (_, rest) = server.get("/workflows").await;
    assert_eq!(
        rest["items"][0]["tasks"].as_u64(),
        Some(u64::from(workflows.items[0].tasks))
    );
    assert!(workflows.items[0].tasks > 0);
    let after = c
        .list_workflows(pb::ListWorkflowsRequest {
            after: Some(workflow.clone()),
            ..Default::default()
        })
        .await
        .expect("workflows")
        .into_inner();
    assert!(after.items.is_empty());
}
