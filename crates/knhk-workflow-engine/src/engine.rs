//! The engine: load -> apply -> commit -> perform effects -> feed results back.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use knhk_connectors::{Registry, RetryPolicy};
use knhk_core::model::{Allocation, Specification};
use knhk_core::{
    Case, CaseId, CaseStatus, Effect, Event, IdSource, Input, TimerId, Timestamp, WorkItemId,
    Workflow,
};
use knhk_store::{
    CaseFilter, CaseRecord, Commit, Store, WorkItemFilter, WorkItemRecord, WorkflowId,
    WorkflowRecord,
};
use serde_json::{Map, Value};
use tokio::sync::{Notify, broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};
use uuid::Uuid;

use crate::clock::Clock;
use crate::directory::Directory;
use crate::error::Error;
use crate::records;
use crate::timers::{self, TimerCmd};

/// A registered workflow as the engine shows it.
pub type WorkflowView = WorkflowRecord;
/// A case as the engine shows it.
pub type CaseView = CaseRecord;

/// What the engine is made of. Built by the caller, passed to [`WorkflowEngine::new`].
#[derive(Debug)]
pub struct EngineConfig {
    pub store: Arc<dyn Store>,
    pub connectors: Registry,
    pub directory: Directory,
    pub clock: Clock,
}

/// A cheap, cloneable handle on the engine.
#[derive(Clone, Debug)]
pub struct WorkflowEngine {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn Store>,
    connectors: Registry,
    directory: Directory,
    clock: Clock,
    workflows: Mutex<HashMap<WorkflowId, Arc<Loaded>>>,
    cases: Mutex<HashMap<CaseId, Arc<tokio::sync::Mutex<Option<Live>>>>>,
    calls: Mutex<HashMap<WorkItemId, tokio::task::AbortHandle>>,
    /// Effects still being performed, per case; `settle` waits for zero.
    pending: Mutex<HashMap<CaseId, usize>>,
    settled: Notify,
    timers: Mutex<Option<mpsc::UnboundedSender<TimerCmd>>>,
    /// Every committed step: the case, its new version and status.
    updates: broadcast::Sender<CaseUpdate>,
    tracker: TaskTracker,
    cancel: CancellationToken,
}

#[derive(Debug)]
struct Loaded {
    id: WorkflowId,
    wf: Workflow,
}

#[derive(Debug)]
struct Live {
    case: Case,
    wf: Arc<Loaded>,
    created_at: Timestamp,
}

/// A committed step of a case, as announced to subscribers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CaseUpdate {
    pub case: CaseId,
    pub version: u64,
    pub status: CaseStatus,
}

/// Random ids for cases, work items and timers.
struct RandomIds;

impl IdSource for RandomIds {
    fn next_id(&mut self) -> Uuid {
        Uuid::new_v4()
    }
}

type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How many times the result of an effect is offered to a case when the store fails.
const FEED_ATTEMPTS: u32 = 8;

/// How many times a step is retried when another writer moved the case in between.
const CONFLICT_RETRIES: usize = 8;

impl WorkflowEngine {
    /// Creates an engine over a store. It performs nothing until asked: call
    /// [`WorkflowEngine::recover`] and [`WorkflowEngine::spawn_timers`] in a long-running process.
    pub fn new(config: EngineConfig) -> WorkflowEngine {
        WorkflowEngine {
            inner: Arc::new(Inner {
                store: config.store,
                connectors: config.connectors,
                directory: config.directory,
                clock: config.clock,
                workflows: Mutex::new(HashMap::new()),
                cases: Mutex::new(HashMap::new()),
                calls: Mutex::new(HashMap::new()),
                pending: Mutex::new(HashMap::new()),
                settled: Notify::new(),
                timers: Mutex::new(None),
                updates: broadcast::channel(1024).0,
                tracker: TaskTracker::new(),
                cancel: CancellationToken::new(),
            }),
        }
    }

