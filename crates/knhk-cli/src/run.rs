//! `knhk run` and the commands that set a case going: start a case, follow it in this process
//! until it settles, then say where it stands.

use std::future::Future;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use knhk_core::CaseId;
use knhk_workflow_engine::{SourceFormat, WorkflowView};
use serde_json::{Map, Value};

use crate::outcome;
use crate::progress::{Progress, Sink};
use crate::session::{Session, json_object};

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
    start_case(session, &workflow, data, args.json).await
}

/// Creates and starts a case of `workflow`, follows it until it settles and reports it.
pub(crate) async fn start_case(
    session: &Session,
    workflow: &WorkflowView,
    data: Map<String, Value>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let engine = &session.engine;
    let sink = if json { Sink::Stderr } else { Sink::Stdout };
    let definition = session.definition(workflow.id).await;
    let mut progress = Progress::new(definition.as_deref().map(|d| d.specification()), sink);
    let updates = engine.subscribe();
    let case = engine
        .create_case(workflow.id, Value::Object(data), true)
        .await
        .with_context(|| format!("cannot start a case of workflow {}", workflow.id))?;
    say(sink, &format!("case {}\n", case.id));
    progress.follow(engine, case.id, updates).await?;
    outcome::print(session, case.id, json).await
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
    let mut progress = Progress::new(definition.as_deref().map(|d| d.specification()), sink);
    if !show_earlier {
        progress.skip(&engine.history(case).await?);
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
