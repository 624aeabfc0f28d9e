//! The one service layer: every operation of the API as a typed call over the engine, with
//! the API's error vocabulary. REST calls these; a gRPC front calls the same ones, so the two
//! cannot drift. Nothing here knows HTTP.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use knhk_core::{CaseId, CaseStatus, Timestamp, WorkItemId, WorkflowId};
use knhk_workflow_engine::{
    CaseQuery, ErrorCode, ItemCursor, SourceFormat, WorkItemQuery, WorkflowEngine, WorkflowSummary,
};
use serde_json::Value;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::error::{ApiError, Code};
use crate::json;
use crate::types::{
    AddInstance, Case, CaseEvent, CaseFilter, CasePage, CaseWait, CaseWaits, CompleteTask,
    CreateCase, Found, HistoryPage, Registered, RetryCase, WorkItem, WorkItemFilter, WorkItemPage,
    Workflow, WorkflowPage,
};

/// The bounds every entry point enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest request body, in bytes.
    pub max_body_bytes: usize,
    /// The deepest nesting of arrays and objects in a JSON body (at most 128).
    pub max_json_depth: usize,
    /// The most items or events one page holds; a larger `page_size`/`limit` is refused.
    pub max_page_size: usize,
    /// The page size when none is asked for.
    pub default_page_size: usize,
    /// How long one request may take before it is answered with `deadline_exceeded`.
    pub request_timeout: Duration,
    /// How often an open watch reads its case again. Steps this process commits reach a watch
    /// at once; steps that other processes sharing the store commit (several nodes on one
    /// store) are seen at the next read.
    pub watch_poll: Duration,
}

/// The longest a probe of one connector instance may take in `GET /connectors`.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_body_bytes: 4 * 1024 * 1024,
            max_json_depth: 64,
            max_page_size: 1000,
            default_page_size: 100,
            request_timeout: Duration::from_secs(30),
            watch_poll: Duration::from_secs(1),
        }
    }
}

/// The API over one engine.
#[derive(Debug)]
pub struct Service {
    engine: WorkflowEngine,
    limits: Limits,
    /// Set once the engine has started (recovery done); cleared when shutting down.
    ready: AtomicBool,
    /// Cancelled when the server stops: open watches end.
    stopping: CancellationToken,
}

/// How a case was made by [`Service::create_case`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Made {
    /// A new case.
    New,
    /// The case an earlier request with the same idempotency key made.
    Replayed,
}

/// What a watch sends: the events of the case, then its end.
#[derive(Clone, Debug, PartialEq)]
pub enum Watched {
    Event(CaseEvent),
    /// The case ended (or the server is stopping: `stopping` is true); nothing follows.
    End {
        status: String,
        stopping: bool,
    },
}

