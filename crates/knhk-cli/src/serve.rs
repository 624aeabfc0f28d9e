//! `knhk serve`: the engine as a server. It runs the engine like `knhk worker` (recovery,
//! timers, connectors) and serves the REST and gRPC APIs of knhk-api over it, until SIGTERM or
//! Ctrl-C.
//!
//! Its configuration is one set of keys read in layers: the defaults, then the config file
//! (`--config`, else `knhk.toml` in the data directory: `config.rs`, which also gives the
//! connector instances), then `KNHK_*` environment variables, then flags; each key is validated
//! with a message naming it.

use std::io::Write as _;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use clap::parser::ValueSource;
use figment::Figment;
use figment::providers::{Env, Serialized};
use knhk_api::{Limits, Service};
use knhk_core::ApplyOptions;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use crate::config::ConfigFile;
use crate::session::{DEFAULT_DATA_DIR, Durability, Session, Settings};

/// Options of `knhk serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The address REST listens on, HOST:PORT (config key `http`; default 127.0.0.1:8080).
    /// Port 0 takes a free port; the first line of standard output says which:
    /// `listening http=HOST:PORT grpc=HOST:PORT`.
    #[arg(long, value_name = "ADDR")]
    http: Option<String>,
    /// The address gRPC listens on, HOST:PORT (config key `grpc`; default 127.0.0.1:9090):
    /// `knhk.v1.WorkflowService`, the standard health service and server reflection. Port 0
    /// takes a free port.
    #[arg(long, value_name = "ADDR")]
    grpc: Option<String>,
    /// Prints the effective configuration as TOML (secrets masked) and exits.
    #[arg(long)]
    print_config: bool,
    /// Logs as JSON lines instead of text (config key `log_format`: `text` or `json`).
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<String>,
}

/// Every configuration key of `knhk serve`, with its default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ServeConfig {
    http: String,
    grpc: String,
    data_dir: PathBuf,
    admin_role: String,
    max_firings: u32,
    max_subnet_depth: u32,
    max_definition_bytes: usize,
    max_tasks: usize,
    max_data_bytes: usize,
    case_cache: usize,
    snapshot_every: u64,
    timer_poll_ms: u64,
    lease_ms: u64,
    heartbeat_ms: u64,
    store: Option<String>,
    pool_size: Option<usize>,
    store_max_pages: Option<u64>,
    durability: String,
    max_body_bytes: usize,
    max_json_depth: usize,
    max_page_size: usize,
    default_page_size: usize,
    request_timeout_ms: u64,
    watch_poll_ms: u64,
    shutdown_timeout_ms: u64,
    log_format: String,
}

impl Default for ServeConfig {
    fn default() -> ServeConfig {
        let limits = Limits::default();
        ServeConfig {
            http: "127.0.0.1:8080".to_owned(),
            grpc: "127.0.0.1:9090".to_owned(),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            admin_role: knhk_workflow_engine::EngineConfig::DEFAULT_ADMIN_ROLE.to_owned(),
            max_firings: ApplyOptions::DEFAULT_MAX_FIRINGS,
            max_subnet_depth: ApplyOptions::DEFAULT_MAX_SUBNET_DEPTH,
            max_definition_bytes: knhk_spec::Limits::DEFAULT_MAX_DEFINITION_BYTES,
            max_tasks: knhk_spec::Limits::DEFAULT_MAX_TASKS,
            max_data_bytes: ApplyOptions::DEFAULT_MAX_DATA_BYTES,
            case_cache: knhk_workflow_engine::EngineConfig::DEFAULT_CASE_CACHE,
            snapshot_every: knhk_workflow_engine::EngineConfig::DEFAULT_SNAPSHOT_EVERY,
            timer_poll_ms: 1000,
            lease_ms: duration_ms(knhk_workflow_engine::EngineConfig::DEFAULT_LEASE),
            heartbeat_ms: duration_ms(
                knhk_workflow_engine::EngineConfig::DEFAULT_HEARTBEAT_INTERVAL,
            ),
            store: None,
            pool_size: None,
            store_max_pages: None,
            durability: Durability::Full.name().to_owned(),
            max_body_bytes: limits.max_body_bytes,
            max_json_depth: limits.max_json_depth,
            max_page_size: limits.max_page_size,
            default_page_size: limits.default_page_size,
            request_timeout_ms: u64::try_from(limits.request_timeout.as_millis())
                .unwrap_or(u64::MAX),
            watch_poll_ms: u64::try_from(limits.watch_poll.as_millis()).unwrap_or(u64::MAX),
            shutdown_timeout_ms: 10_000,
            log_format: "text".to_owned(),
        }
    }
}

