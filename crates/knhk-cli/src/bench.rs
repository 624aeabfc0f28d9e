//! `knhk bench`: measures the engine (a stub until the benchmark work lands).

use std::process::ExitCode;

/// The options of `knhk bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {}

/// Runs the benchmark.
pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let _ = args;
    anyhow::bail!("knhk bench is not built yet")
}
