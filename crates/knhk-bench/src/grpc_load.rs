//! `knhk-bench grpc-load`: a small gRPC load client for `serve-bench.sh` (the gRPC side of
//! wrk): N connections, one call in flight on each, for a time or at a fixed total rate;
//! prints `calls/s p50_ms p99_ms errors`. The baseline is the standard health service's
//! `Check` on the same server (a handler that does no engine work), measured in the same run.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use knhk_api::grpc::pb;
use knhk_api::grpc::pb::workflow_service_client::WorkflowServiceClient;
use tonic::transport::{Channel, Endpoint};

/// Options of `knhk-bench grpc-load`.
#[derive(Debug, Args)]
pub(crate) struct GrpcLoadArgs {
    /// The gRPC address of `knhk serve`, HOST:PORT.
    #[arg(long, value_name = "ADDR")]
    grpc: String,
    /// What each call does.
    #[arg(long, value_enum)]
    op: Op,
    /// The workflow (`create`) or case (`get`) id.
    #[arg(long, default_value = "")]
    id: String,
    /// Connections, each with one call in flight.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// How long to measure.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// A fixed total rate of calls per second (spread over the connections); none: as fast
    /// as each connection answers.
    #[arg(long)]
    rate: Option<f64>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Op {
    /// `grpc.health.v1.Health/Check`: the baseline.
    Health,
    /// `CreateCase` with `start` on the workflow `--id`.
    Create,
    /// `GetCase` of the case `--id`.
    Get,
}

pub(crate) async fn run(args: GrpcLoadArgs) -> anyhow::Result<ExitCode> {
    if args.connections == 0 {
        bail!("--connections: at least 1");
    }
    let endpoint = Endpoint::from_shared(format!("http://{}", args.grpc))
        .with_context(|| format!("--grpc {}: not an address", args.grpc))?;
    let mut channels = Vec::new();
    for _ in 0..args.connections {
        // A channel of its own is a connection of its own.
        channels.push(endpoint.connect().await.context("cannot connect")?);
    }
    let interval = args
        .rate
        .map(|r| Duration::from_secs_f64(args.connections as f64 / r.max(0.001)));
    let start = Instant::now();
    let end = start + Duration::from_secs(args.seconds);
    let mut workers = Vec::new();
    for (i, channel) in channels.into_iter().enumerate() {
        let (op, id) = (args.op, args.id.clone());
        // Spread the first calls of a fixed rate over one interval.
        let offset = interval.map_or(Duration::ZERO, |d| {
            d.mul_f64(i as f64 / args.connections as f64)
        });
        workers.push(tokio::spawn(worker(channel, op, id, end, interval, offset)));
    }
    let mut latencies = Vec::new();
    let mut errors = 0u64;
    for w in workers {
        let (l, e) = w.await.context("a load worker failed")?;
        latencies.extend(l);
        errors += e;
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let pct = |p: f64| -> f64 {
        let i = ((latencies.len() as f64 * p).ceil() as usize).saturating_sub(1);
        latencies
            .get(i)
            .map_or(0.0, |d: &Duration| d.as_secs_f64() * 1000.0)
    };
    println!(
        "{:.0} {:.2} {:.2} {}",
        latencies.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99),
        errors
    );
    Ok(ExitCode::SUCCESS)
}

async fn worker(
    channel: Channel,
    op: Op,
    id: String,
    end: Instant,
    interval: Option<Duration>,
    offset: Duration,
) -> (Vec<Duration>, u64) {
    let mut client = WorkflowServiceClient::new(channel.clone());
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut next = tokio::time::Instant::now() + offset;
    while Instant::now() < end {
        if let Some(d) = interval {
            tokio::time::sleep_until(next).await;
            next += d;
        }
        let sent = Instant::now();
        let ok = match op {
            Op::Health => health
                .check(tonic_health::pb::HealthCheckRequest::default())
                .await
                .is_ok(),
            Op::Create => client
                .create_case(pb::CreateCaseRequest {
                    workflow_id: id.clone(),
                    start: true,
                    ..Default::default()
                })
                .await
                .is_ok(),
            Op::Get => client
                .get_case(pb::CaseRequest { id: id.clone() })
                .await
                .is_ok(),
        };
        if ok {
            latencies.push(sent.elapsed());
        } else {
            errors += 1;
        }
    }
    (latencies, errors)
}