impl Service {
    pub fn new(engine: WorkflowEngine, limits: Limits) -> Arc<Service> {
        Arc::new(Service {
            engine,
            limits,
            ready: AtomicBool::new(false),
            stopping: CancellationToken::new(),
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn engine(&self) -> &WorkflowEngine {
        &self.engine
    }

    /// Says that the engine has started (recovery done): `/ready` answers ready.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// Starts stopping: not ready any more, and every open watch ends.
    pub fn stop(&self) {
        self.set_ready(false);
        self.stopping.cancel();
    }

    /// Whether the process answers at all.
    pub fn health(&self) -> &'static str {
        "ok"
    }

    /// Whether the server takes work: the engine started and the store answers a read.
    pub async fn ready(&self) -> Result<&'static str, ApiError> {
        if !self.ready.load(Ordering::SeqCst) {
            return Err(ApiError::new(
                Code::Unavailable,
                "not ready: the engine is starting or stopping",
            ));
        }
        self.engine
            .cases(&CaseQuery {
                limit: Some(1),
                ..CaseQuery::default()
            })
            .await?;
        Ok("ready")
    }

    /// Registers a definition given as text in `format`.
    pub async fn register_workflow(
        &self,
        format: SourceFormat,
        text: &str,
    ) -> Result<Registered, ApiError> {
        // A definition without a specification URI is known by its file's IRI: here a digest
        // of its text, so that each such definition is a workflow of its own.
        let digest = json::fingerprint(&Value::String(text.to_owned()));
        let digest = digest.get(..16).unwrap_or(&digest);
        let name = match format {
            SourceFormat::Turtle => format!("api-{digest}.ttl"),
            SourceFormat::YawlXml => format!("api-{digest}.yawl"),
        };
        let r = match self.engine.register_workflow(&name, format, text).await {
            Ok(r) => r,
            Err(e) if e.code() == ErrorCode::InvalidArgument => {
                return Err(ApiError::from(e).with("field", "body"));
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Registered {
            workflow: Workflow::of(&r.workflow, false),
            already_registered: r.already_registered,
        })
    }

    /// Lists the registered workflows without their sources (read without them), after the
    /// workflow a page token or `after` (a workflow id) names.
    pub async fn list_workflows(
        &self,
        page_token: Option<&str>,
        after: Option<&str>,
        page_size: Option<usize>,
    ) -> Result<WorkflowPage, ApiError> {
        let size = self.page_size(page_size, "page_size")?;
        let after = match (page_token, after) {
            (Some(_), Some(_)) => return Err(token_and_after()),
            (Some(t), None) => Some((WorkflowId(token::decode(t, 'w')?), "page_token")),
            (None, Some(a)) => Some((WorkflowId(parse_uuid("after", a)?), "after")),
            (None, None) => None,
        };
        let all = self.engine.workflows().await?;
        let start = match after {
            Some((id, field)) => all
                .iter()
                .position(|w| w.id == id)
                .map(|i| i + 1)
                .ok_or_else(|| match field {
                    "after" => ApiError::from(knhk_workflow_engine::Error::UnknownWorkflow(id))
                        .with("field", "after"),
                    _ => stale_token(),
                })?,
            None => 0,
        };
        let rest = all.get(start..).unwrap_or_default();
        let items: Vec<&WorkflowSummary> = rest.iter().take(size).collect();
        let next = (rest.len() > size)
            .then(|| items.last().map(|w| token::encode('w', w.id.0)))
            .flatten();
        Ok(WorkflowPage {
            items: items.iter().map(|w| Workflow::summary(w)).collect(),
            next_page_token: next,
        })
    }

    pub async fn get_workflow(&self, id: &str) -> Result<Workflow, ApiError> {
        let id = WorkflowId(parse_uuid("id", id)?);
        Ok(Workflow::of(&self.engine.workflow(id).await?, true))
    }

    /// The validated specification of a registered workflow (its nets, tasks and flows), as
    /// the engine holds it: what `knhk workflow show --json` prints as `spec`.
    pub async fn workflow_spec(&self, id: &str) -> Result<Value, ApiError> {
        let id = WorkflowId(parse_uuid("id", id)?);
        let definition = self.engine.definition(id).await?;
        serde_json::to_value(definition.specification()).map_err(|e| {
            ApiError::new(
                Code::Internal,
                format!("cannot encode the specification: {e}"),
            )
        })
    }

    /// Creates a case; with an idempotency key, the same key and request give the same case
    /// and the same key with another request is refused with `idempotency_key_reused`.
    pub async fn create_case(
        &self,
        request: CreateCase,
        idempotency_key: Option<&str>,
    ) -> Result<(Case, Made), ApiError> {
        let Some(key) = idempotency_key else {
            let workflow = self.find_workflow(&request.workflow_id).await?;
            let data = Value::Object(request.data);
            let case = self
                .engine
                .create_case(workflow, data, request.start)
                .await
                .map_err(creation_error)?;
            return Ok((Case::of(&case), Made::New));
        };
        check_key(key)?;
        let fingerprint = json::fingerprint(&serde_json::to_value(&request).map_err(|e| {
            ApiError::new(Code::Internal, format!("cannot encode the request: {e}"))
        })?);
        // Twice at most: a concurrent request with the same key may store it between our
        // look and our commit, which then fails whole; its case is the answer.
        for _ in 0..2 {
            if let Some(made) = self.engine.keyed_case(key).await? {
                if made.fingerprint != fingerprint {
                    return Err(ApiError::new(
                        Code::IdempotencyKeyReused,
                        format!(
                            "the idempotency key {key:?} was used for another request (case {}); \
                             a key names one request",
                            made.case
                        ),
                    )
                    .with("field", "Idempotency-Key")
                    .with("case_id", made.case.to_string()));
                }
                let case = self.engine.case(made.case).await?;
                return Ok((Case::of(&case), Made::Replayed));
            }
            let workflow = self.find_workflow(&request.workflow_id).await?;
            let data = Value::Object(request.data.clone());
            match self
                .engine
                .create_case_keyed(workflow, data, request.start, key, &fingerprint)
                .await
            {
                Ok(case) => return Ok((Case::of(&case), Made::New)),
                Err(e) if e.code() == ErrorCode::AlreadyExists => continue,
                Err(e) => return Err(creation_error(e)),
            }
        }
        Err(ApiError::new(
            Code::Aborted,
            format!("the idempotency key {key:?} is being used concurrently; try again"),
        ))
    }

    /// Returns the workflow a reference names, saying which field named it.
    async fn find_workflow(&self, reference: &str) -> Result<WorkflowId, ApiError> {
        // A whole id is taken as it is: creating the case finds (or refuses) it, from the
        // engine's cache of loaded definitions rather than a read of its stored row.
        if let Ok(id) = reference.parse::<WorkflowId>() {
            return Ok(id);
        }
        match self.engine.resolve_workflow(reference).await {
            Ok(w) => Ok(w.id),
            Err(e) => Err(ApiError::from(e).with("field", "workflow_id")),
        }
    }

    pub async fn list_cases(&self, filter: CaseFilter) -> Result<CasePage, ApiError> {
        let size = self.page_size(filter.page_size, "page_size")?;
        let workflow = match &filter.workflow {
            Some(w) => Some(match self.engine.resolve_workflow(w).await {
                Ok(w) => w.id,
                Err(e) => return Err(ApiError::from(e).with("field", "workflow")),
            }),
            None => None,
        };
        let after = match (&filter.page_token, &filter.after) {
            (Some(_), Some(_)) => return Err(token_and_after()),
            (Some(t), None) => Some(CaseId(token::decode(t, 'c')?)),
            (None, Some(a)) => Some(CaseId(parse_uuid("after", a)?)),
            (None, None) => None,
        };
        let mut cases = self
            .engine
            .cases(&CaseQuery {
                status: filter.status,
                workflow,
                limit: Some(size + 1),
                after,
            })
            .await?;
        let more = cases.len() > size;
        cases.truncate(size);
        let next = more
            .then(|| cases.last().map(|c| token::encode('c', c.id.0)))
            .flatten();
        Ok(CasePage {
            items: cases.iter().map(Case::of).collect(),
            next_page_token: next,
        })
    }

    pub async fn get_case(&self, id: &str) -> Result<Case, ApiError> {
        let id = case_id(id)?;
        Ok(Case::of(&self.engine.case(id).await?))
    }

    pub async fn execute(&self, id: &str) -> Result<Case, ApiError> {
        let id = case_id(id)?;
        Ok(Case::of(&self.engine.execute(id).await?))
    }

    pub async fn cancel(&self, id: &str, reason: Option<&str>) -> Result<Case, ApiError> {
        let id = case_id(id)?;
        let reason = reason.unwrap_or("cancelled through the API");
        Ok(Case::of(&self.engine.cancel(id, reason).await?))
    }

    pub async fn suspend(&self, id: &str) -> Result<Case, ApiError> {
        let id = case_id(id)?;
        Ok(Case::of(&self.engine.suspend(id).await?))
    }

    pub async fn resume(&self, id: &str) -> Result<Case, ApiError> {
        let id = case_id(id)?;
        Ok(Case::of(&self.engine.resume(id).await?))
    }

    pub async fn trigger(
        &self,
        id: &str,
        event: &str,
        data: serde_json::Map<String, Value>,
    ) -> Result<Case, ApiError> {
        let id = case_id(id)?;
        if event.trim().is_empty() {
            return Err(ApiError::invalid("event", "event: the event name is empty"));
        }
        Ok(Case::of(
            &self.engine.trigger(id, event, Value::Object(data)).await?,
        ))
    }

    /// What a case waits for: its work items, connector calls, timers, triggers and
    /// incidents, in the engine's order.
    pub async fn waits(&self, id: &str) -> Result<CaseWaits, ApiError> {
        let id = case_id(id)?;
        let waits = self.engine.waits(id).await?;
        Ok(CaseWaits {
            waits: waits.iter().map(CaseWait::of).collect(),
        })
    }

    /// A page of a case's history: the events after `after` (a sequence number) or after
    /// the page a token ends.
    pub async fn history(
        &self,
        id: &str,
        after: Option<u64>,
        page_token: Option<&str>,
        limit: Option<usize>,
    ) -> Result<HistoryPage, ApiError> {
        let id = case_id(id)?;
        let size = self.page_size(limit, "limit")?;
        let after = match (after, page_token) {
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid(
                    "page_token",
                    "give either after or page_token, not both",
                ));
            }
            (Some(a), None) => a,
            (None, Some(t)) => token::decode_seq(t)?,
            (None, None) => 0,
        };
        let mut events = self.engine.history_page(id, after, size + 1).await?;
        let more = events.len() > size;
        events.truncate(size);
        let next = more
            .then(|| events.last().map(|e| token::encode_seq(e.seq)))
            .flatten();
        Ok(HistoryPage {
            events: events.iter().map(CaseEvent::of).collect(),
            next_page_token: next,
        })
    }

