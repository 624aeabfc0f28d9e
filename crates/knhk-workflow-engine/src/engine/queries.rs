//! Reading what the engine holds: cases, histories and work items, as the engine's views.

use knhk_core::{CaseId, Event, Wait, WorkItemId};

use super::WorkflowEngine;
use crate::error::Error;
use crate::records;
use crate::view::{CaseQuery, CaseView, WorkItemQuery, WorkItemView};

impl WorkflowEngine {
    /// Returns a case as last committed.
    pub async fn case(&self, id: CaseId) -> Result<CaseView, Error> {
        let record = self
            .inner
            .store
            .case(id)
            .await?
            .ok_or(Error::UnknownCase(id))?;
        records::case_view(record)
    }

    /// Returns the cases matching a query, oldest first.
    pub async fn cases(&self, query: &CaseQuery) -> Result<Vec<CaseView>, Error> {
        self.inner
            .store
            .cases(&records::case_filter(query))
            .await?
            .into_iter()
            .map(records::case_view)
            .collect()
    }

    /// Returns a case's whole history, in order.
    pub async fn history(&self, id: CaseId) -> Result<Vec<Event>, Error> {
        self.events(id, 0).await
    }

    /// Returns the events of a case with a sequence number above `after_seq`, in order: what
    /// a caller that has seen the history up to `after_seq` has not seen yet.
    pub async fn events(&self, id: CaseId, after_seq: u64) -> Result<Vec<Event>, Error> {
        if self.inner.store.case(id).await?.is_none() {
            return Err(Error::UnknownCase(id));
        }
        Ok(self.inner.store.events(id, after_seq).await?)
    }

    /// Returns the live work items matching a query, oldest first.
    pub async fn work_items(&self, query: &WorkItemQuery) -> Result<Vec<WorkItemView>, Error> {
        self.inner
            .store
            .work_items(&records::work_item_filter(query))
            .await?
            .into_iter()
            .map(records::work_item_view)
            .collect()
    }

    /// Returns one live work item; one completed or withdrawn is no longer there.
    pub async fn work_item(&self, id: WorkItemId) -> Result<WorkItemView, Error> {
        let record = self
            .inner
            .store
            .work_item(id)
            .await?
            .ok_or(Error::UnknownWorkItem(id))?;
        records::work_item_view(record)
    }

    /// Returns what a case waits for (work items, connector calls, timers, triggers, a start
    /// or resume, or the retry of a task that failed it), as knhk-core answers it from the
    /// case's state; empty once it ended.
    pub async fn waits(&self, id: CaseId) -> Result<Vec<Wait>, Error> {
        let mut guard = self.inner.cases.lock(id).await;
        let live = match guard.take() {
            Some(live) => live,
            None => self.load(id).await?,
        };
        let waits = live.case.waits(&live.wf);
        // Keep a running case as a step would; an ended one goes with the lock's entry.
        if !live.case.status().is_final() {
            *guard = Some(live);
        }
        Ok(waits)
    }

    /// Returns how many cases the engine holds in memory (running cases it has touched).
    pub fn cached_cases(&self) -> usize {
        self.inner.cases.cached()
    }
}
