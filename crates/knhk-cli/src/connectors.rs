//! `knhk connector list|probe`: the connector instances of the config file (and the built-in
//! `http`) as the engine shows them, with their pools and their probes; with `--server`, those
//! of the `knhk serve` there (`GET /connectors`). `list` shows the subscriptions too: the config
//! file's as declared, or the server's with what their probes found.

use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use knhk_connectors::intake::{Action, Subscription};
use knhk_workflow_engine::{ConnectorHealth, ConnectorPool, ConnectorView};
use serde_json::{Value, json};

use crate::session::Settings;

/// `knhk connector ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum ConnectorCommand {
    /// Lists the connector instances (name, kind and pool size), then the subscriptions.
    List {
        /// Prints a JSON object: `items`, each with `name`, `kind` and `pool` (`max_size`,
        /// `active`, `idle`, `waiters`; null for an instance without a pool), and
        /// `subscriptions`, each with `name`, `connector`, `source`, `start` or `deliver`,
        /// `prefetch` and `dead_letter` (with `--server`: `name`, `ok`, `latency_ms`, `pending`,
        /// `unacknowledged` and `error`, as `GET /connectors` gives them).
        #[arg(long)]
        json: bool,
    },
    /// Probes the connector instances (or the one named): a checkout and a ping, or a metadata
    /// request, each within the timeout. Exits with status 1 when any probe fails.
    Probe {
        /// The instance to probe; all of them when absent.
        name: Option<String>,
        /// Prints a JSON array of `name`, `kind`, `ok`, `latency_ms`, `detail` and `error`.
        #[arg(long)]
        json: bool,
        /// How long each probe may take, in milliseconds.
        #[arg(long, default_value_t = 5000, value_name = "MS",
              value_parser = clap::value_parser!(u64).range(1..))]
        timeout_ms: u64,
    },
}

/// Runs the command on the config file's instances, made in this process (no store is
/// opened); they are closed at the end.
pub(crate) async fn run(
    command: ConnectorCommand,
    settings: &Settings,
) -> anyhow::Result<ExitCode> {
    let registry = crate::config::registry(&settings.connectors)?;
    let result = match command {
        ConnectorCommand::List { json } => match declared(settings) {
            Ok(subscriptions) => list(
                &knhk_workflow_engine::connector_views(&registry),
                &Subscriptions::Declared(subscriptions),
                json,
            ),
            Err(e) => Err(e),
        },
        ConnectorCommand::Probe {
            name,
            json,
            timeout_ms,
        } => knhk_workflow_engine::probe_connectors(
            &registry,
            name.as_deref(),
            Duration::from_millis(timeout_ms),
        )
        .await
        .map_err(anyhow::Error::new)
        .and_then(|found| probe(&found, json)),
    };
    registry.close().await;
    result
}

/// Runs the command on the instances of the `knhk serve` at `url`.
pub(crate) async fn run_remote(command: ConnectorCommand, url: &str) -> anyhow::Result<ExitCode> {
    let address = format!("{}/connectors", url.trim_end_matches('/'));
    let response = reqwest::get(&address)
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach the server {url}: {e}"))?;
    let status = response.status();
    let body: serde_json::Value = response
        .json()
        .await
        .map_err(|e| anyhow::anyhow!("the server {url} answered GET /connectors with {e}"))?;
    if !status.is_success() {
        anyhow::bail!(
            "the server {url} refused GET /connectors ({status}): {}",
            body["error"]["message"].as_str().unwrap_or("no message")
        );
    }
    let items: Vec<knhk_api::types::Connector> = serde_json::from_value(body["items"].clone())
        .map_err(|e| anyhow::anyhow!("the server {url} answered GET /connectors with {e}"))?;
    match command {
        ConnectorCommand::List { json } => {
            let views: Vec<ConnectorView> = items
                .into_iter()
                .map(|c| ConnectorView {
                    name: c.name,
                    kind: c.kind,
                    pool: c.pool.map(|p| ConnectorPool {
                        max_size: p.max_size,
                        active: p.active,
                        idle: p.idle,
                        waiters: p.waiters,
                    }),
                })
                .collect();
            let subscriptions: Vec<knhk_api::types::Subscription> = match body.get("subscriptions")
            {
                None | Some(Value::Null) => Vec::new(),
                Some(s) => serde_json::from_value(s.clone()).map_err(|e| {
                    anyhow::anyhow!("the server {url} answered GET /connectors with {e}")
                })?,
            };
            list(&views, &Subscriptions::Probed(subscriptions), json)
        }
        ConnectorCommand::Probe { name, json, .. } => {
            let found: Vec<ConnectorHealth> = items
                .into_iter()
                .filter(|c| name.as_ref().is_none_or(|n| *n == c.name))
                .map(|c| ConnectorHealth {
                    name: c.name,
                    kind: c.kind,
                    ok: c.ok,
                    latency_ms: c.latency_ms,
                    detail: c.detail,
                    error: c.error,
                })
                .collect();
            if let Some(name) = name.filter(|_| found.is_empty()) {
                anyhow::bail!("unknown connector {name} (asked the server {url})");
            }
            probe(&found, json)
        }
    }
}

