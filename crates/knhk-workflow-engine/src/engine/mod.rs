//! The engine: load -> apply -> commit -> perform effects -> feed results back.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use knhk_connectors::Registry;
use knhk_core::{
    ApplyOptions, Case, CaseId, CaseStatus, Event, IdSource, Input, Timestamp, WorkItemId,
    Workflow, WorkflowId,
};
use knhk_store::{Commit, Store};
use serde_json::{Map, Value};
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;
use uuid::Uuid;

use crate::clock::Clock;
use crate::directory::Directory;
use crate::error::Error;
use crate::records;
use crate::timers::Timers;
use crate::view::CaseView;

/// What the engine is made of. Built by whoever wires the program (the binary chooses the
/// store backend), passed to [`WorkflowEngine::new`].
#[derive(Debug)]
pub struct EngineConfig {
    pub store: Arc<dyn Store>,
    pub connectors: Registry,
    pub directory: Directory,
    pub clock: Clock,
    /// The administrators' role: the work items of manual tasks that YAWL leaves to be
    /// distributed at run time are offered to it, and its members offer or allocate them on.
    /// [`EngineConfig::DEFAULT_ADMIN_ROLE`] unless configured.
    pub admin_role: String,
    /// How each step runs: the bound on the tasks one step may start without waiting for the
    /// outside world (a loop of automatic tasks fails its case past it).
    pub step: ApplyOptions,
    /// How often a started engine reads the stored timers again, so that it fires the timers
    /// another process armed after it started. [`EngineConfig::DEFAULT_TIMER_POLL`] by default.
    pub timer_poll: std::time::Duration,
    /// The largest JSON a caller may give a case in one input (case data at creation, a work
    /// item's output, data set, a trigger's data, an added instance's item), in bytes.
    /// [`EngineConfig::DEFAULT_MAX_INPUT_BYTES`] by default.
    pub max_input_bytes: usize,
    /// How large a definition registered here may be (its text, its tasks).
    pub definition_limits: knhk_spec::Limits,
    /// The most cases kept in memory between their steps; past it the one that entered the
    /// cache first is dropped and loaded from the store at its next step. About 1 KiB each for a small
    /// waiting case (the apply benchmark's W3). [`EngineConfig::DEFAULT_CASE_CACHE`] by default.
    pub case_cache: usize,
    /// How many events a case may gain after its last snapshot before a step writes a new one
    /// (in the step's own commit), so that loading the case reads the snapshot and at most
    /// about this many events rather than its whole history. 0: no snapshot is written or
    /// read, and every case loads by replaying its whole history.
    /// [`EngineConfig::DEFAULT_SNAPSHOT_EVERY`] by default.
    pub snapshot_every: u64,
    /// How the ids of new cases, work items and timers are made: time-ordered by default.
    pub ids: IdOrder,
    /// How long a started engine's node lease lasts without a heartbeat: once it has expired,
    /// the other nodes sharing the store take its cases with work in flight over and its
    /// commits of that work are refused. [`EngineConfig::DEFAULT_LEASE`] by default.
    pub lease: std::time::Duration,
    /// How often a started engine renews its lease and sweeps for the cases of dead nodes;
    /// well under [`EngineConfig::lease`]. [`EngineConfig::DEFAULT_HEARTBEAT_INTERVAL`] by
    /// default.
    pub heartbeat_interval: std::time::Duration,
    /// What a started engine calls itself in the store's node registry, for people (the
    /// host and process id by default).
    pub node_name: String,
    /// The lockchain: each step's events get leaves in the store's Merkle tree, in the step's
    /// commit, and a started engine signs checkpoints of it and anchors them in git. `None`
    /// (the default): no leaves, no checkpoints, no receipts.
    pub lockchain: Option<LockchainConfig>,
}

/// How the engine makes the ids of new cases, work items and timers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IdOrder {
    /// UUIDv7: the first 48 bits are the creation time in milliseconds, the rest random, so
    /// that new rows append to the store's id indexes instead of landing at random places in
    /// them (which keeps creation cheap as the store grows). Tables name such ids by their
    /// last group, the random part.
    #[default]
    TimeOrdered,
    /// UUIDv4, wholly random, as knhk made them before: kept to measure what time order
    /// saves (`knhk-bench scale --compare-fill`).
    Random,
}

