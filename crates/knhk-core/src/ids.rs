//! Identifiers and time: newtypes so that a case id is never mistaken for a work item id.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

uuid_id!(
    /// Identifies one case (one running instance of a workflow).
    CaseId
);
uuid_id!(
    /// Identifies one unit of work of a task instance: a work item offered to people, or one
    /// connector call of an automated task.
    WorkItemId
);
uuid_id!(
    /// Identifies one armed timer.
    TimerId
);
uuid_id!(
    /// Identifies one registered version of a workflow definition.
    WorkflowId
);

macro_rules! name_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Eq, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Arc<str>);

        impl std::hash::Hash for $name {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                self.0.hash(state)
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                // Ids handed out by a workflow share its allocation: compare pointers first.
                Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
            }
        }

        impl $name {
            /// Creates the identifier from its text.
            pub fn new(s: impl AsRef<str>) -> Self {
                Self(Arc::from(s.as_ref()))
            }

            /// Returns the identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Returns the address of the shared text: ids cloned from one workflow share it.
            #[allow(dead_code, reason = "used for element ids, not for net ids")]
            pub(crate) fn addr(&self) -> usize {
                Arc::as_ptr(&self.0) as *const u8 as usize
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?}", &*self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self::new(s)
            }
        }
    };
}

name_id!(
    /// Names an element of a net (task or condition), unique within its specification.
    ElementId
);
name_id!(
    /// Names a net (the root net or a sub-net that a composite task decomposes into).
    NetId
);

/// A point in time, in milliseconds since the Unix epoch. knhk-core never reads a clock: the
/// caller passes `now`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Returns this time moved forward by `millis` milliseconds, saturating.
    pub fn plus_millis(self, millis: u64) -> Timestamp {
        let millis = i64::try_from(millis).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_add(millis))
    }
}

/// Hands out fresh identifiers. knhk-core never generates random ids itself: the runtime passes
/// a source (random UUIDs), tests and benchmarks pass a counter.
pub trait IdSource {
    /// Returns an identifier never returned before.
    fn next_id(&mut self) -> Uuid;
}

/// An [`IdSource`] that counts up from a seed: deterministic, for tests, benchmarks and replay.
#[derive(Debug, Clone, Default)]
pub struct SequentialIds(pub u128);

impl IdSource for SequentialIds {
    fn next_id(&mut self) -> Uuid {
        self.0 = self.0.wrapping_add(1);
        Uuid::from_u128(self.0)
    }
}

/// A fast, non-cryptographic hasher (the Fx hash of rustc) for the small maps from element
/// ids to indices that the engine looks up on every event. Keys come from the workflow
/// definition, not from callers, so hash flooding is not a concern here.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            if let Some(head) = word.get_mut(..chunk.len()) {
                head.copy_from_slice(chunk);
            }
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.0 = (self.0.rotate_left(5) ^ n as u64).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

pub(crate) type FxBuild = std::hash::BuildHasherDefault<FxHasher>;
