//! Reading what the engine holds: cases, histories and work items, as the engine's views.

use std::collections::HashSet;

use knhk_core::{CaseId, CaseStatus, Event, Timestamp, Wait, WorkItemId};
use tracing::warn;

use super::WorkflowEngine;
use crate::error::Error;
use crate::records;
use crate::view::{CaseQuery, CaseView, ItemCursor, QuarantinedCase, WorkItemQuery, WorkItemView};

impl WorkflowEngine {
    /// Returns a case as last committed; a quarantined case is refused, saying why.
    pub async fn case(&self, id: CaseId) -> Result<CaseView, Error> {
        records::case_view(self.stored_case(id).await?)
    }

    /// Returns the stored row of a case that is neither unknown nor quarantined.
    async fn stored_case(&self, id: CaseId) -> Result<knhk_store::CaseRecord, Error> {
        self.refuse_quarantined(id).await?;
        self.inner
            .store
            .case(id)
            .await?
            .ok_or(Error::UnknownCase(id))
    }

    /// Returns the cases matching a query, oldest first; quarantined cases are not among them
    /// (see [`WorkflowEngine::quarantined`]). A case whose row does not decode is left out
    /// (with a warning) rather than failing the whole list.
    pub async fn cases(&self, query: &CaseQuery) -> Result<Vec<CaseView>, Error> {
        let set_aside = self.set_aside().await?;
        // A page starts after a case of the list: where that case stands in its order.
        let after = match query.after {
            None => None,
            Some(id) => {
                let row = self
                    .inner
                    .store
                    .case(id)
                    .await?
                    .ok_or(Error::UnknownCase(id))?;
                Some((row.created_at, id))
            }
        };
        let mut filter = records::case_filter(query, after);
        let mut views = Vec::new();
        // A page leaves out quarantined cases and rows that do not decode; it reads on past
        // them, so that a page is short only when it is the last (a caller pages on from its
        // last case, which an empty page would not give).
        loop {
            let rows = match self.inner.store.cases(&filter).await {
                Ok(rows) => rows,
                Err(knhk_store::Error::Corrupt(_)) => self.readable_cases(&filter).await?,
                Err(e) => return Err(e.into()),
            };
            let full = filter.limit.is_some_and(|n| rows.len() >= n);
            let last = rows.last().map(|r| (r.created_at, r.id));
            for row in rows {
                if set_aside.contains(&row.id) {
                    continue;
                }
                let id = row.id;
                match records::case_view(row) {
                    Ok(view) => views.push(view),
                    Err(e) => warn!(case = %id, error = %e, "case row does not decode; left out"),
                }
            }
            let missing = query.limit.map_or(0, |n| n.saturating_sub(views.len()));
            match last {
                Some(last) if full && missing > 0 => {
                    filter.after = Some(last);
                    filter.limit = Some(missing);
                }
                _ => break,
            }
        }
        Ok(views)
    }

    /// Reads the rows of a query one case at a time, leaving out those that do not decode.
    async fn readable_cases(
        &self,
        filter: &knhk_store::CaseFilter,
    ) -> Result<Vec<knhk_store::CaseRecord>, Error> {
        let store = &self.inner.store;
        let mut rows = Vec::new();
        for id in store.case_ids(&filter.status).await? {
            match store.case(id).await {
                Ok(Some(row))
                    if filter.workflow.is_none_or(|w| w == row.workflow)
                        && filter
                            .after
                            .is_none_or(|after| (row.created_at, row.id) > after) =>
                {
                    rows.push(row)
                }
                Ok(_) => {}
                Err(e) => warn!(case = %id, error = %e, "case row does not decode; left out"),
            }
            if filter.limit.is_some_and(|n| rows.len() >= n) {
                break;
            }
        }
        Ok(rows)
    }

    /// Returns the quarantined cases, oldest first: set aside because they do not load.
    pub async fn quarantined(&self) -> Result<Vec<QuarantinedCase>, Error> {
        Ok(self
            .inner
            .store
            .quarantined()
            .await?
            .into_iter()
            .map(|q| QuarantinedCase {
                id: q.case,
                reason: q.reason,
                at: q.at,
            })
            .collect())
    }

    /// Returns a case's whole history, in order.
    pub async fn history(&self, id: CaseId) -> Result<Vec<Event>, Error> {
        self.events(id, 0).await
    }

    /// Returns the events of a case with a sequence number above `after_seq`, in order: what
    /// a caller that has seen the history up to `after_seq` has not seen yet.
    pub async fn events(&self, id: CaseId, after_seq: u64) -> Result<Vec<Event>, Error> {
        self.stored_case(id).await?;
        Ok(self.inner.store.events(id, after_seq).await?)
    }

    /// Returns the running cases whose rows say they have work in flight (a connector call, an
    /// allocation): the only ones for which the engine itself still has something to do, read
    /// without reading the cases that merely wait.
    /// Quarantined cases are left out: nothing runs them.
    pub async fn cases_with_work_in_flight(&self) -> Result<Vec<CaseId>, Error> {
        let set_aside = self.set_aside().await?;
        let mut ids = self
            .inner
            .store
            .case_ids_in_flight(&[CaseStatus::Running])
            .await?;
        ids.retain(|id| !set_aside.contains(id));
        Ok(ids)
    }