/// The keys read from `KNHK_*` environment variables (`KNHK_MAX_BODY_BYTES` for
/// `max_body_bytes`...): every key.
pub(crate) const KEYS: [&str; 26] = [
    "http",
    "grpc",
    "data_dir",
    "admin_role",
    "max_firings",
    "max_subnet_depth",
    "max_definition_bytes",
    "max_tasks",
    "max_data_bytes",
    "case_cache",
    "snapshot_every",
    "timer_poll_ms",
    "lease_ms",
    "heartbeat_ms",
    "store",
    "pool_size",
    "store_max_pages",
    "durability",
    "max_body_bytes",
    "max_json_depth",
    "max_page_size",
    "default_page_size",
    "request_timeout_ms",
    "watch_poll_ms",
    "shutdown_timeout_ms",
    "log_format",
];

/// Keys whose values are secret, masked by `--print-config`: by their name's ending (no key
/// of this version is secret; credentials that come later are masked without more code).
fn is_secret(key: &str) -> bool {
    ["_secret", "_token", "_password", "_key", "_credentials"]
        .iter()
        .any(|end| key.ends_with(end))
}

/// The flat keys of the config file as a layer of the configuration, named after the file in
/// the messages about its keys.
struct FileKeys<'a>(&'a ConfigFile);

impl figment::Provider for FileKeys<'_> {
    fn metadata(&self) -> figment::Metadata {
        let name = match &self.0.path {
            Some(path) => format!("config file {}", path.display()),
            None => "config file".to_owned(),
        };
        figment::Metadata::named(name)
    }

    fn data(
        &self,
    ) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        Serialized::defaults(&self.0.flat).data()
    }
}

/// Reads the configuration: defaults, the file, the environment, then the flags given; and
/// the file's connector instances and subscriptions.
fn load(args: &ServeArgs, cli: &crate::Cli) -> anyhow::Result<(ServeConfig, ConfigFile)> {
    let file = ConfigFile::read(cli.config.as_deref(), &cli.data_dir)?;
    let mut figment = Figment::from(Serialized::defaults(ServeConfig::default()));
    figment = figment.merge(FileKeys(&file));
    figment = figment.merge(Env::prefixed("KNHK_").only(&KEYS));
    // The pool size's variable is the flag's (`--store-pool-size`), named after the store.
    figment = figment.merge(
        Env::raw()
            .only(&["KNHK_STORE_POOL_SIZE"])
            .map(|_| "pool_size".into()),
    );
    figment = figment.merge(Serialized::defaults(flags(args, cli)));
    let config: ServeConfig = figment.extract().map_err(|e| {
        let lines: Vec<String> = e
            .into_iter()
            .map(|e| format!("configuration: {e}"))
            .collect();
        anyhow::anyhow!(lines.join("\n"))
    })?;
    config.validate()?;
    Ok((config, file))
}

/// The keys given as flags: serve's own, and the global options given on the command line
/// (not those clap took from the environment or its defaults: the layers below say those).
fn flags(args: &ServeArgs, cli: &crate::Cli) -> Map<String, Value> {
    let mut out = Map::new();
    if let Some(v) = &args.http {
        out.insert("http".into(), json!(v));
    }
    if let Some(v) = &args.grpc {
        out.insert("grpc".into(), json!(v));
    }
    if let Some(v) = &args.log_format {
        out.insert("log_format".into(), json!(v));
    }
    let matches = <crate::Cli as clap::CommandFactory>::command()
        .try_get_matches_from(std::env::args_os())
        .ok();
    let given = |id: &str| {
        matches.as_ref().is_some_and(|m| {
            m.try_contains_id(id).unwrap_or(false)
                && m.value_source(id) == Some(ValueSource::CommandLine)
        })
    };
    if given("store") {
        out.insert("store".into(), json!(cli.store));
    }
    if given("store_pool_size") {
        out.insert("pool_size".into(), json!(cli.store_pool_size));
    }
    let globals: [(&str, Value); 14] = [
        ("data_dir", json!(cli.data_dir)),
        ("admin_role", json!(cli.admin_role)),
        ("max_firings", json!(cli.max_firings)),
        ("max_subnet_depth", json!(cli.max_subnet_depth)),
        ("max_definition_bytes", json!(cli.max_definition_bytes)),
        ("max_tasks", json!(cli.max_tasks)),
        ("max_data_bytes", json!(cli.max_data_bytes)),
        ("case_cache", json!(cli.case_cache)),
        ("snapshot_every", json!(cli.snapshot_every)),
        ("timer_poll_ms", json!(cli.timer_poll_ms)),
        ("lease_ms", json!(cli.lease_ms)),
        ("heartbeat_ms", json!(cli.heartbeat_ms)),
        ("store_max_pages", json!(cli.store_max_pages)),
        ("durability", json!(cli.durability.name())),
    ];
    for (key, value) in globals {
        if given(key) {
            out.insert(key.into(), value);
        }
    }
    out
}

