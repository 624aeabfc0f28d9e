//! `knhk run` and the commands that set a case going: start a case, follow it in this process
//! until it settles, then say where it stands.

use std::future::Future;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use std::time::Duration;

use knhk_core::{CaseId, Timestamp, Wait};
use knhk_workflow_engine::{Error, ErrorCode, SourceFormat, WorkflowView};
use serde_json::{Map, Value};

use crate::progress::{Progress, Sink};
use crate::session::{Session, json_object};
use crate::{outcome, report};

/// The options of `knhk run`.
#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    /// The workflow: a definition file (Turtle `.ttl`, or YAWL XML `.yawl`/`.xml`), which is
    /// registered first, or a registered workflow by id, URI or name (the latest version), or
    /// NAME@VERSION / URI@VERSION.
    #[arg(value_name = "WORKFLOW")]
    workflow: String,
    /// The initial case data, a JSON object.
    #[arg(long, value_name = "JSON")]
    data: Option<String>,
    /// Prints one JSON document (case, data, history, work items); progress goes to stderr.
    #[arg(long)]
    json: bool,
    /// Waits for the case's timers that fall due within this many seconds, and fires them;
    /// a timer due later is left to `knhk worker`. 0 waits for none.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    wait: u64,
}

impl RunArgs {
    /// Returns the definition file the workflow argument names, if it names one: an existing
    /// file, or a path with a definition's extension (and no `:`, which a URI has), whose
    /// reading error is then the one to report.
    pub(crate) fn file(&self) -> Option<&Path> {
        let path = Path::new(&self.workflow);
        let file_like = SourceFormat::of_path(path).is_some() && !self.workflow.contains(':');
        (path.is_file() || file_like).then_some(path)
    }
}

/// Registers the workflow file (or finds the registered workflow), then starts a case of it
/// and follows it.
pub(crate) async fn run(session: &Session, args: RunArgs) -> anyhow::Result<ExitCode> {
    // Bad data is refused before anything is stored.
    let data = json_object("--data", args.data.as_deref())?;
    let sink = if args.json {
        Sink::Stderr
    } else {
        Sink::Stdout
    };
    let workflow = match args.file() {
        Some(file) => {
            let registration = session.engine.register_file(file).await?;
            say(sink, &crate::workflows::registered(&registration));
            registration.workflow
        }
        None => session.workflow(&args.workflow).await?,
    };
    let wait = Duration::from_secs(args.wait);
    start_case(session, &workflow, data, args.json, wait).await
}

/// Creates and starts a case of `workflow`, follows it until it settles and reports it.
/// Timers that fall due within `wait` are waited for and fired in this process.
pub(crate) async fn start_case(
    session: &Session,
    workflow: &WorkflowView,
    data: Map<String, Value>,
    json: bool,
    wait: Duration,
) -> anyhow::Result<ExitCode> {
    let engine = &session.engine;
    let sink = if json { Sink::Stderr } else { Sink::Stdout };
    let definition = session.definition(workflow.id).await;
    let mut progress = Progress::new(
        definition.as_deref().map(|d| d.specification()),
        sink,
        session.zone(),
    );
    let updates = engine.subscribe();
    let case = engine
        .create_case(workflow.id, Value::Object(data), true)
        .await
        .with_context(|| format!("cannot start a case of workflow {}", workflow.id))?;
    say(sink, &format!("case {}\n", case.id));
    progress.follow(engine, case.id, updates).await?;
    // A server fires its timers itself.
    if let crate::backend::Backend::Local(local) = engine {
        let deadline = local
            .clock()
            .now()
            .plus_millis(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX));
        fire_timers_until(session, local, case.id, deadline, &mut progress).await?;
    }
    outcome::print(session, case.id, json).await
}

/// Fires the case's timers that fall due by `deadline`, in order, each once it is due, and
/// follows what each sets going; returns when the case waits for no timer due by then.
async fn fire_timers_until(
    session: &Session,
    engine: &knhk_workflow_engine::WorkflowEngine,
    case: CaseId,
    deadline: Timestamp,
    progress: &mut Progress,
) -> anyhow::Result<()> {
    loop {
        let next = engine
            .waits(case)
            .await?
            .into_iter()
            .filter_map(|w| match w {
                Wait::Timer {
                    timer,
                    task,
                    fires_at,
                } => Some((fires_at, timer, task)),
                _ => None,
            })
            .min_by_key(|(fires_at, ..)| *fires_at);
        let Some((fires_at, timer, task)) = next else {
            return Ok(());
        };
        if fires_at > deadline {
            return Ok(());
        }
        let now = engine.clock().now();
        if fires_at > now {
            eprintln!(
                "waiting for the timer of task {}, due at {} (--wait)",
                report::task_label(&task),
                session.zone().show(fires_at)
            );
            let millis = u64::try_from(fires_at.0.saturating_sub(now.0)).unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(millis)).await;
        }
        let updates = Some(engine.subscribe());
        match engine.fire_due_timer(case, timer).await {
            Ok(_) => {}
            // The clock is a millisecond short of the due time: look again.
            Err(Error::TimerNotDue { .. }) => continue,
            // Another process (a worker) fired or cancelled it meanwhile.
            Err(e) if e.code() == ErrorCode::NotFound => {}
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!("cannot fire timer {timer}")));
            }
        }
        progress.follow(&session.engine, case, updates).await?;
    }
}

/// Takes one step of an existing case (`step` is not polled before the history so far is
/// read), follows what it sets going until the case settles, and reports the case. With
/// `show_earlier`, the history from the case's start is shown too.
pub(crate) async fn drive<T>(
    session: &Session,
    case: CaseId,
    json: bool,
    show_earlier: bool,
    step: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<ExitCode> {
    let engine = &session.engine;
    let record = engine.case(case).await?;
    let definition = session.definition(record.workflow).await;
    let sink = if json { Sink::Stderr } else { Sink::Stdout };
    let mut progress = Progress::new(
        definition.as_deref().map(|d| d.specification()),
        sink,
        session.zone(),
    );
    if !show_earlier {
        // What the case waits for names the tasks of its live work items and timers: the
        // history before the step need not be read.
        progress.start_after(record.version, &engine.waits(case).await?);
    }
    let updates = engine.subscribe();
    step.await?;
    progress.follow(engine, case, updates).await?;
    outcome::print(session, case, json).await
}

/// Prints a line about what the command did: on stdout, or on stderr when stdout holds JSON.
pub(crate) fn say(sink: Sink, line: &str) {
    match sink {
        Sink::Stdout => outln!("{line}"),
        Sink::Stderr => eprintln!("{line}"),
    }
}
