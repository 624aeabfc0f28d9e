//! One command's use of the engine: the engine opened on its store (the SQLite file of the
//! data directory, another SQLite file, or a PostgreSQL schema: `--store`), and how to name
//! that store again in the commands the output suggests.

use std::path::{Path, PathBuf};

use std::sync::Arc;

use anyhow::Context;
use knhk_connectors::InstanceConfig;
use knhk_core::{ApplyOptions, Workflow, WorkflowId};
use knhk_store::{PostgresOptions, PostgresStore, SqliteOptions, SqliteStore, Store};
use knhk_workflow_engine::{Clock, Directory, EngineConfig, WorkflowEngine, WorkflowView};

use crate::backend::{Backend, Remote};
use serde_json::{Map, Value};

use crate::report::Zone;

/// The store's file in the data directory.
const STORE_FILE: &str = "knhk.db";

/// Where a command's store is (`--store`, `KNHK_STORE`, config key `store`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum StoreAddress {
    /// A SQLite file: `knhk.db` in the data directory by default, or `sqlite:PATH`.
    Sqlite(PathBuf),
    /// A PostgreSQL database: `postgres://user@host:port/db` (or `postgresql://`), with
    /// `?options=-csearch_path=SCHEMA` for the schema to keep the tables in.
    Postgres(String),
}

impl StoreAddress {
    /// Reads `--store`: `sqlite:PATH` or a PostgreSQL URL; none is the data directory's file.
    pub(crate) fn parse(store: Option<&str>, data_dir: &Path) -> anyhow::Result<StoreAddress> {
        let Some(text) = store.map(str::trim).filter(|s| !s.is_empty()) else {
            return Ok(StoreAddress::Sqlite(data_dir.join(STORE_FILE)));
        };
        if let Some(path) = text.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                anyhow::bail!("--store sqlite:PATH: the path is missing");
            }
            return Ok(StoreAddress::Sqlite(PathBuf::from(path)));
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Ok(StoreAddress::Postgres(text.to_owned()));
        }
        anyhow::bail!(
            "--store {}: neither sqlite:PATH nor a PostgreSQL URL postgres://USER@HOST:PORT/DB",
            redact(text)
        )
    }

    /// Names the store for people: the file, or the URL with its password masked.
    pub(crate) fn shown(&self) -> String {
        match self {
            StoreAddress::Sqlite(path) => path.display().to_string(),
            StoreAddress::Postgres(url) => redact(url),
        }
    }
}

/// Returns a store address with its password masked: what may be printed or logged.
pub(crate) fn redact(address: &str) -> String {
    knhk_store::redact_address(address)
}

/// The data directory when neither `--data-dir` nor `KNHK_DATA_DIR` says otherwise.
pub(crate) const DEFAULT_DATA_DIR: &str = "./knhk-data";

/// When a commit of the store counts as done (`--durability`, config key `durability`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Durability {
    /// SQLite `synchronous=FULL`: a step is acknowledged only once its commit is on disk (the
    /// WAL fsynced); it survives a crash of the process, of the OS and a power cut.
    #[default]
    Full,
    /// SQLite `synchronous=NORMAL`: the WAL is fsynced only at checkpoints. A step acknowledged
    /// survives a crash of the process, but the last ones may be lost on a power cut or an OS
    /// crash (the store stays consistent: whole steps are lost, never part of one).
    Normal,
}

impl Durability {
    /// The name used by the option and the configuration key.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Durability::Full => "full",
            Durability::Normal => "normal",
        }
    }

    /// Reads a name (`full` or `normal`).
    pub(crate) fn from_name(name: &str) -> Option<Durability> {
        match name {
            "full" => Some(Durability::Full),
            "normal" => Some(Durability::Normal),
            _ => None,
        }
    }
}

