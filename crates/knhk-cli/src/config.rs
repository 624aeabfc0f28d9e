//! The config file every command reads: `--config FILE`, else `DATA_DIR/knhk.toml` when it
//! exists. Its flat keys are `knhk serve`'s (`serve.rs`); its `[connectors.NAME]` tables are the
//! connector instances every command that runs the engine registers beside the built-in `http`;
//! its `[[subscriptions]]` are passed on as written, for the intake to read.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use knhk_connectors::{InstanceConfig, Registry};
use serde_json::Value;

/// The file looked for in the data directory when `--config` is not given.
pub(crate) const DEFAULT_FILE: &str = "knhk.toml";

/// The top-level keys besides `knhk serve`'s flat ones.
const TABLES: [&str; 3] = ["connectors", "subscriptions", "lockchain"];

/// What the config file holds, read once per command.
#[derive(Clone, Debug, Default)]
pub(crate) struct ConfigFile {
    /// The file read; `None` when there is none.
    pub(crate) path: Option<PathBuf>,
    /// `knhk serve`'s flat keys, as written.
    pub(crate) flat: toml::Table,
    /// The `[connectors.NAME]` tables, as written (for `--print-config`).
    connector_tables: toml::Table,
    /// The connector instances, parsed, in the order of their names.
    pub(crate) connectors: Vec<InstanceConfig>,
    /// The `[[subscriptions]]` array as written, unchecked: the intake reads it.
    pub(crate) subscriptions: Option<Value>,
    /// The `[lockchain]` table (`lockchain_config.rs` makes the engine's from it).
    pub(crate) lockchain: crate::lockchain_config::LockchainFile,
}

