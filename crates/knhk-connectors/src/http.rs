//! The built-in `http` connector: one HTTP request per attempt, JSON in and out.

mod template;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue, InvalidHeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

use crate::config::{ConfigError, InstanceConfig};
use crate::connector::{Binding, CallError, CallRequest, Connector, Probe};
use crate::settings::SettingsError;
use template::UrlTemplate;

/// The largest 2xx response body taken unless the task's `max_response_bytes` says otherwise.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 10 * 1024 * 1024;

/// The longest body excerpt an error message carries, in characters.
const EXCERPT_CHARS: usize = 200;
/// How much of an error response's body is read for the excerpt, in bytes.
const ERROR_BODY_BYTES: usize = 4096;
const HEADER_PREFIX: &str = "header.";
const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// Calls HTTP endpoints; see the crate documentation for its settings.
#[derive(Debug)]
pub struct HttpConnector {
    /// `http` for the built-in instance, else the `[connectors.NAME]` it was made from.
    name: String,
    /// Building a client only fails when the TLS backend cannot start; the error then surfaces
    /// as a permanent error of every call instead of a panic at startup.
    client: Result<reqwest::Client, String>,
}

impl Default for HttpConnector {
    fn default() -> Self {
        HttpConnector::new()
    }
}

impl HttpConnector {
    /// Creates the connector with its own connection pool.
    pub fn new() -> HttpConnector {
        let client = reqwest::Client::builder()
            .user_agent(concat!("knhk/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the http client: {}", error_chain(&e)));
        HttpConnector {
            name: "http".to_owned(),
            client,
        }
    }

    /// Creates a named instance from its `[connectors.NAME]` table: tasks give their URLs and
    /// headers as with the built-in `http`; the table sets the connection pool (`pool.max_size`
    /// free connections kept per host, closed after `pool.idle_timeout_ms`).
    pub fn from_config(config: &InstanceConfig) -> Result<HttpConnector, ConfigError> {
        config.keys().finish()?;
        Ok(HttpConnector {
            name: config.name.clone(),
            client: Ok(pooled_client(config)?),
        })
    }

    /// Creates the connector on a client configured elsewhere (proxy, certificates, pool).
    pub fn with_client(client: reqwest::Client) -> HttpConnector {
        HttpConnector {
            name: "http".to_owned(),
            client: Ok(client),
        }
    }
}

#[async_trait]
impl Connector for HttpConnector {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &str {
        "http"
    }

    fn prepare(
        &self,
        settings: &BTreeMap<String, String>,
    ) -> Result<Arc<dyn Binding>, SettingsError> {
        let settings = HttpSettings::parse(settings)?;
        let sample = settings.url.render_sample("x");
        let url = Url::parse(&sample).map_err(|source| {
            SettingsError::malformed(
                "url",
                NotAUrl {
                    sample,
                    source: Box::new(source),
                },
            )
        })?;
        check_scheme(&url)?;
        Ok(Arc::new(HttpBinding {
            client: self.client.clone(),
            settings,
        }))
    }

    async fn probe(&self) -> Result<Probe, CallError> {
        // Each task names its own endpoint: there is no one far side to ask.
        self.client.as_ref().map_err(|e| permanent(e.clone()))?;
        Ok(Probe::default())
    }
}

/// One task's HTTP settings, parsed once, with the connector's client.
#[derive(Debug)]
struct HttpBinding {
    client: Result<reqwest::Client, String>,
    settings: HttpSettings,
}

#[async_trait]
impl Binding for HttpBinding {
    async fn call(&self, req: CallRequest) -> Result<Value, CallError> {
        let client = self.client.as_ref().map_err(|e| permanent(e.clone()))?;
        let settings = &self.settings;
        let url = settings.url.render(&req.input, &req.idempotency_key)?;
        let url = Url::parse(&url).map_err(|e| permanent(format!("url: not a URL ({e})")))?;
        check_scheme(&url).map_err(|e| permanent(e.to_string()))?;

        let mut headers = settings.headers.clone();
        if let Some(auth) = &settings.auth {
            headers.insert(AUTHORIZATION, auth.header_value()?);
        }
        let key = HeaderValue::from_str(&req.idempotency_key)
            .map_err(|_| permanent("the idempotency key is not a valid header value"))?;
        headers.insert(HeaderName::from_static(IDEMPOTENCY_KEY_HEADER), key);

        let mut request = client
            .request(settings.method.clone(), url)
            .timeout(req.timeout)
            .headers(headers);
        if settings.send_body {
            request = request.json(&req.input);
        }
        let response = request
            .send()
            .await
            .map_err(|e| transport_error(e, req.timeout))?;

        let status = response.status();
        if status.is_success() {
            let body = read_limited(response, settings.max_response_bytes, req.timeout).await?;
            return Ok(output_from_body(&body));
        }
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            // Retried attempts are recorded in the case history: the status line says why,
            // and a body (which may echo what was sent) stays out of it.
            return Err(CallError::Retryable(status.to_string()));
        }
        // A refusal ends the call: an excerpt of the body tells the operator why.
        let excerpt = excerpt(&read_prefix(response, ERROR_BODY_BYTES).await);
        let message = if excerpt.is_empty() {
            status.to_string()
        } else {
            format!("{status}: {excerpt}")
        };
        Err(CallError::Permanent(message))
    }
}

