//! The `salesforce` connector: the Salesforce REST API (create, update, upsert of sObjects, SOQL
//! queries) over reqwest, authenticated by the OAuth 2.0 client-credentials flow.
//!
//! reqwest's own connection pool is the instance's pool: `pool.max_size` idle connections kept
//! per host, closed after `pool.idle_timeout_ms`, `pool.acquire_timeout_ms` to connect.

mod auth;
mod response;
mod settings;
mod template;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde_json::{Map, Value};

use crate::config::{ConfigError, InstanceConfig, Secret};
use crate::connector::{Binding, CallError, CallRequest, Connector, Probe};
use crate::settings::SettingsError;
use auth::{Auth, Token};
use response::{describe_refusal, output_from_body, read_limited, transport_error};
use settings::Operation;

/// The API version used unless `api_version` says otherwise.
pub const DEFAULT_API_VERSION: &str = "v60.0";

/// Calls the Salesforce REST API; see the crate documentation for its keys and settings.
#[derive(Debug)]
pub struct SalesforceConnector {
    name: String,
    client: reqwest::Client,
    auth: Arc<Auth>,
    api_version: String,
}

impl SalesforceConnector {
    /// Creates an instance from its `[connectors.NAME]` table (`instance_url`, `login_url`,
    /// `client_id`, `client_secret` or `client_secret_env`, `api_version`, `pool.*`). No
    /// token is asked for until a call or a probe needs one.
    pub fn from_config(config: &InstanceConfig) -> Result<SalesforceConnector, ConfigError> {
        let mut keys = config.keys();
        let mut url = |key: &str| -> Result<Option<Url>, ConfigError> {
            let Some(text) = keys.string(key)? else {
                return Ok(None);
            };
            let url = Url::parse(&text).map_err(|e| keys.fault(key, format!("not a URL: {e}")))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(keys.fault(key, "must be an https (or http) URL"));
            }
            Ok(Some(url))
        };
        let instance_url = url("instance_url")?;
        let login_url = url("login_url")?;
        let login_url = match (login_url, &instance_url) {
            (Some(login), _) => login,
            (None, Some(instance)) => instance.clone(),
            (None, None) => {
                return Err(keys.fault("instance_url", "missing (give instance_url or login_url)"));
            }
        };
        let client_id = keys.required("client_id")?;
        let client_secret = keys
            .secret("client_secret")?
            .ok_or_else(|| keys.fault("client_secret", "missing (or client_secret_env)"))?;
        let api_version = match keys.string("api_version")? {
            None => DEFAULT_API_VERSION.to_owned(),
            Some(v) => parse_version(&v).map_err(|why| keys.fault("api_version", why))?,
        };
        keys.finish()?;
        let client = crate::http::pooled_client(config)?;
        let auth = Auth::new(
            config.name.clone(),
            login_url,
            instance_url,
            client_id,
            client_secret,
        );
        Ok(SalesforceConnector {
            name: config.name.clone(),
            client,
            auth: Arc::new(auth),
            api_version,
        })
    }
}

/// Accepts `v60.0` or `60.0`, giving `v60.0`.
fn parse_version(text: &str) -> Result<String, String> {
    let bare = text.strip_prefix('v').unwrap_or(text);
    let ok = bare.split_once('.').is_some_and(|(major, minor)| {
        !major.is_empty()
            && !minor.is_empty()
            && major
                .chars()
                .chain(minor.chars())
                .all(|c| c.is_ascii_digit())
    });
    if ok {
        Ok(format!("v{bare}"))
    } else {
        Err(format!("`{text}` is not an API version such as v60.0"))
    }
}

#[async_trait]
impl Connector for SalesforceConnector {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &str {
        "salesforce"
    }

    fn prepare(
        &self,
        settings: &BTreeMap<String, String>,
    ) -> Result<Arc<dyn Binding>, SettingsError> {
        Ok(Arc::new(SalesforceBinding {
            api: Api {
                client: self.client.clone(),
                auth: Arc::clone(&self.auth),
                api_version: self.api_version.clone(),
            },
            operation: Operation::parse(settings)?,
        }))
    }