impl ServeConfig {
    /// Checks every key, naming the one at fault.
    fn validate(&self) -> anyhow::Result<()> {
        address("http", &self.http)?;
        address("grpc", &self.grpc)?;
        let positive = [
            ("max_firings", self.max_firings as u64),
            ("max_subnet_depth", u64::from(self.max_subnet_depth)),
            ("max_definition_bytes", self.max_definition_bytes as u64),
            ("max_tasks", self.max_tasks as u64),
            ("max_data_bytes", self.max_data_bytes as u64),
            ("timer_poll_ms", self.timer_poll_ms),
            ("lease_ms", self.lease_ms),
            ("heartbeat_ms", self.heartbeat_ms),
            ("max_body_bytes", self.max_body_bytes as u64),
            ("max_json_depth", self.max_json_depth as u64),
            ("max_page_size", self.max_page_size as u64),
            ("default_page_size", self.default_page_size as u64),
            ("request_timeout_ms", self.request_timeout_ms),
            ("watch_poll_ms", self.watch_poll_ms),
            ("shutdown_timeout_ms", self.shutdown_timeout_ms),
        ];
        for (key, value) in positive {
            if value == 0 {
                bail!("configuration key {key}: must be at least 1");
            }
        }
        if self.heartbeat_ms >= self.lease_ms {
            bail!(
                "configuration key heartbeat_ms: {} must be less than lease_ms ({}), or the lease \
                 expires between heartbeats",
                self.heartbeat_ms,
                self.lease_ms
            );
        }
        if self.max_subnet_depth > 1000 {
            bail!("configuration key max_subnet_depth: at most 1000");
        }
        if self.max_json_depth > 128 {
            bail!("configuration key max_json_depth: at most 128 (the JSON reader's own bound)");
        }
        if self.admin_role.trim().is_empty() {
            bail!("configuration key admin_role: must not be empty");
        }
        if self.data_dir.as_os_str().is_empty() {
            bail!("configuration key data_dir: must not be empty");
        }
        if let Some(store) = &self.store {
            crate::session::StoreAddress::parse(Some(store), &self.data_dir)
                .map_err(|e| anyhow::anyhow!("configuration key store: {e}"))?;
        }
        if self.pool_size == Some(0) {
            bail!("configuration key pool_size: must be at least 1");
        }
        if Durability::from_name(&self.durability).is_none() {
            bail!(
                "configuration key durability: {:?} is neither full nor normal",
                self.durability
            );
        }
        if !matches!(self.log_format.as_str(), "text" | "json") {
            bail!(
                "configuration key log_format: {:?} is neither text nor json",
                self.log_format
            );
        }
        Ok(())
    }

    /// The configuration as TOML, secrets masked, with the file's connector instances (their
    /// secrets masked too) and subscriptions.
    fn print(&self, file: &ConfigFile) -> anyhow::Result<String> {
        let mut value = toml::Value::try_from(self).context("cannot print the configuration")?;
        if let toml::Value::Table(table) = &mut value {
            for (key, v) in table.iter_mut() {
                if is_secret(key) {
                    *v = toml::Value::String("***".to_owned());
                }
                // The store's address may hold a password: shown masked.
                if key == "store"
                    && let toml::Value::String(address) = v
                {
                    *address = crate::session::redact(address);
                }
            }
            if !file.connectors.is_empty() {
                table.insert(
                    "connectors".to_owned(),
                    toml::Value::Table(file.connectors_masked()),
                );
            }
            if let Some(subscriptions) = &file.subscriptions {
                let raw = toml::Value::try_from(subscriptions)
                    .context("cannot print the subscriptions")?;
                table.insert("subscriptions".to_owned(), raw);
            }
        }
        Ok(toml::to_string(&value)?)
    }