/// Builds an HTTP client whose connection pool follows an instance's `pool.*` keys: at most
/// `max_size` free connections kept per host, closed after `idle_timeout_ms`, and connections
/// opened within `acquire_timeout_ms` (reqwest has no max lifetime).
pub(crate) fn pooled_client(config: &InstanceConfig) -> Result<reqwest::Client, ConfigError> {
    reqwest::Client::builder()
        .user_agent(concat!("knhk/", env!("CARGO_PKG_VERSION")))
        .pool_max_idle_per_host(config.pool.max_size)
        .pool_idle_timeout(config.pool.idle_timeout)
        .connect_timeout(config.pool.acquire_timeout)
        .build()
        .map_err(|e| ConfigError {
            instance: config.name.clone(),
            key: "kind".to_owned(),
            problem: format!("cannot build the http client: {}", error_chain(&e)),
        })
}

/// The settings of one task, parsed.
#[derive(Debug)]
struct HttpSettings {
    url: UrlTemplate,
    method: Method,
    headers: HeaderMap,
    auth: Option<BearerToken>,
    send_body: bool,
    /// The largest 2xx body taken; a larger one fails the call (it would be held in memory and
    /// stored in the case data).
    max_response_bytes: u64,
}

#[derive(Debug)]
enum BearerToken {
    Literal(String),
    Env(String),
}

impl BearerToken {
    fn header_value(&self) -> Result<HeaderValue, CallError> {
        match self {
            BearerToken::Literal(token) => bearer_header(token)
                .map_err(|_| permanent("bearer_token: not a valid header value")),
            BearerToken::Env(var) => {
                let token = std::env::var(var).map_err(|_| {
                    permanent(format!(
                        "bearer_token_env: environment variable {var} is not set"
                    ))
                })?;
                bearer_header(&token).map_err(|_| {
                    permanent(format!(
                        "bearer_token_env: the token in {var} is not a valid header value"
                    ))
                })
            }
        }
    }
}

fn bearer_header(token: &str) -> Result<HeaderValue, InvalidHeaderValue> {
    let mut value = HeaderValue::from_str(&format!("Bearer {token}"))?;
    value.set_sensitive(true);
    Ok(value)
}

/// A `url` setting that is not a URL once its placeholders are filled with a sample value.
#[derive(Debug, thiserror::Error)]
#[error("{sample} is not a URL: {source}")]
struct NotAUrl {
    sample: String,
    source: crate::settings::Cause,
}

/// A URL whose scheme the connector does not speak.
#[derive(Debug, thiserror::Error)]
#[error("expected an http or https URL, found scheme {scheme}")]
struct UnsupportedScheme {
    scheme: String,
}

impl HttpSettings {
    fn parse(settings: &BTreeMap<String, String>) -> Result<HttpSettings, SettingsError> {
        let mut url = None;
        let mut method = Method::POST;
        let mut headers = HeaderMap::new();
        let mut token = None;
        let mut token_env = None;
        let mut body = None;
        let mut max_response_bytes = DEFAULT_MAX_RESPONSE_BYTES;
        for (key, value) in settings {
            match key.as_str() {
                "url" => {
                    url = Some(
                        UrlTemplate::parse(value).map_err(|e| SettingsError::malformed(key, e))?,
                    );
                }
                "method" => method = parse_method(key, value)?,
                "max_response_bytes" => {
                    max_response_bytes = value
                        .parse::<u64>()
                        .map_err(|e| SettingsError::malformed(key, e))?;
                    if max_response_bytes == 0 {
                        return Err(SettingsError::malformed(
                            key,
                            "the largest response must be at least one byte",
                        ));
                    }
                }
                "bearer_token" => token = Some(value.clone()),
                "bearer_token_env" => {
                    if value.is_empty() {
                        return Err(SettingsError::Empty {
                            setting: key.clone(),
                        });
                    }
                    token_env = Some(value.clone());
                }
                "body" => {
                    body = Some(match value.as_str() {
                        "input" => true,
                        "none" => false,
                        other => {
                            return Err(SettingsError::NotOneOf {
                                setting: key.clone(),
                                allowed: vec!["input".to_owned(), "none".to_owned()],
                                found: other.to_owned(),
                            });
                        }
                    });
                }
                _ => match key.strip_prefix(HEADER_PREFIX) {
                    Some(name) => {
                        let (name, value) = parse_header(key, name, value)?;
                        headers.append(name, value);
                    }
                    None => {
                        return Err(SettingsError::Unknown {
                            setting: key.clone(),
                        });
                    }
                },
            }
        }
        let url = url.ok_or_else(|| SettingsError::Missing {
            setting: "url".to_owned(),
        })?;
        let auth = match (token, token_env) {
            (Some(_), Some(_)) => {
                return Err(SettingsError::Conflict {
                    setting: "bearer_token_env".to_owned(),
                    with: "bearer_token".to_owned(),
                });
            }
            (Some(token), None) => {
                bearer_header(&token).map_err(|e| SettingsError::malformed("bearer_token", e))?;
                Some(BearerToken::Literal(token))
            }
            (None, Some(var)) => Some(BearerToken::Env(var)),
            (None, None) => None,
        };
        if let Some(auth) = &auth
            && headers.contains_key(AUTHORIZATION)
        {
            let with = match auth {
                BearerToken::Literal(_) => "bearer_token",
                BearerToken::Env(_) => "bearer_token_env",
            };
            return Err(SettingsError::Conflict {
                setting: format!("{HEADER_PREFIX}Authorization"),
                with: with.to_owned(),
            });
        }
        Ok(HttpSettings {
            url,
            send_body: body.unwrap_or(method != Method::GET),
            max_response_bytes,
            method,
            headers,
            auth,
        })
    }
}