    /// Watches a case: its history after `after` (0: all of it), then every new event until
    /// the case ends (or the server stops, or the receiver is dropped).
    pub async fn watch(
        self: &Arc<Self>,
        id: &str,
        after: u64,
    ) -> Result<mpsc::Receiver<Result<Watched, ApiError>>, ApiError> {
        let id = case_id(id)?;
        // Subscribed before the first read: no step falls between the two.
        let updates = self.engine.subscribe();
        let first = self.engine.case(id).await?;
        let (tx, rx) = mpsc::channel(64);
        let service = Arc::clone(self);
        tokio::spawn(async move {
            let result = service
                .watch_loop(id, after, first.status, updates, &tx)
                .await;
            if let Err(e) = result {
                let _ = tx.send(Err(e)).await;
            }
        });
        Ok(rx)
    }

    async fn watch_loop(
        &self,
        id: CaseId,
        mut last: u64,
        mut status: CaseStatus,
        mut updates: broadcast::Receiver<knhk_workflow_engine::CaseUpdate>,
        tx: &mpsc::Sender<Result<Watched, ApiError>>,
    ) -> Result<(), ApiError> {
        let every = self.limits.watch_poll;
        let mut poll = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            for e in self.engine.events(id, last).await? {
                last = e.seq;
                if tx
                    .send(Ok(Watched::Event(CaseEvent::of(&e))))
                    .await
                    .is_err()
                {
                    return Ok(());
                }
            }
            if status.is_final() {
                let end = Watched::End {
                    status: status.as_str().to_owned(),
                    stopping: false,
                };
                let _ = tx.send(Ok(end)).await;
                return Ok(());
            }
            // Wait for a step of this case (or for missed steps: read again).
            loop {
                tokio::select! {
                    () = self.stopping.cancelled() => {
                        let end = Watched::End { status: status.as_str().to_owned(), stopping: true };
                        let _ = tx.send(Ok(end)).await;
                        return Ok(());
                    }
                    () = tx.closed() => return Ok(()),
                    // Another process sharing the store may have moved the case.
                    _ = poll.tick() => {
                        status = self.engine.case(id).await?.status;
                        break;
                    }
                    update = updates.recv() => match update {
                        Ok(u) if u.case == id => {
                            status = u.status;
                            break;
                        }
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            status = self.engine.case(id).await?.status;
                            break;
                        }
                        Err(broadcast::error::RecvError::Closed) => return Ok(()),
                    }
                }
            }
        }
    }

    pub async fn list_work_items(&self, filter: WorkItemFilter) -> Result<WorkItemPage, ApiError> {
        let size = self.page_size(filter.page_size, "page_size")?;
        // A page read from the store's index, after the place (offer time, id) of the last
        // item of the page before, which holds even once that item is gone; one more item
        // than the page says whether another page follows. `after` names a live item, or,
        // with its offer time, a place.
        let after = match (&filter.page_token, &filter.after, &filter.after_offered_at) {
            (Some(_), Some(_), _) => return Err(token_and_after()),
            (_, None, Some(_)) => {
                return Err(ApiError::invalid(
                    "after_offered_at",
                    "after_offered_at: only with after (the id of the item offered then)",
                ));
            }
            (Some(t), None, None) => {
                let (at, id) = token::decode_at(t)?;
                Some(ItemCursor::At(Timestamp(at), WorkItemId(id)))
            }
            (None, Some(a), None) => Some(ItemCursor::Item(WorkItemId(parse_uuid("after", a)?))),
            (None, Some(a), Some(t)) => Some(ItemCursor::At(
                parse_time("after_offered_at", t)?,
                WorkItemId(parse_uuid("after", a)?),
            )),
            (None, None, None) => None,
        };
        let page = self
            .engine
            .work_items(&WorkItemQuery {
                role: filter.role,
                case: filter.case,
                owner: filter.user,
                status: filter.status,
                after,
                limit: Some(size.saturating_add(1)),
            })
            .await?;
        let items: Vec<_> = page.iter().take(size).collect();
        let next = (page.len() > size)
            .then(|| {
                items
                    .last()
                    .map(|w| token::encode_at(w.offered_at.0, w.id.0))
            })
            .flatten();
        Ok(WorkItemPage {
            items: items.iter().map(|w| WorkItem::of(w)).collect(),
            next_page_token: next,
        })
    }

    pub async fn get_work_item(&self, id: &str) -> Result<WorkItem, ApiError> {
        let id = work_item_id(id)?;
        Ok(WorkItem::of(&self.engine.work_item(id).await?))
    }

    pub async fn claim(&self, id: &str, user: &str) -> Result<Case, ApiError> {
        let (id, user) = (work_item_id(id)?, user_of("user", user)?);
        Ok(Case::of(&self.engine.claim(id, user).await?))
    }

    pub async fn start_work_item(&self, id: &str, user: &str) -> Result<Case, ApiError> {
        let (id, user) = (work_item_id(id)?, user_of("user", user)?);
        Ok(Case::of(&self.engine.start_work_item(id, user).await?))
    }

    pub async fn complete_work_item(
        &self,
        id: &str,
        user: &str,
        output: serde_json::Map<String, Value>,
    ) -> Result<Case, ApiError> {
        let (id, user) = (work_item_id(id)?, user_of("user", user)?);
        Ok(Case::of(
            &self
                .engine
                .complete_work_item(id, user, Value::Object(output))
                .await?,
        ))
    }

    pub async fn fail_work_item(
        &self,
        id: &str,
        user: &str,
        reason: Option<&str>,
    ) -> Result<Case, ApiError> {
        let (id, user) = (work_item_id(id)?, user_of("user", user)?);
        let reason = reason.unwrap_or("failed through the API");
        Ok(Case::of(
            &self.engine.fail_work_item(id, user, reason).await?,
        ))
    }

    pub async fn release_work_item(&self, id: &str, user: &str) -> Result<Case, ApiError> {
        let (id, user) = (work_item_id(id)?, user_of("user", user)?);
        Ok(Case::of(&self.engine.release_work_item(id, user).await?))
    }

    pub async fn delegate_work_item(
        &self,
        id: &str,
        user: &str,
        to: &str,
    ) -> Result<Case, ApiError> {
        let (id, user, to) = (
            work_item_id(id)?,
            user_of("user", user)?,
            user_of("to", to)?,
        );
        Ok(Case::of(
            &self.engine.delegate_work_item(id, user, to).await?,
        ))
    }

    pub async fn offer_work_item(
        &self,
        id: &str,
        user: &str,
        roles: Vec<String>,
    ) -> Result<Case, ApiError> {
        let (id, user) = (work_item_id(id)?, user_of("user", user)?);
        if roles.is_empty() || roles.iter().any(|r| r.trim().is_empty()) {
            return Err(ApiError::invalid(
                "roles",
                "roles: name one role at least, none empty",
            ));
        }
        Ok(Case::of(
            &self.engine.offer_work_item(id, roles, user).await?,
        ))
    }

    pub async fn allocate_work_item(
        &self,
        id: &str,
        user: &str,
        to: &str,
    ) -> Result<Case, ApiError> {
        let (id, user, to) = (
            work_item_id(id)?,
            user_of("user", user)?,
            user_of("to", to)?,
        );
        Ok(Case::of(
            &self.engine.allocate_work_item(id, to, user).await?,
        ))
    }

    /// Runs a task that failed its case again (`task`: which one, when several failed).
    pub async fn retry(&self, id: &str, request: RetryCase) -> Result<Case, ApiError> {
        let id = case_id(id)?;
        let task = request.task.map(|t| knhk_core::TaskRef {
            net_instance: request.net_instance,
            task: t.as_str().into(),
        });
        Ok(Case::of(&self.engine.retry_case(id, task).await?))
    }

    /// Sets top-level keys of a case's data.
    pub async fn set_data(
        &self,
        id: &str,
        data: serde_json::Map<String, Value>,
    ) -> Result<Case, ApiError> {
        let id = case_id(id)?;
        Ok(Case::of(&self.engine.update_data(id, data).await?))
    }

    /// Adds an instance to a running dynamic multiple-instance task.
    pub async fn add_instance(&self, id: &str, request: AddInstance) -> Result<Case, ApiError> {
        let id = case_id(id)?;
        let task = knhk_core::TaskRef {
            net_instance: request.net_instance,
            task: request.task.as_str().into(),
        };
        Ok(Case::of(
            &self.engine.add_instance(id, task, request.item).await?,
        ))
    }

    /// Completes a running task now, withdrawing its unfinished instances.
    pub async fn complete_task(&self, id: &str, request: CompleteTask) -> Result<Case, ApiError> {
        let id = case_id(id)?;
        let task = knhk_core::TaskRef {
            net_instance: request.net_instance,
            task: request.task.as_str().into(),
        };
        Ok(Case::of(&self.engine.complete_task(id, task).await?))
    }

    /// Returns the case a shortened id names (a start of its id or of its last group).
    pub async fn lookup_case(&self, prefix: &str) -> Result<Found, ApiError> {
        let id = self.engine.resolve_case(prefix).await?;
        Ok(Found { id: id.to_string() })
    }

    /// Returns the workflow a reference names: an id or a start of one, a specification URI
    /// or name (the latest version), or `URI@N` / `NAME@N`.
    pub async fn lookup_workflow(&self, reference: &str) -> Result<Found, ApiError> {
        let w = self.engine.resolve_workflow(reference).await?;
        Ok(Found {
            id: w.id.to_string(),
        })
    }

    /// Returns the live work item a shortened id names.
    pub async fn lookup_work_item(&self, prefix: &str) -> Result<Found, ApiError> {
        let id = self.engine.resolve_work_item(prefix).await?;
        Ok(Found { id: id.to_string() })
    }

    /// Takes a repaired case out of the quarantine, once it loads and replays to its row; a
    /// case that still does not is refused, naming why, and stays set aside.
    pub async fn release_case(&self, id: &str) -> Result<Case, ApiError> {
        let id = case_id(id)?;
        Ok(Case::of(&self.engine.release_case(id).await?))
    }

    /// Every connector instance with its pool, each probed within 5 s (or the request
    /// timeout, if shorter), sorted by name.
    pub async fn connectors(&self) -> Result<crate::types::Connectors, ApiError> {
        let timeout = PROBE_TIMEOUT.min(self.limits.request_timeout);
        let probes = self.engine.probe_connectors(None, timeout).await?;
        let items = self
            .engine
            .connectors()
            .into_iter()
            .zip(probes)
            .map(|(c, p)| crate::types::Connector {
                name: c.name,
                kind: c.kind,
                pool: c.pool.map(|p| crate::types::ConnectorPool {
                    max_size: p.max_size,
                    active: p.active,
                    idle: p.idle,
                    waiters: p.waiters,
                }),
                ok: p.ok,
                latency_ms: p.latency_ms,
                detail: p.detail,
                error: p.error,
            })
            .collect();
        let subscriptions = self
            .engine
            .probe_subscriptions(timeout)
            .await
            .into_iter()
            .map(|s| crate::types::Subscription {
                name: s.name,
                ok: s.ok,
                latency_ms: s.latency_ms,
                pending: s.pending,
                unacknowledged: s.unacknowledged,
                error: s.error,
            })
            .collect();
        Ok(crate::types::Connectors {
            items,
            subscriptions,
        })
    }

    /// The quarantined cases: set aside because their stored data does not load, with why.
    pub async fn quarantine(&self) -> Result<crate::types::Quarantine, ApiError> {
        let items = self
            .engine
            .quarantined()
            .await?
            .into_iter()
            .map(|q| crate::types::QuarantinedCase {
                case_id: q.id.to_string(),
                reason: q.reason,
                quarantined_at: crate::types::rfc3339(q.at),
            })
            .collect();
        Ok(crate::types::Quarantine { items })
    }

    /// Returns the page size asked for, or the default; more than the cap is refused.
    fn page_size(&self, asked: Option<usize>, field: &str) -> Result<usize, ApiError> {
        match asked {
            None => Ok(self.limits.default_page_size),
            Some(0) => Err(ApiError::invalid(
                field,
                format!("{field}: must be at least 1"),
            )),
            Some(n) if n > self.limits.max_page_size => Err(ApiError::invalid(
                field,
                format!(
                    "{field}: {n} is more than the {} items a page may hold",
                    self.limits.max_page_size
                ),
            )
            .with("limit", self.limits.max_page_size)),
            Some(n) => Ok(n),
        }
    }
}

