//! Cases created once per idempotency key: the key is stored in the commit that creates the
//! case, so that a request repeated after a lost answer finds the case it made, and a key
//! reused for another request is told apart by the request's fingerprint.

use knhk_core::{CaseId, WorkflowId};
use serde_json::{Value, json};

use super::WorkflowEngine;
use crate::error::Error;
use crate::view::{CaseView, RowError, UnknownName};

/// The case an idempotency key made, and the fingerprint of the request that made it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyedCase {
    pub case: CaseId,
    /// What the caller gave as the request's fingerprint (the API: a digest of the body).
    pub fingerprint: String,
}

impl WorkflowEngine {
    /// Returns the case created under `key`, if any.
    pub async fn keyed_case(&self, key: &str) -> Result<Option<KeyedCase>, Error> {
        let Some(record) = self.inner.store.idempotency(key).await? else {
            return Ok(None);
        };
        let case = record
            .response
            .get("case")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok());
        let fingerprint = record.response.get("request").and_then(Value::as_str);
        match (case, fingerprint) {
            (Some(case), Some(fingerprint)) => Ok(Some(KeyedCase {
                case,
                fingerprint: fingerprint.to_owned(),
            })),
            _ => Err(Error::CorruptRow {
                row: "idempotency key",
                id: key.to_owned(),
                source: RowError::Name(UnknownName(record.response.to_string())),
            }),
        }
    }

    /// Creates a case as [`create_case`](Self::create_case) does, and stores `key` with the
    /// request's `fingerprint` in the same commit. A key stored already (by a concurrent
    /// request) fails the whole commit with a store error whose code is `AlreadyExists`, and
    /// no case is made: the caller reads the key again with [`keyed_case`](Self::keyed_case).
    pub async fn create_case_keyed(
        &self,
        workflow: WorkflowId,
        data: Value,
        start: bool,
        key: &str,
        fingerprint: &str,
    ) -> Result<CaseView, Error> {
        // The case id is not known yet: `create` adds it to the record.
        let record = knhk_store::IdempotencyRecord {
            key: key.to_owned(),
            response: json!({ "request": fingerprint }),
            at: self.inner.clock.now(),
        };
        self.create(workflow, data, start, Some(record)).await
    }
}
