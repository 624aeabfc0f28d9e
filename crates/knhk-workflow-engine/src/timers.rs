//! The timer service: one task that sleeps until the earliest armed timer and reports it
//! fired, and its cheap handle. Timers are rows in the store too, so a restart arms them again.

use std::collections::{BTreeMap, HashMap};

use knhk_core::{CaseId, TimerId, Timestamp};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;

enum TimerCmd {
    Arm {
        case: CaseId,
        timer: TimerId,
        at: Timestamp,
    },
    Cancel {
        timer: TimerId,
    },
}

/// The handle on a running timer service: arms and cancels timers.
#[derive(Clone, Debug)]
pub(crate) struct Timers {
    commands: mpsc::UnboundedSender<TimerCmd>,
}

impl Timers {
    /// Arms (or moves) a timer; it is reported fired once `at` has passed. Returns `false`
    /// when the service is gone.
    pub(crate) fn arm(&self, case: CaseId, timer: TimerId, at: Timestamp) -> bool {
        self.commands
            .send(TimerCmd::Arm { case, timer, at })
            .is_ok()
    }

    /// Cancels a timer. Returns `false` when the service is gone.
    pub(crate) fn cancel(&self, timer: TimerId) -> bool {
        self.commands.send(TimerCmd::Cancel { timer }).is_ok()
    }
}

/// The timer queue, run by [`TimerService::run`].
#[derive(Debug)]
pub(crate) struct TimerService {
    clock: Clock,
    commands: mpsc::UnboundedReceiver<TimerCmd>,
    fired: mpsc::UnboundedSender<(CaseId, TimerId)>,
}

impl TimerService {
    /// Creates the service and its handle; each due timer is sent to `fired`.
    pub(crate) fn new(
        clock: Clock,
        fired: mpsc::UnboundedSender<(CaseId, TimerId)>,
    ) -> (TimerService, Timers) {
        let (tx, commands) = mpsc::unbounded_channel();
        (
            TimerService {
                clock,
                commands,
                fired,
            },
            Timers { commands: tx },
        )
    }

    /// Runs the queue until `shutdown` fires or every handle is gone.
    pub(crate) async fn run(self, shutdown: CancellationToken) {
        let TimerService {
            clock,
            mut commands,
            fired,
        } = self;
        let cancel = shutdown;
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
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}