    /// Gets a token (or uses the cached one) and lists the API versions the instance offers.
    async fn probe(&self) -> Result<Probe, CallError> {
        let api = Api {
            client: self.client.clone(),
            auth: Arc::clone(&self.auth),
            api_version: self.api_version.clone(),
        };
        let timeout = Duration::from_secs(30);
        let versions = api
            .send(
                Method::GET,
                &["services", "data", ""],
                None,
                None,
                None,
                timeout,
            )
            .await?;
        let latest = versions
            .get("response")
            .and_then(Value::as_array)
            .and_then(|all| all.last())
            .and_then(|v| v.get("version"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let detail = match latest {
            Some(latest) => format!("API versions up to v{latest}; using {}", self.api_version),
            None => format!("using {}", self.api_version),
        };
        Ok(Probe {
            detail: Some(detail),
        })
    }
}

/// What every call of an instance needs: the client, the credentials and the API version.
#[derive(Debug)]
struct Api {
    client: reqwest::Client,
    auth: Arc<Auth>,
    api_version: String,
}

/// One task's operation with the instance's client and token.
#[derive(Debug)]
struct SalesforceBinding {
    api: Api,
    operation: Operation,
}

#[async_trait]
impl Binding for SalesforceBinding {
    async fn call(&self, req: CallRequest) -> Result<Value, CallError> {
        let key = req.idempotency_key.as_str();
        let v = self.api.api_version.as_str();
        // The record an update names, which its 204 answer does not repeat.
        let mut updated = None;
        let (method, path, soql, body) = match &self.operation {
            Operation::Create { sobject } => {
                let path = vec!["services", "data", v, "sobjects", sobject, ""];
                (
                    Method::POST,
                    owned(&path),
                    None,
                    Some(fields(&req.input, &[])?),
                )
            }
            Operation::CreateOnce { sobject, field } => {
                let path = vec!["services", "data", v, "sobjects", sobject, field, key];
                (
                    Method::PATCH,
                    owned(&path),
                    None,
                    Some(fields(&req.input, &[field])?),
                )
            }
            Operation::Update { sobject, id } => {
                let record = id.render_id(&req.input, key)?;
                let named: Vec<&str> = id.fields().collect();
                let body = fields(&req.input, &named)?;
                let path = owned(&["services", "data", v, "sobjects", sobject, &record]);
                updated = Some(record);
                (Method::PATCH, path, None, Some(body))
            }
            Operation::Upsert { sobject, field, id } => {
                let value = id.render_id(&req.input, key)?;
                let named: Vec<&str> = id.fields().collect();
                let body = fields(&req.input, &named)?;
                let path = owned(&["services", "data", v, "sobjects", sobject, field, &value]);
                (Method::PATCH, path, None, Some(body))
            }
            Operation::Query { soql } => {
                let q = soql.render_soql(&req.input, key)?;
                (
                    Method::GET,
                    owned(&["services", "data", v, "query"]),
                    Some(q),
                    None,
                )
            }
        };
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        let mut output = self
            .api
            .send(method, &path, soql.as_deref(), body, Some(key), req.timeout)
            .await?;
        if let (Some(record), Value::Object(o)) = (updated, &mut output) {
            o.entry("id").or_insert(Value::String(record));
        }
        Ok(output)
    }
}

fn owned(path: &[&str]) -> Vec<String> {
    path.iter().map(|s| (*s).to_owned()).collect()
}

/// The record's fields: the input object without the fields that said which record it is.
fn fields(input: &Value, without: &[&str]) -> Result<Value, CallError> {
    let Value::Object(fields) = input else {
        return Err(CallError::Permanent(
            "the input is not a JSON object of record fields".to_owned(),
        ));
    };
    let kept: Map<String, Value> = fields
        .iter()
        .filter(|(k, _)| !without.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(Value::Object(kept))
}

impl Api {
    /// Sends one request of the REST API with the cached token; on a 401 it gets a new token
    /// and sends the request once more, within the same attempt.
    async fn send(
        &self,
        method: Method,
        path: &[&str],
        soql: Option<&str>,
        body: Option<Value>,
        idempotency_key: Option<&str>,
        timeout: Duration,
    ) -> Result<Value, CallError> {
        let instance = &self.auth.instance;
        let scrub = |e: CallError| self.scrub(e);
        let mut token = self.auth.token(&self.client, timeout).await?;
        let mut refreshed = false;
        loop {
            let request = self
                .request(
                    &token,
                    method.clone(),
                    path,
                    soql,
                    body.as_ref(),
                    idempotency_key,
                )
                .map_err(scrub)?
                .timeout(timeout);
            let response = request
                .send()
                .await
                .map_err(|e| scrub(about(instance, transport_error(e, timeout))))?;
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED && !refreshed {
                // The session expired or was revoked: one new token, one more try.
                token = self.auth.refresh(&self.client, timeout, &token).await?;
                refreshed = true;
                continue;
            }
            if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                // Retried attempts are recorded in the case history by their status line.
                return Err(about(instance, CallError::Retryable(status.to_string())));
            }
            let body = read_limited(response, timeout)
                .await
                .map_err(|e| scrub(about(instance, e)))?;
            if !status.is_success() {
                let why = describe_refusal(status, &body);
                return Err(scrub(about(instance, CallError::Permanent(why))));
            }
            return Ok(output_from_body(&body));
        }
    }

    fn request(
        &self,
        token: &Token,
        method: Method,
        path: &[&str],
        soql: Option<&str>,
        body: Option<&Value>,
        idempotency_key: Option<&str>,
    ) -> Result<reqwest::RequestBuilder, CallError> {
        let mut url = token.instance_url.clone();
        url.path_segments_mut()
            .map_err(|()| {
                CallError::Permanent(format!("{} cannot take a path", token.instance_url))
            })?
            .clear()
            .extend(path);
        if let Some(q) = soql {
            url.query_pairs_mut().append_pair("q", q);
        }
        let mut bearer = HeaderValue::from_str(&format!("Bearer {}", token.access.expose()))
            .map_err(|_| {
                CallError::Permanent("the access token is not a valid header".to_owned())
            })?;
        bearer.set_sensitive(true);
        let mut request = self
            .client
            .request(method, url)
            .header(AUTHORIZATION, bearer)
            .header("accept", "application/json");
        if let Some(key) = idempotency_key {
            // Salesforce ignores headers it does not know: this one is for proxies and logs;
            // `idempotency_field` is what makes a create idempotent.
            request = request.header("idempotency-key", key);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        Ok(request)
    }

    /// Keeps the client secret out of a message, whatever a server echoed.
    fn scrub(&self, error: CallError) -> CallError {
        let secret: &Secret = &self.auth.client_secret;
        let clean = |m: String| match secret.expose() {
            "" => m,
            s => m.replace(s, "***"),
        };
        match error {
            CallError::Retryable(m) => CallError::Retryable(clean(m)),
            CallError::Permanent(m) => CallError::Permanent(clean(m)),
        }
    }
}

/// Prefixes an error with the instance's name.
fn about(instance: &str, error: CallError) -> CallError {
    match error {
        CallError::Retryable(m) => CallError::Retryable(format!("salesforce {instance}: {m}")),
        CallError::Permanent(m) => CallError::Permanent(format!("salesforce {instance}: {m}")),
    }
}