impl IdOrder {
    fn next(self) -> Uuid {
        match self {
            IdOrder::TimeOrdered => Uuid::now_v7(),
            IdOrder::Random => Uuid::new_v4(),
        }
    }
}

impl EngineConfig {
    /// The administrators' role when none is configured.
    pub const DEFAULT_ADMIN_ROLE: &str = "admin";
    /// How often the stored timers are read again when none is configured.
    pub const DEFAULT_TIMER_POLL: std::time::Duration = std::time::Duration::from_secs(1);
    /// The largest JSON input when none is configured: 1 MiB.
    pub const DEFAULT_MAX_INPUT_BYTES: usize = 1024 * 1024;
    /// The most cases kept in memory between steps when none is configured.
    pub const DEFAULT_CASE_CACHE: usize = 10_000;
    /// The events between two snapshots of a case when none is configured.
    pub const DEFAULT_SNAPSHOT_EVERY: u64 = 1_000;
    /// A node's lease when none is configured.
    pub const DEFAULT_LEASE: std::time::Duration = std::time::Duration::from_secs(10);
    /// The interval between heartbeats when none is configured: a third of the lease, so
    /// that two heartbeats may be late before the lease expires.
    pub const DEFAULT_HEARTBEAT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3);

    /// Returns the default name of this process's node: the host name and the process id.
    pub fn default_node_name() -> String {
        let host = std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "localhost".to_owned());
        format!("{host}/{}", std::process::id())
    }

    /// Returns the configuration of an engine on `store` with the roles of `directory`: the
    /// built-in connectors, the system clock, and every other setting at its default.
    pub fn with_defaults(store: Arc<dyn Store>, directory: Directory) -> EngineConfig {
        EngineConfig {
            store,
            connectors: Registry::with_builtins(),
            directory,
            clock: Clock::system(),
            admin_role: EngineConfig::DEFAULT_ADMIN_ROLE.to_owned(),
            step: ApplyOptions::default(),
            timer_poll: EngineConfig::DEFAULT_TIMER_POLL,
            max_input_bytes: EngineConfig::DEFAULT_MAX_INPUT_BYTES,
            definition_limits: knhk_spec::Limits::default(),
            case_cache: EngineConfig::DEFAULT_CASE_CACHE,
            snapshot_every: EngineConfig::DEFAULT_SNAPSHOT_EVERY,
            ids: IdOrder::default(),
            lease: EngineConfig::DEFAULT_LEASE,
            heartbeat_interval: EngineConfig::DEFAULT_HEARTBEAT_INTERVAL,
            node_name: EngineConfig::default_node_name(),
            lockchain: None,
        }
    }
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
    /// The probes of the intake's subscriptions, once an intake runs on this engine.
    intake: Mutex<Option<crate::intake::IntakeHealth>>,
    directory: Directory,
    clock: Clock,
    admin_role: String,
    step: ApplyOptions,
    timer_poll: std::time::Duration,
    max_input_bytes: usize,
    definition_limits: knhk_spec::Limits,
    snapshot_every: u64,
    ids: IdOrder,
    lease: std::time::Duration,
    heartbeat_interval: std::time::Duration,
    node_name: String,
    /// The lockchain, when the engine keeps one.
    lockchain: Option<lockchain::Lockchain>,
    /// The fencing token of this engine's node, once started (`None`: a one-shot engine,
    /// which is no node). Kept after a lease is lost until a new one is taken, so that the
    /// store refuses what this engine commits meanwhile.
    fence: Mutex<Option<u64>>,
    catalog: catalog::Catalog,
    cases: locks::CaseLocks,
    calls: Mutex<HashMap<WorkItemId, tokio::task::AbortHandle>>,
    /// Effects still being performed, per case; `settle` waits for zero.
    pending: Mutex<HashMap<CaseId, usize>>,
    settled: Notify,
    /// Cases this node claimed but could not take up yet (the store failed): the next
    /// heartbeat tries again, as no other node claims them while this one lives.
    untaken: Mutex<std::collections::HashSet<CaseId>>,
    /// The timer service's handle, once started.
    timers: Mutex<Option<Timers>>,
    /// Every committed step: the case, its new version and status.
    updates: broadcast::Sender<CaseUpdate>,
    /// Every result given up, as it is given up.
    faults: broadcast::Sender<CaseFault>,
    /// The first result given up per case, until `settled` reports it.
    lost: Mutex<HashMap<CaseId, CaseFault>>,
    tracker: TaskTracker,
    cancel: CancellationToken,
}

