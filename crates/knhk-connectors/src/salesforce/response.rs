//! What the Salesforce connector makes of an answer: the output of a 2xx, the reason of a
//! refusal in Salesforce's own words, and transport errors without URLs.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::connector::CallError;

/// The largest response body taken: a query's page of records is at most a few megabytes.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;
/// The longest excerpt of an unexpected error body, in characters.
const EXCERPT_CHARS: usize = 300;

/// Turns a 2xx body into the task's output, always a JSON object: an empty body (204) is `{}`,
/// a JSON array (the versions list) `{"response": [...]}`.
pub(super) fn output_from_body(body: &[u8]) -> Value {
    if body.iter().all(u8::is_ascii_whitespace) {
        return json!({});
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => Value::Object(object),
        Ok(other) => json!({ "response": other }),
        Err(_) => json!({ "body": String::from_utf8_lossy(body) }),
    }
}

/// Says why Salesforce refused a request: its `[{"message", "errorCode"}]` body, an OAuth
/// `{"error", "error_description"}`, or an excerpt of whatever else it sent.
pub(super) fn describe_refusal(status: StatusCode, body: &[u8]) -> String {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let reasons: Vec<String> = match &parsed {
        Some(Value::Array(errors)) => errors
            .iter()
            .filter_map(|e| match (text(e, "errorCode"), text(e, "message")) {
                (Some(code), Some(message)) => Some(format!("{code}: {message}")),
                (Some(one), None) | (None, Some(one)) => Some(one),
                (None, None) => None,
            })
            .collect(),
        Some(o @ Value::Object(_)) => match (text(o, "error"), text(o, "error_description")) {
            (Some(code), Some(message)) => vec![format!("{code}: {message}")],
            (Some(code), None) => vec![code],
            _ => Vec::new(),
        },
        _ => Vec::new(),
    };
    if !reasons.is_empty() {
        return format!("{status}: {}", reasons.join("; "));
    }
    let body = String::from_utf8_lossy(body);
    let body = body.trim();
    if body.is_empty() {
        return status.to_string();
    }
    let mut excerpt: String = body.chars().take(EXCERPT_CHARS).collect();
    if body.chars().nth(EXCERPT_CHARS).is_some() {
        excerpt.push('…');
    }
    format!("{status}: {excerpt}")
}

/// Reads a whole body of at most [`MAX_RESPONSE_BYTES`].
pub(super) async fn read_limited(
    mut response: reqwest::Response,
    timeout: Duration,
) -> Result<Vec<u8>, CallError> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transport_error(e, timeout))?
    {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(CallError::Permanent(format!(
                "the response is larger than {MAX_RESPONSE_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Turns a transport error into a retryable error (a builder error into a permanent one),
/// leaving the URL out: a query's URL carries the input's values.
pub(super) fn transport_error(error: reqwest::Error, timeout: Duration) -> CallError {
    if error.is_timeout() {
        return CallError::Retryable(format!("timed out after {timeout:?}"));
    }
    if error.is_builder() {
        return CallError::Permanent(chain(&error.without_url()));
    }
    CallError::Retryable(chain(&error.without_url()))
}

pub(super) fn chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
