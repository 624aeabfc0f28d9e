//! `knhk-bench intake`: messages/s from a NATS subject into new cases through the engine's
//! intake, on a SQLite store with fsync, and the latency from each publish to the commit of
//! the case it started (p50, p99).
//!
//! The publisher keeps at most `--window` messages published and not yet committed (a
//! closed loop): a core NATS subscription drops what overflows its buffer, so an open loop
//! would measure drops, not the engine.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_nats::HeaderMap;
use knhk_connectors::InstanceConfig;
use knhk_connectors::intake::parse_subscriptions;
use knhk_store::{SqliteOptions, SqliteStore};
use knhk_workflow_engine::intake::Intake;
use knhk_workflow_engine::{Directory, EngineConfig, SourceFormat, WorkflowEngine};
use serde_json::json;
use tokio::sync::{Mutex, Notify};
use tokio_util::sync::CancellationToken;

use crate::bench::percentile;

#[derive(Debug, clap::Args)]
pub struct IntakeArgs {
    /// How many messages (so cases) to send.
    #[arg(long, default_value_t = 2000)]
    messages: usize,
    /// The subscription's prefetch (messages processed at once) and the publisher's window.
    #[arg(long, default_value_t = 64)]
    window: usize,
    /// The NATS server.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    nats: String,
}

const WORKFLOW: &str = "@prefix yawl: <http://www.yawlfoundation.org/yawlschema#> .
@prefix knhk: <https://knhk.dev/ns#> .
<#spec> a yawl:Specification ; yawl:name \"IntakeBench\" ; yawl:hasDecomposition <#net> .
<#net> a yawl:Net ; yawl:id \"net\" ; yawl:isRootNet true ; yawl:hasInputCondition <#start> ;
  yawl:hasOutputCondition <#end> ; yawl:hasTask <#review> .
<#start> a yawl:InputCondition ; yawl:flowsInto [ yawl:nextElementRef <#review> ] .
<#end> a yawl:OutputCondition .
<#review> a yawl:Task ; yawl:id \"review\" ; knhk:role \"clerk\" ;
  yawl:flowsInto [ yawl:nextElementRef <#end> ] .
";

pub async fn run(args: IntakeArgs) -> anyhow::Result<ExitCode> {
    let dir = tempfile::tempdir().context("cannot make a temporary directory")?;
    let store = SqliteStore::open(&dir.path().join("knhk.db"), SqliteOptions::default())
        .await
        .context("cannot open the SQLite store")?;
    let engine = WorkflowEngine::new(EngineConfig::with_defaults(
        Arc::new(store),
        Directory::default(),
    ));
    engine
        .register_workflow("intake-bench.ttl", SourceFormat::Turtle, WORKFLOW)
        .await?;
    let subject = format!("knhk.bench.intake.{}", std::process::id());
    let instance = InstanceConfig::parse(
        "bus",
        json!({"kind": "nats", "url": args.nats})
            .as_object()
            .context("a table")?,
    )?;
    let subs = parse_subscriptions(
        &json!([{
            "connector": "bus", "subject": subject, "start": "IntakeBench",
            "prefetch": args.window,
        }]),
        std::slice::from_ref(&instance),
    )?;
    // Commits of new cases, as the engine announces them after each commit.
    let commits: Arc<Mutex<HashMap<knhk_core::CaseId, Instant>>> = Arc::default();
    let committed = Arc::new(Notify::new());
    let mut updates = engine.subscribe();
    let recorder = {
        let commits = Arc::clone(&commits);
        let committed = Arc::clone(&committed);
        tokio::spawn(async move {
            let mut lagged = 0u64;
            loop {
                match updates.recv().await {
                    Ok(u) if u.previous == 0 => {
                        commits.lock().await.insert(u.case, Instant::now());
                        committed.notify_one();
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => lagged += n,
                    Err(_) => return lagged,
                }
            }
        })
    };
    let shutdown = CancellationToken::new();
    let intake = Intake::new(engine.clone(), subs, vec![instance])?;
    let intake_task = tokio::spawn(intake.run(shutdown.clone()));
    let client = async_nats::connect(&args.nats)
        .await
        .context("cannot connect to NATS")?;
    // A warm-up message, sent until a case shows: the subscription is then in place.
    let warm = Instant::now();
    loop {
        publish(&client, &subject, "warm", usize::MAX).await?;
        let _ = tokio::time::timeout(Duration::from_millis(200), committed.notified()).await;
        if !commits.lock().await.is_empty() {
            break;
        }
        anyhow::ensure!(
            warm.elapsed() < Duration::from_secs(10),
            "no case started within 10 s: is the intake subscribed?"
        );
    }
    commits.lock().await.clear();
    let mut published = Vec::with_capacity(args.messages);
    let began = Instant::now();
    for n in 0..args.messages {
        while n - commits.lock().await.len() >= args.window {
            committed.notified().await;
        }
        published.push(Instant::now());
        publish(&client, &subject, &format!("m-{n}"), n).await?;
    }
    while commits.lock().await.len() < args.messages {
        tokio::time::timeout(Duration::from_secs(10), committed.notified())
            .await
            .context("the intake stopped committing cases")?;
    }
    let elapsed = began.elapsed();
    shutdown.cancel();
    intake_task.await??;
    let mut latencies = Vec::with_capacity(args.messages);
    for (case, at) in commits.lock().await.iter() {
        let view = engine.case(*case).await?;
        if let Some(n) = view.data.get("n").and_then(|v| v.as_u64())
            && let Some(sent) = published.get(n as usize)
        {
            latencies.push(at.duration_since(*sent));
        }
    }
    latencies.sort();
    engine.shutdown().await;
    recorder.abort();
    println!(
        "intake (NATS subject -> new case, SQLite with fsync, window {}): {} messages in {:.2} s = {:.0} messages/s; publish -> first commit p50 {:.2} ms, p99 {:.2} ms",
        args.window,
        args.messages,
        elapsed.as_secs_f64(),
        args.messages as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 50).as_secs_f64() * 1e3,
        percentile(&latencies, 99).as_secs_f64() * 1e3,
    );
    Ok(ExitCode::SUCCESS)
}

async fn publish(
    client: &async_nats::Client,
    subject: &str,
    id: &str,
    n: usize,
) -> anyhow::Result<()> {
    let mut h = HeaderMap::new();
    h.insert("Nats-Msg-Id", id);
    let body = json!({ "n": n }).to_string();
    client
        .publish_with_headers(subject.to_owned(), h, body.into_bytes().into())
        .await
        .context("cannot publish")?;
    Ok(())
}
