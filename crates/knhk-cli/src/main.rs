//! The `knhk` command: runs workflows on the embedded store and works with their cases and
//! work items; validates, simulates and exports definitions.
//!
//! Every command that touches cases opens the engine on the data directory (`--data-dir`,
//! the SQLite file `knhk.db` in it), does its work in this process, waits until what it set
//! going has settled (connector calls made, results committed), and exits. Another command,
//! in another process, takes the case up from the store. With `--server URL`, the `workflow`,
//! `case` and `workitem` commands are clients of a running `knhk serve` instead
//! (`backend.rs`).

/// Prints to standard output like `print!`, but a closed pipe (`knhk case history ID | head`)
/// is not worth a panic: the rest of the output is dropped and the command ends as it would.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

/// Prints a line to standard output like `println!`; see [`out!`] for a closed pipe.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod backend;
mod cases;
mod config;
mod connectors;
mod input;
mod lockchain;
mod lockchain_config;
mod lockchain_show;
mod outcome;
mod progress;
mod report;
mod run;
mod serve;
mod session;
mod simulate;
mod store_check;
mod worker;
mod workflows;
mod workitems;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use knhk_core::ApplyOptions;
use tracing_subscriber::EnvFilter;

use crate::session::{DEFAULT_DATA_DIR, Durability, Session, Settings, StoreAddress, json_object};

