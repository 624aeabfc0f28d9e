//! The `knhk-bench` command: the test harness kept out of the shipped `knhk` binary. `bench`
//! measures the durable engine; `scale` measures single-case commands and lists as the store
//! grows; `history` measures them on one case with a long history, snapshots off and on;
//! `load` drives cases on a data directory for the kill -9 recovery test; `hello` is the
//! hello-world baseline of `serve-bench.sh` (`knhk serve` under wrk); `grpc-load` is its gRPC
//! load client; `connectors` measures PostgreSQL tasks with the connector's pool at 16 and at 1;
//! `lockchain` gives the lockchain's figures (its cost on W1, receipts, verification).

mod bench;
mod connectors;
mod grpc_load;
mod hello;
mod history;
mod intake;
mod load;
mod lockchain;
mod scale;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// knhk-bench: measures the knhk engine and drives it under load.
#[derive(Debug, Parser)]
#[command(name = "knhk-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Measures the engine with the SQLite store: cases/s and step latency.
    Bench(bench::BenchArgs),
    /// Measures single-case commands, lists and start-up on stores of many waiting cases.
    Scale(scale::ScaleArgs),
    /// Measures ten PostgreSQL tasks in sequence through the engine, pool at 16 and at 1.
    Connectors(connectors::ConnectorsArgs),
    /// Drives a load of cases on a data directory; used by the crash-recovery test.
    Load(load::LoadArgs),
    /// Measures single-case commands on one case with a long history, snapshots off and on.
    History(history::HistoryArgs),
    /// Times one operation of `history` in a process of its own (run by `history`).
    #[command(hide = true)]
    HistoryProbe(history::ProbeArgs),
    /// Measures the intake: messages/s from a NATS subject into new cases, and the latency
    /// from publish to the case's first commit.
    Intake(intake::IntakeArgs),
    /// Serves a minimal axum hello-world (`GET /`): the baseline of `serve-bench.sh`.
    Hello(hello::HelloArgs),
    /// Drives `knhk serve`'s gRPC API from N connections; prints calls/s, p50, p99, errors.
    GrpcLoad(grpc_load::GrpcLoadArgs),
    /// Measures the lockchain: W1 durable throughput with it off and on in the same run, the
    /// time to produce a receipt, receipt sizes at 1k, 1M and 1G leaves, verification speed.
    Lockchain(lockchain::LockchainArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("error"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal, not in a file or a pipe.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // Two worker threads, as the `knhk` binary runs the engine, so that the figures match.
    let result = match tokio::runtime::Builder::new_multi_thread()
        // The CEL parser and evaluator recurse once per level of an expression, with large
        // frames in a debug build: 8 MiB (the main thread's) holds the deepest one accepted.
        .thread_stack_size(8 << 20)
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(async {
            match cli.command {
                Command::Bench(args) => bench::run(args).await,
                Command::Scale(args) => scale::run(args).await,
                Command::Connectors(args) => connectors::run(args).await,
                Command::Load(args) => load::run(args).await,
                Command::History(args) => history::run(args).await,
                Command::HistoryProbe(args) => history::run_probe(args).await,
                Command::Hello(args) => hello::run(args).await,
                Command::Intake(args) => intake::run(args).await,
                Command::GrpcLoad(args) => grpc_load::run(args).await,
                Command::Lockchain(args) => lockchain::run(args).await,
            }
        }),
        Err(e) => Err(anyhow::Error::new(e).context("cannot start the async runtime")),
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
