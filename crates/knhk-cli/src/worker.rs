//! `knhk worker`: the engine kept running on a data directory, so that timers fire and cases
//! cut off by a crash go on.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use knhk_core::{CaseId, EventKind, TimerId, Wait};
use knhk_workflow_engine::{CaseUpdate, WorkflowEngine};
use tokio::sync::broadcast;

use crate::progress::PAGE;
use crate::report::task_label;

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
    let engine = session.engine.local("worker")?;
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
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    loop {
        if args.until_idle && idle(engine, args.idle_timers_ms).await? {
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
            update = updates.recv() => match update {
                Ok(u) => say_what_happened(engine, &u).await,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    eprintln!("worker: {n} steps went by too fast to report");
                }
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    }
    engine.shutdown().await;
    let or_joins = engine.or_join_stats();
    if or_joins.over_budget > 0 {
        eprintln!(
            "worker: {} OR-join decisions ran past the exact rule's budget and waited, as the \
             conservative rule does (docs/semantics.md)",
            or_joins.over_budget
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints what one step the worker took did that nobody asked for at the moment: a timer
/// fired, a connector call answered or gave up, the case ended.
async fn say_what_happened(engine: &WorkflowEngine, u: &CaseUpdate) {
    let events = match engine.events(u.case, u.previous).await {
        Ok(events) => events,
        Err(e) => {
            eprintln!(
                "worker: case {}: cannot read what the step did: {e}",
                u.case
            );
            return;
        }
    };
    for e in &events {
        let what = match &e.kind {
            EventKind::TimerFired { timer } => {
                let task = timer_task(engine, u.case, timer).await;
                format!("timer of task {task} fired")
            }
            EventKind::ConnectorCallSucceeded {
                failed_attempts, ..
            } => format!(
                "connector call answered after {} attempt(s)",
                failed_attempts.len() + 1
            ),
            EventKind::ConnectorCallFailed { error, .. } => {
                format!("connector call failed: {error}")
            }
            EventKind::CaseStateChanged { to, .. } if to.is_final() => format!("case {to}"),
            _ => continue,
        };
        eprintln!("worker: case {}: {what}", u.case);
    }
}

/// Returns the task a timer belongs to, from the case's history read a page at a time up to
/// the timer's arming (`?` when it cannot be read).
async fn timer_task(engine: &WorkflowEngine, case: CaseId, timer: &TimerId) -> String {
    let mut after = 0;
    loop {
        let Ok(page) = engine.history_page(case, after, PAGE).await else {
            return "?".to_owned();
        };
        let armed = page.iter().find_map(|e| match &e.kind {
            EventKind::TimerArmed { timer: t, task, .. } if t == timer => Some(task_label(task)),
            _ => None,
        });
        match (armed, page.last()) {
            (Some(task), _) => return task,
            (None, Some(last)) if page.len() == PAGE => after = last.seq,
            _ => return "?".to_owned(),
        }
    }
}

/// Returns whether the engine has nothing left to do by itself: no running case has a
/// connector call in flight and no stored timer of a running case is due within `timers_ms`. Work items and
/// triggers wait for the outside world, which a worker cannot hurry. Only the cases whose rows
/// say they have work in flight are looked at, so the check costs those, not every case.
async fn idle(engine: &WorkflowEngine, timers_ms: u64) -> anyhow::Result<bool> {
    let horizon = engine.clock().now().plus_millis(timers_ms);
    if engine.timer_due_by(horizon).await? {
        return Ok(false);
    }
    for case in engine.cases_with_work_in_flight().await? {
        if engine
            .waits(case)
            .await?
            .iter()
            .any(|w| matches!(w, Wait::Call { .. }))
        {
            return Ok(false);
        }
    }
    Ok(true)
}
