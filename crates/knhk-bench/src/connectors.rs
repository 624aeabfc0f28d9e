//! `knhk-bench connectors`: a 10-task workflow of PostgreSQL tasks (P10) and one of NATS publish
//! tasks (N10) run through the engine, each with the instance's pool at 16 connections and at 1,
//! in the same run: cases/s, and p50/p99 of the task latency (one connector call: the pool
//! checkout and the statement or the publish) and of the case.
//!
//! Each P10 task inserts one row keyed by its call's idempotency key (`idempotency_param`) into a
//! table of the run's own, dropped afterwards; each N10 task publishes the task input on a
//! subject of the run's own (the publish waits for the server's answer, see the nats connector). The engine runs on the in-memory store by default,
//! so that the figures are the connector's and its pool's rather than the store's fsyncs;
//! `--sqlite` runs it on a SQLite file with `synchronous=FULL` instead.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use knhk_connectors::{
    Binding, CallError, CallRequest, Connector, InstanceConfig, Probe, SettingsError,
};
use knhk_core::CaseStatus;
use knhk_store::{MemoryStore, SqliteOptions, SqliteStore, Store};
use knhk_workflow_engine::{Directory, EngineConfig, SourceFormat, WorkflowEngine};
use serde_json::{Map, Value, json};
use tokio::task::JoinSet;

use crate::bench::{millis, percentile};

/// The options of `knhk-bench connectors`.
#[derive(Debug, clap::Args)]
pub struct ConnectorsArgs {
    /// The PostgreSQL server the tasks write to.
    #[arg(
        long,
        value_name = "URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    postgres: String,
    /// The NATS server the N10 tasks publish to.
    #[arg(long, value_name = "URL", default_value = "nats://127.0.0.1:4222")]
    nats: String,
    /// Cases per measurement.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    cases: usize,
    /// Cases running at once.
    #[arg(long, value_name = "N", default_value_t = 64)]
    concurrency: usize,
    /// Runs the engine on a SQLite file (fsync on every commit) instead of in memory.
    #[arg(long)]
    sqlite: bool,
}

/// Runs the workflow with each pool size and prints the table.
pub async fn run(args: ConnectorsArgs) -> anyhow::Result<ExitCode> {
    let table = format!("knhk_bench_conn_{}", std::process::id());
    let (admin, connection) = tokio_postgres::connect(&args.postgres, tokio_postgres::NoTls)
        .await
        .context("cannot connect to the PostgreSQL server")?;
    tokio::spawn(connection);
    admin
        .batch_execute(&format!(
            "CREATE TABLE {table} (key text PRIMARY KEY, at timestamptz DEFAULT now())"
        ))
        .await
        .with_context(|| format!("cannot create {table}"))?;
    let store_name = if args.sqlite {
        "sqlite (fsync)"
    } else {
        "memory"
    };
    println!(
        "P10: ten PostgreSQL tasks in sequence; N10: ten NATS publish tasks in sequence; {} \
         cases, {} at once, store {store_name}",
        args.cases, args.concurrency
    );
    println!(
        "| workflow | pool | cases/s | task p50 | task p99 | case p50 | case p99 | connections opened |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut result = Ok(());
    'all: for workload in [Workload::P10, Workload::N10] {
        for pool in [16, 1] {
            match measure(&args, workload, &table, pool).await {
                Ok(line) => println!("{line}"),
                Err(e) => {
                    result = Err(e);
                    break 'all;
                }
            }
        }
    }
    admin
        .batch_execute(&format!("DROP TABLE {table}"))
        .await
        .with_context(|| format!("cannot drop {table}"))?;
    result.map(|()| ExitCode::SUCCESS)
}

/// The workflows measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Workload {
    /// Ten PostgreSQL inserts.
    P10,
    /// Ten NATS publishes.
    N10,
}

/// Runs the cases once with a pool of `pool` connections; returns the table's line.
async fn measure(
    args: &ConnectorsArgs,
    workload: Workload,
    table: &str,
    pool: usize,
) -> anyhow::Result<String> {
    let (name, table_json) = match workload {
        Workload::P10 => (
            format!("pg{pool}"),
            json!({ "kind": "postgres", "url": args.postgres, "pool": { "max_size": pool } }),
        ),
        Workload::N10 => (
            format!("nats{pool}"),
            json!({ "kind": "nats", "url": args.nats, "pool": { "max_size": pool } }),
        ),
    };
    let instance =
        InstanceConfig::parse(&name, table_json.as_object().context("an instance table")?)?;
    let connector = knhk_connectors::kinds::build(&instance)?;
    let timed = Arc::new(Timed {
        inner: connector.clone(),
        samples: Arc::default(),
    });
    let temp = tempfile::tempdir()?;
    let store: Arc<dyn Store> = if args.sqlite {
        let options = SqliteOptions {
            synchronous_full: true,
            ..SqliteOptions::default()
        };
        Arc::new(SqliteStore::open(&temp.path().join("bench.db"), options).await?)
    } else {
        Arc::new(MemoryStore::new())
    };
    let mut config = EngineConfig::with_defaults(store, Directory::default());
    config.connectors.register(timed.clone());
    let engine = WorkflowEngine::new(config);
    let workflow = engine
        .register_workflow(
            "bench.ttl",
            SourceFormat::Turtle,
            &turtle(workload, &name, table),
        )
        .await?
        .workflow
        .id;
    // Warm-up: the pool opens its connections and prepares the statement on each.
    drive(&engine, workflow, args.concurrency, args.concurrency).await?;
    timed.take();
    let started = Instant::now();
    let mut cases = drive(&engine, workflow, args.concurrency, args.cases).await?;
    let elapsed = started.elapsed();
    let mut tasks = timed.take();
    let opened = connector.pool().map_or(0, |p| p.created);
    engine.shutdown().await;
    connector.close().await;
    tasks.sort_unstable();
    cases.sort_unstable();
    Ok(format!(
        "| {workload:?} | {pool} | {:.0} | {} | {} | {} | {} | {opened} |",
        args.cases as f64 / elapsed.as_secs_f64(),
        ms(percentile(&tasks, 50)),
        ms(percentile(&tasks, 99)),
        ms(percentile(&cases, 50)),
        ms(percentile(&cases, 99)),
    ))
}

