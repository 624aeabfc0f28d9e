//! One command's use of the engine: the engine opened on the data directory, and how to name
//! this data directory again in the commands the output suggests.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use knhk_core::model::Specification;
use knhk_store::WorkflowRecord;
use knhk_workflow_engine::WorkflowEngine;
use serde_json::{Map, Value};

/// The data directory when neither `--data-dir` nor `KNHK_DATA_DIR` says otherwise.
pub(crate) const DEFAULT_DATA_DIR: &str = "./knhk-data";

/// The engine on the embedded store of one data directory.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) engine: WorkflowEngine,
    data_dir: PathBuf,
}

impl Session {
    /// Opens the engine on `data_dir` (the SQLite store `knhk.db` and `directory.json`).
    pub(crate) async fn open(data_dir: &Path) -> anyhow::Result<Session> {
        let engine = WorkflowEngine::open(data_dir)
            .await
            .with_context(|| format!("cannot open the data directory {}", data_dir.display()))?;
        Ok(Session {
            engine,
            data_dir: data_dir.to_path_buf(),
        })
    }

    /// Returns how to call `knhk` on this data directory, for the commands we suggest.
    pub(crate) fn command(&self) -> String {
        if self.data_dir == Path::new(DEFAULT_DATA_DIR) {
            "knhk".to_owned()
        } else {
            format!(
                "knhk --data-dir {}",
                shell_word(&self.data_dir.display().to_string())
            )
        }
    }

    /// Returns the parsed specification of a stored workflow, if it still decodes.
    pub(crate) fn spec(&self, workflow: &WorkflowRecord) -> Option<Specification> {
        serde_json::from_value(workflow.spec.clone()).ok()
    }

    /// Stops what the engine spawned (nothing should be left once a case settled).
    pub(crate) async fn close(self) {
        self.engine.shutdown().await;
    }
}

/// Parses the `--data`/`--output` option: a JSON object, or nothing for `{}`.
pub(crate) fn json_object(option: &str, text: Option<&str>) -> anyhow::Result<Map<String, Value>> {
    let Some(text) = text else {
        return Ok(Map::new());
    };
    match serde_json::from_str(text).with_context(|| format!("{option} is not valid JSON"))? {
        Value::Object(map) => Ok(map),
        other => bail!("{option} must be a JSON object, got {}", json_kind(&other)),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Quotes a word for a POSIX shell when it needs it.
fn shell_word(word: &str) -> String {
    let plain = word
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+,:@".contains(c));
    if plain && !word.is_empty() {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}
