//! `release_case`: taking a repaired case out of the quarantine, once it loads again.

use knhk_core::CaseId;

use super::WorkflowEngine;
use super::check::{StoreReport, Subject};
use crate::error::Error;
use crate::records;
use crate::view::CaseView;

impl WorkflowEngine {
    /// Takes a quarantined case back, once someone has repaired what kept it from loading:
    /// it is checked first as `check_store` checks a case (its history replays without gaps
    /// to its row's status and version, and to its snapshot) and loaded as a command would
    /// load it. A case that still fails is [`Error::StillBroken`], naming why, and stays set
    /// aside; one that is not quarantined is [`Error::NotQuarantined`]. Nothing of the case
    /// itself changes: it runs again from where its history stands.
    pub async fn release_case(&self, id: CaseId) -> Result<CaseView, Error> {
        let store = &self.inner.store;
        if store.case(id).await.is_ok_and(|row| row.is_none()) {
            return Err(Error::UnknownCase(id));
        }
        if store.quarantine_of(id).await?.is_none() {
            return Err(Error::NotQuarantined(id));
        }
        let mut report = StoreReport::default();
        self.check_case(id, &mut report).await;
        let mut problems: Vec<String> = report
            .problems
            .into_iter()
            .filter(|p| p.subject == Subject::Case(id))
            .map(|p| p.problem)
            .collect();
        if problems.is_empty()
            && let Err(e) = self.load_stored(id).await
        {
            problems.push(format!("it does not load: {e}"));
        }
        if !problems.is_empty() {
            return Err(Error::StillBroken { id, problems });
        }
        store.release_quarantine(id).await?;
        tracing::info!(case = %id, "case released from quarantine");
        let row = store.case(id).await?.ok_or(Error::UnknownCase(id))?;
        records::case_view(row)
    }
}
