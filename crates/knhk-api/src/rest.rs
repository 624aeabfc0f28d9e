//! REST over the service layer (axum): the routes, the strict extractors that turn every bad
//! request into the API's error body, the limits (body size, request timeout), and the
//! OpenAPI 3.1 document generated from the code (utoipa) at `GET /openapi.json`.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, RawQuery, Request, State};
use axum::handler::Handler;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};
use knhk_workflow_engine::{SourceFormat, WorkItemStatus};
use serde::de::DeserializeOwned;
use serde_json::Value;
use utoipa::OpenApi;

use crate::error::{ApiError, Code};
use crate::json;
use crate::service::{Made, Service, Watched};
use crate::types::*;

type Shared = Arc<Service>;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, axum::Json(self.body())).into_response()
    }
}

/// A JSON response with a status.
fn reply<T: serde::Serialize>(status: StatusCode, body: T) -> Response {
    (status, axum::Json(body)).into_response()
}

fn ok<T: serde::Serialize>(r: Result<T, ApiError>) -> Response {
    match r {
        Ok(body) => reply(StatusCode::OK, body),
        Err(e) => e.into_response(),
    }
}

/// Reads the body whole, within the body limit (413 past it).
async fn body_bytes(req: Request, state: &Shared) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|e| match e {
        BytesRejection::FailedToBufferBody(_) => {
            let limit = state.limits().max_body_bytes;
            ApiError::new(
                Code::PayloadTooLarge,
                format!("the body is larger than the {limit} bytes this server takes"),
            )
            .with("limit", limit)
        }
        other => ApiError::invalid("body", other.body_text()),
    })
}

/// A JSON body read by [`json::parse`]: unknown fields, duplicate keys, wrong types, invalid
/// UTF-8 and too deep nesting are refused naming the field. An empty body reads as `{}` for
/// the operations whose body is optional (`T: Default` through [`Optional`]).
struct JsonBody<T>(T);

impl<T: DeserializeOwned> FromRequest<Shared> for JsonBody<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &Shared) -> Result<Self, ApiError> {
        check_json_type(req.headers())?;
        let bytes = body_bytes(req, state).await?;
        json::parse(&bytes, state.limits().max_json_depth).map(JsonBody)
    }
}

/// An optional JSON body: nothing, or what [`JsonBody`] reads.
struct Optional<T>(T);

impl<T: DeserializeOwned + Default> FromRequest<Shared> for Optional<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &Shared) -> Result<Self, ApiError> {
        let headers = req.headers().clone();
        let bytes = body_bytes(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Optional(T::default()));
        }
        check_json_type(&headers)?;
        json::parse(&bytes, state.limits().max_json_depth).map(Optional)
    }
}

fn check_json_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let media = media_type(headers);
    if media.as_deref().is_none_or(|m| m == "application/json") {
        return Ok(());
    }
    Err(ApiError::new(
        Code::UnsupportedMediaType,
        format!(
            "Content-Type {}: this operation reads application/json",
            media.unwrap_or_default()
        ),
    )
    .with("field", "Content-Type"))
}

fn media_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
}

/// Query parameters, each named when it is unknown, repeated or of the wrong type.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(raw: Option<String>, known: &[&str]) -> Result<Query, ApiError> {
        let raw = raw.unwrap_or_default();
        let pairs: Vec<(String, String)> = url_decode_pairs(&raw)?;
        let mut seen = std::collections::HashSet::new();
        for (k, _) in &pairs {
            if !known.contains(&k.as_str()) {
                return Err(ApiError::invalid(
                    k,
                    format!(
                        "unknown query parameter {k:?}; this operation takes {}",
                        known.join(", ")
                    ),
                ));
            }
            if !seen.insert(k.clone()) {
                return Err(ApiError::invalid(
                    k,
                    format!("query parameter {k:?} given twice"),
                ));
            }
        }
        Ok(Query(pairs))
    }

    fn text(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }

    fn number<N: std::str::FromStr>(&self, name: &str) -> Result<Option<N>, ApiError> {
        match self.text(name) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError::invalid(name, format!("{name}: {v:?} is not a non-negative integer"))
            }),
        }
    }
}

fn url_decode_pairs(raw: &str) -> Result<Vec<(String, String)>, ApiError> {
    let mut out = Vec::new();
    for part in raw.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        out.push((percent_decode(k)?, percent_decode(v)?));
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Result<String, ApiError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                let Some(b) = hex else {
                    return Err(ApiError::invalid(
                        "query",
                        format!("query: bad percent escape in {s:?}"),
                    ));
                };
                out.push(b);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out)
        .map_err(|_| ApiError::invalid("query", "query: a parameter is not UTF-8"))
}

#[utoipa::path(get, path = "/health", responses((status = 200, body = Status)))]
async fn health(State(s): State<Shared>) -> Response {
    ok(Ok(Status {
        status: s.health().to_owned(),
    }))
}

#[utoipa::path(get, path = "/ready", responses((status = 200, body = Status), (status = 503, body = ErrorBody)))]
async fn ready(State(s): State<Shared>) -> Response {
    ok(s.ready().await.map(|r| Status {
        status: r.to_owned(),
    }))
}

