//! `knhk worker`: the engine kept running on a data directory, so that timers fire and cases
//! cut off by a crash go on.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use knhk_core::CaseStatus;
use knhk_workflow_engine::CaseQuery;

use crate::session::Session;

/// Options of `knhk worker`.
#[derive(Debug, Args)]
pub(crate) struct WorkerArgs {
    /// Exits once no case is running any more, instead of waiting to be interrupted.
    #[arg(long)]
    pub(crate) until_idle: bool,
}

/// Recovers the unfinished cases, arms the stored timers, and runs until interrupted (or, with
/// `--until-idle`, until no case is running).
pub(crate) async fn run(session: &Session, args: WorkerArgs) -> anyhow::Result<ExitCode> {
    let engine = &session.engine;
    let mut updates = engine.subscribe();
    let started = engine
        .start()
        .await
        .context("cannot start the engine (stored timers, unfinished cases)")?;
    eprintln!(
        "worker: picked up {} unfinished cases, armed {} timers",
        started.recovered_cases, started.armed_timers
    );
    let running = CaseQuery {
        status: vec![CaseStatus::Running],
        workflow: None,
        limit: Some(1),
    };
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    loop {
        if args.until_idle && engine.cases(&running).await?.is_empty() {
            break;
        }
        tokio::select! {
            signal = tokio::signal::ctrl_c() => {
                signal.context("cannot listen for Ctrl-C")?;
                eprintln!("worker: interrupted");
                break;
            }
            _ = terminate.recv() => {
                eprintln!("worker: terminated");
                break;
            }
            update = updates.recv() => {
                if let Ok(u) = update
                    && u.status.is_final()
                {
                    eprintln!("worker: case {} {}", u.case, u.status);
                }
            }
        }
    }
    engine.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