/// How the engine of a command runs, from the command line's global options.
#[derive(Debug)]
pub(crate) struct Settings {
    /// The administrators' role, which distributes work items left to run time.
    pub(crate) admin_role: String,
    /// How each step runs (the bound on task firings).
    pub(crate) step: ApplyOptions,
    /// How often a worker reads the stored timers again.
    pub(crate) timer_poll: std::time::Duration,
    /// How long a node's lease lasts without a heartbeat.
    pub(crate) lease: std::time::Duration,
    /// How often a node renews its lease and sweeps for the cases of dead nodes.
    pub(crate) heartbeat_interval: std::time::Duration,
    /// How tables show points in time.
    pub(crate) zone: Zone,
    /// The cap on the store file, in pages (`--store-max-pages`).
    pub(crate) max_pages: Option<u64>,
    /// When a commit counts as done (`--durability`).
    pub(crate) durability: Durability,
    /// How large a definition may be.
    pub(crate) definition_limits: knhk_spec::Limits,
    /// The most bytes of JSON in one input; the case data's own bound is in `step`.
    pub(crate) max_input_bytes: usize,
    /// The most cases kept in memory between their steps.
    pub(crate) case_cache: usize,
    /// The events between two snapshots of a case (0: none).
    pub(crate) snapshot_every: u64,
    /// How many rows a JSON-lines list reads at a time.
    pub(crate) page_size: usize,
    /// The store (`--store`); `None`: `knhk.db` in the data directory.
    pub(crate) store: Option<String>,
    /// The most connections to a PostgreSQL store (`--store-pool-size`); `None`: the default.
    pub(crate) pool_size: Option<usize>,
    /// The connector instances of the config file, registered beside the built-in `http`.
    pub(crate) connectors: Vec<InstanceConfig>,
    /// The config file's `[[subscriptions]]` as written, for the intake.
    pub(crate) subscriptions: Option<Value>,
    /// The config file's `[lockchain]` table.
    pub(crate) lockchain: crate::lockchain_config::LockchainFile,
}

/// The engine of one command: on the embedded store of one data directory, or a `knhk
/// serve` reached with `--server`.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) engine: Backend,
    data_dir: PathBuf,
    /// The store the engine runs on (for a remote session, the data directory's default).
    store: StoreAddress,
    zone: Zone,
    page_size: usize,
    /// The config file's `[[subscriptions]]` as written, for the intake.
    subscriptions: Option<Value>,
}

impl Session {
    /// Opens the engine on the embedded default in `data_dir`: the SQLite store `knhk.db`
    /// (created if missing; `synchronous=FULL` unless `--durability normal`), the built-in
    /// connectors and the config file's instances, and the roles of `directory.json` when that
    /// file exists; `settings` say the rest.
    pub(crate) async fn open(data_dir: &Path, settings: Settings) -> anyhow::Result<Session> {
        let address = StoreAddress::parse(settings.store.as_deref(), data_dir)?;
        // Instances first: a bad one is refused before the store is touched.
        let connectors = crate::config::registry(&settings.connectors)?;
        let lockchain = crate::lockchain_config::engine_config(&settings.lockchain, data_dir)?;
        let store: Arc<dyn Store> = match &address {
            StoreAddress::Sqlite(path) => Arc::new(open_sqlite(path, data_dir, &settings).await?),
            StoreAddress::Postgres(url) => Arc::new(open_postgres(url, &settings).await?),
        };
        let engine = WorkflowEngine::new(EngineConfig {
            store,
            connectors,
            directory: Directory::load(&data_dir.join("directory.json"))?,
            clock: Clock::system(),
            admin_role: settings.admin_role,
            step: settings.step,
            timer_poll: settings.timer_poll,
            max_input_bytes: settings.max_input_bytes,
            definition_limits: settings.definition_limits,
            case_cache: settings.case_cache,
            snapshot_every: settings.snapshot_every,
            ids: knhk_workflow_engine::IdOrder::default(),
            lease: settings.lease,
            heartbeat_interval: settings.heartbeat_interval,
            node_name: EngineConfig::default_node_name(),
            lockchain,
        });
        Ok(Session {
            engine: Backend::Local(engine),
            data_dir: data_dir.to_path_buf(),
            store: address,
            zone: settings.zone,
            page_size: settings.page_size.max(1),
            subscriptions: settings.subscriptions,
        })
    }

    /// Works with the `knhk serve` at `url` instead of a data directory.
    pub(crate) fn connect(url: &str, settings: Settings) -> anyhow::Result<Session> {
        let remote = Remote::new(
            url,
            settings.admin_role,
            settings.definition_limits.max_definition_bytes,
        )?;
        Ok(Session {
            engine: Backend::Remote(remote),
            data_dir: PathBuf::new(),
            store: StoreAddress::Sqlite(PathBuf::new()),
            zone: settings.zone,
            page_size: settings.page_size.max(1),
            subscriptions: None,
        })
    }

    /// Returns the config file's `[[subscriptions]]` as written (the intake parses them).
    pub(crate) fn subscriptions(&self) -> Option<&Value> {
        self.subscriptions.as_ref()
    }