    /// Opens the embedded default: the SQLite store `knhk.db` in `data_dir` (created if
    /// missing, `synchronous=FULL`), the built-in connectors, and the roles of
    /// `data_dir/directory.json` when that file exists.
    pub async fn open(data_dir: &Path) -> Result<WorkflowEngine, Error> {
        let store = knhk_store::SqliteStore::open(
            &data_dir.join("knhk.db"),
            knhk_store::SqliteOptions::default(),
        )
        .await?;
        let directory_file = data_dir.join("directory.json");
        let directory = match std::fs::read_to_string(&directory_file) {
            Ok(text) => Directory::from_json(&text).map_err(|why| Error::Config {
                file: directory_file.display().to_string(),
                why,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Directory::default(),
            Err(e) => {
                return Err(Error::Config {
                    file: directory_file.display().to_string(),
                    why: e.to_string(),
                });
            }
        };
        Ok(WorkflowEngine::new(EngineConfig {
            store: Arc::new(store),
            connectors: Registry::with_builtins(),
            directory,
            clock: Clock::system(),
        }))
    }

    /// Returns the store the engine writes to.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// Returns the engine's clock.
    pub fn clock(&self) -> Clock {
        self.inner.clock
    }

    // ---- workflows ----------------------------------------------------------------------

    /// Parses, validates and stores a workflow definition (Turtle). `source_name` names it in
    /// errors; a name already registered gets the next version.
    pub async fn register_workflow(
        &self,
        source_name: &str,
        text: &str,
    ) -> Result<WorkflowView, Error> {
        let base = if source_name.contains("://") {
            source_name.to_string()
        } else {
            format!("urn:knhk:workflow:{}", sanitize(source_name))
        };
        let wf = knhk_spec::load_turtle(&knhk_spec::Source {
            name: source_name,
            base_iri: &base,
            text,
        })?;
        self.register_loaded(wf, text).await
    }

    /// Registers the workflow in a file.
    pub async fn register_file(&self, path: &Path) -> Result<WorkflowView, Error> {
        let wf = knhk_spec::load_file(path)?;
        let text = std::fs::read_to_string(path).map_err(|source| {
            Error::Definition(knhk_spec::Error::Io {
                file: path.display().to_string(),
                source,
            })
        })?;
        self.register_loaded(wf, &text).await
    }

    async fn register_loaded(&self, wf: Workflow, text: &str) -> Result<WorkflowView, Error> {
        let spec = wf.specification();
        let name = spec.name.clone().unwrap_or_else(|| spec.id.clone());
        let version = self
            .inner
            .store
            .workflows()
            .await?
            .iter()
            .filter(|w| w.name == name)
            .map(|w| w.version)
            .max()
            .unwrap_or(0)
            + 1;
        let parsed = serde_json::to_value(spec).map_err(|e| {
            Error::Store(knhk_store::Error::Backend(format!(
                "cannot encode workflow: {e}"
            )))
        })?;
        let id = WorkflowId(Uuid::new_v4());
        let record = WorkflowRecord {
            id,
            name,
            version,
            format: "turtle".to_string(),
            source: text.to_string(),
            spec: parsed,
            registered_at: self.inner.clock.now(),
        };
        self.inner.store.put_workflow(&record).await?;
        lock(&self.inner.workflows).insert(id, Arc::new(Loaded { id, wf }));
        info!(workflow = %id, name = %record.name, version, "workflow registered");
        Ok(record)
    }

    /// Returns every registered workflow.
    pub async fn workflows(&self) -> Result<Vec<WorkflowView>, Error> {
        Ok(self.inner.store.workflows().await?)
    }

    /// Returns one workflow.
    pub async fn workflow(&self, id: WorkflowId) -> Result<WorkflowView, Error> {
        self.inner
            .store
            .workflow(id)
            .await?
            .ok_or(Error::UnknownWorkflow(id))
    }

    async fn loaded(&self, id: WorkflowId) -> Result<Arc<Loaded>, Error> {
        if let Some(l) = lock(&self.inner.workflows).get(&id) {
            return Ok(l.clone());
        }
        let record = self
            .inner
            .store
            .workflow(id)
            .await?
            .ok_or(Error::UnknownWorkflow(id))?;
        let spec: Specification =
            serde_json::from_value(record.spec).map_err(|e| Error::CorruptWorkflow {
                id,
                why: e.to_string(),
            })?;
        let wf = Workflow::new(spec).map_err(|e| Error::CorruptWorkflow {
            id,
            why: e.to_string(),
        })?;
        let loaded = Arc::new(Loaded { id, wf });
        lock(&self.inner.workflows).insert(id, loaded.clone());
        Ok(loaded)
    }

    // ---- cases --------------------------------------------------------------------------

    /// Creates a case of a workflow with `data` (a JSON object); with `start`, it also starts
    /// and runs until it waits, in the same commit.
    pub async fn create_case(
        &self,
        workflow: WorkflowId,
        data: Value,
        start: bool,
    ) -> Result<CaseView, Error> {
        let data = match data {
            Value::Null => Map::new(),
            Value::Object(m) => m,
            _ => return Err(Error::DataNotObject),
        };
        let loaded = self.loaded(workflow).await?;
        let id = CaseId(Uuid::new_v4());
        let now = self.inner.clock.now();
        let (mut case, step) = Case::create(&loaded.wf, id, now, data);
        let mut events = step.events;
        let mut effects = step.effects;
        if start {
            let step = case.apply(&loaded.wf, now, Input::Start, &mut RandomIds)?;
            events.extend(step.events);
            effects.extend(step.effects);
        }
        let record = records::case_record(&case, &loaded.wf, workflow, now, now);
        let (work_items, timers) = records::changes(&case, &loaded.wf, &events);
        self.inner
            .store
            .commit(Commit {
                case: record.clone(),
                expected_version: None,
                events,
                work_items,
                timers,
                idempotency: None,
            })
            .await?;
        self.announce(&record);
        if case.status().is_final() {
            self.perform(id, effects);
        } else {
            let slot = self.slot(id);
            let mut guard = slot.lock().await;
            if guard.is_none() {
                *guard = Some(Live {
                    case,
                    wf: loaded.clone(),
                    created_at: now,
                });
            }
            // Effects are performed under the case's lock, so that those of consecutive
            // steps are performed in the order of the steps.
            self.perform(id, effects);
        }
        Ok(record)
    }

    /// Starts a created case and runs it until it waits or ends.
    pub async fn execute(&self, case: CaseId) -> Result<CaseView, Error> {
        self.apply(case, Input::Start).await
    }

    /// Cancels a case: its work is withdrawn.
    pub async fn cancel(&self, case: CaseId, reason: &str) -> Result<CaseView, Error> {
        self.apply(
            case,
            Input::Cancel {
                reason: reason.to_string(),
            },
        )
        .await
    }

    pub async fn suspend(&self, case: CaseId) -> Result<CaseView, Error> {
        self.apply(case, Input::Suspend).await
    }

    pub async fn resume(&self, case: CaseId) -> Result<CaseView, Error> {
        self.apply(case, Input::Resume).await
    }

    /// Delivers an outside event to a case's waiting trigger tasks.
    pub async fn trigger(&self, case: CaseId, event: &str, data: Value) -> Result<CaseView, Error> {
        self.apply(
            case,
            Input::TriggerReceived {
                event: event.to_string(),
                data,
            },
        )
        .await
    }

    /// Returns a case as stored.
    pub async fn case(&self, id: CaseId) -> Result<CaseView, Error> {
        self.inner
            .store
            .case(id)
            .await?
            .ok_or(Error::UnknownCase(id))
    }

    /// Returns the cases matching a filter.
    pub async fn cases(&self, filter: &CaseFilter) -> Result<Vec<CaseView>, Error> {
        Ok(self.inner.store.cases(filter).await?)
    }

    /// Returns a case's whole history, in order.
    pub async fn history(&self, id: CaseId) -> Result<Vec<Event>, Error> {
        if self.inner.store.case(id).await?.is_none() {
            return Err(Error::UnknownCase(id));
        }
        Ok(self.inner.store.events(id, 0).await?)
    }

    // ---- work items ---------------------------------------------------------------------

    /// Returns work items, e.g. those offered to a role.
    pub async fn work_items(&self, filter: &WorkItemFilter) -> Result<Vec<WorkItemRecord>, Error> {
        Ok(self.inner.store.work_items(filter).await?)
    }

    async fn case_of(&self, item: WorkItemId) -> Result<CaseId, Error> {
        Ok(self
            .inner
            .store
            .work_item(item)
            .await?
            .ok_or(Error::UnknownWorkItem(item))?
            .case_id)
    }

    /// Allocates an offered work item to `user`.
    pub async fn claim(&self, item: WorkItemId, user: &str) -> Result<CaseView, Error> {
        let case = self.case_of(item).await?;
        self.apply(
            case,
            Input::AllocateWorkItem {
                item,
                user: user.to_string(),
            },
        )
        .await
    }

    /// Starts a work item (and its task, withdrawing a deferred choice's siblings).
    pub async fn start_work_item(&self, item: WorkItemId, user: &str) -> Result<CaseView, Error> {
        let case = self.case_of(item).await?;
        self.apply(
            case,
            Input::StartWorkItem {
                item,
                user: user.to_string(),
            },
        )
        .await
    }

    /// Completes a work item; `output` (a JSON object) merges into the case data.
    pub async fn complete_work_item(
        &self,
        item: WorkItemId,
        user: &str,
        output: Value,
    ) -> Result<CaseView, Error> {
        let case = self.case_of(item).await?;
        self.apply(
            case,
            Input::CompleteWorkItem {
                item,
                user: user.to_string(),
                output,
            },
        )
        .await
    }

    // ---- the step -----------------------------------------------------------------------

    fn slot(&self, id: CaseId) -> Arc<tokio::sync::Mutex<Option<Live>>> {
        lock(&self.inner.cases).entry(id).or_default().clone()
    }

    /// Drops the cache entry of a case, unless someone else is using it.
    fn forget(&self, id: CaseId, slot: &Arc<tokio::sync::Mutex<Option<Live>>>) {
        let mut cases = lock(&self.inner.cases);
        // Two references: the map's and the caller's. More means another step is waiting.
        if Arc::strong_count(slot) <= 2 && cases.get(&id).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            cases.remove(&id);
        }
    }

    async fn load(&self, id: CaseId) -> Result<Live, Error> {
        let record = self
            .inner
            .store
            .case(id)
            .await?
            .ok_or(Error::UnknownCase(id))?;
        let wf = self.loaded(record.workflow).await?;
        let events = self.inner.store.events(id, 0).await?;
        let case = Case::replay(&wf.wf, id, &events).map_err(|e| Error::CorruptCase {
            id,
            why: e.to_string(),
        })?;
        Ok(Live {
            case,
            wf,
            created_at: record.created_at,
        })
    }

    /// Applies one input to a case: the one path by which a stored case changes.
    pub async fn apply(&self, id: CaseId, input: Input) -> Result<CaseView, Error> {
        if self.inner.cancel.is_cancelled() {
            return Err(Error::ShuttingDown);
        }
        for _ in 0..CONFLICT_RETRIES {
            let slot = self.slot(id);
            let mut guard = slot.lock().await;
            if guard.is_none() {
                match self.load(id).await {
                    Ok(live) => *guard = Some(live),
                    Err(e) => {
                        // Keep no entry for a case that is not there (unknown ids from callers).
                        drop(guard);
                        self.forget(id, &slot);
                        return Err(e);
                    }
                }
            }
            let Some(live) = guard.as_mut() else {
                return Err(Error::UnknownCase(id));
            };
            let now = self.inner.clock.now();
            let mut next = live.case.clone();
            let step = next.apply(&live.wf.wf, now, input.clone(), &mut RandomIds)?;
            let record = records::case_record(&next, &live.wf.wf, live.wf.id, live.created_at, now);
            let (work_items, timers) = records::changes(&next, &live.wf.wf, &step.events);
            let commit = Commit {
                case: record.clone(),
                expected_version: Some(live.case.last_seq()),
                events: step.events,
                work_items,
                timers,
                idempotency: None,
            };
            match self.inner.store.commit(commit).await {
                Ok(()) => {
                    self.announce(&record);
                    live.case = next;
                    // Under the case's lock: effects of consecutive steps keep their order.
                    self.perform(id, step.effects);
                    if live.case.status().is_final() {
                        *guard = None;
                        drop(guard);
                        self.forget(id, &slot);
                    }
                    return Ok(record);
                }
                Err(knhk_store::Error::Conflict { .. }) => {
                    // Another writer (another process on the same store) moved the case:
                    // load it again and decide anew.
                    debug!(case = %id, "case changed under us; reloading");
                    *guard = None;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Busy(id))
    }

    fn apply_boxed(&self, id: CaseId, input: Input) -> BoxFut<'static, Result<CaseView, Error>> {
        let engine = self.clone();
        Box::pin(async move { engine.apply(id, input).await })
    }

    /// Performs the effects of one committed step: the one place that acts on them.
    fn perform(&self, case: CaseId, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::CallConnector {
                    item,
                    binding,
                    hints,
                    input,
                    idempotency_key,
                    ..
                } => {
                    let engine = self.clone();
                    let policy = RetryPolicy::from_hints(&hints);
                    let fut = async move {
                        let result = engine
                            .inner
                            .connectors
                            .call(
                                &binding.connector,
                                &binding.settings,
                                input,
                                &idempotency_key,
                                &policy,
                            )
                            .await;
                        lock(&engine.inner.calls).remove(&item);
                        let input = match result {
                            Ok(output) => Input::ConnectorSucceeded { item, output },
                            Err(failure) => {
                                warn!(case = %case, item = %item, error = %failure, "connector call failed");
                                Input::ConnectorFailed {
                                    item,
                                    error: failure.to_string(),
                                }
                            }
                        };
                        engine.feed(case, input).await;
                    };
                    let handle = self.spawn_for(case, fut);
                    lock(&self.inner.calls).insert(item, handle);
                }
                Effect::CancelConnectorCall { item } => {
                    if let Some(handle) = lock(&self.inner.calls).remove(&item) {
                        handle.abort();
                    }
                }
                Effect::OfferWorkItem { item, binding, .. } => match binding.allocation {
                    Allocation::RoleOffer => {}
                    Allocation::RoundRobin => {
                        if let Some(user) = self.inner.directory.round_robin(&binding.roles) {
                            let engine = self.clone();
                            self.spawn_for(case, async move {
                                engine
                                    .feed(case, Input::AllocateWorkItem { item, user })
                                    .await;
                            });
                        }
                    }
                    Allocation::ShortestQueue => {
                        let engine = self.clone();
                        self.spawn_for(case, async move {
                            if let Some(user) = engine.shortest_queue(&binding.roles).await {
                                engine
                                    .feed(case, Input::AllocateWorkItem { item, user })
                                    .await;
                            }
                        });
                    }
                },
                // The work item rows went away in the step's own commit.
                Effect::WithdrawWorkItem { .. } => {}
                Effect::ArmTimer { timer, fires_at } => self.timer_cmd(TimerCmd::Arm {
                    case,
                    timer,
                    at: fires_at,
                }),
                Effect::CancelTimer { timer } => self.timer_cmd(TimerCmd::Cancel { timer }),
                // Triggers arrive through `trigger`.
                Effect::AwaitTrigger { .. } => {}
                Effect::CaseEnded { status } => {
                    info!(case = %case, status = %status, "case ended");
                }
            }
        }
    }