/// knhk: a workflow engine with YAWL semantics.
#[derive(Debug, Parser)]
#[command(name = "knhk", version)]
struct Cli {
    /// The data directory: the store `knhk.db` and the role directory `directory.json`.
    #[arg(
        long,
        global = true,
        env = "KNHK_DATA_DIR",
        default_value = DEFAULT_DATA_DIR,
        value_name = "DIR"
    )]
    data_dir: PathBuf,
    /// The administrators' role: work items of manual tasks that the definition leaves to be
    /// distributed at run time (YAWL's `<offer initiator="user"/>`) are offered to it, and its
    /// members offer or allocate them on (`knhk workitem offer|allocate`).
    #[arg(
        long,
        global = true,
        env = "KNHK_ADMIN_ROLE",
        default_value = "admin",
        value_name = "ROLE"
    )]
    admin_role: String,
    /// The most tasks one step of a case may start without waiting for the outside world; a
    /// loop of automatic tasks fails its case past it, naming the tasks of the loop.
    #[arg(
        long,
        global = true,
        env = "KNHK_MAX_FIRINGS",
        default_value_t = ApplyOptions::DEFAULT_MAX_FIRINGS,
        value_name = "N"
    )]
    max_firings: u32,
    /// The most sub-net instances nested inside each other, at most 1000 (ending a case walks
    /// its nesting on the stack); a composite task that would start a net deeper (a recursion
    /// through sub-nets that never ends) fails its case, naming it.
    #[arg(
        long,
        global = true,
        env = "KNHK_MAX_SUBNET_DEPTH",
        default_value_t = ApplyOptions::DEFAULT_MAX_SUBNET_DEPTH,
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(..=1000)
    )]
    max_subnet_depth: u32,
    /// The most bytes of a workflow definition's text; a larger one is refused before it is
    /// read (validate, register, run, simulate).
    #[arg(
        long,
        global = true,
        env = "KNHK_MAX_DEFINITION_BYTES",
        default_value_t = knhk_spec::Limits::DEFAULT_MAX_DEFINITION_BYTES,
        value_name = "BYTES"
    )]
    max_definition_bytes: usize,
    /// The most tasks in a workflow definition, over all its nets.
    #[arg(
        long,
        global = true,
        env = "KNHK_MAX_TASKS",
        default_value_t = knhk_spec::Limits::DEFAULT_MAX_TASKS,
        value_name = "N"
    )]
    max_tasks: usize,
    /// The most bytes of JSON in a case's data, and in any one JSON input (data at creation, a
    /// work item's output, data set, an event's data); a task whose output would make the data
    /// larger fails, saying so.
    #[arg(
        long,
        global = true,
        env = "KNHK_MAX_DATA_BYTES",
        default_value_t = ApplyOptions::DEFAULT_MAX_DATA_BYTES,
        value_name = "BYTES"
    )]
    max_data_bytes: usize,
    /// The most cases `knhk worker` keeps in memory between their steps (about 1 KiB each for
    /// a small case); past it the one cached first is dropped and read from the store again at
    /// its next step.
    #[arg(
        long,
        global = true,
        env = "KNHK_CASE_CACHE",
        default_value_t = knhk_workflow_engine::EngineConfig::DEFAULT_CASE_CACHE,
        value_name = "CASES"
    )]
    case_cache: usize,
    /// How many events a case may gain after its last snapshot before a step stores a new
    /// one (with the step), so that loading the case (`case show`, work item commands...)
    /// reads the snapshot and the events after it, not its whole history; 0 stores and reads
    /// no snapshot.
    #[arg(
        long,
        global = true,
        env = "KNHK_SNAPSHOT_EVERY",
        default_value_t = knhk_workflow_engine::EngineConfig::DEFAULT_SNAPSHOT_EVERY,
        value_name = "EVENTS"
    )]
    snapshot_every: u64,
    /// How many rows a JSON-lines list (`--jsonl`) reads from the store at a time: what it
    /// holds in memory, whatever the length of the list.
    #[arg(
        long,
        global = true,
        env = "KNHK_PAGE_SIZE",
        default_value_t = 1000,
        value_name = "ROWS",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    page_size: u64,
    /// How often `knhk worker` reads the stored timers again, in milliseconds, so that it fires
    /// timers that other processes arm while it runs.
    #[arg(
        long,
        global = true,
        env = "KNHK_TIMER_POLL_MS",
        default_value_t = 1000,
        value_name = "MS",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    timer_poll_ms: u64,
    /// How long the lease of a `knhk worker` or `knhk serve` node on the store lasts without a
    /// heartbeat, in milliseconds: once it expired, the other nodes on the store take over its
    /// cases with work in flight (connector calls, allocations) and refuse its results.
    #[arg(
        long,
        global = true,
        env = "KNHK_LEASE_MS",
        default_value_t = 10_000,
        value_name = "MS",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    lease_ms: u64,
    /// How often a `knhk worker` or `knhk serve` node renews its lease and looks for the cases
    /// of dead nodes, in milliseconds; less than `--lease-ms`.
    #[arg(
        long,
        global = true,
        env = "KNHK_HEARTBEAT_MS",
        default_value_t = 3_000,
        value_name = "MS",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    heartbeat_ms: u64,
    /// Shows points in time in tables in UTC instead of the local time zone (`TZ`, else the
    /// system's). JSON output is always RFC 3339 in UTC.
    #[arg(long, global = true, env = "KNHK_UTC")]
    utc: bool,
    /// Caps the store file at this many 4 KiB pages: a step that would grow it further fails
    /// as on a full disk, and the command says so. A quota; unset, the store grows as needed.
    #[arg(
        long,
        global = true,
        env = "KNHK_STORE_MAX_PAGES",
        value_name = "PAGES"
    )]
    store_max_pages: Option<u64>,
    /// When a step counts as stored (config key `durability` of `knhk serve`). `full` (the
    /// default): SQLite `synchronous=FULL`, a step is acknowledged only once its commit is
    /// fsynced, so it survives a power cut. `normal`: `synchronous=NORMAL`, fsync only at
    /// checkpoints; faster, a step acknowledged survives a crash of the process, but the last
    /// ones may be lost on a power cut or an OS crash.
    #[arg(
        long,
        global = true,
        env = "KNHK_DURABILITY",
        value_enum,
        default_value_t = Durability::Full,
        value_name = "MODE"
    )]
    durability: Durability,
    /// The store: `sqlite:PATH` (a SQLite file) or a PostgreSQL URL
    /// (`postgres://USER@HOST:PORT/DB`, with `?options=-csearch_path%3DSCHEMA` to keep the
    /// tables in a schema of their own, created if missing); config key `store` of `knhk
    /// serve`. Unset: the SQLite file `knhk.db` in the data directory. A password in it is
    /// never printed.
    #[arg(long, global = true, env = "KNHK_STORE", value_name = "URL")]
    store: Option<String>,
    /// The most connections a PostgreSQL store opens (config key `pool_size`; default 16).
    #[arg(
        long,
        global = true,
        env = "KNHK_STORE_POOL_SIZE",
        value_name = "N",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    store_pool_size: Option<u64>,
    /// Works with the `knhk serve` at this URL (`http://HOST:PORT`) over its REST API instead
    /// of opening the data directory: the `workflow`, `case` and `workitem` commands take it,
    /// with the same output and exit codes. `run`, `worker` and `store check` refuse it.
    #[arg(long, global = true, env = "KNHK_SERVER", value_name = "URL")]
    server: Option<String>,
    /// The config file (TOML): `[connectors.NAME]` tables, the connector instances tasks name
    /// with `knhk:connector "NAME"`, for every command; `knhk serve`'s keys (README.md lists
    /// them); `[[subscriptions]]`. Unset: `knhk.toml` in the data directory, when it exists.
    #[arg(long, global = true, env = "KNHK_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs a workflow: registers the file (or finds the registered workflow), starts a case
    /// and shows its history as it runs.
    ///
    /// The case runs until it ends or waits for the outside world (a person, a timer, an
    /// event); connector calls are made by this process. Exits with status 1 when the case
    /// fails or is cancelled.
    Run(run::RunArgs),
    /// Registers, lists and shows workflow definitions.
    #[command(subcommand)]
    Workflow(workflows::WorkflowCommand),
    /// Creates, runs, inspects and steers cases.
    #[command(subcommand)]
    Case(cases::CaseCommand),
    /// Lists, claims, starts and completes the work items of human tasks.
    #[command(subcommand, name = "workitem")]
    WorkItem(workitems::WorkItemCommand),
    /// Checks the store of the data directory (`knhk store check`).
    #[command(subcommand)]
    Store(store_check::StoreCommand),
    /// Lists and probes the connector instances of the config file (and the built-in `http`).
    #[command(subcommand)]
    Connector(connectors::ConnectorCommand),
    /// The tamper-evident case history: verifies the whole log offline or one receipt, and
    /// prints receipts, the latest checkpoint and the public key.
    #[command(subcommand)]
    Lockchain(lockchain::LockchainCommand),
    /// Keeps the engine running on the data directory: picks up unfinished cases (connector
    /// calls cut off by a crash are made again) and fires timers, until interrupted.
    Worker(worker::WorkerArgs),
    /// Serves the REST and gRPC APIs over the engine on the data directory (and runs it as
    /// `knhk worker` does: recovery, timers, connectors) until SIGTERM or Ctrl-C. Its
    /// configuration: defaults, then the config file (`--config FILE`, else `knhk.toml` in the
    /// data directory), then `KNHK_*` environment variables, then flags (README.md lists every
    /// key).
    Serve(serve::ServeArgs),
    /// Checks workflow definition files (Turtle or YAWL XML) and names every rule each one
    /// breaks, notes what is valid but worth knowing (a split with one flow...), and warns
    /// about likely mistakes: a name no variable declares and no task gives, a url placeholder
    /// with no source, an XOR split that may find no flow.
    ///
    /// Exits with status 1 when any file is invalid, or has warnings with --strict; notes
    /// never fail it.
    Validate {
        /// The definition files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Prints a JSON array: per file, `file`, `ok`, `nets`, `tasks`, `notes`, `warnings`
        /// (each with `code`, `net`, `task` and `message`) and `errors`.
        #[arg(long)]
        json: bool,
        /// Fails (status 1) when any file has warnings.
        #[arg(long)]
        strict: bool,
    },
    /// Runs one case of a workflow in memory and prints its history.
    ///
    /// Empty tasks complete on their own; the work items of human tasks are completed with an
    /// empty output by the user "simulator"; timers fire when nothing else can move. The
    /// simulation stops when the case ends or waits for the outside world (a trigger or a
    /// connector call). The history shows times since the case was created and numbers work
    /// items and timers from 1. Exits with status 1 when the case fails, is cancelled, is
    /// stuck or never ends.
    Simulate {
        /// The definition file.
        file: PathBuf,
        /// The initial case data, a JSON object.
        #[arg(long, value_name = "JSON")]
        data: Option<String>,
        /// Prints one JSON document: `case_id`, `state`, `ending`, `waits`, `data`, `history`.
        #[arg(long)]
        json: bool,
    },
    /// Prints a definition as Turtle in the YAWL 4 vocabulary with knhk's terms.
    Export {
        /// The definition file.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `knhk serve` has its own configuration, logs and runtime.
    if let Command::Serve(args) = &cli.command {
        return match serve::main(args, &cli) {
            Ok(code) => code,
            Err(e) => {
                for line in message(&e).lines() {
                    eprintln!("error: {line}");
                }
                ExitCode::FAILURE
            }
        };
    }
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("error"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal, not in a file or a pipe.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if cli.heartbeat_ms >= cli.lease_ms {
        eprintln!(
            "error: --heartbeat-ms {} must be less than --lease-ms {}, or the lease expires \
             between heartbeats",
            cli.heartbeat_ms, cli.lease_ms
        );
        return ExitCode::FAILURE;
    }
    // Commands other than `knhk serve` take the connector instances of the file (and pass
    // its subscriptions on); its flat keys are serve's.
    let file = match config::ConfigFile::read(cli.config.as_deref(), &cli.data_dir) {
        Ok(file) => file,
        Err(e) => {
            for line in message(&e).lines() {
                eprintln!("error: {line}");
            }
            return ExitCode::FAILURE;
        }
    };
    let definition_limits = knhk_spec::Limits {
        max_definition_bytes: cli.max_definition_bytes,
        max_tasks: cli.max_tasks,
    };
    let spec_options = knhk_spec::Options {
        admin_role: cli.admin_role.clone(),
        limits: definition_limits,
    };
    let settings = Settings {
        admin_role: cli.admin_role,
        step: ApplyOptions::default()
            .with_max_firings(cli.max_firings)
            .with_max_subnet_depth(cli.max_subnet_depth)
            .with_max_data_bytes(cli.max_data_bytes),
        timer_poll: std::time::Duration::from_millis(cli.timer_poll_ms),
        lease: std::time::Duration::from_millis(cli.lease_ms),
        heartbeat_interval: std::time::Duration::from_millis(cli.heartbeat_ms),
        definition_limits,
        max_input_bytes: cli.max_data_bytes,
        case_cache: cli.case_cache,
        snapshot_every: cli.snapshot_every,
        page_size: usize::try_from(cli.page_size).unwrap_or(usize::MAX),
        zone: zone(cli.utc),
        max_pages: cli.store_max_pages,
        durability: cli.durability,
        store: cli.store.clone(),
        pool_size: cli
            .store_pool_size
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        connectors: file.connectors,
        subscriptions: file.subscriptions,
        lockchain: crate::lockchain_config::LockchainFile {
            // Verifying reads the log: it makes no key where there is none.
            read_only: matches!(
                cli.command,
                Command::Lockchain(lockchain::LockchainCommand::Verify(_))
            ),
            ..file.lockchain
        },
    };
    let result = match cli.command {
        Command::Validate {
            files,
            json,
            strict,
        } => validate(&files, json, strict, &spec_options, &settings.connectors),
        Command::Simulate { file, data, json } => simulate(&file, data.as_deref(), json, &settings),
        Command::Export { file } => export(&file),
        // A receipt is checked with nothing but its key: no store, no runtime.
        Command::Lockchain(lockchain::LockchainCommand::VerifyReceipt(args)) => {
            lockchain::verify_receipt(&args)
        }
        Command::Lockchain(lockchain::LockchainCommand::VerifyConsistency(args)) => {
            lockchain::verify_consistency(&args)
        }
        command => match tokio::runtime::Builder::new_multi_thread()
            // The CEL parser and evaluator recurse once per level of an expression, with large
            // frames in a debug build: 8 MiB (the main thread's) holds the deepest one accepted.
            .thread_stack_size(8 << 20)
            .worker_threads(2)
            .enable_all()
            .build()
        {
            Ok(runtime) => match cli.server.as_deref().filter(|s| !s.trim().is_empty()) {
                // `knhk connector` needs no store: the instances are the config file's.
                None if matches!(command, Command::Connector(_)) => {
                    runtime.block_on(connectors::run(command_connector(command), &settings))
                }
                Some(url) => runtime.block_on(dispatch_remote(command, url, settings)),
                None => runtime.block_on(dispatch(command, &cli.data_dir, settings)),
            },
            Err(e) => Err(anyhow::Error::new(e).context("cannot start the async runtime")),
        },
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            for line in message(&e).lines() {
                eprintln!("error: {line}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Returns an error and its causes on one line, each cause once: an error that wraps
/// another with the same text (`#[error("{0}")]`) would otherwise say everything twice.
fn message(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if parts.last().is_none_or(|last| !last.ends_with(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

/// Runs a command that works on the engine.
async fn dispatch(
    command: Command,
    data_dir: &Path,
    settings: Settings,
) -> anyhow::Result<ExitCode> {
    // Only the commands that register or run a workflow make a store; any other command on a
    // folder without one would find nothing there, and leave an empty store behind.
    let creates_store = match &command {
        Command::Run(args) => args.file().is_some(),
        Command::Worker(_) | Command::Workflow(workflows::WorkflowCommand::Register { .. }) => true,
        _ => false,
    };
    let address = StoreAddress::parse(settings.store.as_deref(), data_dir)?;
    if !creates_store && !Session::exists(&address) {
        if settings.store.is_some() {
            anyhow::bail!(
                "no knhk store at {}: nothing was registered there yet (start with `knhk run \
                 FILE` or `knhk workflow register FILE`)",
                address.shown()
            );
        }
        anyhow::bail!(
            "no knhk store in the data directory {}: nothing was registered there yet (name \
             another one with --data-dir DIR or KNHK_DATA_DIR, or start with `knhk run FILE` or \
             `knhk workflow register FILE`)",
            data_dir.display()
        );
    }
    let session = Session::open(data_dir, settings).await?;
    let looked_in = session.looked_in();
    // `knhk run` signs a checkpoint of what it did before it exits, so that its receipts
    // need no later one.
    let final_checkpoint = matches!(command, Command::Run(_));
    let result = match command {
        Command::Run(args) => run::run(&session, args).await,
        Command::Worker(args) => worker::run(&session, args).await,
        Command::Workflow(c) => workflows::run(&session, c).await,
        Command::Case(c) => cases::run(&session, c).await,
        Command::WorkItem(c) => workitems::run(&session, c).await,
        Command::Store(c) => store_check::run(&session, c).await,
        Command::Lockchain(c) => lockchain::run(&session, c).await,
        Command::Connector(_)
        | Command::Validate { .. }
        | Command::Simulate { .. }
        | Command::Export { .. }
        | Command::Serve(_) => Ok(ExitCode::SUCCESS),
    };
    if final_checkpoint {
        session.final_checkpoint().await;
    }
    session.close().await;
    // An unknown id may only mean that the command looked in another data directory.
    result.map_err(|e| {
        let not_found = e.chain().any(|cause| {
            cause
                .downcast_ref::<knhk_workflow_engine::Error>()
                .is_some_and(|e| e.code() == knhk_workflow_engine::ErrorCode::NotFound)
        });
        if not_found {
            anyhow::anyhow!("{} ({looked_in})", message(&e),)
        } else {
            e
        }
    })
}

/// Runs a command on the `knhk serve` at `url`.
async fn dispatch_remote(
    command: Command,
    url: &str,
    settings: Settings,
) -> anyhow::Result<ExitCode> {
    let name = match &command {
        Command::Run(_) => Some("run"),
        Command::Worker(_) => Some("worker"),
        Command::Store(_) => Some("store check"),
        _ => None,
    };
    if let Some(name) = name {
        anyhow::bail!(
            "`knhk {name}` works on a data directory and does not take --server (nor \
             KNHK_SERVER, set to {url}): run it without, where the data directory is"
        );
    }
    if let Command::Connector(c) = command {
        return connectors::run_remote(c, url).await;
    }
    let session = Session::connect(url, settings)?;
    let result = match command {
        Command::Workflow(c) => workflows::run(&session, c).await,
        Command::Case(c) => cases::run(&session, c).await,
        Command::WorkItem(c) => workitems::run(&session, c).await,
        Command::Lockchain(c) => lockchain::run(&session, c).await,
        _ => Ok(ExitCode::SUCCESS),
    };
    // An unknown id: say where it was looked up.
    result.map_err(|e| {
        if backend::is_not_found(&e) {
            anyhow::anyhow!("{} ({})", message(&e), session.looked_in())
        } else {
            e
        }
    })
}

/// Returns the `knhk connector` subcommand of a command known to be one.
fn command_connector(command: Command) -> connectors::ConnectorCommand {
    match command {
        Command::Connector(c) => c,
        _ => connectors::ConnectorCommand::List { json: false },
    }
}

/// Loads each file and reports it with what was noted (findings that are not errors); fails
/// when any file does not load. Tasks may name the config file's connector instances.
fn validate(
    files: &[PathBuf],
    json: bool,
    strict: bool,
    options: &knhk_spec::Options,
    instances: &[knhk_connectors::InstanceConfig],
) -> anyhow::Result<ExitCode> {
    let mut failed = false;
    let mut warned = 0;
    let mut docs = Vec::new();
    // Instances are made (not connected) in a runtime: a pool starts its reaper there.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let connectors = {
        let _entered = runtime.enter();
        config::registry(instances)?
    };
    for file in files {
        // What registering would refuse is refused here too: a connector this engine does not
        // have, or settings it does not take.
        let loaded = knhk_spec::load_file_with(file, options).map_err(|e| e.to_string());
        let loaded = loaded.and_then(|(loaded, text)| {
            let problems = knhk_workflow_engine::connector_problems(
                &connectors,
                loaded.workflow.specification(),
            );
            if problems.is_empty() {
                Ok((loaded, text))
            } else {
                Err(problems
                    .iter()
                    .map(|p| format!("{}: task {p}", file.display()))
                    .collect::<Vec<_>>()
                    .join("\n"))
            }
        });
        match loaded {
            Ok((loaded, _)) if json => {
                let spec = loaded.workflow.specification();
                let warnings = loaded.warnings();
                warned += warnings.len();
                docs.push(serde_json::json!({
                    "file": file.display().to_string(),
                    "ok": true,
                    "nets": spec.nets.len(),
                    "tasks": spec.nets.iter().map(|n| n.tasks.len()).sum::<usize>(),
                    "notes": loaded.notes.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "warnings": warnings.iter().map(|w| serde_json::json!({
                        "code": w.kind.code(),
                        "net": w.net,
                        "task": w.task,
                        "message": format!("{}: {w}", file.display()),
                    })).collect::<Vec<_>>(),
                    "errors": Vec::<String>::new(),
                }));
            }
            Err(e) if json => {
                failed = true;
                docs.push(serde_json::json!({
                    "file": file.display().to_string(),
                    "ok": false,
                    "notes": Vec::<String>::new(),
                    "warnings": Vec::<String>::new(),
                    "errors": e.lines().collect::<Vec<_>>(),
                }));
            }
            Ok((loaded, _)) => {
                let workflow = &loaded.workflow;
                let spec = workflow.specification();
                let tasks: usize = spec.nets.iter().map(|n| n.tasks.len()).sum();
                outln!(
                    "ok {}: {} {}, {} {}",
                    file.display(),
                    spec.nets.len(),
                    plural(spec.nets.len(), "net", "nets"),
                    tasks,
                    plural(tasks, "task", "tasks")
                );
                for note in &loaded.notes {
                    outln!("note: {note}");
                }
                let warnings = loaded.warnings();
                warned += warnings.len();
                for warning in &warnings {
                    outln!("warning: {}: {warning}", file.display());
                }
            }
            Err(e) => {
                failed = true;
                for line in e.lines() {
                    eprintln!("error: {line}");
                }
            }
        }
    }
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&docs).unwrap_or_else(|_| "[]".to_owned())
        );
    }
    if strict && warned > 0 {
        eprintln!(
            "error: {warned} {} (--strict fails on warnings)",
            plural(warned, "warning", "warnings")
        );
        failed = true;
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

fn load_definition(file: &Path) -> anyhow::Result<knhk_core::Workflow> {
    // The error already names the file.
    knhk_spec::load_file(file).map_err(anyhow::Error::new)
}

fn simulate(
    file: &Path,
    data: Option<&str>,
    json: bool,
    settings: &Settings,
) -> anyhow::Result<ExitCode> {
    let options = knhk_spec::Options {
        admin_role: settings.admin_role.clone(),
        limits: settings.definition_limits,
    };
    let (loaded, _) = knhk_spec::load_file_with(file, &options).map_err(anyhow::Error::new)?;
    let data = json_object("--data", data)?;
    let run = simulate::run(&loaded.workflow, data, simulate::now(), settings.step)?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&run.json())?);
    } else {
        out!("{}", run.report());
    }
    Ok(if run.succeeded() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn export(file: &Path) -> anyhow::Result<ExitCode> {
    let workflow = load_definition(file)?;
    out!("{}", knhk_spec::write_turtle(workflow.specification()));
    Ok(ExitCode::SUCCESS)
}

/// Returns the zone of points in time in tables: UTC with `--utc`, else the local one.
fn zone(utc: bool) -> report::Zone {
    if utc {
        report::Zone::Utc
    } else {
        report::Zone::local()
    }
}