    fn limits(&self) -> Limits {
        Limits {
            max_body_bytes: self.max_body_bytes,
            max_json_depth: self.max_json_depth,
            max_page_size: self.max_page_size,
            // A default above the cap is the cap.
            default_page_size: self.default_page_size.min(self.max_page_size),
            request_timeout: Duration::from_millis(self.request_timeout_ms),
            watch_poll: Duration::from_millis(self.watch_poll_ms),
        }
    }

    fn settings(&self) -> Settings {
        Settings {
            // validate() refused any other name.
            durability: Durability::from_name(&self.durability).unwrap_or_default(),
            admin_role: self.admin_role.clone(),
            step: ApplyOptions::default()
                .with_max_firings(self.max_firings)
                .with_max_subnet_depth(self.max_subnet_depth)
                .with_max_data_bytes(self.max_data_bytes),
            timer_poll: Duration::from_millis(self.timer_poll_ms),
            lease: Duration::from_millis(self.lease_ms),
            heartbeat_interval: Duration::from_millis(self.heartbeat_ms),
            zone: crate::report::Zone::Utc,
            max_pages: self.store_max_pages,
            definition_limits: knhk_spec::Limits {
                max_definition_bytes: self.max_definition_bytes,
                max_tasks: self.max_tasks,
            },
            max_input_bytes: self.max_data_bytes,
            case_cache: self.case_cache,
            snapshot_every: self.snapshot_every,
            // Only the CLI's JSON-lines lists read pages of this size; the API has its own.
            page_size: 1000,
            store: self.store.clone(),
            pool_size: self.pool_size,
            // The config file's, set by the caller.
            connectors: Vec::new(),
            subscriptions: None,
            lockchain: Default::default(),
        }
    }
}

/// Returns a duration in whole milliseconds.
fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Checks that a key names an address HOST:PORT, and returns it resolved.
fn address(key: &str, text: &str) -> anyhow::Result<SocketAddr> {
    let mut addrs = text.to_socket_addrs().map_err(|e| {
        anyhow::anyhow!("configuration key {key}: {text:?} is not an address HOST:PORT ({e})")
    })?;
    addrs
        .next()
        .with_context(|| format!("configuration key {key}: {text:?} names no address"))
}