    /// Feeds the result of an effect back; a result the case no longer wants is dropped. When
    /// the store fails, the result is offered again with backoff; if that keeps failing, the
    /// case stays as committed and `recover` redoes the effect after a restart.
    async fn feed(&self, case: CaseId, input: Input) {
        let mut backoff = std::time::Duration::from_millis(50);
        for attempt in 1..=FEED_ATTEMPTS {
            match self.apply_boxed(case, input.clone()).await {
                Ok(_) => return,
                Err(Error::Case(e)) => {
                    debug!(case = %case, error = %e, "result no longer wanted");
                    return;
                }
                Err(Error::ShuttingDown) => return,
                Err(e) if attempt < FEED_ATTEMPTS => {
                    warn!(case = %case, error = %e, attempt, "cannot feed a result back; trying again");
                    tokio::select! {
                        () = self.inner.cancel.cancelled() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(std::time::Duration::from_secs(5));
                }
                Err(e) => {
                    warn!(case = %case, error = %e, "cannot feed a result back; giving up until a restart")
                }
            }
        }
    }

    async fn shortest_queue(&self, roles: &[String]) -> Option<String> {
        let mut best: Option<(usize, String)> = None;
        for user in self.inner.directory.candidates(roles) {
            let filter = WorkItemFilter {
                role: None,
                case: None,
                owner: Some(user.clone()),
            };
            let n = match self.inner.store.work_items(&filter).await {
                Ok(items) => items.len(),
                Err(e) => {
                    warn!(error = %e, "cannot count work items for allocation");
                    return None;
                }
            };
            if best.as_ref().is_none_or(|(b, _)| n < *b) {
                best = Some((n, user));
            }
        }
        best.map(|(_, u)| u)
    }

    /// Spawns work on behalf of a case, counted until it ends so that `settle` can wait.
    fn spawn_for(
        &self,
        case: CaseId,
        fut: impl Future<Output = ()> + Send + 'static,
    ) -> tokio::task::AbortHandle {
        *lock(&self.inner.pending).entry(case).or_insert(0) += 1;
        let engine = self.clone();
        let cancel = self.inner.cancel.clone();
        let task = self.inner.tracker.spawn(async move {
            let _done = Done { engine, case };
            tokio::select! {
                () = cancel.cancelled() => {}
                () = fut => {}
            }
        });
        task.abort_handle()
    }

    fn announce(&self, record: &CaseRecord) {
        // Nobody listening is fine.
        let _ = self.inner.updates.send(CaseUpdate {
            case: record.id,
            version: record.version,
            status: record.status,
        });
    }

    /// Returns a receiver of every step committed from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<CaseUpdate> {
        self.inner.updates.subscribe()
    }