#[utoipa::path(get, path = "/openapi.json", responses((status = 200, description = "this document")))]
async fn openapi_json() -> Response {
    reply(StatusCode::OK, document())
}

/// The definition formats by media type: Turtle, or YAWL XML.
fn format_of(headers: &HeaderMap) -> Result<SourceFormat, ApiError> {
    match media_type(headers).as_deref() {
        Some("text/turtle" | "application/x-turtle") => Ok(SourceFormat::Turtle),
        Some("application/xml" | "text/xml" | "application/yawl+xml") => Ok(SourceFormat::YawlXml),
        other => Err(ApiError::new(
            Code::UnsupportedMediaType,
            format!(
                "Content-Type {}: a definition is text/turtle or application/xml (YAWL XML)",
                other.unwrap_or("(none)")
            ),
        )
        .with("field", "Content-Type")),
    }
}

#[utoipa::path(post, path = "/workflows",
    request_body(content = String, description = "the definition", content_type = "text/turtle"),
    responses((status = 201, body = Registered), (status = 200, body = Registered, description = "identical to the latest version"), (status = "4XX", body = ErrorBody)))]
async fn register_workflow(State(s): State<Shared>, req: Request) -> Response {
    let result = async {
        let format = format_of(req.headers())?;
        let bytes = body_bytes(req, &s).await?;
        let text = std::str::from_utf8(&bytes).map_err(|e| {
            ApiError::invalid(
                "body",
                format!(
                    "the definition is not UTF-8: invalid bytes at offset {}",
                    e.valid_up_to()
                ),
            )
        })?;
        s.register_workflow(format, text).await
    }
    .await;
    match result {
        Ok(r) if r.already_registered => reply(StatusCode::OK, r),
        Ok(r) => reply(StatusCode::CREATED, r),
        Err(e) => e.into_response(),
    }
}

#[utoipa::path(get, path = "/workflows", params(("page_token" = Option<String>, Query),
           ("after" = Option<String>, Query, description = "a workflow id: the page starts after it (instead of page_token)"),
           ("page_size" = Option<usize>, Query)),
    responses((status = 200, body = WorkflowPage), (status = "4XX", body = ErrorBody)))]
async fn list_workflows(State(s): State<Shared>, RawQuery(q): RawQuery) -> Response {
    ok(async {
        let q = Query::parse(q, &["page_token", "after", "page_size"])?;
        s.list_workflows(
            q.text("page_token").as_deref(),
            q.text("after").as_deref(),
            q.number("page_size")?,
        )
        .await
    }
    .await)
}

#[utoipa::path(get, path = "/workflows/{id}", params(("id" = String, Path)),
    responses((status = 200, body = Workflow), (status = "4XX", body = ErrorBody)))]
async fn get_workflow(State(s): State<Shared>, Path(id): Path<String>) -> Response {
    ok(s.get_workflow(&id).await)
}

#[utoipa::path(get, path = "/workflows/{id}/spec", params(("id" = String, Path)),
    responses((status = 200, description = "the specification: nets, tasks, flows", body = Object), (status = "4XX", body = ErrorBody)))]
async fn get_workflow_spec(State(s): State<Shared>, Path(id): Path<String>) -> Response {
    ok(s.workflow_spec(&id).await)
}

#[utoipa::path(post, path = "/cases", request_body = CreateCase,
    params(("Idempotency-Key" = Option<String>, Header, description = "the same key returns the same case; with another body, 422")),
    responses((status = 201, body = Case), (status = 200, body = Case, description = "the case this idempotency key made"), (status = "4XX", body = ErrorBody)))]
async fn create_case(State(s): State<Shared>, headers: HeaderMap, body: Request) -> Response {
    let result = async {
        let key = match headers.get("idempotency-key") {
            Some(v) => Some(v.to_str().map_err(|_| {
                ApiError::invalid("Idempotency-Key", "Idempotency-Key: not visible ASCII")
            })?),
            None => None,
        };
        let JsonBody(request) = JsonBody::<CreateCase>::from_request(body, &s).await?;
        s.create_case(request, key).await
    }
    .await;
    match result {
        Ok((case, Made::New)) => reply(StatusCode::CREATED, case),
        Ok((case, Made::Replayed)) => reply(StatusCode::OK, case),
        Err(e) => e.into_response(),
    }
}

pub(crate) fn statuses(text: &str) -> Result<Vec<knhk_core::CaseStatus>, ApiError> {
    use knhk_core::CaseStatus as S;
    text.split(',')
        .map(|t| match t.trim() {
            "created" => Ok(S::Created),
            "running" => Ok(S::Running),
            "suspended" => Ok(S::Suspended),
            "completed" => Ok(S::Completed),
            "cancelled" => Ok(S::Cancelled),
            "failed" => Ok(S::Failed),
            other => Err(ApiError::invalid(
                "status",
                format!(
                    "status: {other:?} is not a case status (created, running, suspended, \
                     completed, cancelled, failed)"
                ),
            )),
        })
        .collect()
}

#[utoipa::path(get, path = "/cases",
    params(("workflow" = Option<String>, Query, description = "a workflow id, URI or name"),
           ("status" = Option<String>, Query, description = "statuses, comma-separated"),
           ("page_token" = Option<String>, Query),
           ("after" = Option<String>, Query, description = "a case id: the page starts after it (instead of page_token)"),
           ("page_size" = Option<usize>, Query)),
    responses((status = 200, body = CasePage), (status = "4XX", body = ErrorBody)))]