    /// Returns whether a stored timer of a running case falls due by `by` (a suspended case's
    /// timers wait for it to resume).
    pub async fn timer_due_by(&self, by: Timestamp) -> Result<bool, Error> {
        let store = &self.inner.store;
        for timer in store.timers().await? {
            // Ordered by firing time: the rest fall due later still.
            if timer.fires_at > by {
                break;
            }
            if store
                .case(timer.case_id)
                .await?
                .is_some_and(|c| c.status == CaseStatus::Running)
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Returns a page of a case's history: at most `limit` events with a sequence number above
    /// `after_seq`, in order, read without the rest of the history (so that memory does not
    /// grow with a long one).
    pub async fn history_page(
        &self,
        id: CaseId,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<Event>, Error> {
        self.stored_case(id).await?;
        Ok(self.inner.store.events_page(id, after_seq, limit).await?)
    }

    /// Returns the live work items matching a query, oldest first; those of quarantined cases
    /// are left out (nothing can be done with them).
    /// A page (`limit`, `after`) is read from an index range: it costs its own items.
    pub async fn work_items(&self, query: &WorkItemQuery) -> Result<Vec<WorkItemView>, Error> {
        let set_aside = self.set_aside().await?;
        // A page starts after an item of the list: where that item stands in its order.
        let after = match query.after {
            None => None,
            Some(ItemCursor::At(at, id)) => Some((at, id)),
            Some(ItemCursor::Item(id)) => {
                let row = self
                    .inner
                    .store
                    .work_item(id)
                    .await?
                    .ok_or(Error::UnknownWorkItem(id))?;
                Some((row.offered_at, id))
            }
        };
        self.inner
            .store
            .work_items(&records::work_item_filter(query, after))
            .await?
            .into_iter()
            .filter(|w| !set_aside.contains(&w.case_id))
            .map(records::work_item_view)
            .collect()
    }

    /// Returns the ids of the quarantined cases.
    async fn set_aside(&self) -> Result<HashSet<CaseId>, Error> {
        Ok(self
            .inner
            .store
            .quarantined()
            .await?
            .into_iter()
            .map(|q| q.case)
            .collect())
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

    /// Returns the case a shortened id names: a whole id as it is (without a lookup), else the
    /// one case whose id, or whose last group (the 12 hex digits after the last `-`, as
    /// tables name time-ordered ids), starts with `reference`. None is
    /// [`Error::UnknownId`], several [`Error::AmbiguousId`] listing them. Read from index
    /// ranges, whatever the number of cases.
    pub async fn resolve_case(&self, reference: &str) -> Result<CaseId, Error> {
        if let Ok(id) = reference.parse::<uuid::Uuid>() {
            return Ok(CaseId(id));
        }
        let prefix = id_prefix("case", reference)?;
        let found = self
            .inner
            .store
            .case_ids_by_prefix(&prefix, CANDIDATES + 1)
            .await?;
        one_named("case", reference, found)
    }

    /// Returns the work item a shortened id names, as [`WorkflowEngine::resolve_case`] does
    /// for cases; only live work items are named.
    pub async fn resolve_work_item(&self, reference: &str) -> Result<WorkItemId, Error> {
        if let Ok(id) = reference.parse::<uuid::Uuid>() {
            return Ok(WorkItemId(id));
        }
        let prefix = id_prefix("work item", reference)?;
        let found = self
            .inner
            .store
            .work_item_ids_by_prefix(&prefix, CANDIDATES + 1)
            .await?;
        one_named("work item", reference, found)
    }

    /// Returns how many cases the engine holds in memory (running cases it has touched).
    pub fn cached_cases(&self) -> usize {
        self.inner.cases.cached()
    }

    /// Returns how the OR-joins of the workflows this engine has loaded were decided since it
    /// started: how many decisions needed the exact rule (coverability), and how many of those
    /// ran past [`knhk_core::OR_JOIN_BUDGET`] and waited, as the conservative rule does. Each
    /// of the latter is also logged as a warning naming its case.
    pub fn or_join_stats(&self) -> knhk_core::OrJoinStats {
        self.loaded_workflows()
            .iter()
            .map(|wf| wf.or_join_stats())
            .fold(knhk_core::OrJoinStats::default(), |a, b| {
                knhk_core::OrJoinStats {
                    exact_checks: a.exact_checks + b.exact_checks,
                    over_budget: a.over_budget + b.over_budget,
                }
            })
    }
}

/// The most ids an ambiguous reference lists.
const CANDIDATES: usize = 10;

/// Returns the lowercase hex prefix a shortened id gives (`9096c5c8`, `9096c5c8-...`,
/// `...2101816761d4`), or refuses one that cannot start an id.
fn id_prefix(what: &'static str, reference: &str) -> Result<String, Error> {
    let prefix = reference
        .trim()
        .trim_start_matches("...")
        .trim_end_matches("...")
        .to_ascii_lowercase();
    if prefix.is_empty() || !prefix.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return Err(Error::NotAnId {
            what,
            reference: reference.to_owned(),
        });
    }
    Ok(prefix)
}

/// Returns the one id found, or says that none or several (up to [`CANDIDATES`]) were.
fn one_named<T: Copy + std::fmt::Display>(
    what: &'static str,
    reference: &str,
    found: Vec<T>,
) -> Result<T, Error> {
    match found.as_slice() {
        [] => Err(Error::UnknownId {
            what,
            reference: reference.to_owned(),
        }),
        [one] => Ok(*one),
        several => Err(Error::AmbiguousId {
            what,
            reference: reference.to_owned(),
            more: several.len() > CANDIDATES,
            matches: several
                .iter()
                .take(CANDIDATES)
                .map(ToString::to_string)
                .collect(),
        }),
    }
}