/// An error creating a case; an unknown workflow is the field `workflow_id`'s fault.
fn creation_error(e: knhk_workflow_engine::Error) -> ApiError {
    let unknown = matches!(e, knhk_workflow_engine::Error::UnknownWorkflow(_));
    let error = ApiError::from(e);
    if unknown {
        error.with("field", "workflow_id")
    } else {
        error
    }
}

fn stale_token() -> ApiError {
    ApiError::invalid(
        "page_token",
        "page_token: the page it continues is gone; list again from the start",
    )
}

fn token_and_after() -> ApiError {
    ApiError::invalid(
        "after",
        "after: give either page_token or after, not both (after names the item a page follows)",
    )
}

/// Reads an RFC 3339 time (as the API writes them) into milliseconds.
fn parse_time(field: &str, s: &str) -> Result<Timestamp, ApiError> {
    s.parse::<jiff::Timestamp>()
        .map(|t| Timestamp(t.as_millisecond()))
        .map_err(|e| {
            ApiError::invalid(
                field,
                format!("{field}: {s:?} is not an RFC 3339 time ({e})"),
            )
        })
}

fn parse_uuid(field: &str, s: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(s)
        .map_err(|e| ApiError::invalid(field, format!("{field}: {s:?} is not a UUID ({e})")))
}