async fn list_cases(State(s): State<Shared>, RawQuery(q): RawQuery) -> Response {
    ok(async {
        let q = Query::parse(
            q,
            &["workflow", "status", "page_token", "after", "page_size"],
        )?;
        let filter = CaseFilter {
            workflow: q.text("workflow"),
            status: match q.text("status") {
                Some(t) => statuses(&t)?,
                None => Vec::new(),
            },
            page_token: q.text("page_token"),
            after: q.text("after"),
            page_size: q.number("page_size")?,
        };
        s.list_cases(filter).await
    }
    .await)
}

#[utoipa::path(get, path = "/cases/{id}", params(("id" = String, Path)),
    responses((status = 200, body = Case), (status = "4XX", body = ErrorBody)))]
async fn get_case(State(s): State<Shared>, Path(id): Path<String>) -> Response {
    ok(s.get_case(&id).await)
}

#[utoipa::path(post, path = "/cases/{id}/execute", params(("id" = String, Path)),
    responses((status = 200, body = Case), (status = "4XX", body = ErrorBody)))]
async fn execute(
    State(s): State<Shared>,
    Path(id): Path<String>,
    _b: Optional<NoFields>,
) -> Response {
    ok(s.execute(&id).await)
}

#[utoipa::path(post, path = "/cases/{id}/cancel", params(("id" = String, Path)), request_body = Option<CancelCase>,
    responses((status = 200, body = Case), (status = "4XX", body = ErrorBody)))]
async fn cancel(
    State(s): State<Shared>,
    Path(id): Path<String>,
    Optional(b): Optional<CancelCase>,
) -> Response {
    ok(s.cancel(&id, b.reason.as_deref()).await)
}

#[utoipa::path(post, path = "/cases/{id}/suspend", params(("id" = String, Path)),
    responses((status = 200, body = Case), (status = "4XX", body = ErrorBody)))]
async fn suspend(
    State(s): State<Shared>,
    Path(id): Path<String>,
    _b: Optional<NoFields>,
) -> Response {
    ok(s.suspend(&id).await)
}

#[utoipa::path(post, path = "/cases/{id}/resume", params(("id" = String, Path)),
    responses((status = 200, body = Case), (status = "4XX", body = ErrorBody)))]
async fn resume(
    State(s): State<Shared>,
    Path(id): Path<String>,
    _b: Optional<NoFields>,
) -> Response {
    ok(s.resume(&id).await)
}

#[utoipa::path(post, path = "/cases/{id}/triggers/{event}", params(("id" = String, Path), ("event" = String, Path)),
    request_body = Option<Trigger>,
    responses((status = 200, body = Case), (status = "4XX", body = ErrorBody)))]
async fn trigger(
    State(s): State<Shared>,
    Path((id, event)): Path<(String, String)>,
    Optional(b): Optional<Trigger>,
) -> Response {
    ok(s.trigger(&id, &event, b.data).await)
}

#[utoipa::path(get, path = "/cases/{id}/waits", params(("id" = String, Path)),
    responses((status = 200, body = CaseWaits), (status = "4XX", body = ErrorBody)))]
async fn waits(State(s): State<Shared>, Path(id): Path<String>) -> Response {
    ok(s.waits(&id).await)
}

#[utoipa::path(get, path = "/cases/{id}/history",
    params(("id" = String, Path), ("after" = Option<u64>, Query, description = "the sequence number after which the page starts"),
           ("limit" = Option<usize>, Query), ("page_token" = Option<String>, Query)),
    responses((status = 200, body = HistoryPage), (status = "4XX", body = ErrorBody)))]
async fn history(
    State(s): State<Shared>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    ok(async {
        let q = Query::parse(q, &["after", "limit", "page_token"])?;
        s.history(
            &id,
            q.number("after")?,
            q.text("page_token").as_deref(),
            q.number("limit")?,
        )
        .await
    }
    .await)
}

#[utoipa::path(get, path = "/cases/{id}/watch",
    params(("id" = String, Path),
           ("after" = Option<u64>, Query, description = "start after this sequence number"),
           ("Last-Event-ID" = Option<u64>, Header, description = "as `after`: a client reconnecting goes on where it left off")),
    responses((status = 200, content_type = "text/event-stream",
        description = "Server-Sent Events: `event: case_event` (data: a CaseEvent) for the history so far and each new event, then `event: end` (data: {\"status\", \"stopping\"})"),
        (status = "4XX", body = ErrorBody)))]
