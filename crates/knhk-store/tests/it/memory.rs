//! The conformance suite run against the in-memory store.

use std::sync::Arc;

use knhk_store::MemoryStore;

use crate::conformance::conformance_tests;
use crate::fixtures::Fixture;

async fn memory() -> Fixture {
    Fixture {
        store: Arc::new(MemoryStore::new()),
        _dir: None,
        _schema: None,
    }
}

conformance_tests!(memory);