    /// Says where an id was looked up: the data directory, or the server.
    pub(crate) fn looked_in(&self) -> String {
        match &self.engine {
            Backend::Local(_) => match &self.store {
                StoreAddress::Sqlite(path) if *path == self.data_dir.join(STORE_FILE) => {
                    format!("looked in the data directory {}", self.data_dir.display())
                }
                store => format!("looked in the store {}", store.shown()),
            },
            Backend::Remote(r) => format!("asked the server {}", r.url()),
        }
    }

    /// Returns the zone in which tables show points in time (`--utc`, or local).
    pub(crate) fn zone(&self) -> Zone {
        self.zone.clone()
    }

    /// Returns how many rows a JSON-lines list reads from the store at a time.
    pub(crate) fn page_size(&self) -> usize {
        self.page_size
    }

    /// Returns the store of this session, for people: its file, or its URL without the
    /// password.
    pub(crate) fn store_shown(&self) -> String {
        self.store.shown()
    }

    /// Returns whether the store holds a store already: the SQLite file exists (a
    /// PostgreSQL schema is created with its tables when first opened, so it always does).
    pub(crate) fn exists(address: &StoreAddress) -> bool {
        match address {
            StoreAddress::Sqlite(path) => path.is_file(),
            StoreAddress::Postgres(_) => true,
        }
    }

    /// Returns how to call `knhk` on this data directory, for the commands we suggest.
    pub(crate) fn command(&self) -> String {
        if let Backend::Remote(r) = &self.engine {
            return format!("knhk --server {}", shell_word(r.url()));
        }
        match &self.store {
            StoreAddress::Postgres(url) => {
                return format!("knhk --store {}", shell_word(&redact(url)));
            }
            StoreAddress::Sqlite(path) if *path != self.data_dir.join(STORE_FILE) => {
                return format!(
                    "knhk --store {}",
                    shell_word(&format!("sqlite:{}", path.display()))
                );
            }
            StoreAddress::Sqlite(_) => {}
        }
        if self.data_dir == Path::new(DEFAULT_DATA_DIR) {
            "knhk".to_owned()
        } else {
            format!(
                "knhk --data-dir {}",
                shell_word(&self.data_dir.display().to_string())
            )
        }
    }

    /// Returns the definition of a stored workflow, if it still loads.
    pub(crate) async fn definition(&self, workflow: WorkflowId) -> Option<Arc<Workflow>> {
        self.engine.definition(workflow).await.ok()
    }

    /// Signs a checkpoint of the lockchain when the tree grew (a one-shot command's last
    /// act, so that receipts of what it did need no later one); a failure is a warning, as
    /// the command's work is committed.
    pub(crate) async fn final_checkpoint(&self) {
        if let Backend::Local(engine) = &self.engine {
            match engine.checkpoint_now().await {
                Ok(_) | Err(knhk_workflow_engine::Error::LockchainOff) => {}
                Err(e) => eprintln!("warning: no lockchain checkpoint was taken: {e}"),
            }
        }
    }

    /// Stops what the engine spawned (nothing should be left once a case settled).
    pub(crate) async fn close(self) {
        self.engine.shutdown().await;
    }
}

/// Opens a SQLite store file (created if missing; `synchronous=FULL` unless `--durability
/// normal`, capped by `--store-max-pages`).
async fn open_sqlite(
    path: &Path,
    data_dir: &Path,
    settings: &Settings,
) -> anyhow::Result<SqliteStore> {
    if settings.pool_size.is_some() {
        anyhow::bail!(
            "--store-pool-size (config key pool_size) sizes the pool of a PostgreSQL store; the \
             store {} is a SQLite file",
            path.display()
        );
    }
    let options = SqliteOptions {
        max_pages: settings.max_pages,
        synchronous_full: settings.durability == Durability::Full,
        ..SqliteOptions::default()
    };
    let default_file = path == data_dir.join(STORE_FILE);
    let store = SqliteStore::open(path, options).await.with_context(|| {
        if default_file {
            format!("cannot open the data directory {}", data_dir.display())
        } else {
            format!("cannot open the store {}", path.display())
        }
    })?;
    // SQLite's level as the writer connection reports it: 2 FULL, 1 NORMAL.
    tracing::debug!(
        durability = settings.durability.name(),
        synchronous = store.synchronous().unwrap_or(-1),
        "store opened"
    );
    if let Some(check) = store.unclean_close() {
        let place = path.parent().unwrap_or(data_dir);
        report_unclean_close(place, &check.problems);
    }
    Ok(store)
}