async fn watch(
    State(s): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let after = async {
        let q = Query::parse(q, &["after"])?;
        if let Some(after) = q.number::<u64>("after")? {
            return Ok(after);
        }
        match headers.get("last-event-id") {
            None => Ok(0),
            Some(v) => v
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::invalid(
                        "Last-Event-ID",
                        "Last-Event-ID: not a sequence number (the id of an event sent)",
                    )
                }),
        }
    }
    .await;
    let after = match after {
        Ok(after) => after,
        Err(e) => return e.into_response(),
    };
    let rx = match s.watch(&id, after).await {
        Ok(rx) => rx,
        Err(e) => return e.into_response(),
    };
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let item = rx.recv().await?;
        let event = match item {
            Ok(Watched::Event(e)) => SseEvent::default()
                .event("case_event")
                .id(e.seq.to_string())
                .json_data(&e),
            Ok(Watched::End { status, stopping }) => SseEvent::default()
                .event("end")
                .json_data(serde_json::json!({"status": status, "stopping": stopping})),
            Err(e) => SseEvent::default().event("error").json_data(e.body()),
        };
        let event = event.unwrap_or_else(|_| SseEvent::default().event("error"));
        Some((Ok::<_, Infallible>(event), rx))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

#[utoipa::path(get, path = "/workitems",
    params(("role" = Option<String>, Query), ("user" = Option<String>, Query, description = "allocated to or started by"),
           ("case" = Option<String>, Query), ("status" = Option<String>, Query, description = "offered, allocated or started"),
           ("page_token" = Option<String>, Query),
           ("after" = Option<String>, Query, description = "a live work item id: the page starts after it (instead of page_token)"),
           ("after_offered_at" = Option<String>, Query, description = "with after: that item's offered_at as listed, so that its place holds once it is gone"),
           ("page_size" = Option<usize>, Query)),
    responses((status = 200, body = WorkItemPage), (status = "4XX", body = ErrorBody)))]
async fn list_work_items(State(s): State<Shared>, RawQuery(q): RawQuery) -> Response {
    ok(async {
        let q = Query::parse(
            q,
            &[
                "role",
                "user",
                "case",
                "status",
                "page_token",
                "after",
                "after_offered_at",
                "page_size",
            ],
        )?;
        let case = match q.text("case") {
            Some(c) => Some(
                c.parse()
                    .map_err(|_| ApiError::invalid("case", format!("case: {c:?} is not a UUID")))?,
            ),
            None => None,
        };
        let status = match q.text("status") {
            Some(t) => Some(t.parse::<WorkItemStatus>().map_err(|_| {
                ApiError::invalid(
                    "status",
                    format!(
                        "status: {t:?} is not a work item status (offered, allocated, started)"
                    ),
                )
            })?),
            None => None,
        };
        s.list_work_items(WorkItemFilter {
            role: q.text("role"),
            user: q.text("user"),
            case,
            status,
            page_token: q.text("page_token"),
            after: q.text("after"),
            after_offered_at: q.text("after_offered_at"),
            page_size: q.number("page_size")?,
        })
        .await
    }
    .await)
}

#[utoipa::path(get, path = "/workitems/{id}", params(("id" = String, Path)),
    responses((status = 200, body = WorkItem), (status = "4XX", body = ErrorBody)))]
async fn get_work_item(State(s): State<Shared>, Path(id): Path<String>) -> Response {
    ok(s.get_work_item(&id).await)
}

#[utoipa::path(post, path = "/workitems/{id}/claim", params(("id" = String, Path)), request_body = WorkItemUser,
    responses((status = 200, body = Case), (status = 409, body = ErrorBody, description = "another user holds it"), (status = "4XX", body = ErrorBody)))]
async fn claim(
    State(s): State<Shared>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<WorkItemUser>,
) -> Response {
    ok(s.claim(&id, &b.user).await)
}

#[utoipa::path(post, path = "/workitems/{id}/start", params(("id" = String, Path)), request_body = WorkItemUser,
    responses((status = 200, body = Case), (status = "4XX", body = ErrorBody)))]
async fn start_work_item(
    State(s): State<Shared>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<WorkItemUser>,
) -> Response {
    ok(s.start_work_item(&id, &b.user).await)
}

#[utoipa::path(post, path = "/workitems/{id}/complete", params(("id" = String, Path)), request_body = CompleteWorkItem,
    responses((status = 200, body = Case), (status = "4XX", body = ErrorBody)))]
async fn complete_work_item(
    State(s): State<Shared>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<CompleteWorkItem>,
) -> Response {
    ok(s.complete_work_item(&id, &b.user, b.output).await)
}

#[utoipa::path(post, path = "/workitems/{id}/fail", params(("id" = String, Path)), request_body = FailWorkItem,
    responses((status = 200, body = Case), (status = "4XX", body = ErrorBody)))]
async fn fail_work_item(
    State(s): State<Shared>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<FailWorkItem>,
) -> Response {
    ok(s.fail_work_item(&id, &b.user, b.reason.as_deref()).await)
}

#[utoipa::path(post, path = "/workitems/{id}/release", params(("id" = String, Path)), request_body = WorkItemUser,
    responses((status = 200, body = Case), (status = "4XX", body = ErrorBody)))]
async fn release_work_item(
    State(s): State<Shared>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<WorkItemUser>,
) -> Response {
    ok(s.release_work_item(&id, &b.user).await)
}

#[utoipa::path(post, path = "/workitems/{id}/delegate", params(("id" = String, Path)), request_body = DelegateWorkItem,
    responses((status = 200, body = Case), (status = "4XX", body = ErrorBody)))]
async fn delegate_work_item(
    State(s): State<Shared>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<DelegateWorkItem>,
) -> Response {
    ok(s.delegate_work_item(&id, &b.user, &b.to).await)
}