/// A case held in memory between steps, with the workflow it runs on.
#[derive(Debug)]
struct Live {
    case: Case,
    wf: Arc<Workflow>,
    workflow: WorkflowId,
    created_at: Timestamp,
    /// The sequence number of the case's stored snapshot (0: none, or none read).
    snapshot_seq: u64,
    /// The node that owns the case's work in flight, as the row read or last written says.
    owner: Option<u64>,
}

/// A committed step of a case, as announced to subscribers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CaseUpdate {
    pub case: CaseId,
    /// The version before the step (0 for a new case): the step's events are those after it.
    pub previous: u64,
    pub version: u64,
    pub status: CaseStatus,
}

/// The result of an effect (a connector call, an allocation, a timer) that could not be fed
/// back to its case: the store kept failing, or the case cannot be loaded.
#[derive(Clone, Debug)]
pub struct CaseFault {
    pub case: CaseId,
    /// How many times the result was offered.
    pub attempts: u32,
    /// The last failure.
    pub error: Arc<Error>,
}

/// The ids of the work items and timers of a step, made as the engine is configured to.
struct Ids(IdOrder);

impl IdSource for Ids {
    fn next_id(&mut self) -> Uuid {
        self.0.next()
    }
}

type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How many times the result of an effect is offered to a case when the store fails.
const FEED_ATTEMPTS: u32 = 8;

/// How many times a step is retried when another writer moved the case in between.
const CONFLICT_RETRIES: usize = 8;

mod catalog;
mod check;
mod checkpoints;
mod connectors;
mod effects;
mod idempotency;
mod inputs;
mod lockchain;
mod locks;
mod lookup;
mod queries;
mod release;
mod service;
mod verify;

pub use catalog::connector_problems;
pub use check::{StoreProblem, StoreReport, Subject};
pub use connectors::{connector_views, probe_connectors};
pub use idempotency::KeyedCase;
pub use lockchain::{AnchorConfig, CheckpointView, LockchainConfig, LockchainHealth};
pub use service::Started;
pub use verify::{KeySource, VerifyOptions, VerifyReport};

impl WorkflowEngine {
    /// Creates an engine over a store. It performs nothing in the background until
    /// [`WorkflowEngine::start`] (or [`WorkflowEngine::run`]) is called in a long-running
    /// process; one-shot commands use it as it is.
    pub fn new(config: EngineConfig) -> WorkflowEngine {
        WorkflowEngine {
            inner: Arc::new(Inner {
                store: config.store,
                connectors: config.connectors,
                intake: Mutex::new(None),
                directory: config.directory,
                clock: config.clock,
                admin_role: config.admin_role,
                step: config.step,
                timer_poll: config.timer_poll,
                max_input_bytes: config.max_input_bytes,
                definition_limits: config.definition_limits,
                snapshot_every: config.snapshot_every,
                ids: config.ids,
                lease: config.lease,
                heartbeat_interval: config.heartbeat_interval,
                node_name: config.node_name,
                lockchain: config.lockchain.map(lockchain::Lockchain::new),
                fence: Mutex::new(None),
                catalog: catalog::Catalog::default(),
                cases: locks::CaseLocks::new(config.case_cache),
                calls: Mutex::new(HashMap::new()),
                pending: Mutex::new(HashMap::new()),
                settled: Notify::new(),
                untaken: Mutex::new(std::collections::HashSet::new()),
                timers: Mutex::new(None),
                updates: broadcast::channel(1024).0,
                faults: broadcast::channel(64).0,
                lost: Mutex::new(HashMap::new()),
                tracker: TaskTracker::new(),
                cancel: CancellationToken::new(),
            }),
        }
    }

    /// Returns the engine's clock.
    pub fn clock(&self) -> Clock {
        self.inner.clock
    }

    /// Returns the administrators' role, which distributes work items left to run time.
    pub fn admin_role(&self) -> &str {
        &self.inner.admin_role
    }

    /// Returns the directory of roles the engine allocates work with.
    pub fn directory(&self) -> &Directory {
        &self.inner.directory
    }

    /// Creates a case of a workflow with `data` (a JSON object); with `start`, it also starts
    /// and runs until it waits, in the same commit.
    pub async fn create_case(
        &self,
        workflow: WorkflowId,
        data: Value,
        start: bool,
    ) -> Result<CaseView, Error> {
        self.create(workflow, data, start, None).await
    }

