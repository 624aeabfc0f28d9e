//! Where a command's engine is: in this process, on the data directory (`Local`), or a
//! running `knhk serve` reached over its REST API (`Remote`, with `--server URL`). Both give
//! the commands the same calls with the engine's own view types, so that the commands print
//! the same whichever it is.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use knhk_api::lockchain::{
    Checkpoint as ApiCheckpoint, ConsistencyProof as ApiConsistency, Receipt as ApiReceipt,
};
use knhk_api::types as api;
use knhk_core::model::Allocation;
use knhk_core::{CaseId, CaseStatus, Event, TaskRef, Timestamp, Wait, WorkItemId, Workflow};
use knhk_core::{WorkItemState, WorkflowId};
use knhk_workflow_engine::{
    CaseQuery, CaseUpdate, CaseView, Error as EngineError, ItemCursor, MarkedCondition,
    QuarantinedCase, Registration, SourceFormat, WorkItemQuery, WorkItemStatus, WorkItemView,
    WorkflowEngine, WorkflowSummary, WorkflowView,
};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

/// The engine a command works with.
#[derive(Debug)]
pub(crate) enum Backend {
    /// The engine in this process, on the data directory's store.
    Local(WorkflowEngine),
    /// A `knhk serve` over REST.
    Remote(Remote),
}

/// A client of `knhk serve`'s REST API.
#[derive(Debug)]
pub(crate) struct Remote {
    http: reqwest::Client,
    /// The server's base URL, without a trailing `/`.
    base: String,
    /// The administrators' role the command line names (the server's own is not asked).
    admin_role: String,
    /// The most bytes of a definition file sent to the server.
    max_definition_bytes: usize,
    /// The most items asked for in one page: [`MAX_PAGE`], or less once the server has said
    /// that its pages hold fewer.
    max_page: std::sync::atomic::AtomicUsize,
}

/// An error the server answered with: its code (the API's vocabulary) and message.
#[derive(Debug)]
pub(crate) struct RemoteError {
    pub(crate) code: String,
    pub(crate) message: String,
    /// The bound passed, when the error is about one (`details.limit`).
    limit: Option<u64>,
    /// The state of a work item that refused a step (`details.state`).
    pub(crate) state: Option<String>,
}

impl std::fmt::Display for RemoteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RemoteError {}

/// The most items or events asked for in one request (the server's default page cap).
const MAX_PAGE: usize = 1000;

/// Returns whether an error says that what was asked for does not exist.
pub(crate) fn is_not_found(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<EngineError>()
            .is_some_and(|e| e.code() == knhk_workflow_engine::ErrorCode::NotFound)
            || cause
                .downcast_ref::<RemoteError>()
                .is_some_and(|e| e.code == "not_found")
    })
}