pub(crate) fn case_id(s: &str) -> Result<CaseId, ApiError> {
    parse_uuid("id", s).map(CaseId)
}

fn work_item_id(s: &str) -> Result<WorkItemId, ApiError> {
    parse_uuid("id", s).map(WorkItemId)
}

fn user_of<'a>(field: &str, user: &'a str) -> Result<&'a str, ApiError> {
    if user.trim().is_empty() {
        return Err(ApiError::invalid(
            field,
            format!("{field}: the user is empty"),
        ));
    }
    Ok(user)
}

/// The idempotency keys taken: 1 to 255 visible ASCII characters.
fn check_key(key: &str) -> Result<(), ApiError> {
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::invalid(
            "Idempotency-Key",
            "Idempotency-Key: 1 to 255 visible ASCII characters",
        ));
    }
    Ok(())
}

/// Opaque page tokens: a kind letter and a position, in hex, so that callers do not build
/// them.
mod token {
    use crate::error::ApiError;

    pub fn encode(kind: char, id: uuid::Uuid) -> String {
        hex(&format!("{kind}:{id}"))
    }

    /// A place in a list ordered by time, then id.
    pub fn encode_at(at: i64, id: uuid::Uuid) -> String {
        hex(&format!("a:{at}:{id}"))
    }