/// Runs `knhk serve`: its own runtime, logs and configuration.
pub(crate) fn main(args: &ServeArgs, cli: &crate::Cli) -> anyhow::Result<ExitCode> {
    let (config, file) = load(args, cli)?;
    if args.print_config {
        outln!("{}", config.print(&file)?.trim_end());
        return Ok(ExitCode::SUCCESS);
    }
    init_logs(&config.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        // As every command's runtime: CEL needs deep stacks in a debug build.
        .thread_stack_size(8 << 20)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut settings = config.settings();
    settings.connectors = file.connectors;
    settings.subscriptions = file.subscriptions;
    settings.lockchain = file.lockchain;
    runtime.block_on(serve(config, settings))
}

fn init_logs(format: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
}

async fn serve(config: ServeConfig, settings: Settings) -> anyhow::Result<ExitCode> {
    let http = address("http", &config.http)?;
    let grpc = address("grpc", &config.grpc)?;
    let instances = settings.connectors.clone();
    let session = Session::open(&config.data_dir, settings).await?;
    let engine = session.engine.local("serve")?.clone();
    // The subscriptions are checked before the engine starts: a bad one stops the server.
    let intake = match session.subscriptions() {
        None => None,
        Some(value) => {
            let subscriptions = knhk_connectors::intake::parse_subscriptions(value, &instances)
                .map_err(|e| anyhow::anyhow!("config file: {e}"))?;
            Some(
                knhk_workflow_engine::intake::Intake::new(engine.clone(), subscriptions, instances)
                    .map_err(|e| anyhow::anyhow!("config file: {e}"))?
                    // Kafka subscriptions keep their committed offsets here.
                    .with_state_dir(config.data_dir.join("intake")),
            )
        }
    };
    let started = engine
        .start()
        .await
        .context("cannot start the engine (stored timers, unfinished cases)")?;
    tracing::info!(
        recovered = started.recovered_cases,
        timers = started.armed_timers,
        quarantined = started.quarantined.len(),
        "engine started"
    );
    let connectors: Vec<String> = engine.connectors().into_iter().map(|c| c.name).collect();
    let service = Service::new(engine, config.limits());
    let listener = tokio::net::TcpListener::bind(http)
        .await
        .with_context(|| format!("cannot listen on {http} (configuration key http)"))?;
    let local = listener.local_addr()?;
    let grpc_listener = tokio::net::TcpListener::bind(grpc)
        .await
        .with_context(|| format!("cannot listen on {grpc} (configuration key grpc)"))?;
    let grpc_local = grpc_listener.local_addr()?;
    service.set_ready(true);
    outln!("listening http={local} grpc={grpc_local}");
    let _ = std::io::stdout().flush();
    tracing::info!(
        http = %local,
        grpc = %grpc_local,
        data_dir = %config.data_dir.display(),
        store = %session.store_shown(),
        connectors = ?connectors,
        subscriptions = session
            .subscriptions()
            .and_then(serde_json::Value::as_array)
            .map_or(0, Vec::len),
        "serving"
    );

    let stop = CancellationToken::new();
    // The intake consumes the subscriptions until the servers stop; a source that cannot be
    // opened (its broker down) stops the intake, loudly, and the server goes on serving.
    let intake_stop = CancellationToken::new();
    let intake = intake.map(|intake| {
        let shutdown = intake_stop.clone();
        tokio::spawn(async move {
            if let Err(e) = intake.run(shutdown).await {
                tracing::error!(error = %e, "the intake stopped: its subscriptions are not consumed");
            }
        })
    });
    let app = knhk_api::rest::router(service.clone());
    let graceful = stop.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { graceful.cancelled().await })
            .await
    });
    let graceful = stop.clone();
    let grpc_server = tokio::spawn(knhk_api::grpc::serve(
        service.clone(),
        grpc_listener,
        async move { graceful.cancelled().await },
    ));
    let signal = wait_for_signal().await?;
    tracing::info!(
        signal,
        "stopping: no new connections; requests in flight finish"
    );
    // Open watches end first, so that their connections close; then both servers stop
    // accepting and wait for the requests in flight, within the bound.
    service.stop();
    stop.cancel();
    let bound = Duration::from_millis(config.shutdown_timeout_ms);
    let deadline = tokio::time::Instant::now() + bound;
    match tokio::time::timeout_at(deadline, server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::error!(error = %e, "the server failed"),
        Ok(Err(e)) => tracing::error!(error = %e, "the server task failed"),
        Err(_) => tracing::warn!(
            timeout_ms = config.shutdown_timeout_ms,
            "requests still in flight at the shutdown bound were cut off"
        ),
    }
    match tokio::time::timeout_at(deadline, grpc_server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::error!(error = %e, "the gRPC server failed"),
        Ok(Err(e)) => tracing::error!(error = %e, "the gRPC server task failed"),
        Err(_) => tracing::warn!(
            timeout_ms = config.shutdown_timeout_ms,
            "gRPC calls still in flight at the shutdown bound were cut off"
        ),
    }
    // The messages in flight finish their step and are settled; the rest stay with the broker.
    intake_stop.cancel();
    if let Some(intake) = intake
        && tokio::time::timeout_at(deadline + bound, intake)
            .await
            .is_err()
    {
        tracing::warn!("the intake did not stop within the shutdown bound");
    }
    if tokio::time::timeout_at(deadline + bound, session.close())
        .await
        .is_err()
    {
        tracing::warn!("the engine did not stop within the shutdown bound");
    }
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Waits for SIGTERM or Ctrl-C (SIGINT); returns which.
async fn wait_for_signal() -> anyhow::Result<&'static str> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    tokio::select! {
        signal = tokio::signal::ctrl_c() => {
            signal.context("cannot listen for Ctrl-C")?;
            Ok("interrupt")
        }
        _ = terminate.recv() => Ok("terminate"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_key_is_read_from_the_environment_and_checked() {
        let value = serde_json::to_value(ServeConfig::default()).unwrap();
        let keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut all = KEYS.to_vec();
        all.sort_unstable();
        let mut keys = keys.clone();
        keys.sort_unstable();
        assert_eq!(keys, all);
        assert!(ServeConfig::default().validate().is_ok());
        let bad = ServeConfig {
            default_page_size: 0,
            ..ServeConfig::default()
        };
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains("default_page_size"), "{e}");
        let bad = ServeConfig {
            http: "nowhere".into(),
            ..ServeConfig::default()
        };
        assert!(bad.validate().unwrap_err().to_string().contains("key http"));
    }

    #[test]
    fn secrets_are_masked_by_their_name() {
        assert!(is_secret("api_token") && is_secret("db_password"));
        assert!(!is_secret("http") && !is_secret("max_tasks"));
    }
}
