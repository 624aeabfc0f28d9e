//! The OAuth 2.0 client-credentials flow of a Salesforce instance: one access token cached per
//! instance, fetched when first needed and again when Salesforce says it expired (a 401).

use std::sync::Arc;
use std::time::Duration;

use reqwest::{StatusCode, Url};
use tokio::sync::Mutex;

use super::response::{describe_refusal, transport_error};
use crate::config::Secret;
use crate::connector::CallError;

/// An access token, the instance its API calls go to, and its place in the sequence of tokens
/// (so that calls failing with the same expired token refresh it once).
#[derive(Debug)]
pub(super) struct Token {
    pub(super) access: Secret,
    pub(super) instance_url: Url,
    generation: u64,
}

/// The credentials of an instance and its cached token.
#[derive(Debug)]
pub(super) struct Auth {
    pub(super) instance: String,
    /// Where the token endpoint is (`login_url`, else `instance_url`).
    pub(super) login_url: Url,
    /// Where API calls go when the config says; else the token response's `instance_url`.
    pub(super) instance_url: Option<Url>,
    pub(super) client_id: String,
    pub(super) client_secret: Secret,
    /// Held while a token is fetched, so that concurrent calls wait for one fetch.
    token: Mutex<Option<Arc<Token>>>,
}

impl Auth {
    pub(super) fn new(
        instance: String,
        login_url: Url,
        instance_url: Option<Url>,
        client_id: String,
        client_secret: Secret,
    ) -> Auth {
        Auth {
            instance,
            login_url,
            instance_url,
            client_id,
            client_secret,
            token: Mutex::new(None),
        }
    }

    /// Returns the cached token, fetching one if there is none.
    pub(super) async fn token(
        &self,
        client: &reqwest::Client,
        timeout: Duration,
    ) -> Result<Arc<Token>, CallError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref() {
            return Ok(Arc::clone(token));
        }
        let token = Arc::new(self.fetch(client, timeout, 1).await?);
        *cached = Some(Arc::clone(&token));
        Ok(token)
    }

    /// Replaces `stale`, which Salesforce refused, by a new token; if another call replaced it
    /// already, returns that one.
    pub(super) async fn refresh(
        &self,
        client: &reqwest::Client,
        timeout: Duration,
        stale: &Token,
    ) -> Result<Arc<Token>, CallError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref().filter(|t| t.generation != stale.generation) {
            return Ok(Arc::clone(token));
        }
        *cached = None;
        let token = Arc::new(self.fetch(client, timeout, stale.generation + 1).await?);
        *cached = Some(Arc::clone(&token));
        Ok(token)
    }

    /// Asks the token endpoint for a token (`grant_type=client_credentials`).
    async fn fetch(
        &self,
        client: &reqwest::Client,
        timeout: Duration,
        generation: u64,
    ) -> Result<Token, CallError> {
        let mut url = self.login_url.clone();
        url.set_path("/services/oauth2/token");
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose()),
        ];
        let response = client
            .post(url)
            .timeout(timeout)
            .form(&form)
            .send()
            .await
            .map_err(|e| self.about_token(transport_error(e, timeout)))?;
        let status = response.status();
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            return Err(self.about_token(CallError::Retryable(status.to_string())));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| self.about_token(transport_error(e, timeout)))?;
        if !status.is_success() {
            let why = describe_refusal(status, &body);
            return Err(self.about_token(CallError::Permanent(why)));
        }
        // The answer's other fields (`id`, `token_type`, `issued_at`, `signature`) are not used.
        let answer: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let access_token = answer
            .get("access_token")
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                self.about_token(CallError::Permanent(
                    "the answer has no access_token".to_owned(),
                ))
            })?;
        let given = answer.get("instance_url").and_then(|u| u.as_str());
        let instance_url = match (&self.instance_url, given) {
            (Some(configured), _) => configured.clone(),
            (None, Some(given)) => Url::parse(given).map_err(|e| {
                self.about_token(CallError::Permanent(format!(
                    "the token response's instance_url is not a URL: {e}"
                )))
            })?,
            (None, None) => {
                return Err(self.about_token(CallError::Permanent(
                    "the token response has no instance_url and the config gives none".to_owned(),
                )));
            }
        };
        Ok(Token {
            access: Secret::new(access_token.to_owned()),
            instance_url,
            generation,
        })
    }

    /// Prefixes an error of the token endpoint, and keeps the client secret out of it whatever
    /// the endpoint echoed.
    fn about_token(&self, error: CallError) -> CallError {
        let scrub = |m: &str| {
            let text = format!("salesforce {}: token endpoint: {m}", self.instance);
            match self.client_secret.expose() {
                "" => text,
                secret => text.replace(secret, "***"),
            }
        };
        match error {
            CallError::Retryable(m) => CallError::Retryable(scrub(&m)),
            CallError::Permanent(m) => CallError::Permanent(scrub(&m)),
        }
    }
}
