//! `knhk-bench load`: drives a load of cases on the embedded store and prints every step it learns
//! is durable, so that a crash test can kill it anywhere and check that nothing printed is lost.
//!
//! Output, one line per fact, flushed at once:
//! - `created <case>`: `create_case` returned, so the case and its first step are durable;
//! - `ack <case> <version>`: a step of the case committed durably, the case is now at `version`
//!   (the seq of its last event);
//! - `done <completed> <failed>`: every watched case has ended.

use knhk_core::WorkflowId;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use knhk_core::{CaseId, CaseStatus};
use knhk_store::{SqliteOptions, SqliteStore};
use knhk_workflow_engine::{
    CaseFault, CaseUpdate, CaseView, Directory, EngineConfig, WorkflowEngine,
};
use serde_json::Value;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinSet;

/// The options of `knhk-bench load`.
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// The data directory, as `knhk --data-dir` names it: the store `knhk.db` and the role
    /// directory `directory.json`.
    #[arg(
        long,
        env = "KNHK_DATA_DIR",
        default_value = "./knhk-data",
        value_name = "DIR"
    )]
    data_dir: PathBuf,
    /// The definition file whose cases are created (not needed with --resume).
    #[arg(long, value_name = "FILE", required_unless_present = "resume")]
    workflow: Option<PathBuf>,
    /// How many cases to create.
    #[arg(long, value_name = "N", default_value_t = 300)]
    cases: usize,
    /// How many created cases may be running at once.
    #[arg(long, value_name = "C", default_value_t = 32)]
    concurrency: usize,
    /// The initial data of every case, a JSON object.
    #[arg(long, value_name = "JSON", default_value = "{}")]
    data: String,
    /// Creates no cases: finishes every unfinished case of the store instead.
    #[arg(long, conflicts_with = "workflow")]
    resume: bool,
    /// Caps the store file at this many 4 KiB pages, as `knhk --store-max-pages` does: steps
    /// past it fail as on a full disk.
    #[arg(long, env = "KNHK_STORE_MAX_PAGES", value_name = "PAGES")]
    store_max_pages: Option<u64>,
}

/// Drives a load of cases on the store of the data directory and waits until they have all
/// ended.
pub async fn run(args: LoadArgs) -> anyhow::Result<ExitCode> {
    let data = parse_data(&args.data)?;
    let engine = open(&args.data_dir, args.store_max_pages).await?;
    // Subscribing before anything runs means no commit goes unseen (short of lagging).
    let updates = engine.subscribe();
    let faults = engine.subscribe_faults();
    let recovered = engine
        .start()
        .await
        .context("cannot start the engine (timers, unfinished cases)")?
        .recovered_cases;
    if recovered > 0 {
        eprintln!("recovered {recovered} unfinished cases");
    }
    let outcome = match (&args.workflow, args.resume) {
        (Some(file), false) => {
            let workflow = engine
                .register_file(file)
                .await
                .with_context(|| format!("cannot register {}", file.display()))?
                .workflow;
            // Load waits for every case to end; a task that waits for people or an outside
            // event would keep it waiting for ever.
            let definition = engine.definition(workflow.id).await?;
            let waiting: Vec<String> = definition
                .specification()
                .nets
                .iter()
                .flat_map(|net| &net.tasks)
                .filter(|t| {
                    matches!(
                        t.binding,
                        knhk_core::model::TaskBinding::Human(_)
                            | knhk_core::model::TaskBinding::Trigger { .. }
                    )
                })
                .map(|t| t.id.to_string())
                .collect();
            if !waiting.is_empty() {
                bail!(
                    "{} has tasks that wait for people or outside events ({}): load drives \
                     cases that end by themselves, and would wait for these for ever",
                    file.display(),
                    waiting.join(", ")
                );
            }
            let load = Load {
                workflow: workflow.id,
                data,
                cases: args.cases,
                concurrency: args.concurrency.max(1),
            };
            load.run(&engine, updates, faults).await
        }
        _ => resume(&engine, updates, faults).await,
    };
    engine.shutdown().await;
    let tally = outcome?;
    Lines.print(format_args!("done {} {}", tally.completed, tally.failed))?;
    Ok(ExitCode::SUCCESS)
}

