//! A connector instance as the config file declares it (`[connectors.NAME]`), and the reader
//! through which each kind takes its keys: every key is taken once, unknown keys are refused, and
//! secrets come from the file or from an environment variable (`KEY_env`) and are never shown.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde_json::Value;

use crate::pool::PoolConfig;

/// Why a `[connectors.NAME]` table is refused, naming the key at fault (never a secret's value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("connectors.{instance}.{key}: {problem}")]
pub struct ConfigError {
    pub instance: String,
    /// The key at fault, dotted (`pool.max_size`); `kind` for the table as a whole.
    pub key: String,
    pub problem: String,
}

/// One `[connectors.NAME]` table: its name, its kind, its pool settings and its other keys.
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceConfig {
    pub name: String,
    pub kind: String,
    pub pool: PoolConfig,
    /// The keys besides `kind` and `pool`, as the file gives them.
    keys: BTreeMap<String, Value>,
}

/// A secret from the config: a password, a token, a client secret. It prints as `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret that a connector obtained itself (an access token).
    pub(crate) fn new(secret: String) -> Secret {
        Secret(secret)
    }

    /// Returns the secret itself, for the connection that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl InstanceConfig {
    /// Parses the table of instance `name`: `kind` (required), `pool` (an optional table of
    /// `max_size`, `acquire_timeout_ms`, `idle_timeout_ms`, `max_lifetime_ms`), and the kind's
    /// own keys, which [`InstanceConfig::keys`] hands to the kind.
    pub fn parse(
        name: &str,
        table: &serde_json::Map<String, Value>,
    ) -> Result<InstanceConfig, ConfigError> {
        let fault = |key: &str, problem: String| ConfigError {
            instance: name.to_owned(),
            key: key.to_owned(),
            problem,
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c))
        {
            return Err(fault(
                "kind",
                "an instance name is letters, digits, `_` and `-`".to_owned(),
            ));
        }
        let kind = match table.get("kind") {
            Some(Value::String(k)) if !k.is_empty() => k.clone(),
            Some(_) => return Err(fault("kind", "must be a non-empty string".to_owned())),
            None => return Err(fault("kind", "missing".to_owned())),
        };
        let mut pool = PoolConfig::default();
        if let Some(p) = table.get("pool") {
            let Value::Object(p) = p else {
                return Err(fault("pool", "must be a table".to_owned()));
            };
            for (key, value) in p {
                let number = value.as_u64().ok_or_else(|| {
                    fault(&format!("pool.{key}"), "must be a whole number".to_owned())
                })?;
                let ms = Duration::from_millis(number);
                let optional = (number > 0).then_some(ms);
                match key.as_str() {
                    "max_size" if number >= 1 => pool.max_size = number as usize,
                    "max_size" => {
                        return Err(fault("pool.max_size", "must be at least 1".to_owned()));
                    }
                    "acquire_timeout_ms" if number >= 1 => pool.acquire_timeout = ms,
                    "acquire_timeout_ms" => {
                        return Err(fault(
                            "pool.acquire_timeout_ms",
                            "must be at least 1".to_owned(),
                        ));
                    }
                    "idle_timeout_ms" => pool.idle_timeout = optional,
                    "max_lifetime_ms" => pool.max_lifetime = optional,
                    other => {
                        return Err(fault(
                            &format!("pool.{other}"),
                            "unknown key (max_size, acquire_timeout_ms, idle_timeout_ms, \
                             max_lifetime_ms)"
                                .to_owned(),
                        ));
                    }
                }
            }
        }
        let keys = table
            .iter()
            .filter(|(k, _)| *k != "kind" && *k != "pool")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok(InstanceConfig {
            name: name.to_owned(),
            kind,
            pool,
            keys,
        })
    }

    /// Returns a reader of the kind's own keys.
    pub fn keys(&self) -> Keys<'_> {
        Keys {
            config: self,
            taken: Vec::new(),
            env: &|name| std::env::var(name).ok(),
        }
    }

    /// Returns a reader whose `*_env` keys read from `env` instead of the process environment
    /// (tests).
    pub fn keys_with_env<'a>(&'a self, env: &'a dyn Fn(&str) -> Option<String>) -> Keys<'a> {
        Keys {
            config: self,
            taken: Vec::new(),
            env,
        }
    }
}

/// Takes a kind's keys from an instance's table; [`Keys::finish`] refuses the keys not taken.
pub struct Keys<'a> {
    config: &'a InstanceConfig,
    taken: Vec<String>,
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl fmt::Debug for Keys<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys")
            .field("instance", &self.config.name)
            .field("taken", &self.taken)
            .finish_non_exhaustive()
    }
}

impl Keys<'_> {
    /// Returns an error about `key` of this instance.
    pub fn fault(&self, key: &str, problem: impl Into<String>) -> ConfigError {
        ConfigError {
            instance: self.config.name.clone(),
            key: key.to_owned(),
            problem: problem.into(),
        }
    }

    fn take(&mut self, key: &str) -> Option<&Value> {
        self.taken.push(key.to_owned());
        self.config.keys.get(key)
    }

    /// Takes an optional string key.
    pub fn string(&mut self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.take(key).cloned() {
            None => Ok(None),
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(s)),
            Some(Value::String(_)) => Err(self.fault(key, "empty")),
            Some(_) => Err(self.fault(key, "must be a string")),
        }
    }

    /// Takes a required string key.
    pub fn required(&mut self, key: &str) -> Result<String, ConfigError> {
        self.string(key)?.ok_or_else(|| self.fault(key, "missing"))
    }

    /// Takes an optional whole-number key.
    pub fn number(&mut self, key: &str) -> Result<Option<u64>, ConfigError> {
        match self.take(key).cloned() {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| self.fault(key, "must be a whole number")),
        }
    }

    /// Takes an optional boolean key.
    pub fn boolean(&mut self, key: &str) -> Result<Option<bool>, ConfigError> {
        match self.take(key).cloned() {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(_) => Err(self.fault(key, "must be true or false")),
        }
    }

    /// Takes a secret given as `KEY` (in the file) or `KEY_env` (the name of an environment
    /// variable holding it), not both. An unset variable is an error naming the variable.
    pub fn secret(&mut self, key: &str) -> Result<Option<Secret>, ConfigError> {
        let env_key = format!("{key}_env");
        let literal = match self.take(key).cloned() {
            None => None,
            Some(Value::String(s)) => Some(s),
            Some(_) => return Err(self.fault(key, "must be a string")),
        };
        let variable = self.string(&env_key)?;
        match (literal, variable) {
            (Some(_), Some(_)) => Err(self.fault(key, format!("conflicts with {env_key}"))),
            (Some(s), None) => Ok(Some(Secret(s))),
            (None, Some(var)) => match (self.env)(&var) {
                Some(s) => Ok(Some(Secret(s))),
                None => Err(self.fault(
                    &env_key,
                    format!("the environment variable {var} is not set"),
                )),
            },
            (None, None) => Ok(None),
        }
    }

    /// Refuses the keys of the table that no call above took.
    pub fn finish(self) -> Result<(), ConfigError> {
        let unknown: Vec<&String> = self
            .config
            .keys
            .keys()
            .filter(|k| !self.taken.contains(k))
            .collect();
        match unknown.first() {
            None => Ok(()),
            Some(k) => Err(self.fault(
                k,
                format!(
                    "unknown key for kind {} (known: {})",
                    self.config.kind,
                    self.taken.join(", ")
                ),
            )),
        }
    }
}