#[utoipa::path(post, path = "/workitems/{id}/offer", params(("id" = String, Path)), request_body = OfferWorkItem,
    responses((status = 200, body = Case), (status = "4XX", body = ErrorBody)))]
async fn offer_work_item(
    State(s): State<Shared>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<OfferWorkItem>,
) -> Response {
    ok(s.offer_work_item(&id, &b.user, b.roles).await)
}

#[utoipa::path(post, path = "/workitems/{id}/allocate", params(("id" = String, Path)), request_body = AllocateWorkItem,
    responses((status = 200, body = Case), (status = "4XX", body = ErrorBody)))]
async fn allocate_work_item(
    State(s): State<Shared>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<AllocateWorkItem>,
) -> Response {
    ok(s.allocate_work_item(&id, &b.user, &b.to).await)
}

#[utoipa::path(post, path = "/cases/{id}/retry", params(("id" = String, Path)), request_body = RetryCase,
    responses((status = 200, body = Case), (status = "4XX", body = ErrorBody)))]
async fn retry(
    State(s): State<Shared>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<RetryCase>,
) -> Response {
    ok(s.retry(&id, b).await)
}

#[utoipa::path(post, path = "/cases/{id}/data", params(("id" = String, Path)), request_body = SetData,
    responses((status = 200, body = Case), (status = "4XX", body = ErrorBody)))]
async fn set_data(
    State(s): State<Shared>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<SetData>,
) -> Response {
    ok(s.set_data(&id, b.data).await)
}

#[utoipa::path(post, path = "/cases/{id}/instances", params(("id" = String, Path)), request_body = AddInstance,
    responses((status = 200, body = Case), (status = "4XX", body = ErrorBody)))]
async fn add_instance(
    State(s): State<Shared>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<AddInstance>,
) -> Response {
    ok(s.add_instance(&id, b).await)
}

#[utoipa::path(post, path = "/cases/{id}/complete-task", params(("id" = String, Path)), request_body = CompleteTask,
    responses((status = 200, body = Case), (status = "4XX", body = ErrorBody)))]
async fn complete_task(
    State(s): State<Shared>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<CompleteTask>,
) -> Response {
    ok(s.complete_task(&id, b).await)
}

#[utoipa::path(get, path = "/lookup/cases/{prefix}", params(("prefix" = String, Path)),
    responses((status = 200, body = Found), (status = "4XX", body = ErrorBody)))]
async fn lookup_case(State(s): State<Shared>, Path(prefix): Path<String>) -> Response {
    ok(s.lookup_case(&prefix).await)
}

#[utoipa::path(get, path = "/lookup/workitems/{prefix}", params(("prefix" = String, Path)),
    responses((status = 200, body = Found), (status = "4XX", body = ErrorBody)))]
async fn lookup_work_item(State(s): State<Shared>, Path(prefix): Path<String>) -> Response {
    ok(s.lookup_work_item(&prefix).await)
}

#[utoipa::path(get, path = "/lookup/workflows/{reference}", params(("reference" = String, Path, description = "an id or a start of one, a URI or name, or URI@N / NAME@N")),
    responses((status = 200, body = Found), (status = "4XX", body = ErrorBody)))]
async fn lookup_workflow(State(s): State<Shared>, Path(reference): Path<String>) -> Response {
    ok(s.lookup_workflow(&reference).await)
}

#[utoipa::path(post, path = "/cases/{id}/release", params(("id" = String, Path)),
    responses((status = 200, body = Case, description = "checked (it loads and replays to its row), then taken out of the quarantine"),
              (status = "4XX", body = ErrorBody, description = "unknown, not quarantined, or still broken (named why; it stays quarantined)")))]
async fn release_case(
    State(s): State<Shared>,
    Path(id): Path<String>,
    _b: Optional<NoFields>,
) -> Response {
    ok(s.release_case(&id).await)
}

#[utoipa::path(get, path = "/quarantine",
    responses((status = 200, body = Quarantine), (status = "4XX", body = ErrorBody)))]
async fn quarantine(State(s): State<Shared>) -> Response {
    ok(s.quarantine().await)
}

#[utoipa::path(get, path = "/connectors",
    responses((status = 200, body = Connectors), (status = "4XX", body = ErrorBody)))]
async fn connectors(State(s): State<Shared>) -> Response {
    ok(s.connectors().await)
}

#[utoipa::path(get, path = "/cases/{id}/events/{seq}/receipt",
    params(("id" = String, Path), ("seq" = u64, Path, description = "the event's sequence number, from 1")),
    responses((status = 200, body = crate::lockchain::Receipt, description = "the receipt: the file `knhk lockchain verify-receipt` checks"),
              (status = 404, body = ErrorBody, description = "no such case, or no such event in its history"),
              (status = 409, body = ErrorBody, description = "the event has no leaf (committed without the lockchain), or the lockchain is off"),
              (status = "4XX", body = ErrorBody)))]
async fn receipt(State(s): State<Shared>, Path((id, seq)): Path<(String, String)>) -> Response {
    ok(async { s.receipt(&id, crate::lockchain::parse_seq(&seq)?).await }.await)
}

