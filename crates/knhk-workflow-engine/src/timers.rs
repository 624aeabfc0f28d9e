//! The timer queue: one task that sleeps until the earliest armed timer and reports it fired.
//! Timers are rows in the store too, so a restart arms them again.

use std::collections::{BTreeMap, HashMap};

use knhk_core::{CaseId, TimerId, Timestamp};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;

pub(crate) enum TimerCmd {
    Arm {
        case: CaseId,
        timer: TimerId,
        at: Timestamp,
    },
    Cancel {
        timer: TimerId,
    },
}

/// Runs the queue until `cancel` fires or every sender is gone; sends each due timer to `fired`.
pub(crate) async fn run(
    clock: Clock,
    mut commands: mpsc::UnboundedReceiver<TimerCmd>,
    fired: mpsc::UnboundedSender<(CaseId, TimerId)>,
    cancel: CancellationToken,
) {
    let mut queue: BTreeMap<(Timestamp, TimerId), CaseId> = BTreeMap::new();
    let mut when: HashMap<TimerId, Timestamp> = HashMap::new();
    loop {
        let next = queue.keys().next().map(|&(at, _)| clock.instant_of(at));
        tokio::select! {
            () = cancel.cancelled() => return,
            cmd = commands.recv() => match cmd {
                None => return,
                Some(TimerCmd::Arm { case, timer, at }) => {
                    if let Some(old) = when.insert(timer, at) {
                        queue.remove(&(old, timer));
                    }
                    queue.insert((at, timer), case);
                }
                Some(TimerCmd::Cancel { timer }) => {
                    if let Some(at) = when.remove(&timer) {
                        queue.remove(&(at, timer));
                    }
                }
            },
            () = sleep_until(next), if next.is_some() => {
                let now = clock.now();
                while let Some((&(at, timer), &case)) = queue.iter().next() {
                    if at > now {
                        break;
                    }
                    queue.remove(&(at, timer));
                    when.remove(&timer);
                    if fired.send((case, timer)).is_err() {
                        return;
                    }
                }
            }
        }
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}
