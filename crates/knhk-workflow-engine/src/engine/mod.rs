//! The engine: load -> apply -> commit -> perform effects -> feed results back.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use knhk_connectors::Registry;
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
use crate::error::{ConnectorProblem, Error};
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

mod effects;
mod service;

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
        let directory = Directory::load(&data_dir.join("directory.json"))?;
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
        let (wf, text) = knhk_spec::load_file_with_text(path)?;
        self.register_loaded(wf, &text).await
    }

    async fn register_loaded(&self, wf: Workflow, text: &str) -> Result<WorkflowView, Error> {
        let spec = wf.specification();
        // A connector this engine does not have, or settings it refuses, would only fail
        // when a case reaches the task: refuse them now, naming every task at fault.
        let problems: Vec<ConnectorProblem> = spec
            .nets
            .iter()
            .flat_map(|net| &net.tasks)
            .filter_map(|task| match &task.binding {
                knhk_core::model::TaskBinding::Connector(c) => self
                    .inner
                    .connectors
                    .check_settings(&c.connector, &c.settings)
                    .err()
                    .map(|error| ConnectorProblem {
                        task: task.id.to_string(),
                        error,
                    }),
                _ => None,
            })
            .collect();
        if !problems.is_empty() {
            return Err(Error::Connectors {
                workflow: spec.id.clone(),
                problems,
            });
        }
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
        let parsed = serde_json::to_value(spec).map_err(|source| knhk_store::Error::Encode {
            what: "a workflow's specification",
            source,
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
                source: e.into(),
            })?;
        let wf = Workflow::new(spec).map_err(|e| Error::CorruptWorkflow {
            id,
            source: e.into(),
        })?;
        let loaded = Arc::new(Loaded { id, wf });
        lock(&self.inner.workflows).insert(id, loaded.clone());
        Ok(loaded)
    }

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

    fn slot(&self, id: CaseId) -> Arc<tokio::sync::Mutex<Option<Live>>> {
        lock(&self.inner.cases).entry(id).or_default().clone()
    }

    /// Returns how many cases the engine holds in memory (running cases it has touched).
    pub fn cached_cases(&self) -> usize {
        lock(&self.inner.cases).len()
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
        let case =
            Case::replay(&wf.wf, id, &events).map_err(|e| Error::CorruptCase { id, source: e })?;
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
            let step = match next.apply(&live.wf.wf, now, input.clone(), &mut RandomIds) {
                Ok(step) => step,
                Err(e) => {
                    // An ended case was loaded only to refuse this input: keep no copy of it.
                    if live.case.status().is_final() {
                        *guard = None;
                        drop(guard);
                        self.forget(id, &slot);
                    }
                    return Err(e.into());
                }
            };
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