/// How a client asks for the checkpoint: the note as text, or JSON (the default).
fn wants_text(headers: &HeaderMap) -> bool {
    // The first of the two media types the Accept header names wins; quality values are
    // not weighed (a client that wants one says that one).
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    accept
        .split(',')
        .map(|m| {
            m.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .find(|m| m == "text/plain" || m == "application/json")
        .is_some_and(|m| m == "text/plain")
}

/// A `text/plain` answer.
fn plain(text: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response()
}

#[utoipa::path(get, path = "/lockchain/consistency",
    params(("from" = u64, Query, description = "the tree size of the older stored checkpoint"),
           ("to" = Option<u64>, Query, description = "the tree size of the newer stored checkpoint; the latest when absent")),
    responses((status = 200, body = crate::lockchain::ConsistencyProof, description = "the consistency proof: the file `knhk lockchain verify-consistency` checks"),
              (status = 404, body = ErrorBody, description = "no checkpoint of that size is stored (the nearest stored sizes are named)"),
              (status = 400, body = ErrorBody, description = "from missing, not an integer, or larger than to"),
              (status = "4XX", body = ErrorBody)))]
async fn consistency(State(s): State<Shared>, RawQuery(q): RawQuery) -> Response {
    ok(async {
        let q = Query::parse(q, &["from", "to"])?;
        let Some(from) = q.number("from")? else {
            return Err(ApiError::invalid(
                "from",
                "from: missing; give the tree size of the older checkpoint (?from=OLD[&to=NEW])",
            ));
        };
        s.consistency(from, q.number("to")?).await
    }
    .await)
}

#[utoipa::path(get, path = "/lockchain/checkpoint",
    responses((status = 200, description = "the latest signed checkpoint: JSON, or with `Accept: text/plain` the signed note alone",
               content((crate::lockchain::Checkpoint = "application/json"), (String = "text/plain"))),
              (status = 404, body = ErrorBody, description = "no checkpoint was taken yet"),
              (status = "4XX", body = ErrorBody)))]
async fn checkpoint(State(s): State<Shared>, headers: HeaderMap) -> Response {
    match s.checkpoint().await {
        Ok(c) if wants_text(&headers) => plain(c.note),
        other => ok(other),
    }
}

#[utoipa::path(get, path = "/lockchain/public-key",
    responses((status = 200, description = "the verifier key of the log's checkpoints (signed-note form `name+hash+base64key`), one line",
               content((String = "text/plain"))),
              (status = "4XX", body = ErrorBody)))]
async fn public_key(State(s): State<Shared>) -> Response {
    match s.public_key() {
        Ok(key) => plain(format!("{key}\n")),
        Err(e) => e.into_response(),
    }
}

/// The OpenAPI document of every route.
#[derive(OpenApi)]
#[openapi(
    info(title = "knhk", description = "The knhk workflow engine's REST API"),
    paths(
        health,
        ready,
        openapi_json,
        register_workflow,
        list_workflows,
        get_workflow,
        get_workflow_spec,
        create_case,
        list_cases,
        get_case,
        execute,
        cancel,
        suspend,
        resume,
        trigger,
        waits,
        history,
        watch,
        list_work_items,
        get_work_item,
        claim,
        start_work_item,
        complete_work_item,
        fail_work_item,
        release_work_item,
        delegate_work_item,
        offer_work_item,
        allocate_work_item,
        retry,
        set_data,
        add_instance,
        complete_task,
        lookup_case,
        lookup_work_item,
        lookup_workflow,
        quarantine,
        release_case,
        connectors,
        receipt,
        consistency,
        checkpoint,
        public_key
    ),
    components(schemas(ErrorBody, ErrorDetail))
)]
struct ApiDoc;

/// Returns the OpenAPI 3.1 document as JSON.
pub fn document() -> Value {
    serde_json::to_value(ApiDoc::openapi()).unwrap_or(Value::Null)
}

/// The router being built, with the table of its routes (method, path) kept beside it, so
/// that a test can hold the table against the OpenAPI document and the router.
struct Routes {
    router: Router<Shared>,
    table: Vec<(&'static str, &'static str)>,
}

impl Routes {
    fn add<H, T>(mut self, method: &'static str, path: &'static str, handler: H) -> Routes
    where
        H: Handler<T, Shared>,
        T: 'static,
    {
        let filter = if method == "GET" {
            MethodFilter::GET
        } else {
            MethodFilter::POST
        };
        self.router = self.router.route(path, on(filter, handler));
        self.table.push((method, path));
        self
    }
}

