//! Following a case while the engine drives it in this process: every event is shown as soon
//! as its step commits, until nothing the engine started for the case is still running.

use std::io::Write as _;

use knhk_core::model::Specification;
use knhk_core::{CaseId, Wait};
use knhk_workflow_engine::CaseUpdate;

use crate::backend::Backend;
use tokio::sync::broadcast;

use crate::report::{HistoryTable, Zone};

/// The events read at a time when catching up with a history.
pub(crate) const PAGE: usize = 1000;

/// Where progress goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sink {
    /// The history table itself, on stdout.
    Stdout,
    /// Progress only, on stderr: stdout holds a JSON document.
    Stderr,
}

/// Prints the rows of a case's history table as events commit.
#[derive(Debug)]
pub(crate) struct Progress {
    table: HistoryTable,
    sink: Sink,
    /// The seq of the last event shown (or learnt).
    shown: u64,
    /// Whether the header is out; it comes with the first row.
    header: bool,
}

impl Progress {
    /// Creates a printer for a case of `spec`, its times in `zone`; the table header comes
    /// with the first row.
    pub(crate) fn new(spec: Option<&Specification>, sink: Sink, zone: Zone) -> Progress {
        Progress {
            table: HistoryTable::new(spec, zone),
            sink,
            shown: 0,
            header: false,
        }
    }

    /// Starts after event `seq` without printing the events up to it: later rows name the
    /// tasks of the work items and timers in `waits` (what the case waits for at `seq`), so
    /// the history before it is not read.
    pub(crate) fn start_after(&mut self, seq: u64, waits: &[Wait]) {
        for wait in waits {
            self.table.know(wait);
        }
        self.shown = self.shown.max(seq);
    }

    /// Prints every event of `case` committed since the last one shown, until nothing the
    /// engine started for the case (connector calls, allocations) is still running, then
    /// prints what is left; fails when a result of the case could not be stored. `updates`
    /// must have been subscribed before the step that set the case going, so that none of its
    /// commits is missed.
    /// A server's step is answered once committed: what it set going afterwards (connector
    /// calls on the server) is not followed, and its history is read back once.
    pub(crate) async fn follow(
        &mut self,
        backend: &Backend,
        case: CaseId,
        updates: Option<broadcast::Receiver<CaseUpdate>>,
    ) -> anyhow::Result<()> {
        let (Backend::Local(engine), Some(mut updates)) = (backend, updates) else {
            return self.follow_remote(backend, case).await;
        };
        let settled = engine.settled(case);
        tokio::pin!(settled);
        let mut fed = Ok(());
        loop {
            tokio::select! {
                // Show what committed before deciding that the case settled.
                biased;
                update = updates.recv() => match update {
                    Ok(u) if u.case == case && u.version > self.shown => {
                        self.catch_up(backend, case).await?;
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        self.catch_up(backend, case).await?;
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                result = &mut settled => {
                    fed = result;
                    break;
                }
            }
        }
        self.catch_up(backend, case).await?;
        // A result that could not be stored leaves the case short of where it should be: the
        // command did not do what it was asked.
        Ok(fed?)
    }

    /// Follows a case on a server: it answers a step once committed and makes the connector
    /// calls the step set going afterwards, so the history is read again until no call of the
    /// case is in flight (as the engine in this process would have waited for them).
    async fn follow_remote(&mut self, backend: &Backend, case: CaseId) -> anyhow::Result<()> {
        let mut pause = std::time::Duration::from_millis(5);
        loop {
            self.catch_up(backend, case).await?;
            let waits = backend.waits(case).await?;
            if !waits.iter().any(|w| matches!(w, Wait::Call { .. })) {
                break;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(std::time::Duration::from_millis(200));
        }
        // What committed between the last page and the look at the waits.
        self.catch_up(backend, case).await
    }

    /// Prints the events stored after the last one shown, a page at a time, so that a long
    /// history is never held in memory whole.
    pub(crate) async fn catch_up(&mut self, engine: &Backend, case: CaseId) -> anyhow::Result<()> {
        loop {
            let page = engine.history_page(case, self.shown, PAGE).await?;
            for e in &page {
                if !self.header {
                    self.header = true;
                    self.print(&self.table.header());
                }
                let row = self.table.row(e);
                self.print(&row);
                self.shown = self.shown.max(e.seq);
            }
            if page.len() < PAGE {
                return Ok(());
            }
        }
    }

    fn print(&self, line: &str) {
        // A closed pipe (`knhk run ... | head`) is not worth failing the case's command for.
        let _ = match self.sink {
            Sink::Stdout => writeln!(std::io::stdout(), "{line}"),
            Sink::Stderr => writeln!(std::io::stderr(), "{line}"),
        };
    }
}
