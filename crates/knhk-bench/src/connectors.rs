//! `knhk-bench connectors`: a 10-task workflow of PostgreSQL tasks run through the engine, with
//! the instance's pool at 16 connections and at 1, in the same run: cases/s, and p50/p99 of the
//! task latency (one connector call: the pool checkout and the statement) and of the case.
//!
//! Each task inserts one row keyed by its call's idempotency key (`idempotency_param`) into a
//! table of the run's own, dropped afterwards. The engine runs on the in-memory store by default,
//! so that the figures are the connector's and its pool's rather than the store's fsyncs;
//! `--sqlite` runs it on a SQLite file with `synchronous=FULL` instead.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use knhk_connectors::{
    Binding, CallError, CallRequest, Connector, InstanceConfig, PostgresConnector, Probe,
    SettingsError,
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
        "P10: ten PostgreSQL tasks in sequence, {} cases, {} at once, store {store_name}",
        args.cases, args.concurrency
    );
    println!("| pool | cases/s | task p50 | task p99 | case p50 | case p99 | connections opened |");
    println!("|---|---|---|---|---|---|---|");
    let mut result = Ok(());
    for pool in [16, 1] {
        match measure(&args, &table, pool).await {
            Ok(line) => println!("{line}"),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    admin
        .batch_execute(&format!("DROP TABLE {table}"))
        .await
        .with_context(|| format!("cannot drop {table}"))?;
    result.map(|()| ExitCode::SUCCESS)
}

/// Runs the cases once with a pool of `pool` connections; returns the table's line.
async fn measure(args: &ConnectorsArgs, table: &str, pool: usize) -> anyhow::Result<String> {
    let name = format!("pg{pool}");
    let instance = InstanceConfig::parse(
        &name,
        json!({ "kind": "postgres", "url": args.postgres, "pool": { "max_size": pool } })
            .as_object()
            .context("an instance table")?,
    )?;
    let pg = Arc::new(PostgresConnector::from_config(&instance)?);
    let timed = Arc::new(Timed {
        inner: pg.clone(),
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
        .register_workflow("p10.ttl", SourceFormat::Turtle, &turtle(&name, table))
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
    let opened = pg.pool().status().created;
    engine.shutdown().await;
    pg.close().await;
    tasks.sort_unstable();
    cases.sort_unstable();
    Ok(format!(
        "| {pool} | {:.0} | {} | {} | {} | {} | {opened} |",
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

/// The workflow: ten tasks in sequence, each an insert through instance `instance`.
fn turtle(instance: &str, table: &str) -> String {
    let mut text = String::from(
        "@prefix yawl: <http://www.yawlfoundation.org/yawlschema#> .\n\
         @prefix knhk: <https://knhk.dev/ns#> .\n\
         <#spec> a yawl:Specification ; yawl:name \"P10\" ; yawl:hasDecomposition <#net> .\n\
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
        text.push_str(&format!(
            "<#t{i}> a yawl:Task ; knhk:connector \"{instance}\" ;\n\
             knhk:setting [ knhk:key \"statement\" ; knhk:value \"INSERT INTO {table} (key) \
             VALUES ($1) ON CONFLICT (key) DO NOTHING\" ] ;\n\
             knhk:setting [ knhk:key \"idempotency_param\" ; knhk:value \"true\" ] ;\n\
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