fn routes() -> Routes {
    Routes {
        router: Router::new(),
        table: Vec::new(),
    }
    .add("GET", "/health", health)
    .add("GET", "/ready", ready)
    .add("GET", "/openapi.json", openapi_json)
    .add("POST", "/workflows", register_workflow)
    .add("GET", "/workflows", list_workflows)
    .add("GET", "/workflows/{id}", get_workflow)
    .add("GET", "/workflows/{id}/spec", get_workflow_spec)
    .add("POST", "/cases", create_case)
    .add("GET", "/cases", list_cases)
    .add("GET", "/cases/{id}", get_case)
    .add("POST", "/cases/{id}/execute", execute)
    .add("POST", "/cases/{id}/cancel", cancel)
    .add("POST", "/cases/{id}/suspend", suspend)
    .add("POST", "/cases/{id}/resume", resume)
    .add("POST", "/cases/{id}/triggers/{event}", trigger)
    .add("GET", "/cases/{id}/waits", waits)
    .add("GET", "/cases/{id}/history", history)
    .add("GET", "/cases/{id}/watch", watch)
    .add("GET", "/workitems", list_work_items)
    .add("GET", "/workitems/{id}", get_work_item)
    .add("POST", "/workitems/{id}/claim", claim)
    .add("POST", "/workitems/{id}/start", start_work_item)
    .add("POST", "/workitems/{id}/complete", complete_work_item)
    .add("POST", "/workitems/{id}/fail", fail_work_item)
    .add("POST", "/workitems/{id}/release", release_work_item)
    .add("POST", "/workitems/{id}/delegate", delegate_work_item)
    .add("POST", "/workitems/{id}/offer", offer_work_item)
    .add("POST", "/workitems/{id}/allocate", allocate_work_item)
    .add("POST", "/cases/{id}/retry", retry)
    .add("POST", "/cases/{id}/data", set_data)
    .add("POST", "/cases/{id}/instances", add_instance)
    .add("POST", "/cases/{id}/complete-task", complete_task)
    .add("GET", "/lookup/cases/{prefix}", lookup_case)
    .add("GET", "/lookup/workitems/{prefix}", lookup_work_item)
    .add("GET", "/lookup/workflows/{reference}", lookup_workflow)
    .add("GET", "/quarantine", quarantine)
    .add("POST", "/cases/{id}/release", release_case)
    .add("GET", "/connectors", connectors)
    .add("GET", "/cases/{id}/events/{seq}/receipt", receipt)
    .add("GET", "/lockchain/consistency", consistency)
    .add("GET", "/lockchain/checkpoint", checkpoint)
    .add("GET", "/lockchain/public-key", public_key)
}

/// Returns every route of the router: (method, path).
pub fn route_table() -> Vec<(&'static str, &'static str)> {
    routes().table
}

/// The code of the answer to a path no route serves.
const NO_ROUTE: &str = "no route serves this path";

/// Returns the REST router over a service, with its limits: body size, request timeout;
/// unknown paths and methods get the API's error body.
pub fn router(service: Shared) -> Router {
    let limits = *service.limits();
    let routes = routes().router;
    routes
        .fallback(|| async { ApiError::not_found(NO_ROUTE).with("route", false) })
        .method_not_allowed_fallback(|| async {
            ApiError::new(Code::Unimplemented, "this path does not take this method")
        })
        .layer(axum::middleware::from_fn_with_state(
            limits.request_timeout,
            timeout,
        ))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(service)
}