impl Remote {
    /// A client of the server at `url` (`http://HOST:PORT`).
    pub(crate) fn new(
        url: &str,
        admin_role: String,
        max_definition_bytes: usize,
    ) -> anyhow::Result<Remote> {
        let base = url.trim().trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            anyhow::bail!("--server {url:?}: not an http:// or https:// URL");
        }
        // A server that does not take the connection is named soon; an answer may take as
        // long as the server allows a request.
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .context("cannot make the HTTP client")?;
        Ok(Remote {
            http,
            base,
            admin_role,
            max_definition_bytes,
            max_page: std::sync::atomic::AtomicUsize::new(MAX_PAGE),
        })
    }

    pub(crate) fn url(&self) -> &str {
        &self.base
    }

    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> anyhow::Result<T> {
        let bytes = self.send_bytes(request).await?;
        serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "the knhk server at {} answered what this knhk does not read",
                self.base
            )
        })
    }

    /// Sends a request and returns the body of a successful answer; an error answer is a
    /// [`RemoteError`].
    async fn send_bytes(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Vec<u8>> {
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach the knhk server at {}", self.base))?;
        let status = response.status();
        let bytes = response.bytes().await.with_context(|| {
            format!("cannot read the answer of the knhk server at {}", self.base)
        })?;
        if !status.is_success() {
            return Err(match serde_json::from_slice::<api::ErrorBody>(&bytes) {
                Ok(body) => anyhow::Error::new(RemoteError {
                    limit: body.error.details.get("limit").and_then(Value::as_u64),
                    state: body
                        .error
                        .details
                        .get("state")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    code: body.error.code,
                    message: body.error.message,
                }),
                Err(_) => anyhow::anyhow!(
                    "the knhk server at {} answered {status}: {}",
                    self.base,
                    String::from_utf8_lossy(&bytes)
                ),
            });
        }
        Ok(bytes.to_vec())
    }

    /// Reads a `text/plain` answer.
    async fn get_text(&self, path: &str) -> anyhow::Result<String> {
        let bytes = self
            .send_bytes(self.http.get(format!("{}{path}", self.base)))
            .await?;
        String::from_utf8(bytes).with_context(|| {
            format!(
                "the knhk server at {} answered text that is not UTF-8",
                self.base
            )
        })
    }

    async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> anyhow::Result<T> {
        self.send(self.http.get(format!("{}{path}", self.base)).query(query))
            .await
    }

    /// Reads one page of at most `want` items (`field`: the page size's parameter); a server
    /// whose pages hold fewer says its bound, and the page is asked again within it.
    async fn page<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
        field: &'static str,
        want: usize,
    ) -> anyhow::Result<T> {
        use std::sync::atomic::Ordering;
        loop {
            let size = want.min(self.max_page.load(Ordering::Relaxed)).max(1);
            let mut q = query.to_vec();
            q.push((field, size.to_string()));
            match self.get(path, &q).await {
                Err(e) => {
                    let bound = e
                        .downcast_ref::<RemoteError>()
                        .filter(|r| r.code == "invalid_argument")
                        .and_then(|r| r.limit)
                        .and_then(|l| usize::try_from(l).ok())
                        .filter(|l| *l >= 1 && *l < size);
                    match bound {
                        Some(limit) => self.max_page.store(limit, Ordering::Relaxed),
                        None => return Err(e),
                    }
                }
                page => return page,
            }
        }
    }

    async fn post<T: DeserializeOwned>(&self, path: &str, body: Value) -> anyhow::Result<T> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(&body))
            .await
    }

    async fn case_step(&self, case: CaseId, action: &str, body: Value) -> anyhow::Result<CaseView> {
        let c: api::Case = self.post(&format!("/cases/{case}/{action}"), body).await?;
        case_view(c)
    }

    async fn item_step(
        &self,
        item: WorkItemId,
        action: &str,
        body: Value,
    ) -> anyhow::Result<CaseView> {
        let c: api::Case = self
            .post(&format!("/workitems/{item}/{action}"), body)
            .await?;
        case_view(c)
    }

    /// Returns the id a shortened one names (`kind`: `cases` or `workitems`); a whole id is
    /// taken as it is, without asking.
    async fn lookup<T: std::str::FromStr>(&self, arg: &str, kind: &str) -> anyhow::Result<T> {
        if let Ok(id) = arg.parse::<uuid_like::Whole>() {
            return parse("an id", &id.0);
        }
        let found: api::Found = self.get(&format!("/lookup/{kind}/{arg}"), &[]).await?;
        parse("an id", &found.id)
    }

    async fn workflow(&self, id: WorkflowId) -> anyhow::Result<WorkflowView> {
        workflow_view(self.get(&format!("/workflows/{id}"), &[]).await?)
    }

    async fn workflows(&self) -> anyhow::Result<Vec<WorkflowSummary>> {
        let mut all = Vec::new();
        let mut token = None;
        loop {
            let mut query = Vec::new();
            if let Some(t) = token.take() {
                query.push(("page_token", t));
            }
            let page: api::WorkflowPage = self
                .page("/workflows", &query, "page_size", MAX_PAGE)
                .await?;
            for w in page.items {
                all.push(workflow_summary(w)?);
            }
            match page.next_page_token {
                Some(t) => token = Some(t),
                None => return Ok(all),
            }
        }
    }

    /// Finds a workflow as the engine does: an id or a start of one, a URI or name for the
    /// latest version, or `URI@N` / `NAME@N`.
    async fn find_workflow(&self, reference: &str) -> anyhow::Result<WorkflowView> {
        if let Ok(id) = reference.parse::<WorkflowId>() {
            return self.workflow(id).await;
        }
        // The reference (a URI has `/` and `:`) is one path segment, escaped as one.
        let mut url = reqwest::Url::parse(&format!("{}/lookup/workflows", self.base))
            .with_context(|| format!("--server {}: not a URL", self.base))?;
        url.path_segments_mut()
            .map_err(|()| anyhow::anyhow!("--server {}: not a base URL", self.base))?
            .push(reference);
        let found: api::Found = self.send(self.http.get(url)).await?;
        self.workflow(parse("a workflow id", &found.id)?).await
    }

    async fn work_items(&self, query: &WorkItemQuery) -> anyhow::Result<Vec<WorkItemView>> {
        // The first page starts after the item (or its place) the query names, which the
        // server turns into its cursor; the next ones from the tokens it gives.
        let mut after = match query.after {
            None => Vec::new(),
            Some(ItemCursor::At(at, id)) => vec![
                ("after", id.to_string()),
                ("after_offered_at", api::rfc3339(at)),
            ],
            Some(ItemCursor::Item(id)) => vec![("after", id.to_string())],
        };
        let mut token = None;
        let mut left = query.limit.unwrap_or(usize::MAX);
        let mut all = Vec::new();
        while left > 0 {
            let mut q = std::mem::take(&mut after);
            if let Some(role) = &query.role {
                q.push(("role", role.clone()));
            }
            if let Some(user) = &query.owner {
                q.push(("user", user.clone()));
            }
            if let Some(case) = query.case {
                q.push(("case", case.to_string()));
            }
            if let Some(status) = query.status {
                q.push(("status", status.as_str().to_owned()));
            }
            if let Some(t) = token.take() {
                q.push(("page_token", t));
            }
            let page: api::WorkItemPage = self.page("/workitems", &q, "page_size", left).await?;
            left = left.saturating_sub(page.items.len());
            for w in page.items {
                all.push(work_item_view(w)?);
            }
            match page.next_page_token {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        Ok(all)
    }

    async fn cases(&self, query: &CaseQuery) -> anyhow::Result<Vec<CaseView>> {
        let mut after = query.after;
        let mut token = None;
        let mut left = query.limit.unwrap_or(usize::MAX);
        let mut all = Vec::new();
        while left > 0 {
            let mut q = Vec::new();
            if let Some(id) = after.take() {
                q.push(("after", id.to_string()));
            }
            if !query.status.is_empty() {
                let names: Vec<&str> = query.status.iter().map(|s| s.as_str()).collect();
                q.push(("status", names.join(",")));
            }
            if let Some(w) = query.workflow {
                q.push(("workflow", w.to_string()));
            }
            if let Some(t) = token.take() {
                q.push(("page_token", t));
            }
            let page: api::CasePage = self.page("/cases", &q, "page_size", left).await?;
            left = left.saturating_sub(page.items.len());
            for c in page.items {
                all.push(case_view(c)?);
            }
            match page.next_page_token {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        Ok(all)
    }

    async fn history_page(
        &self,
        case: CaseId,
        mut after: u64,
        limit: usize,
    ) -> anyhow::Result<Vec<Event>> {
        let mut events = Vec::new();
        let mut left = limit;
        while left > 0 {
            let q = [("after", after.to_string())];
            let page: api::HistoryPage = self
                .page(&format!("/cases/{case}/history"), &q, "limit", left)
                .await?;
            let n = page.events.len();
            for e in page.events {
                let e = event(e)?;
                after = e.seq;
                events.push(e);
            }
            left = left.saturating_sub(n);
            if page.next_page_token.is_none() || n == 0 {
                break;
            }
        }
        Ok(events)
    }

    async fn register_file(&self, file: &Path) -> anyhow::Result<Registration> {
        let format = SourceFormat::of_path(file).unwrap_or(SourceFormat::Turtle);
        let size = std::fs::metadata(file)
            .with_context(|| format!("cannot read {}", file.display()))?
            .len();
        if usize::try_from(size).is_ok_and(|s| s > self.max_definition_bytes) {
            anyhow::bail!(
                "{}: {size} bytes, more than the {} a definition may have \
                 (--max-definition-bytes)",
                file.display(),
                self.max_definition_bytes
            );
        }
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let content_type = match format {
            SourceFormat::Turtle => "text/turtle",
            SourceFormat::YawlXml => "application/xml",
        };
        let r: api::Registered = self
            .send(
                self.http
                    .post(format!("{}/workflows", self.base))
                    .header(reqwest::header::CONTENT_TYPE, content_type)
                    .body(text),
            )
            .await?;
        Ok(Registration {
            workflow: workflow_view(r.workflow)?,
            already_registered: r.already_registered,
        })
    }
}

mod uuid_like {
    /// A whole UUID as text (36 characters, hyphens at their places).
    pub(super) struct Whole(pub(super) String);

    impl std::str::FromStr for Whole {
        type Err = ();
        fn from_str(s: &str) -> Result<Whole, ()> {
            let whole = s.len() == 36
                && s.char_indices().all(|(i, c)| match i {
                    8 | 13 | 18 | 23 => c == '-',
                    _ => c.is_ascii_hexdigit(),
                });
            if whole {
                Ok(Whole(s.to_owned()))
            } else {
                Err(())
            }
        }
    }
}

/// Reads an RFC 3339 time of the API.
fn timestamp(text: &str) -> anyhow::Result<Timestamp> {
    let t: jiff::Timestamp = text
        .parse()
        .with_context(|| format!("the server sent {text:?} for a time"))?;
    Ok(Timestamp(t.as_millisecond()))
}

fn parse<T: std::str::FromStr>(what: &str, text: &str) -> anyhow::Result<T> {
    text.parse()
        .map_err(|_| anyhow::anyhow!("the server sent {text:?} for {what}"))
}

fn case_view(c: api::Case) -> anyhow::Result<CaseView> {
    Ok(CaseView {
        id: parse("a case id", &c.id)?,
        workflow: parse("a workflow id", &c.workflow_id)?,
        status: case_status(&c.status)?,
        data: c.data,
        marking: c
            .marking
            .into_iter()
            .map(|m| MarkedCondition {
                net_instance: m.net_instance,
                condition: m.condition,
                tokens: m.tokens,
            })
            .collect(),
        version: c.version,
        created_at: timestamp(&c.created_at)?,
        updated_at: timestamp(&c.updated_at)?,
    })
}

fn case_status(s: &str) -> anyhow::Result<CaseStatus> {
    serde_json::from_value(Value::String(s.to_owned()))
        .map_err(|_| anyhow::anyhow!("the server sent {s:?} for a case status"))
}

fn workflow_view(w: api::Workflow) -> anyhow::Result<WorkflowView> {
    Ok(WorkflowView {
        id: parse("a workflow id", &w.id)?,
        uri: w.uri,
        name: w.name,
        version: w.version,
        format: parse("a definition format", &w.format)?,
        tasks: w.tasks,
        source: w.source.unwrap_or_default(),
        registered_at: timestamp(&w.registered_at)?,
    })
}

fn workflow_summary(w: api::Workflow) -> anyhow::Result<WorkflowSummary> {
    Ok(WorkflowSummary {
        id: parse("a workflow id", &w.id)?,
        uri: w.uri,
        name: w.name,
        version: w.version,
        format: parse("a definition format", &w.format)?,
        tasks: w.tasks,
        registered_at: timestamp(&w.registered_at)?,
    })
}

fn work_item_view(w: api::WorkItem) -> anyhow::Result<WorkItemView> {
    Ok(WorkItemView {
        id: parse("a work item id", &w.id)?,
        case: parse("a case id", &w.case_id)?,
        task: TaskRef {
            net_instance: w.net_instance,
            task: w.task.as_str().into(),
        },
        instance: w.instance,
        roles: w.roles,
        allocation: match w.allocation.as_str() {
            "round_robin" => Allocation::RoundRobin,
            "shortest_queue" => Allocation::ShortestQueue,
            _ => Allocation::RoleOffer,
        },
        status: parse::<WorkItemStatus>("a work item state", &w.status)?,
        owner: w.owner,
        input: w.input,
        offered_at: timestamp(&w.offered_at)?,
    })
}

fn event(e: api::CaseEvent) -> anyhow::Result<Event> {
    let mut fields = e.event;
    fields.insert("type".to_owned(), Value::String(e.kind.clone()));
    let kind = serde_json::from_value(Value::Object(fields)).with_context(|| {
        format!(
            "the server sent an event {:?} this knhk does not read",
            e.kind
        )
    })?;
    Ok(Event {
        seq: e.seq,
        time: Timestamp(e.time_ms),
        kind,
    })
}

fn task_ref(task: &str, net_instance: u32) -> TaskRef {
    TaskRef {
        net_instance,
        task: task.into(),
    }
}

fn wait(w: api::CaseWait) -> anyhow::Result<Wait> {
    use api::CaseWait as W;
    Ok(match w {
        W::Start => Wait::Start,
        W::Resume => Wait::Resume,
        W::WorkItem {
            item,
            task,
            net_instance,
            state,
            roles,
            user,
            since,
        } => Wait::WorkItem {
            item: parse("a work item id", &item)?,
            task: task_ref(&task, net_instance),
            state: match state.as_str() {
                "allocated" => WorkItemState::Allocated,
                "started" => WorkItemState::Started,
                "calling" => WorkItemState::Calling,
                _ => WorkItemState::Offered,
            },
            roles,
            user,
            since: timestamp(&since)?,
        },
        W::Call {
            item,
            task,
            net_instance,
            connector,
            idempotency_key,
            since,
        } => Wait::Call {
            item: parse("a work item id", &item)?,
            task: task_ref(&task, net_instance),
            connector,
            idempotency_key,
            since: timestamp(&since)?,
        },
        W::Timer {
            timer,
            task,
            net_instance,
            fires_at,
        } => Wait::Timer {
            timer: parse("a timer id", &timer)?,
            task: task_ref(&task, net_instance),
            fires_at: timestamp(&fires_at)?,
        },
        W::Retry {
            task,
            net_instance,
            reason,
            attempt,
            since,
        } => Wait::Retry {
            task: task_ref(&task, net_instance),
            reason,
            attempt,
            since: timestamp(&since)?,
        },
        W::Trigger {
            task,
            net_instance,
            event,
        } => Wait::Trigger {
            task: task_ref(&task, net_instance),
            event,
        },
    })
}

impl Backend {
    /// The engine in this process, for the commands that need it (`run`, `worker`, `store
    /// check`).
    pub(crate) fn local(&self, command: &str) -> anyhow::Result<&WorkflowEngine> {
        match self {
            Backend::Local(engine) => Ok(engine),
            Backend::Remote(_) => Err(anyhow::anyhow!(
                "`knhk {command}` runs the engine in this process and does not take --server \
                 (or KNHK_SERVER): run it on the data directory"
            )),
        }
    }

    /// Subscribes to the commits of the engine in this process; `None` for a server, whose
    /// steps are read back after they are answered.
    pub(crate) fn subscribe(&self) -> Option<broadcast::Receiver<CaseUpdate>> {
        match self {
            Backend::Local(engine) => Some(engine.subscribe()),
            Backend::Remote(_) => None,
        }
    }

    pub(crate) fn admin_role(&self) -> &str {
        match self {
            Backend::Local(engine) => engine.admin_role(),
            Backend::Remote(r) => &r.admin_role,
        }
    }

    pub(crate) async fn case(&self, id: CaseId) -> anyhow::Result<CaseView> {
        match self {
            Backend::Local(engine) => Ok(engine.case(id).await?),
            Backend::Remote(r) => case_view(r.get(&format!("/cases/{id}"), &[]).await?),
        }
    }

    pub(crate) async fn cases(&self, query: &CaseQuery) -> anyhow::Result<Vec<CaseView>> {
        match self {
            Backend::Local(engine) => Ok(engine.cases(query).await?),
            Backend::Remote(r) => r.cases(query).await,
        }
    }

    /// The quarantined cases: set aside because their stored data does not load.
    pub(crate) async fn quarantined(&self) -> anyhow::Result<Vec<QuarantinedCase>> {
        match self {
            Backend::Local(engine) => Ok(engine.quarantined().await?),
            Backend::Remote(r) => {
                let q: api::Quarantine = r.get("/quarantine", &[]).await?;
                q.items
                    .into_iter()
                    .map(|q| {
                        Ok(QuarantinedCase {
                            id: parse("a case id", &q.case_id)?,
                            reason: q.reason,
                            at: timestamp(&q.quarantined_at)?,
                        })
                    })
                    .collect()
            }
        }
    }

    pub(crate) async fn workflow(&self, id: WorkflowId) -> anyhow::Result<WorkflowView> {
        match self {
            Backend::Local(engine) => Ok(engine.workflow(id).await?),
            Backend::Remote(r) => r.workflow(id).await,
        }
    }

    pub(crate) async fn workflows(&self) -> anyhow::Result<Vec<WorkflowSummary>> {
        match self {
            Backend::Local(engine) => Ok(engine.workflows().await?),
            Backend::Remote(r) => r.workflows().await,
        }
    }

    pub(crate) async fn find_workflow(&self, reference: &str) -> anyhow::Result<WorkflowView> {
        match self {
            Backend::Local(engine) => Ok(engine.find_workflow(reference).await?),
            Backend::Remote(r) => r.find_workflow(reference).await,
        }
    }

    pub(crate) async fn definition(&self, id: WorkflowId) -> anyhow::Result<Arc<Workflow>> {
        match self {
            Backend::Local(engine) => Ok(engine.definition(id).await?),
            Backend::Remote(r) => {
                let spec: knhk_core::Specification =
                    r.get(&format!("/workflows/{id}/spec"), &[]).await?;
                Ok(Arc::new(Workflow::new(spec).map_err(|e| {
                    anyhow::anyhow!("the server sent a specification that does not load: {e}")
                })?))
            }
        }
    }

    pub(crate) async fn register_file(&self, file: &Path) -> anyhow::Result<Registration> {
        match self {
            Backend::Local(engine) => Ok(engine.register_file(file).await?),
            Backend::Remote(r) => r.register_file(file).await,
        }
    }

    pub(crate) async fn resolve_case(&self, arg: &str) -> anyhow::Result<CaseId> {
        match self {
            Backend::Local(engine) => Ok(engine.resolve_case(arg).await?),
            Backend::Remote(r) => r.lookup(arg, "cases").await,
        }
    }

    pub(crate) async fn resolve_work_item(&self, arg: &str) -> anyhow::Result<WorkItemId> {
        match self {
            Backend::Local(engine) => Ok(engine.resolve_work_item(arg).await?),
            Backend::Remote(r) => r.lookup(arg, "workitems").await,
        }
    }

    pub(crate) async fn waits(&self, id: CaseId) -> anyhow::Result<Vec<Wait>> {
        match self {
            Backend::Local(engine) => Ok(engine.waits(id).await?),
            Backend::Remote(r) => {
                let waits: api::CaseWaits = r.get(&format!("/cases/{id}/waits"), &[]).await?;
                waits.waits.into_iter().map(wait).collect()
            }
        }
    }

    pub(crate) async fn history_page(
        &self,
        id: CaseId,
        after: u64,
        limit: usize,
    ) -> anyhow::Result<Vec<Event>> {
        match self {
            Backend::Local(engine) => Ok(engine.history_page(id, after, limit).await?),
            Backend::Remote(r) => r.history_page(id, after, limit).await,
        }
    }

    pub(crate) async fn work_items(
        &self,
        query: &WorkItemQuery,
    ) -> anyhow::Result<Vec<WorkItemView>> {
        match self {
            Backend::Local(engine) => Ok(engine.work_items(query).await?),
            Backend::Remote(r) => r.work_items(query).await,
        }
    }

    pub(crate) async fn work_item(&self, id: WorkItemId) -> anyhow::Result<WorkItemView> {
        match self {
            Backend::Local(engine) => Ok(engine.work_item(id).await?),
            Backend::Remote(r) => work_item_view(r.get(&format!("/workitems/{id}"), &[]).await?),
        }
    }

    pub(crate) async fn create_case(
        &self,
        workflow: WorkflowId,
        data: Value,
        start: bool,
    ) -> anyhow::Result<CaseView> {
        match self {
            Backend::Local(engine) => Ok(engine.create_case(workflow, data, start).await?),
            Backend::Remote(r) => {
                let body = json!({
                    "workflow_id": workflow.to_string(),
                    "data": data,
                    "start": start,
                });
                case_view(r.post("/cases", body).await?)
            }
        }
    }

    pub(crate) async fn execute(&self, case: CaseId) -> anyhow::Result<CaseView> {
        match self {
            Backend::Local(engine) => Ok(engine.execute(case).await?),
            Backend::Remote(r) => r.case_step(case, "execute", json!({})).await,
        }
    }

    pub(crate) async fn cancel(&self, case: CaseId, reason: &str) -> anyhow::Result<CaseView> {
        match self {
            Backend::Local(engine) => Ok(engine.cancel(case, reason).await?),
            Backend::Remote(r) => {
                r.case_step(case, "cancel", json!({ "reason": reason }))
                    .await
            }
        }
    }

    pub(crate) async fn suspend(&self, case: CaseId) -> anyhow::Result<CaseView> {
        match self {
            Backend::Local(engine) => Ok(engine.suspend(case).await?),
            Backend::Remote(r) => r.case_step(case, "suspend", json!({})).await,
        }
    }

    /// Takes a repaired case out of the quarantine, once it loads and replays to its row.
    pub(crate) async fn release_case(&self, case: CaseId) -> anyhow::Result<CaseView> {
        match self {
            Backend::Local(engine) => Ok(engine.release_case(case).await?),
            Backend::Remote(r) => r.case_step(case, "release", json!({})).await,
        }
    }

    pub(crate) async fn resume(&self, case: CaseId) -> anyhow::Result<CaseView> {
        match self {
            Backend::Local(engine) => Ok(engine.resume(case).await?),
            Backend::Remote(r) => r.case_step(case, "resume", json!({})).await,
        }
    }

    pub(crate) async fn trigger(
        &self,
        case: CaseId,
        event: &str,
        data: Value,
    ) -> anyhow::Result<CaseView> {
        match self {
            Backend::Local(engine) => Ok(engine.trigger(case, event, data).await?),
            Backend::Remote(r) => {
                // The event's name is one path segment, escaped as one.
                let mut url = reqwest::Url::parse(&format!("{}/cases/{case}/triggers", r.base))
                    .with_context(|| format!("--server {}: not a URL", r.base))?;
                url.path_segments_mut()
                    .map_err(|()| anyhow::anyhow!("--server {}: not a base URL", r.base))?
                    .push(event);
                let c: api::Case = r
                    .send(r.http.post(url).json(&json!({ "data": data })))
                    .await?;
                case_view(c)
            }
        }
    }

    pub(crate) async fn retry_case(
        &self,
        case: CaseId,
        task: Option<TaskRef>,
    ) -> anyhow::Result<CaseView> {
        match self {
            Backend::Local(engine) => Ok(engine.retry_case(case, task).await?),
            Backend::Remote(r) => {
                let body = match task {
                    Some(t) => json!({ "task": t.task.as_str(), "net_instance": t.net_instance }),
                    None => json!({}),
                };
                r.case_step(case, "retry", body).await
            }
        }
    }

    pub(crate) async fn add_instance(
        &self,
        case: CaseId,
        task: TaskRef,
        item: Value,
    ) -> anyhow::Result<CaseView> {
        match self {
            Backend::Local(engine) => Ok(engine.add_instance(case, task, item).await?),
            Backend::Remote(r) => {
                let body = json!({
                    "task": task.task.as_str(),
                    "net_instance": task.net_instance,
                    "item": item,
                });
                r.case_step(case, "instances", body).await
            }
        }
    }

    pub(crate) async fn complete_task(
        &self,
        case: CaseId,
        task: TaskRef,
    ) -> anyhow::Result<CaseView> {
        match self {
            Backend::Local(engine) => Ok(engine.complete_task(case, task).await?),
            Backend::Remote(r) => {
                let body = json!({ "task": task.task.as_str(), "net_instance": task.net_instance });
                r.case_step(case, "complete-task", body).await
            }
        }
    }

    pub(crate) async fn update_data(
        &self,
        case: CaseId,
        changes: Map<String, Value>,
    ) -> anyhow::Result<CaseView> {
        match self {
            Backend::Local(engine) => Ok(engine.update_data(case, changes).await?),
            Backend::Remote(r) => r.case_step(case, "data", json!({ "data": changes })).await,
        }
    }

    pub(crate) async fn claim(&self, item: WorkItemId, user: &str) -> anyhow::Result<CaseView> {
        match self {
            Backend::Local(engine) => Ok(engine.claim(item, user).await?),
            Backend::Remote(r) => r.item_step(item, "claim", json!({ "user": user })).await,
        }
    }

    pub(crate) async fn start_work_item(
        &self,
        item: WorkItemId,
        user: &str,
    ) -> anyhow::Result<CaseView> {
        match self {
            Backend::Local(engine) => Ok(engine.start_work_item(item, user).await?),
            Backend::Remote(r) => r.item_step(item, "start", json!({ "user": user })).await,
        }
    }

    pub(crate) async fn release_work_item(
        &self,
        item: WorkItemId,
        user: &str,
    ) -> anyhow::Result<CaseView> {
        match self {
            Backend::Local(engine) => Ok(engine.release_work_item(item, user).await?),
            Backend::Remote(r) => r.item_step(item, "release", json!({ "user": user })).await,
        }
    }

    pub(crate) async fn delegate_work_item(
        &self,
        item: WorkItemId,
        user: &str,
        to: &str,
    ) -> anyhow::Result<CaseView> {
        match self {
            Backend::Local(engine) => Ok(engine.delegate_work_item(item, user, to).await?),
            Backend::Remote(r) => {
                r.item_step(item, "delegate", json!({ "user": user, "to": to }))
                    .await
            }
        }
    }

    pub(crate) async fn offer_work_item(
        &self,
        item: WorkItemId,
        roles: Vec<String>,
        by: &str,
    ) -> anyhow::Result<CaseView> {
        match self {
            Backend::Local(engine) => Ok(engine.offer_work_item(item, roles, by).await?),
            Backend::Remote(r) => {
                r.item_step(item, "offer", json!({ "user": by, "roles": roles }))
                    .await
            }
        }
    }

    pub(crate) async fn allocate_work_item(
        &self,
        item: WorkItemId,
        to: &str,
        by: &str,
    ) -> anyhow::Result<CaseView> {
        match self {
            Backend::Local(engine) => Ok(engine.allocate_work_item(item, to, by).await?),
            Backend::Remote(r) => {
                r.item_step(item, "allocate", json!({ "user": by, "to": to }))
                    .await
            }
        }
    }

    pub(crate) async fn fail_work_item(
        &self,
        item: WorkItemId,
        user: &str,
        reason: &str,
    ) -> anyhow::Result<CaseView> {
        match self {
            Backend::Local(engine) => Ok(engine.fail_work_item(item, user, reason).await?),
            Backend::Remote(r) => {
                r.item_step(item, "fail", json!({ "user": user, "reason": reason }))
                    .await
            }
        }
    }

    pub(crate) async fn complete_work_item(
        &self,
        item: WorkItemId,
        user: &str,
        output: Value,
    ) -> anyhow::Result<CaseView> {
        match self {
            Backend::Local(engine) => Ok(engine.complete_work_item(item, user, output).await?),
            Backend::Remote(r) => {
                r.item_step(item, "complete", json!({ "user": user, "output": output }))
                    .await
            }
        }
    }

    /// The receipt of event `seq` of `case`, in the form `verify-receipt` reads.
    pub(crate) async fn receipt(&self, case: CaseId, seq: u64) -> anyhow::Result<ApiReceipt> {
        match self {
            Backend::Local(engine) => Ok(ApiReceipt::of(&engine.receipt(case, seq).await?)),
            Backend::Remote(r) => {
                r.get(&format!("/cases/{case}/events/{seq}/receipt"), &[])
                    .await
            }
        }
    }

    /// The consistency proof between the stored checkpoints of sizes `from` and `to` (the
    /// latest when `None`), in the form `verify-consistency` reads.
    pub(crate) async fn consistency_proof(
        &self,
        from: u64,
        to: Option<u64>,
    ) -> anyhow::Result<ApiConsistency> {
        match self {
            Backend::Local(engine) => Ok(ApiConsistency::of(
                &engine.consistency_proof(from, to).await?,
            )),
            Backend::Remote(r) => {
                let mut query = vec![("from", from.to_string())];
                if let Some(to) = to {
                    query.push(("to", to.to_string()));
                }
                r.get("/lockchain/consistency", &query).await
            }
        }
    }

    /// The latest signed checkpoint; an error saying so when none was taken yet.
    pub(crate) async fn latest_checkpoint(&self) -> anyhow::Result<ApiCheckpoint> {
        match self {
            Backend::Local(engine) => match engine.latest_checkpoint().await? {
                Some(c) => Ok(ApiCheckpoint::of(&c)),
                None => Err(anyhow::anyhow!(knhk_api::lockchain::NO_CHECKPOINT)),
            },
            Backend::Remote(r) => r.get("/lockchain/checkpoint", &[]).await,
        }
    }

    /// The verifier key of the log's checkpoints.
    pub(crate) async fn lockchain_public_key(&self) -> anyhow::Result<String> {
        match self {
            Backend::Local(engine) => Ok(engine.lockchain_public_key()?),
            Backend::Remote(r) => Ok(r
                .get_text("/lockchain/public-key")
                .await?
                .trim_end()
                .to_owned()),
        }
    }

    /// Stops what the engine in this process spawned; nothing for a server.
    pub(crate) async fn shutdown(&self) {
        if let Backend::Local(engine) = self {
            engine.shutdown().await;
        }
    }
}