/// Opens a PostgreSQL store, refusing the settings that only a SQLite file has.
async fn open_postgres(url: &str, settings: &Settings) -> anyhow::Result<PostgresStore> {
    let shown = redact(url);
    if settings.max_pages.is_some() {
        anyhow::bail!(
            "--store-max-pages (config key store_max_pages) caps a SQLite file; the store \
             {shown} is PostgreSQL, whose size its server governs"
        );
    }
    if settings.durability != Durability::Full {
        anyhow::bail!(
            "--durability {} (config key durability) sets SQLite's synchronous level; the \
             store {shown} is PostgreSQL, whose durability is the server's synchronous_commit",
            settings.durability.name()
        );
    }
    let mut options = PostgresOptions::default();
    if let Some(size) = settings.pool_size {
        if size == 0 {
            anyhow::bail!("--store-pool-size (config key pool_size): must be at least 1");
        }
        options.pool_size = size;
    }
    let store = PostgresStore::open(url, options)
        .await
        .with_context(|| format!("cannot open the store {shown}"))?;
    tracing::debug!(store = %shown, schema = store.schema(), "store opened");
    Ok(store)
}

/// Says, on stderr, that a process that used the store before did not close it, and what the
/// quick check run on opening found.
fn report_unclean_close(data_dir: &Path, problems: &[String]) {
    let dir = data_dir.display();
    if problems.is_empty() {
        eprintln!(
            "note: a process that used the store in {dir} did not close it (killed or crashed); \
             a quick check found nothing wrong"
        );
        return;
    }
    eprintln!(
        "warning: a process that used the store in {dir} did not close it (killed or crashed), \
         and a quick check found {} problems:",
        problems.len()
    );
    for p in problems {
        eprintln!("warning:   {p}");
    }
    eprintln!("warning: `knhk store check` checks everything and names each problem");
}

/// An id as typed on the command line: a whole UUID, or an unambiguous start of one or of
/// its last group (`9096c5c8`, `9096c5c8-...`, `...2101816761d4`, `21018167`), as the README
/// shortens them.
#[derive(Clone, Debug)]
pub(crate) struct IdArg(String);

impl std::fmt::Display for IdArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for IdArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s
            .trim()
            .trim_start_matches("...")
            .trim_end_matches("...")
            .trim();
        if s.is_empty() || !s.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            return Err(format!(
                "{s:?} is not an id: a UUID, or the first characters of one or of its last group"
            ));
        }
        Ok(IdArg(s.to_ascii_lowercase()))
    }
}

impl Session {
    /// Returns the case an id argument names (the engine looks a shortened one up in the
    /// store's indexes, not in a listing).
    pub(crate) async fn case_id(&self, arg: &IdArg) -> anyhow::Result<knhk_core::CaseId> {
        self.engine
            .resolve_case(&arg.0)
            .await
            .map_err(|e| self.unknown_where(e))
    }

    /// Returns the registered workflow `reference` names: an id or a prefix of one, a
    /// specification URI or a display name (the latest version), or `URI@N` / `NAME@N`.
    pub(crate) async fn workflow(&self, reference: &str) -> anyhow::Result<WorkflowView> {
        self.engine.find_workflow(reference).await
    }

    /// Returns the live work item an id argument names.
    pub(crate) async fn work_item_id(&self, arg: &IdArg) -> anyhow::Result<knhk_core::WorkItemId> {
        self.engine
            .resolve_work_item(&arg.0)
            .await
            .map_err(|e| self.unknown_where(e))
    }

    /// Adds to an unknown id where it was looked up.
    fn unknown_where(&self, e: anyhow::Error) -> anyhow::Error {
        let unknown = matches!(
            e.downcast_ref::<knhk_workflow_engine::Error>(),
            Some(knhk_workflow_engine::Error::UnknownId { .. })
        );
        if unknown {
            anyhow::anyhow!("{e} ({})", self.looked_in())
        } else {
            e
        }
    }
}

/// Parses the `--data`/`--output` option: a JSON object given inline, as `@FILE` or as `-`
/// (standard input), or nothing for `{}`.
pub(crate) fn json_object(option: &str, text: Option<&str>) -> anyhow::Result<Map<String, Value>> {
    let Some(text) = text else {
        return Ok(Map::new());
    };
    let text = crate::input::option_text(option, text)?;
    crate::input::require_object(option, crate::input::parse_json(option, &text)?)
}

/// Quotes a word for a POSIX shell when it needs it.
fn shell_word(word: &str) -> String {
    let plain = word
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+,:@".contains(c));
    if plain && !word.is_empty() {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}