/// Answers `deadline_exceeded` when a request takes longer than the timeout. The request
/// runs in a task of its own, which neither the timeout nor a client that goes away cancels:
/// an engine call is never cut between its commit and the effects it performs after it (the
/// late answer is dropped; what the step did stays done).
async fn timeout(
    State(limit): State<std::time::Duration>,
    req: Request<Body>,
    next: Next,
) -> Response {
    let task = tokio::spawn(next.run(req));
    match tokio::time::timeout(limit, task).await {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "a request's task failed");
            ApiError::new(Code::Internal, "the request's task failed").into_response()
        }
        Err(_) => ApiError::new(
            Code::DeadlineExceeded,
            format!("the request took longer than {} ms", limit.as_millis()),
        )
        .with(
            "limit_ms",
            u64::try_from(limit.as_millis()).unwrap_or(u64::MAX),
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::BTreeSet;
    use tower::ServiceExt;

    fn engine() -> knhk_workflow_engine::WorkflowEngine {
        let store = std::sync::Arc::new(knhk_store::MemoryStore::default());
        knhk_workflow_engine::WorkflowEngine::new(
            knhk_workflow_engine::EngineConfig::with_defaults(
                store,
                knhk_workflow_engine::Directory::default(),
            ),
        )
    }

    /// Every route of the router is in the OpenAPI document, every path of the document is
    /// routed, and the router answers each (not with its "no route" fallback).
    #[tokio::test]
    async fn the_openapi_document_and_the_router_name_the_same_routes() {
        let doc = document();
        assert_eq!(doc["openapi"].as_str().unwrap().get(..3), Some("3.1"));
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                documented.insert((method.to_ascii_uppercase(), path.clone()));
            }
        }
        let routed: BTreeSet<(String, String)> = route_table()
            .into_iter()
            .map(|(m, p)| (m.to_owned(), p.to_owned()))
            .collect();
        assert_eq!(routed, documented);
        let router = router(Service::new(engine(), crate::Limits::default()));
        for (method, path) in &routed {
            let uri = path
                .replace("{id}", "00000000-0000-0000-0000-000000000000")
                .replace("{event}", "go")
                .replace("{seq}", "1");
            let req = axum::http::Request::builder()
                .method(method.as_str())
                .uri(&uri)
                .body(Body::empty())
                .unwrap();
            let res = router.clone().oneshot(req).await.unwrap();
            let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
                .await
                .unwrap();
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                !text.contains(NO_ROUTE),
                "{method} {uri} is not routed: {text}"
            );
            assert!(
                !text.contains("does not take this method"),
                "{method} {uri}: {text}"
            );
        }
        // The fallback does answer an unknown path.
        let req = axum::http::Request::builder()
            .uri("/nowhere")
            .body(Body::empty())
            .unwrap();
        let res = router.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    }

    async fn get_json(router: &Router, uri: &str) -> (StatusCode, Value) {
        let req = axum::http::Request::builder()
            .uri(uri)
            .body(Body::empty())
            .unwrap();
        let res = router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    /// A receipt asked for with a case id that is not one, or a sequence number that is not
    /// one, is refused naming the path segment at fault, before the engine is asked.
    #[tokio::test]
    async fn a_receipt_request_names_the_bad_id_or_sequence_number() {
        let router = router(Service::new(engine(), crate::Limits::default()));
        let case = "00000000-0000-0000-0000-000000000000";
        for (uri, field) in [
            ("/cases/nope/events/1/receipt".to_owned(), "id"),
            (format!("/cases/{case}/events/0/receipt"), "seq"),
            (format!("/cases/{case}/events/-3/receipt"), "seq"),
            (format!("/cases/{case}/events/two/receipt"), "seq"),
        ] {
            let (status, body) = get_json(&router, &uri).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
            assert_eq!(body["error"]["code"], "invalid_argument", "{uri}");
            assert_eq!(body["error"]["details"]["field"], field, "{uri}");
        }
    }

    /// A consistency proof asked for without `from`, with a size that is not one, with an
    /// unknown parameter or with `from` after `to` is refused naming the parameter.
    #[tokio::test]
    async fn a_consistency_request_names_the_bad_parameter() {
        let router = router(Service::new(engine(), crate::Limits::default()));
        for (uri, field) in [
            ("/lockchain/consistency", "from"),
            ("/lockchain/consistency?to=3", "from"),
            ("/lockchain/consistency?from=x", "from"),
            ("/lockchain/consistency?from=-1", "from"),
            ("/lockchain/consistency?from=1&to=two", "to"),
            ("/lockchain/consistency?from=1&until=2", "until"),
        ] {
            let (status, body) = get_json(&router, uri).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
            assert_eq!(body["error"]["code"], "invalid_argument", "{uri}");
            assert_eq!(body["error"]["details"]["field"], field, "{uri}");
        }
        // The engine has no lockchain: the sizes are fine, the proof is refused.
        let (status, body) = get_json(&router, "/lockchain/consistency?from=1&to=2").await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["error"]["code"], "failed_precondition");
    }

    /// The lockchain's routes are in the OpenAPI document with their wire types.
    #[test]
    fn the_openapi_document_describes_the_receipt_and_checkpoint() {
        let doc = document();
        let schemas = &doc["components"]["schemas"];
        for field in [
            "format",
            "case",
            "seq",
            "leaf_index",
            "tree_size",
            "event",
            "inclusion",
            "checkpoint",
        ] {
            assert!(
                schemas["Receipt"]["properties"][field].is_object(),
                "Receipt.{field}"
            );
        }
        for field in [
            "format",
            "old_size",
            "new_size",
            "proof",
            "old_checkpoint",
            "new_checkpoint",
        ] {
            assert!(
                schemas["ConsistencyProof"]["properties"][field].is_object(),
                "ConsistencyProof.{field}"
            );
        }
        for field in ["size", "root", "note", "taken_at"] {
            assert!(
                schemas["Checkpoint"]["properties"][field].is_object(),
                "Checkpoint.{field}"
            );
        }
        let checkpoint = &doc["paths"]["/lockchain/checkpoint"]["get"]["responses"]["200"];
        assert!(
            checkpoint["content"]["text/plain"].is_object(),
            "{checkpoint}"
        );
        assert!(
            checkpoint["content"]["application/json"].is_object(),
            "{checkpoint}"
        );
        let key = &doc["paths"]["/lockchain/public-key"]["get"]["responses"]["200"];
        assert!(key["content"]["text/plain"].is_object(), "{key}");
    }

    /// The checkpoint is JSON unless the client names text/plain before application/json.
    #[test]
    fn the_checkpoint_is_text_only_when_asked_for_first() {
        let with = |accept: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, accept.parse().unwrap());
            wants_text(&h)
        };
        assert!(!wants_text(&HeaderMap::new()));
        assert!(with("text/plain"));
        assert!(with("Text/Plain; charset=utf-8"));
        assert!(with("text/html, text/plain;q=0.5, application/json"));
        assert!(!with("application/json, text/plain"));
        assert!(!with("*/*"));
    }

    /// A request that takes longer than the limit is answered `deadline_exceeded` (408).
    #[tokio::test]
    async fn a_request_over_the_time_limit_gets_deadline_exceeded() {
        let app: Router = Router::new()
            .route("/slow", axum::routing::get(std::future::pending::<()>))
            .layer(axum::middleware::from_fn_with_state(
                std::time::Duration::from_millis(20),
                timeout,
            ));
        let req = axum::http::Request::builder()
            .uri("/slow")
            .body(Body::empty())
            .unwrap();
        let res = app.oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::REQUEST_TIMEOUT);
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body["error"]["code"], "deadline_exceeded");
        assert_eq!(body["error"]["details"]["limit_ms"], 20);
    }
}