fn ms(d: Duration) -> String {
    millis(d.as_secs_f64())
}

/// Runs `cases` cases, `concurrency` at a time, to their end; returns each case's duration.
async fn drive(
    engine: &WorkflowEngine,
    workflow: knhk_core::WorkflowId,
    concurrency: usize,
    cases: usize,
) -> anyhow::Result<Vec<Duration>> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (engine, next) = (engine.clone(), next.clone());
        workers.spawn(async move {
            let mut durations = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < cases {
                let started = Instant::now();
                let case = engine
                    .create_case(workflow, Value::Object(Map::new()), true)
                    .await?;
                let ended = engine.wait_until_ended(case.id).await?;
                if ended.status != CaseStatus::Completed {
                    bail!("case {} ended {}", ended.id, ended.status);
                }
                durations.push(started.elapsed());
            }
            anyhow::Ok(durations)
        });
    }
    let mut durations = Vec::with_capacity(cases);
    while let Some(joined) = workers.join_next().await {
        durations.extend(joined.context("a bench worker stopped")??);
    }
    Ok(durations)
}

/// The workflow: ten tasks in sequence, each an insert (P10) or a publish (N10) through
/// instance `instance`.
fn turtle(workload: Workload, instance: &str, table: &str) -> String {
    let mut text = format!(
        "@prefix yawl: <http://www.yawlfoundation.org/yawlschema#> .\n\
         @prefix knhk: <https://knhk.dev/ns#> .\n\
         <#spec> a yawl:Specification ; yawl:name \"{workload:?}\" ; yawl:hasDecomposition <#net> .\n\
         <#net> a yawl:Net ; yawl:id \"net\" ; yawl:isRootNet true ;\n\
         yawl:hasInputCondition <#start> ; yawl:hasOutputCondition <#end> ;\n\
         yawl:hasTask <#t1>, <#t2>, <#t3>, <#t4>, <#t5>, <#t6>, <#t7>, <#t8>, <#t9>, <#t10> .\n\
         <#start> a yawl:InputCondition ; yawl:flowsInto [ yawl:nextElementRef <#t1> ] .\n\
         <#end> a yawl:OutputCondition .\n",
    );
    for i in 1..=10 {
        let next = if i == 10 {
            "<#end>".to_owned()
        } else {
            format!("<#t{}>", i + 1)
        };
        let settings = match workload {
            Workload::P10 => format!(
                "knhk:setting [ knhk:key \"statement\" ; knhk:value \"INSERT INTO {table} (key) \
                 VALUES ($1) ON CONFLICT (key) DO NOTHING\" ] ;\n\
                 knhk:setting [ knhk:key \"idempotency_param\" ; knhk:value \"true\" ] ;"
            ),
            Workload::N10 => {
                format!("knhk:setting [ knhk:key \"subject\" ; knhk:value \"{table}.t{i}\" ] ;")
            }
        };
        text.push_str(&format!(
            "<#t{i}> a yawl:Task ; knhk:connector \"{instance}\" ;\n\
             {settings}\n\
             knhk:backoffMs 10 ;\n\
             yawl:flowsInto [ yawl:nextElementRef {next} ] .\n"
        ));
    }
    text
}

/// An instance whose calls are timed: each attempt's duration, pool checkout included.
#[derive(Debug)]
struct Timed {
    inner: Arc<dyn Connector>,
    samples: Arc<Mutex<Vec<Duration>>>,
}

impl Timed {
    fn take(&self) -> Vec<Duration> {
        std::mem::take(&mut *self.samples.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

#[async_trait::async_trait]
impl Connector for Timed {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn kind(&self) -> &str {
        self.inner.kind()
    }

    fn prepare(
        &self,
        settings: &BTreeMap<String, String>,
    ) -> Result<Arc<dyn Binding>, SettingsError> {
        Ok(Arc::new(TimedBinding {
            inner: self.inner.prepare(settings)?,
            samples: self.samples.clone(),
        }))
    }

    async fn probe(&self) -> Result<Probe, CallError> {
        self.inner.probe().await
    }
}

#[derive(Debug)]
struct TimedBinding {
    inner: Arc<dyn Binding>,
    samples: Arc<Mutex<Vec<Duration>>>,
}

#[async_trait::async_trait]
impl Binding for TimedBinding {
    async fn call(&self, req: CallRequest) -> Result<Value, CallError> {
        let started = Instant::now();
        let result = self.inner.call(req).await;
        self.samples
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(started.elapsed());
        result
    }
}
