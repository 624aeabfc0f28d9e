//! `knhk load`: drives a load of cases (a stub until the crash-recovery work lands).

use std::path::Path;
use std::process::ExitCode;

/// The options of `knhk load`.
#[derive(Debug, clap::Args)]
pub struct LoadArgs {}

/// Drives a load of cases on the store in `data_dir`.
pub async fn run(args: LoadArgs, data_dir: &Path) -> anyhow::Result<ExitCode> {
    let _ = (args, data_dir);
    anyhow::bail!("knhk load is not built yet")
}