    /// Creates a case, storing `key` (when given) in the same commit.
    async fn create(
        &self,
        workflow: WorkflowId,
        data: Value,
        start: bool,
        key: Option<knhk_store::IdempotencyRecord>,
    ) -> Result<CaseView, Error> {
        self.check_size("case data", &data)?;
        let data = match data {
            Value::Null => Map::new(),
            Value::Object(m) => m,
            _ => return Err(Error::DataNotObject),
        };
        let wf = self.definition(workflow).await?;
        let id = CaseId(self.inner.ids.next());
        let now = self.inner.clock.now();
        let key = key.map(|mut k| {
            if let Value::Object(response) = &mut k.response {
                response.insert("case".to_owned(), Value::String(id.to_string()));
            }
            k
        });
        let (mut case, step) = Case::create(&wf, id, now, data);
        let mut events = step.events;
        let mut effects = step.effects;
        if start {
            let step = case.apply_with(
                &wf,
                now,
                Input::Start,
                &mut Ids(self.inner.ids),
                self.inner.step,
            )?;
            events.extend(step.events);
            effects.extend(step.effects);
        }
        let mut guard = self.inner.cases.lock(id).await;
        let mut live = Live {
            case,
            wf,
            workflow,
            created_at: now,
            snapshot_seq: 0,
            owner: None,
        };
        let view = self
            .commit_step(&mut live, None, events, now, key, None)
            .await?;
        if !live.case.status().is_final() {
            *guard = Some(live);
        }
        // Effects are performed under the case's lock, so that those of consecutive steps are
        // performed in the order of the steps.
        self.perform(id, effects);
        drop(guard);
        Ok(view)
    }

    /// Builds and commits one step of a case: its new events, the case row, and the work item
    /// and timer rows those events change, in one store commit checked against
    /// `expected_version` (`None`: the case is new), with a new snapshot of the case once
    /// [`EngineConfig::snapshot_every`] events came after its last one. Every commit of a step
    /// is built here.
    ///
    /// A started engine (a node) commits fenced: the case's work in flight becomes its own
    /// (the row's owner), and `owned_by`, given for the result of work the node owned, must
    /// still own the case, else the store refuses the step (`Fenced`: another node took the
    /// case over). A one-shot engine leaves the owner as it found it.
    async fn commit_step(
        &self,
        next: &mut Live,
        expected_version: Option<u64>,
        events: Vec<Event>,
        now: Timestamp,
        idempotency: Option<knhk_store::IdempotencyRecord>,
        owned_by: Option<u64>,
    ) -> Result<CaseView, Error> {
        let view = records::case_view_of(&next.case, &next.wf, next.workflow, next.created_at, now);
        let (work_items, timers) = records::changes(&next.case, &next.wf, &events);
        let snapshot = self.snapshot_due(next);
        let snapshot_seq = snapshot.as_ref().map(|s| s.seq);
        let node = self.fence();
        let in_flight = records::has_work_in_flight(&next.case, &next.wf);
        // The owner of the work the case has going: also of the calls of a case failed with an
        // incident, whose results it still takes (fenced by this owner).
        let owns_work = in_flight || records::has_calls_in_flight(&next.case);
        let owner = node.or(next.owner).filter(|_| owns_work);
        // The leaves are hashed here, on the caller's task, not by the store's writer.
        let leaves = match &self.inner.lockchain {
            Some(_) => lockchain::leaves_of(next.case.id(), &events)?,
            None => Vec::new(),
        };
        let n_leaves = leaves.len();
        self.inner
            .store
            .commit(Commit {
                case: records::case_row(&view, in_flight, owner)?,
                expected_version,
                events,
                work_items,
                timers,
                idempotency,
                snapshot,
                fencing: node.map(|node| knhk_store::Fencing { node, owned_by }),
                leaves,
            })
            .await?;
        if let Some(lc) = &self.inner.lockchain {
            lc.committed(n_leaves);
        }
        if let Some(seq) = snapshot_seq {
            next.snapshot_seq = seq;
        }
        next.owner = owner;
        self.announce(&view, expected_version.unwrap_or(0));
        Ok(view)
    }