    pub fn decode_at(token: &str) -> Result<(i64, uuid::Uuid), ApiError> {
        let text = unhex(token)?;
        text.strip_prefix("a:")
            .and_then(|t| t.split_once(':'))
            .and_then(|(at, id)| Some((at.parse().ok()?, uuid::Uuid::parse_str(id).ok()?)))
            .ok_or_else(bad)
    }

    pub fn encode_seq(seq: u64) -> String {
        hex(&format!("h:{seq}"))
    }

    pub fn decode(token: &str, kind: char) -> Result<uuid::Uuid, ApiError> {
        let text = unhex(token)?;
        text.strip_prefix(kind)
            .and_then(|t| t.strip_prefix(':'))
            .and_then(|t| uuid::Uuid::parse_str(t).ok())
            .ok_or_else(bad)
    }

    pub fn decode_seq(token: &str) -> Result<u64, ApiError> {
        let text = unhex(token)?;
        text.strip_prefix("h:")
            .and_then(|t| t.parse().ok())
            .ok_or_else(bad)
    }

    fn bad() -> ApiError {
        ApiError::invalid(
            "page_token",
            "page_token: not a token this list gave (pass next_page_token as it came)",
        )
    }

    fn hex(s: &str) -> String {
        s.bytes().map(|b| format!("{b:02x}")).collect()
    }

    fn unhex(s: &str) -> Result<String, ApiError> {
        if !s.len().is_multiple_of(2) || s.len() > 200 {
            return Err(bad());
        }
        let bytes: Option<Vec<u8>> = (0..s.len())
            .step_by(2)
            .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
            .collect();
        bytes
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(bad)
    }
}