const METHODS: [(&str, Method); 5] = [
    ("GET", Method::GET),
    ("POST", Method::POST),
    ("PUT", Method::PUT),
    ("PATCH", Method::PATCH),
    ("DELETE", Method::DELETE),
];

fn parse_method(key: &str, value: &str) -> Result<Method, SettingsError> {
    let upper = value.to_ascii_uppercase();
    METHODS
        .iter()
        .find(|(name, _)| *name == upper)
        .map(|(_, method)| method.clone())
        .ok_or_else(|| SettingsError::NotOneOf {
            setting: key.to_owned(),
            allowed: METHODS.iter().map(|(name, _)| (*name).to_owned()).collect(),
            found: value.to_owned(),
        })
}

fn parse_header(
    key: &str,
    name: &str,
    value: &str,
) -> Result<(HeaderName, HeaderValue), SettingsError> {
    let name =
        HeaderName::from_bytes(name.as_bytes()).map_err(|e| SettingsError::malformed(key, e))?;
    if name == IDEMPOTENCY_KEY_HEADER {
        return Err(SettingsError::Reserved {
            setting: key.to_owned(),
        });
    }
    let value = HeaderValue::from_str(value).map_err(|e| SettingsError::malformed(key, e))?;
    Ok((name, value))
}

fn check_scheme(url: &Url) -> Result<(), SettingsError> {
    match url.scheme() {
        "http" | "https" => Ok(()),
        other => Err(SettingsError::malformed(
            "url",
            UnsupportedScheme {
                scheme: other.to_owned(),
            },
        )),
    }
}

/// Turns a 2xx body into the task's output, which is always a JSON object.
fn output_from_body(body: &[u8]) -> Value {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Value::Object(serde_json::Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => Value::Object(object),
        Ok(other) => serde_json::json!({ "response": other }),
        Err(_) => serde_json::json!({ "body": String::from_utf8_lossy(body) }),
    }
}

/// Reads a whole 2xx body of at most `limit` bytes; a larger one fails the call for good (a
/// retry would get it again), before more than `limit` bytes are held.
async fn read_limited(
    mut response: reqwest::Response,
    limit: u64,
    timeout: Duration,
) -> Result<Vec<u8>, CallError> {
    let too_large = |length: Option<u64>| {
        CallError::Permanent(match length {
            Some(n) => format!(
                "the response body is {n} bytes, more than the {limit} bytes the \
                 max_response_bytes setting allows"
            ),
            None => format!(
                "the response body is larger than the {limit} bytes the max_response_bytes \
                 setting allows"
            ),
        })
    };
    if let Some(length) = response.content_length().filter(|&n| n > limit) {
        return Err(too_large(Some(length)));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transport_error(e, timeout))?
    {
        if u64::try_from(body.len() + chunk.len()).unwrap_or(u64::MAX) > limit {
            return Err(too_large(None));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Reads at most about `limit` bytes of a body; an error response's body is only for the message.
async fn read_prefix(mut response: reqwest::Response, limit: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    body
}

fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let mut chars = text.chars();
    let mut excerpt: String = chars.by_ref().take(EXCERPT_CHARS).collect();
    if chars.next().is_some() {
        excerpt.push('…');
    }
    excerpt
}

fn transport_error(error: reqwest::Error, timeout: Duration) -> CallError {
    if error.is_timeout() {
        return CallError::Retryable(format!("timed out after {timeout:?}"));
    }
    if error.is_builder() {
        return CallError::Permanent(error_chain(&error.without_url()));
    }
    // The URL is left out: its query may carry secrets, and the task's settings name it anyway.
    CallError::Retryable(error_chain(&error.without_url()))
}

/// Renders an error with its sources, since reqwest's own message rarely says what went wrong.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

fn permanent(message: impl Into<String>) -> CallError {
    CallError::Permanent(message.into())
}