    /// Returns a snapshot of the case when enough events came after its last one. A case
    /// that does not encode goes on without one (it loads from its history), with a warning.
    fn snapshot_due(&self, live: &Live) -> Option<knhk_store::SnapshotRecord> {
        let every = self.inner.snapshot_every;
        if every == 0 || live.case.last_seq() < live.snapshot_seq.saturating_add(every) {
            return None;
        }
        match live.case.snapshot(&live.wf) {
            Ok(s) => Some(knhk_store::SnapshotRecord {
                seq: s.seq,
                format: s.format,
                state: s.state,
            }),
            Err(e) => {
                tracing::warn!(case = %live.case.id(), error = %e, "case does not encode as a snapshot; none written");
                None
            }
        }
    }

    /// Loads a case from the store: its row, its workflow and its history replayed. A case
    /// that is quarantined is refused; one that does not load because its stored data is
    /// damaged is quarantined (when the store takes it) and refused, so that it is reported
    /// once, by id, and the other cases go on.
    async fn load(&self, id: CaseId) -> Result<Live, Error> {
        self.refuse_quarantined(id).await?;
        match self.load_stored(id).await {
            Err(e) if e.is_corruption() => Err(self.quarantine(id, e).await),
            other => other,
        }
    }

    /// Refuses a case that is quarantined, saying why.
    pub(super) async fn refuse_quarantined(&self, id: CaseId) -> Result<(), Error> {
        match self.inner.store.quarantine_of(id).await? {
            Some(q) => Err(Error::Quarantined {
                id,
                reason: q.reason,
            }),
            None => Ok(()),
        }
    }

    /// Sets a case aside for `cause`; returns the error that says so (or `cause` itself when
    /// the store cannot even record it).
    async fn quarantine(&self, id: CaseId, cause: Error) -> Error {
        let reason = cause.to_string();
        let record = knhk_store::QuarantineRecord {
            case: id,
            reason: reason.clone(),
            at: self.inner.clock.now(),
        };
        match self.inner.store.quarantine(&record).await {
            Ok(()) => {
                tracing::error!(case = %id, reason = %reason, "case quarantined: it does not load");
                Error::Quarantined { id, reason }
            }
            Err(e) => {
                tracing::error!(case = %id, error = %e, "cannot quarantine a case that does not load");
                cause
            }
        }
    }

    /// Loads a case as stored, without looking at the quarantine: from its snapshot and the
    /// events after it, or, when it has none that restores, from its whole history.
    async fn load_stored(&self, id: CaseId) -> Result<Live, Error> {
        let record = self
            .inner
            .store
            .case(id)
            .await?
            .ok_or(Error::UnknownCase(id))?;
        let wf = self.definition(record.workflow).await?;
        if let Some(live) = self.load_from_snapshot(&record, &wf).await? {
            return Ok(live);
        }
        let events = self.inner.store.events(id, 0).await?;
        let case =
            Case::replay(&wf, id, &events).map_err(|e| Error::CorruptCase { id, source: e })?;
        self.check_version(id, record.version, case.last_seq())
            .await?;
        Ok(Live {
            case,
            wf,
            workflow: record.workflow,
            created_at: record.created_at,
            snapshot_seq: 0,
            owner: record.owner,
        })
    }