/// Opens the engine on a data directory as `knhk` does: the SQLite store `knhk.db`
/// (`synchronous=FULL`), the built-in connectors and the roles of `directory.json` if any.
async fn open(data_dir: &Path, max_pages: Option<u64>) -> anyhow::Result<WorkflowEngine> {
    let options = SqliteOptions {
        max_pages,
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open(&data_dir.join("knhk.db"), options)
        .await
        .with_context(|| format!("cannot open the store in {}", data_dir.display()))?;
    let directory = Directory::load(&data_dir.join("directory.json"))?;
    Ok(WorkflowEngine::new(EngineConfig::with_defaults(
        Arc::new(store),
        directory,
    )))
}

fn parse_data(text: &str) -> anyhow::Result<Value> {
    match serde_json::from_str(text).context("--data is not valid JSON")? {
        Value::Object(map) => Ok(Value::Object(map)),
        _ => bail!("--data must be a JSON object"),
    }
}

/// Writes lines to stdout, each flushed at once so that a reader sees it before a crash.
struct Lines;

impl Lines {
    fn print(&self, line: fmt::Arguments<'_>) -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")
            .and_then(|()| out.flush())
            .context("cannot write to stdout")
    }

    fn ack(&self, update: &CaseUpdate) -> anyhow::Result<()> {
        self.print(format_args!("ack {} {}", update.case, update.version))
    }
}

/// How the watched cases ended.
#[derive(Debug, Default)]
struct Tally {
    completed: usize,
    failed: usize,
}

/// Which watched cases are still running, fed by the engine's updates.
#[derive(Debug, Default)]
struct Watch {
    /// Watched cases that have not ended yet.
    open: HashSet<CaseId>,
    /// Cases whose end is counted.
    ended: HashSet<CaseId>,
    /// Cases seen to end before they were watched: their `create_case` had not returned yet.
    ended_early: HashMap<CaseId, CaseStatus>,
    tally: Tally,
}

impl Watch {
    /// Watches a case known to be in `status`; returns whether it has ended.
    fn watch(&mut self, case: CaseId, status: CaseStatus) -> bool {
        match self.ended_early.remove(&case) {
            Some(status) => self.end(case, status),
            None if status.is_final() => self.end(case, status),
            None => {
                self.open.insert(case);
                false
            }
        }
    }

    /// Takes an update in; returns whether it ended a watched case.
    fn update(&mut self, u: &CaseUpdate) -> bool {
        if !u.status.is_final() || self.ended.contains(&u.case) {
            return false;
        }
        if self.open.contains(&u.case) {
            return self.end(u.case, u.status);
        }
        self.ended_early.insert(u.case, u.status);
        false
    }

    fn end(&mut self, case: CaseId, status: CaseStatus) -> bool {
        self.open.remove(&case);
        if !self.ended.insert(case) {
            return false;
        }
        if status == CaseStatus::Completed {
            self.tally.completed += 1;
        } else {
            self.tally.failed += 1;
        }
        true
    }

    /// Looks every open case up in the store, after updates were missed; returns how many
    /// turned out to have ended.
    async fn refresh(&mut self, engine: &WorkflowEngine) -> anyhow::Result<usize> {
        let mut ended = 0;
        let open: Vec<CaseId> = self.open.iter().copied().collect();
        for case in open {
            let view = engine.case(case).await?;
            if view.status.is_final() && self.end(case, view.status) {
                ended += 1;
            }
        }
        Ok(ended)
    }
}

/// Receives the next update; on a lag, says how many were missed and returns `None`.
async fn next_update(
    updates: &mut broadcast::Receiver<CaseUpdate>,
) -> anyhow::Result<Option<CaseUpdate>> {
    match updates.recv().await {
        Ok(u) => Ok(Some(u)),
        Err(RecvError::Lagged(missed)) => {
            eprintln!("missed {missed} updates; their steps are not acknowledged here");
            Ok(None)
        }
        Err(RecvError::Closed) => bail!("the engine stopped announcing commits"),
    }
}

/// Creating cases of one workflow, a bounded number running at once.
#[derive(Debug)]
struct Load {
    workflow: WorkflowId,
    data: Value,
    cases: usize,
    concurrency: usize,
}

impl Load {
    async fn run(
        &self,
        engine: &WorkflowEngine,
        mut updates: broadcast::Receiver<CaseUpdate>,
        mut faults: broadcast::Receiver<CaseFault>,
    ) -> anyhow::Result<Tally> {
        let out = Lines;
        let mut watch = Watch::default();
        let mut creating: JoinSet<Result<CaseView, knhk_workflow_engine::Error>> = JoinSet::new();
        let mut launched = 0;
        // Cases launched and not yet ended.
        let mut in_flight = 0;
        loop {
            while launched < self.cases && in_flight < self.concurrency {
                let engine = engine.clone();
                let (workflow, data) = (self.workflow, self.data.clone());
                creating.spawn(async move { engine.create_case(workflow, data, true).await });
                launched += 1;
                in_flight += 1;
            }
            if launched == self.cases && creating.is_empty() && watch.open.is_empty() {
                drain(&mut updates, &out)?;
                return Ok(watch.tally);
            }
            tokio::select! {
                Some(joined) = creating.join_next(), if !creating.is_empty() => {
                    let view = joined
                        .context("a case creation task stopped")?
                        .context("cannot create a case")?;
                    out.print(format_args!("created {}", view.id))?;
                    if watch.watch(view.id, view.status) {
                        in_flight -= 1;
                    }
                }
                update = next_update(&mut updates) => match update? {
                    Some(u) => {
                        out.ack(&u)?;
                        if watch.update(&u) {
                            in_flight -= 1;
                        }
                    }
                    None => in_flight -= watch.refresh(engine).await?,
                },
                fault = faults.recv() => given_up(fault)?,
            }
        }
    }
}

/// Waits until every unfinished case of the store has ended; counts every case of the store.
async fn resume(
    engine: &WorkflowEngine,
    mut updates: broadcast::Receiver<CaseUpdate>,
    mut faults: broadcast::Receiver<CaseFault>,
) -> anyhow::Result<Tally> {
    let out = Lines;
    let mut watch = Watch::default();
    let mut waiting_for_commands = 0;
    for case in engine
        .cases(&knhk_workflow_engine::CaseQuery::default())
        .await?
    {
        // Created and suspended cases move only when told to: nothing here would end them.
        if matches!(case.status, CaseStatus::Created | CaseStatus::Suspended) {
            waiting_for_commands += 1;
            continue;
        }
        watch.watch(case.id, case.status);
    }
    if waiting_for_commands > 0 {
        eprintln!("{waiting_for_commands} cases wait for a command and are not counted");
    }
    while !watch.open.is_empty() {
        tokio::select! {
            update = next_update(&mut updates) => match update? {
                Some(u) => {
                    out.ack(&u)?;
                    watch.update(&u);
                }
                None => {
                    watch.refresh(engine).await?;
                }
            },
            fault = faults.recv() => given_up(fault)?,
        }
    }
    drain(&mut updates, &out)?;
    Ok(watch.tally)
}

/// Fails the load on a result the engine gave up (the store keeps failing): its case would
/// never end, and the load would wait for it for ever.
fn given_up(fault: Result<CaseFault, RecvError>) -> anyhow::Result<()> {
    match fault {
        Ok(f) => Err(anyhow::Error::new(
            knhk_workflow_engine::Error::ResultLost {
                case: f.case,
                attempts: f.attempts,
                source: f.error,
            },
        )),
        Err(RecvError::Lagged(missed)) => bail!("{missed} results could not be stored"),
        Err(RecvError::Closed) => bail!("the engine stopped reporting faults"),
    }
}

/// Acknowledges the updates already announced: a case that ended in its creation step is
/// counted before its update is read.
fn drain(updates: &mut broadcast::Receiver<CaseUpdate>, out: &Lines) -> anyhow::Result<()> {
    while let Ok(u) = updates.try_recv() {
        out.ack(&u)?;
    }
    Ok(())
}