impl ConfigFile {
    /// Reads `flag` (`--config`), which must exist, else `DATA_DIR/knhk.toml` if it exists,
    /// else nothing.
    pub(crate) fn read(flag: Option<&Path>, data_dir: &Path) -> anyhow::Result<ConfigFile> {
        let path = match flag {
            Some(file) if !file.is_file() => {
                anyhow::bail!("--config {}: no such file", file.display());
            }
            Some(file) => file.to_path_buf(),
            None => {
                let file = data_dir.join(DEFAULT_FILE);
                if !file.is_file() {
                    return Ok(ConfigFile::default());
                }
                file
            }
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read the config file {}", path.display()))?;
        ConfigFile::parse(&path, &text)
    }

    /// Parses the text of the file at `path`: the top-level keys are `knhk serve`'s flat keys,
    /// `connectors` and `subscriptions`; anything else is refused.
    pub(crate) fn parse(path: &Path, text: &str) -> anyhow::Result<ConfigFile> {
        let shown = path.display();
        let mut flat: toml::Table = text
            .parse()
            .map_err(|e| anyhow::anyhow!("config file {shown}: {e}"))?;
        for key in flat.keys() {
            if !crate::serve::KEYS.contains(&key.as_str()) && !TABLES.contains(&key.as_str()) {
                anyhow::bail!(
                    "config file {shown}: unknown key `{key}` (the keys are {}, and the tables \
                     [connectors.NAME], [[subscriptions]] and [lockchain])",
                    crate::serve::KEYS.join(", ")
                );
            }
        }
        let connector_tables = match flat.remove("connectors") {
            None => toml::Table::new(),
            Some(toml::Value::Table(t)) => t,
            Some(_) => anyhow::bail!(
                "config file {shown}: connectors: must be tables [connectors.NAME], one per \
                 instance"
            ),
        };
        let mut connectors = Vec::new();
        for (name, table) in &connector_tables {
            let json = serde_json::to_value(table)
                .with_context(|| format!("config file {shown}: connectors.{name}"))?;
            let Value::Object(map) = json else {
                anyhow::bail!(
                    "config file {shown}: connectors.{name}: must be a table [connectors.{name}]"
                );
            };
            if name == "http" {
                anyhow::bail!(
                    "config file {shown}: connectors.http: the name http is the built-in \
                     connector's; give this instance another name"
                );
            }
            let instance = InstanceConfig::parse(name, &map)
                .map_err(|e| anyhow::anyhow!("config file {shown}: {e}"))?;
            connectors.push(instance);
        }
        let subscriptions = flat
            .remove("subscriptions")
            .map(|s| serde_json::to_value(s).context("config file: subscriptions"))
            .transpose()?;
        let lockchain = flat
            .remove("lockchain")
            .map(crate::lockchain_config::LockchainFile::parse)
            .transpose()
            .map_err(|e| anyhow::anyhow!("config file {shown}: {e}"))?
            .unwrap_or_default();
        Ok(ConfigFile {
            path: Some(path.to_path_buf()),
            flat,
            connector_tables,
            connectors,
            subscriptions,
            lockchain,
        })
    }

    /// Returns the `[connectors.NAME]` tables with their secrets masked, for `--print-config`.
    pub(crate) fn connectors_masked(&self) -> toml::Table {
        let mut tables = self.connector_tables.clone();
        for (_, table) in tables.iter_mut() {
            mask(table);
        }
        tables
    }
}

/// Masks the secrets of a connector's table: `password`, `token`, `client_secret`, any
/// `*_secret`, `*_password` or `*_token` (not the `*_env` keys, which name a variable), and the
/// password of any URL.
fn mask(value: &mut toml::Value) {
    let toml::Value::Table(table) = value else {
        return;
    };
    for (key, v) in table.iter_mut() {
        if is_secret(key) {
            *v = toml::Value::String("***".to_owned());
        } else if let toml::Value::String(text) = v {
            if text.contains("://") {
                *text = crate::session::redact(text);
            }
        } else {
            mask(v);
        }
    }
}

/// Tells whether a connector key holds a secret by its name.
pub(crate) fn is_secret(key: &str) -> bool {
    matches!(key, "password" | "token" | "secret" | "client_secret")
        || ["_secret", "_password", "_token"]
            .iter()
            .any(|end| key.ends_with(end))
}

/// Returns the registry of a command's engine: the built-in `http` and an instance of each
/// `[connectors.NAME]`. An instance that cannot be made is an error naming `connectors.NAME.KEY`.
pub(crate) fn registry(instances: &[InstanceConfig]) -> anyhow::Result<Registry> {
    let mut registry = Registry::with_builtins();
    for instance in instances {
        if registry.get(&instance.name).is_some() {
            anyhow::bail!(
                "connectors.{}: the name {} is taken (by the built-in connector or another \
                 instance)",
                instance.name,
                instance.name
            );
        }
        let connector = knhk_connectors::kinds::build(instance)?;
        registry.register(Arc::clone(&connector));
    }
    Ok(registry)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn connector_secrets_are_masked_and_names_of_variables_are_not() {
        let file = ConfigFile::parse(
            Path::new("knhk.toml"),
            "[connectors.db]\nkind = \"postgres\"\nurl = \"postgres://u:hunter2@h/db\"\n\
             password = \"hunter2\"\n[connectors.crm]\nkind = \"salesforce\"\n\
             client_secret = \"s3cret\"\ntoken_env = \"CRM_TOKEN\"\napi_token = \"t0k\"\n",
        )
        .unwrap();
        let printed = toml::to_string(&file.connectors_masked()).unwrap();
        for secret in ["hunter2", "s3cret", "t0k"] {
            assert!(!printed.contains(secret), "{printed}");
        }
        assert!(printed.contains("CRM_TOKEN"), "{printed}");
        assert_eq!(file.connectors.len(), 2);
    }

    #[test]
    fn unknown_top_level_keys_and_the_name_http_are_refused() {
        let e = ConfigFile::parse(Path::new("f.toml"), "colour = \"red\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown key `colour`"), "{e}");
        let e = ConfigFile::parse(Path::new("f.toml"), "[connectors.http]\nkind = \"http\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("connectors.http"), "{e}");
    }
}
