//! `knhk worker`: the engine kept running on a data directory, so that timers fire and cases
//! cut off by a crash go on.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use knhk_core::{CaseStatus, Wait};
use knhk_workflow_engine::{CaseQuery, WorkflowEngine};

use crate::session::Session;

/// Options of `knhk worker`.
#[derive(Debug, Args)]
pub(crate) struct WorkerArgs {
    /// Exits once the engine itself has nothing left to do, instead of waiting to be
    /// interrupted: no connector call in flight and no timer due within `--idle-timers-ms`.
    /// Cases that wait for people or outside events do not keep it running.
    #[arg(long)]
    pub(crate) until_idle: bool,
    /// With `--until-idle`: a timer due within this many milliseconds is waited for; one due
    /// later is left to a later worker.
    #[arg(long, value_name = "MS", default_value_t = 60_000)]
    pub(crate) idle_timers_ms: u64,
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
    for q in &started.quarantined {
        eprintln!(
            "worker: case {} is quarantined and left alone: {}",
            q.id, q.reason
        );
    }
    let running = CaseQuery {
        status: vec![CaseStatus::Running],
        ..CaseQuery::default()
    };
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    loop {
        if args.until_idle && idle(engine, &running, args.idle_timers_ms).await? {
            eprintln!("worker: idle (nothing left that the engine itself can do)");
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

/// Returns whether the engine has nothing left to do by itself: no running case has a
/// connector call in flight or a timer due within `timers_ms`. Work items and triggers wait for
/// the outside world, which a worker cannot hurry.
async fn idle(
    engine: &WorkflowEngine,
    running: &CaseQuery,
    timers_ms: u64,
) -> anyhow::Result<bool> {
    let horizon = engine.clock().now().plus_millis(timers_ms);
    for case in engine.cases(running).await? {
        for wait in engine.waits(case.id).await? {
            match wait {
                Wait::Call { .. } => return Ok(false),
                Wait::Timer { fires_at, .. } if fires_at <= horizon => return Ok(false),
                _ => {}
            }
        }
    }
    Ok(true)
}