/// The subscriptions `list` shows: the config file's, or those a server runs.
enum Subscriptions {
    /// As the config file declares them (this process consumes nothing).
    Declared(Vec<Subscription>),
    /// As `GET /connectors` of a server gives them, each probed.
    Probed(Vec<knhk_api::types::Subscription>),
}

/// Parses the config file's `[[subscriptions]]` against its instances, as `knhk serve` does.
fn declared(settings: &Settings) -> anyhow::Result<Vec<Subscription>> {
    match &settings.subscriptions {
        None => Ok(Vec::new()),
        Some(value) => knhk_connectors::intake::parse_subscriptions(value, &settings.connectors)
            .map_err(|e| anyhow::anyhow!("config file: {e}")),
    }
}

/// Says what a declared subscription does: `start W` or `deliver E`.
fn action(s: &Subscription) -> (&'static str, &str) {
    match &s.action {
        Action::Start { workflow, .. } => ("start", workflow),
        Action::Deliver { event, .. } => ("deliver", event),
    }
}

fn list(
    views: &[ConnectorView],
    subscriptions: &Subscriptions,
    json: bool,
) -> anyhow::Result<ExitCode> {
    if json {
        let docs: Vec<_> = views
            .iter()
            .map(|c| json!({"name": c.name, "kind": c.kind, "pool": c.pool}))
            .collect();
        let subs: Vec<Value> = match subscriptions {
            Subscriptions::Declared(subs) => subs
                .iter()
                .map(|s| {
                    let (verb, what) = action(s);
                    let mut doc = json!({
                        "name": s.name,
                        "connector": s.connector,
                        "source": s.source.describe(),
                        "prefetch": s.prefetch,
                        "dead_letter": s.dead_letter,
                    });
                    doc[verb] = json!(what);
                    doc
                })
                .collect(),
            Subscriptions::Probed(subs) => subs
                .iter()
                .map(serde_json::to_value)
                .collect::<Result<_, _>>()?,
        };
        let doc = json!({"items": docs, "subscriptions": subs});
        outln!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(ExitCode::SUCCESS);
    }
    let width = views.iter().map(|c| c.name.len()).max().unwrap_or(4).max(4);
    outln!("{:width$}  {:10}  POOL", "NAME", "KIND");
    for c in views {
        let pool = match &c.pool {
            Some(p) => format!(
                "max {} (active {}, idle {}, waiting {})",
                p.max_size, p.active, p.idle, p.waiters
            ),
            None => "-".to_owned(),
        };
        outln!("{:width$}  {:10}  {pool}", c.name, c.kind);
    }
    list_subscriptions(subscriptions);
    Ok(ExitCode::SUCCESS)
}

/// Prints the subscriptions' table after the instances', when there are any.
fn list_subscriptions(subscriptions: &Subscriptions) {
    match subscriptions {
        Subscriptions::Declared(subs) if !subs.is_empty() => {
            let width = subs.iter().map(|s| s.name.len()).max().unwrap_or(0).max(12);
            let connector = subs
                .iter()
                .map(|s| s.connector.len())
                .max()
                .unwrap_or(0)
                .max(9);
            outln!();
            outln!(
                "{:width$}  {:connector$}  SOURCE  ACTION",
                "SUBSCRIPTION",
                "CONNECTOR"
            );
            for s in subs {
                let (verb, what) = action(s);
                outln!(
                    "{:width$}  {:connector$}  {}  {verb} {what}",
                    s.name,
                    s.connector,
                    s.source.describe()
                );
            }
        }
        Subscriptions::Probed(subs) if !subs.is_empty() => {
            let width = subs.iter().map(|s| s.name.len()).max().unwrap_or(0).max(12);
            outln!();
            outln!("{:width$}  STATUS   LATENCY  BACKLOG", "SUBSCRIPTION");
            for s in subs {
                let latency = format!("{} ms", s.latency_ms);
                let said = match (&s.error, s.pending, s.unacknowledged) {
                    (Some(e), _, _) => e.clone(),
                    (None, None, None) => "-".to_owned(),
                    (None, p, u) => {
                        let n = |v: Option<u64>| v.map_or("-".to_owned(), |v| v.to_string());
                        format!("pending {}, unacknowledged {}", n(p), n(u))
                    }
                };
                let status = if s.ok { "ok" } else { "failing" };
                outln!("{:width$}  {status:7} {latency:>8}  {said}", s.name);
            }
        }
        _ => {}
    }
}

fn probe(found: &[ConnectorHealth], json: bool) -> anyhow::Result<ExitCode> {
    let failed = found.iter().any(|h| !h.ok);
    if json {
        outln!("{}", serde_json::to_string_pretty(found)?);
    } else {
        let width = found.iter().map(|c| c.name.len()).max().unwrap_or(4).max(4);
        outln!("{:width$}  {:10}  STATUS  LATENCY  DETAIL", "NAME", "KIND");
        for h in found {
            let (status, said) = if h.ok {
                ("ok", h.detail.clone().unwrap_or_default())
            } else {
                ("failing", h.error.clone().unwrap_or_default())
            };
            let latency = format!("{} ms", h.latency_ms);
            outln!(
                "{:width$}  {:10}  {status:7} {latency:>7}  {said}",
                h.name,
                h.kind
            );
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