    /// Waits until a case ends (completed, cancelled or failed) and returns it.
    pub async fn wait_until_ended(&self, case: CaseId) -> Result<CaseView, Error> {
        let mut updates = self.subscribe();
        loop {
            let view = self.case(case).await?;
            if view.status.is_final() {
                return Ok(view);
            }
            loop {
                match updates.recv().await {
                    Ok(u) if u.case == case && u.status.is_final() => break,
                    Ok(_) => {}
                    // Missed some updates: look at the store again.
                    Err(broadcast::error::RecvError::Lagged(_)) => break,
                    Err(broadcast::error::RecvError::Closed) => return Err(Error::ShuttingDown),
                }
            }
        }
    }

    /// Waits until nothing the engine started for `case` is still running (connector calls,
    /// allocations). Timers do not count: a case waiting for a timer is settled.
    pub async fn settle(&self, case: CaseId) {
        loop {
            let notified = self.inner.settled.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if lock(&self.inner.pending).get(&case).copied().unwrap_or(0) == 0 {
                return;
            }
            notified.await;
        }
    }

    fn timer_cmd(&self, cmd: TimerCmd) {
        if let Some(tx) = lock(&self.inner.timers).as_ref()
            && tx.send(cmd).is_err()
        {
            debug!("timer queue is gone");
        }
    }

