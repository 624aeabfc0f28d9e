//! The API's one error vocabulary: every failure any entry point reports has a [`Code`], and
//! each code is mapped here once to an HTTP status and once to a gRPC status code.

use knhk_workflow_engine::{Error as EngineError, ErrorCode};
use serde::Serialize;
use serde_json::Value;

/// What kind of failure a request met. The engine's [`ErrorCode`]s, one for one, and the few
/// failures that only a transport meets (a body too large, a request too slow, a route or
/// media type it does not serve, an idempotency key reused for another request).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    InvalidArgument,
    NotFound,
    AlreadyExists,
    PermissionDenied,
    FailedPrecondition,
    Aborted,
    Unavailable,
    Internal,
    /// The request body is larger than the configured bound.
    PayloadTooLarge,
    /// The request took longer than the configured timeout.
    DeadlineExceeded,
    /// The body's media type is not one this operation reads.
    UnsupportedMediaType,
    /// No such operation on this path (a path nobody serves, or another method).
    Unimplemented,
    /// An idempotency key used before with another request.
    IdempotencyKeyReused,
}

impl Code {
    /// Every code, for tables and tests.
    pub const ALL: [Code; 13] = [
        Code::InvalidArgument,
        Code::NotFound,
        Code::AlreadyExists,
        Code::PermissionDenied,
        Code::FailedPrecondition,
        Code::Aborted,
        Code::Unavailable,
        Code::Internal,
        Code::PayloadTooLarge,
        Code::DeadlineExceeded,
        Code::UnsupportedMediaType,
        Code::Unimplemented,
        Code::IdempotencyKeyReused,
    ];

    /// Returns the stable snake_case name error bodies carry.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::InvalidArgument => "invalid_argument",
            Code::NotFound => "not_found",
            Code::AlreadyExists => "already_exists",
            Code::PermissionDenied => "permission_denied",
            Code::FailedPrecondition => "failed_precondition",
            Code::Aborted => "aborted",
            Code::Unavailable => "unavailable",
            Code::Internal => "internal",
            Code::PayloadTooLarge => "payload_too_large",
            Code::DeadlineExceeded => "deadline_exceeded",
            Code::UnsupportedMediaType => "unsupported_media_type",
            Code::Unimplemented => "unimplemented",
            Code::IdempotencyKeyReused => "idempotency_key_reused",
        }
    }

    /// The HTTP status of the code: the one place that decides it.
    pub fn http_status(self) -> u16 {
        match self {
            Code::InvalidArgument => 400,
            Code::NotFound => 404,
            // Exists already, or not possible in the present state (a work item another user
            // holds, a case that ended), or lost to a concurrent change: the request conflicts
            // with the resource's state.
            Code::AlreadyExists | Code::FailedPrecondition | Code::Aborted => 409,
            Code::PermissionDenied => 403,
            Code::Unavailable => 503,
            Code::Internal => 500,
            Code::PayloadTooLarge => 413,
            // The limit on a request's time, as the other limits, is a 4xx.
            Code::DeadlineExceeded => 408,
            Code::UnsupportedMediaType => 415,
            Code::Unimplemented => 405,
            Code::IdempotencyKeyReused => 422,
        }
    }

    /// The gRPC status code of the code (the canonical numbers of `google.rpc.Code`): the one
    /// place that decides it, for the gRPC front that calls the same service layer.
    pub fn grpc_code(self) -> i32 {
        match self {
            Code::InvalidArgument | Code::UnsupportedMediaType => 3,
            Code::DeadlineExceeded => 4,
            Code::NotFound => 5,
            Code::AlreadyExists => 6,
            Code::PermissionDenied => 7,
            Code::PayloadTooLarge => 8,
            Code::FailedPrecondition | Code::IdempotencyKeyReused => 9,
            Code::Aborted => 10,
            Code::Unimplemented => 12,
            Code::Internal => 13,
            Code::Unavailable => 14,
        }
    }
}

impl From<ErrorCode> for Code {
    fn from(c: ErrorCode) -> Code {
        match c {
            ErrorCode::InvalidArgument => Code::InvalidArgument,
            ErrorCode::NotFound => Code::NotFound,
            ErrorCode::AlreadyExists => Code::AlreadyExists,
            ErrorCode::PermissionDenied => Code::PermissionDenied,
            ErrorCode::FailedPrecondition => Code::FailedPrecondition,
            ErrorCode::Aborted => Code::Aborted,
            ErrorCode::Unavailable => Code::Unavailable,
            ErrorCode::Internal => Code::Internal,
        }
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed request: its code, a message naming what is wrong, and details (an object; the
/// field at fault, the limit passed...).
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    pub code: Code,
    pub message: String,
    pub details: Value,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            details: Value::Object(serde_json::Map::new()),
        }
    }

    /// Adds one detail.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> ApiError {
        if let Value::Object(map) = &mut self.details {
            map.insert(key.to_owned(), value.into());
        }
        self
    }

    /// A request that is wrong in `field`.
    pub fn invalid(field: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(Code::InvalidArgument, message).with("field", field)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(Code::NotFound, message)
    }

    /// The error body: `{"error": {"code", "message", "details"}}`.
    pub fn body(&self) -> Value {
        serde_json::json!({
            "error": {
                "code": self.code.as_str(),
                "message": self.message,
                "details": self.details,
            }
        })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> ApiError {
        let code = match &e {
            // A work item allocated to or started by another user: the item's state, not the
            // caller's rights, refuses it (the same answer as claiming an item another user
            // claimed first).
            EngineError::Case(knhk_core::Error::NotAllocatedTo { .. }) => Code::FailedPrecondition,
            other => other.code().into(),
        };
        if code == Code::Internal {
            tracing::error!(error = %e, "internal error");
        }
        let state = match &e {
            EngineError::Case(knhk_core::Error::WrongWorkItemState { state, .. }) => Some(*state),
            _ => None,
        };
        let error = ApiError::new(code, e.to_string());
        // A work item in the wrong state for the step: which state (a client says it its way).
        match state {
            Some(state) => error.with("state", state),
            None => error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_distinct_name_and_a_status_in_both_protocols() {
        let mut names = std::collections::HashSet::new();
        for code in Code::ALL {
            assert!(names.insert(code.as_str()), "{code} named twice");
            assert!((400..600).contains(&code.http_status()), "{code}");
            assert!((1..=16).contains(&code.grpc_code()), "{code}");
            assert_eq!(
                serde_json::to_value(code).ok(),
                Some(Value::String(code.as_str().to_owned()))
            );
        }
        for code in ErrorCode::ALL {
            assert_eq!(Code::from(code).as_str(), code.as_str());
        }
    }
}
