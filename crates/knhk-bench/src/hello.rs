//! `knhk-bench hello`: a minimal axum hello-world server, the baseline that `serve-bench.sh`
//! measures `knhk serve` against in the same run, with the same load tool.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context;
use axum::Router;
use axum::routing::get;
use clap::Args;

/// Options of `knhk-bench hello`.
#[derive(Debug, Args)]
pub(crate) struct HelloArgs {
    /// The address to listen on; port 0 takes a free one. The first line of standard output
    /// says which: `listening http=HOST:PORT`.
    #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
    http: String,
}

/// Serves `GET /` (`hello`) until killed.
pub(crate) async fn run(args: HelloArgs) -> anyhow::Result<ExitCode> {
    let listener = tokio::net::TcpListener::bind(&args.http)
        .await
        .with_context(|| format!("cannot listen on {}", args.http))?;
    let local = listener.local_addr()?;
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "listening http={local}");
    let _ = stdout.flush();
    let app = Router::new().route("/", get(|| async { "hello" }));
    axum::serve(listener, app).await?;
    Ok(ExitCode::SUCCESS)
}