    // ---- long-running parts -------------------------------------------------------------

    /// Starts the timer queue and arms every stored timer; fired timers are fed to their cases.
    pub async fn spawn_timers(&self) -> Result<usize, Error> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (fired_tx, mut fired_rx) = mpsc::unbounded_channel::<(CaseId, TimerId)>();
        let stored = self.inner.store.timers().await?;
        for t in &stored {
            let _ = tx.send(TimerCmd::Arm {
                case: t.case_id,
                timer: t.id,
                at: t.fires_at,
            });
        }
        *lock(&self.inner.timers) = Some(tx);
        self.inner.tracker.spawn(timers::run(
            self.inner.clock,
            rx,
            fired_tx,
            self.inner.cancel.clone(),
        ));
        let engine = self.clone();
        let cancel = self.inner.cancel.clone();
        self.inner.tracker.spawn(async move {
            loop {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    next = fired_rx.recv() => match next {
                        None => return,
                        Some((case, timer)) => {
                            let engine2 = engine.clone();
                            engine.spawn_for(case, async move {
                                engine2.feed(case, Input::TimerFired { timer }).await;
                            });
                        }
                    }
                }
            }
        });
        Ok(stored.len())
    }

    /// Picks up every unfinished case from its last committed step: connector calls in
    /// flight are made again with their original idempotency keys, allocations are redone.
    /// Returns how many cases were picked up.
    pub async fn recover(&self) -> Result<usize, Error> {
        let filter = CaseFilter {
            // A suspended case may have had calls in flight too: their results are taken.
            status: vec![CaseStatus::Running, CaseStatus::Suspended],
            workflow: None,
            limit: None,
        };
        let cases = self.inner.store.cases(&filter).await?;
        let n = cases.len();
        for record in cases {
            let slot = self.slot(record.id);
            let mut guard = slot.lock().await;
            let live = self.load(record.id).await?;
            let effects: Vec<Effect> = live
                .case
                .outstanding(&live.wf.wf)
                .into_iter()
                // Timers come back from the store in `spawn_timers`.
                .filter(|e| !matches!(e, Effect::ArmTimer { .. }))
                .filter(|e| match e {
                    Effect::OfferWorkItem { item, .. } => {
                        live.case.work_item(item).is_some_and(|w| w.owner.is_none())
                    }
                    _ => true,
                })
                .collect();
            *guard = Some(live);
            self.perform(record.id, effects);
            drop(guard);
        }
        if n > 0 {
            info!(cases = n, "recovered unfinished cases");
        }
        Ok(n)
    }

    /// Stops everything the engine spawned and waits for it to end.
    pub async fn shutdown(&self) {
        self.inner.cancel.cancel();
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
    }
}

/// Decrements a case's pending count when a spawned task ends, however it ends.
struct Done {
    engine: WorkflowEngine,
    case: CaseId,
}

impl Drop for Done {
    fn drop(&mut self) {
        let mut pending = lock(&self.engine.inner.pending);
        if let Some(n) = pending.get_mut(&self.case) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                pending.remove(&self.case);
            }
        }
        drop(pending);
        self.engine.inner.settled.notify_waiters();
    }
}

/// Locks a std mutex, going on with the data if a panicking thread poisoned it (the maps
/// guarded here stay consistent: every update is a single insert or remove).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
