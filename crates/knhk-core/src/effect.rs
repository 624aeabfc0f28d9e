//! Effects: what the runtime must do after a step. One closed enum, performed in one place.

use serde_json::Value;

use crate::event::{CaseStatus, TaskRef};
use crate::ids::{TimerId, Timestamp, WorkItemId};
use crate::model::{ConnectorBinding, HumanBinding, RuntimeHints};

/// An instruction to the runtime, returned by [`crate::Case::apply`].
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Offer a work item to the people of the binding's roles.
    OfferWorkItem {
        item: WorkItemId,
        task: TaskRef,
        binding: HumanBinding,
        input: Value,
    },
    /// Take a work item back from whoever has it (task cancelled, withdrawn or expired).
    WithdrawWorkItem {
        item: WorkItemId,
    },
    /// Call a connector; report the result with `ConnectorSucceeded` or `ConnectorFailed`.
    /// `idempotency_key` stays the same for every attempt of this call.
    CallConnector {
        item: WorkItemId,
        task: TaskRef,
        binding: ConnectorBinding,
        hints: RuntimeHints,
        input: Value,
        idempotency_key: String,
    },
    /// Abandon a connector call whose result is no longer wanted.
    CancelConnectorCall {
        item: WorkItemId,
    },
    /// Wait for an outside event of this name and report it with `TriggerReceived`.
    AwaitTrigger {
        task: TaskRef,
        event: String,
    },
    /// Fire `TimerFired` at `fires_at`.
    ArmTimer {
        timer: TimerId,
        fires_at: Timestamp,
    },
    CancelTimer {
        timer: TimerId,
    },
    /// The case reached a final state.
    CaseEnded {
        status: CaseStatus,
    },
}