    /// Loads a case from its stored snapshot and the events after it; `None` when it has no
    /// snapshot, snapshots are off, or its snapshot does not restore (another format, damaged,
    /// or not of the state its history reaches): the history is the truth, and the case then
    /// loads from it, with a warning naming why.
    async fn load_from_snapshot(
        &self,
        record: &knhk_store::CaseRecord,
        wf: &Arc<Workflow>,
    ) -> Result<Option<Live>, Error> {
        if self.inner.snapshot_every == 0 {
            return Ok(None);
        }
        let id = record.id;
        let stored = match self.inner.store.snapshot(id).await {
            Ok(Some(s)) => s,
            Ok(None) => return Ok(None),
            Err(knhk_store::Error::Corrupt(e)) => {
                tracing::warn!(case = %id, error = %e, "snapshot does not read; loading the case from its history");
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        let seq = stored.seq;
        let snapshot = knhk_core::CaseSnapshot {
            format: stored.format,
            seq,
            state: stored.state,
        };
        let restored = Case::restore(wf, id, &snapshot);
        // The encoded state can be large: it goes before the events are read.
        drop(snapshot);
        let mut case = match restored {
            Ok(case) => case,
            Err(e) => {
                tracing::warn!(case = %id, seq, error = %e, "snapshot does not restore; loading the case from its history");
                return Ok(None);
            }
        };
        let events = self.inner.store.events(id, seq).await?;
        if let Err(e) = case.fold(wf, &events) {
            tracing::warn!(case = %id, seq, error = %e, "the history after the snapshot does not fold onto it; loading the case from its history");
            return Ok(None);
        }
        match self
            .check_version(id, record.version, case.last_seq())
            .await
        {
            Ok(()) => {}
            Err(e @ Error::CorruptVersion { .. }) => {
                tracing::warn!(case = %id, seq, error = %e, "snapshot is not of the history; loading the case from its history");
                return Ok(None);
            }
            Err(e) => return Err(e),
        }
        Ok(Some(Live {
            case,
            wf: wf.clone(),
            workflow: record.workflow,
            created_at: record.created_at,
            snapshot_seq: seq,
            owner: record.owner,
        }))
    }

    /// Returns the version of a case as stored (`None`: not stored).
    async fn stored_version(&self, id: CaseId) -> Result<Option<u64>, Error> {
        Ok(self.inner.store.case(id).await?.map(|r| r.version))
    }

    /// Checks that a case row's version names the last event of the history read after it.
    /// Commits write both at once, so a history can only be ahead of a row read before it
    /// (other processes committed in between): then the row is read again, and a row that
    /// has reached the history (or passed it: more commits came meanwhile) is sound; the
    /// history read is a committed state, and a commit from it fails its concurrency check and
    /// decides again. A row still behind its history, or a row ahead of a history read after
    /// it, is corrupt; without this check every commit would fail its concurrency check and
    /// the case would look busy for ever.
    async fn check_version(&self, id: CaseId, row: u64, history: u64) -> Result<(), Error> {
        if row == history {
            return Ok(());
        }
        let row = if history > row {
            match self.inner.store.case(id).await? {
                Some(again) if again.version >= history => return Ok(()),
                again => again.map_or(row, |r| r.version),
            }
        } else {
            row
        };
        Err(Error::CorruptVersion {
            id,
            stored: row,
            history,
        })
    }

    /// Refuses a caller's JSON larger than the configured bound, naming what it is.
    fn check_size(&self, what: &'static str, value: &impl serde::Serialize) -> Result<(), Error> {
        let limit = self.inner.max_input_bytes;
        // Counting through a writer that stops at the bound keeps a huge value from being
        // serialized whole just to be refused.
        let mut counter = Bounded { written: 0, limit };
        if serde_json::to_writer(&mut counter, value).is_err() || counter.written > limit {
            return Err(Error::TooLarge { what, limit });
        }
        Ok(())
    }

    /// Applies one input to a case: the one path by which a stored case changes.
    pub async fn apply(&self, id: CaseId, input: Input) -> Result<CaseView, Error> {
        self.apply_owned(id, input, None, None).await
    }

    /// Applies one input to a case as [`apply`](Self::apply) does, and stores the
    /// idempotency `key` in the same commit: the step and the key are durable together, or
    /// neither is. A key stored already fails the step with a store error whose code is
    /// `AlreadyExists`, and the case is unchanged (the intake's deduplication of a
    /// redelivered message).
    pub async fn apply_keyed(
        &self,
        id: CaseId,
        input: Input,
        key: &str,
    ) -> Result<CaseView, Error> {
        let record = knhk_store::IdempotencyRecord {
            key: key.to_owned(),
            response: serde_json::json!({ "case": id.to_string() }),
            at: self.inner.clock.now(),
        };
        self.apply_owned(id, input, None, Some(record)).await
    }

    /// Returns whether the idempotency `key` is stored (a step or a case was made under it).
    pub async fn has_key(&self, key: &str) -> Result<bool, Error> {
        Ok(self.inner.store.idempotency(key).await?.is_some())
    }

    /// Applies one input to a case; `owned_by`, for the result of work this node owned (a
    /// connector call, an allocation), is the fencing token it owned it under, which the
    /// store checks still owns the case.
    async fn apply_owned(
        &self,
        id: CaseId,
        input: Input,
        owned_by: Option<u64>,
        key: Option<knhk_store::IdempotencyRecord>,
    ) -> Result<CaseView, Error> {
        if self.inner.cancel.is_cancelled() {
            return Err(Error::ShuttingDown);
        }
        match &input {
            Input::CompleteWorkItem { output, .. } => {
                self.check_size("work item output", output)?
            }
            Input::TriggerReceived { data, .. } => self.check_size("event data", data)?,
            Input::AddInstance { item, .. } => self.check_size("instance item", item)?,
            Input::UpdateData { changes } => self.check_size("data to set", changes)?,
            _ => {}
        }
        for _ in 0..CONFLICT_RETRIES {
            let mut guard = self.inner.cases.lock(id).await;
            let (live, cached) = match guard.take() {
                Some(live) => (live, true),
                // Not in memory: an error leaves the cell empty, so the lock's entry goes.
                None => (self.load(id).await?, false),
            };
            let now = self.inner.clock.now();
            let mut next = Live {
                case: live.case.clone(),
                wf: live.wf.clone(),
                workflow: live.workflow,
                created_at: live.created_at,
                snapshot_seq: live.snapshot_seq,
                owner: live.owner,
            };
            let over_budget = next.wf.or_join_stats().over_budget;
            let step = match next
                .case
                .apply(&next.wf, now, input.clone(), &mut Ids(self.inner.ids))
            {
                Ok(step) => step,
                Err(e) => {
                    // A copy kept in memory may be stale: another node sharing the store may
                    // have moved the case (armed the timer this input fires, offered the item
                    // it names). Refusing on a stale copy would drop the input for good, so a
                    // refusal stands only once the stored version says the copy is current.
                    if cached && self.stored_version(id).await? != Some(live.case.last_seq()) {
                        debug!(case = %id, "cached copy is stale; reloading");
                        continue;
                    }
                    // An ended case was loaded only to refuse this input: keep no copy of it.
                    if !live.case.status().is_final() {
                        *guard = Some(live);
                    }
                    return Err(e.into());
                }
            };
            if next.wf.or_join_stats().over_budget > over_budget {
                tracing::warn!(
                    case = %id,
                    workflow = %next.workflow,
                    budget = knhk_core::OR_JOIN_BUDGET,
                    "an OR-join's exact decision ran past its budget: it waits, as the \
                     conservative rule does (WorkflowEngine::or_join_stats counts these)"
                );
            }
            match self
                .commit_step(
                    &mut next,
                    Some(live.case.last_seq()),
                    step.events,
                    now,
                    key.clone(),
                    owned_by,
                )
                .await
            {
                Ok(view) => {
                    // The work in flight this step found was another node's (or no node's):
                    // it is this node's now, which does it again, as after a crash.
                    let taken_over = next.owner.is_some()
                        && live.owner != next.owner
                        && records::has_work_in_flight(&live.case, &live.wf);
                    let mut effects = step.effects;
                    if taken_over {
                        effects.extend(service::taken_over(&next, &effects));
                    }
                    let ended = next.case.status().is_final();
                    if !ended {
                        *guard = Some(next);
                    }
                    // Under the case's lock: effects of consecutive steps keep their order.
                    self.perform(id, effects);
                    return Ok(view);
                }
                // Another node owns the case's work now, or this node lost its lease: the copy
                // in memory may name an owner no longer true, so none is kept.
                Err(
                    e @ Error::Store(
                        knhk_store::Error::Fenced { .. } | knhk_store::Error::LeaseExpired { .. },
                    ),
                ) => return Err(e),
                Err(Error::Store(knhk_store::Error::Conflict { .. })) => {
                    // Another writer (another process on the same store) moved the case:
                    // load it again and decide anew (the cell stays empty).
                    debug!(case = %id, "case changed under us; reloading");
                }
                Err(e) => {
                    *guard = Some(live);
                    return Err(e);
                }
            }
        }
        Err(Error::Busy(id))
    }

    fn apply_boxed(
        &self,
        id: CaseId,
        input: Input,
        owned_by: Option<u64>,
    ) -> BoxFut<'static, Result<CaseView, Error>> {
        let engine = self.clone();
        Box::pin(async move { engine.apply_owned(id, input, owned_by, None).await })
    }

    /// Returns the fencing token of this engine's node (`None` until started, and for a
    /// one-shot engine).
    pub fn fence(&self) -> Option<u64> {
        *lock(&self.inner.fence)
    }
}

/// Counts the bytes written to it and fails once they pass `limit`.
struct Bounded {
    written: usize,
    limit: usize,
}

impl std::io::Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.written = self.written.saturating_add(buf.len());
        if self.written > self.limit {
            return Err(std::io::Error::other("over the bound"));
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Locks a std mutex, going on with the data if a panicking thread poisoned it (the maps
/// guarded here stay consistent: every update is a single insert or remove).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
