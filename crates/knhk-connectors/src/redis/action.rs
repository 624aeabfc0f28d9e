//! A `redis` task's settings: a command with its arguments, or a stream to append to.

use std::collections::BTreeMap;

use crate::args::ListExpr;
use crate::settings::SettingsError;

/// How long a stream's deduplication marker lives unless `dedup_ttl_s` says otherwise: a day.
const DEFAULT_DEDUP_TTL_S: u64 = 86_400;

/// Commands a pooled connection must not run: they change the connection's state for the calls
/// after this one, block it, or take it over.
const REFUSED_COMMANDS: [&str; 20] = [
    "AUTH",
    "BLMOVE",
    "BLMPOP",
    "BLPOP",
    "BRPOP",
    "BRPOPLPUSH",
    "BZMPOP",
    "BZPOPMAX",
    "BZPOPMIN",
    "CLIENT",
    "DISCARD",
    "EXEC",
    "HELLO",
    "MONITOR",
    "MULTI",
    "PSUBSCRIBE",
    "QUIT",
    "RESET",
    "SELECT",
    "SUBSCRIBE",
];

/// What a task does: a command, or an append to a stream.
#[derive(Debug)]
pub(super) enum Action {
    Command {
        words: Vec<String>,
        args: Option<ListExpr>,
    },
    Append {
        stream: String,
        maxlen: u64,
        dedup_ttl_s: u64,
    },
}

impl Action {
    pub(super) fn parse(settings: &BTreeMap<String, String>) -> Result<Action, SettingsError> {
        let number = |key: &str, value: &str| {
            value
                .parse::<u64>()
                .map_err(|e| SettingsError::malformed(key, e))
        };
        let (mut command, mut args, mut stream) = (None, None, None);
        let (mut maxlen, mut dedup_ttl_s) = (None, None);
        for (key, value) in settings {
            if value.trim().is_empty() {
                return Err(SettingsError::Empty {
                    setting: key.clone(),
                });
            }
            match key.as_str() {
                "command" => command = Some(command_words(value)?),
                "args" => args = Some(ListExpr::compile("args", value)?),
                "stream" => stream = Some(value.clone()),
                "maxlen" => maxlen = Some(number(key, value)?),
                "dedup_ttl_s" => match number(key, value)? {
                    0 => {
                        return Err(SettingsError::malformed(key, "must be at least 1"));
                    }
                    n => dedup_ttl_s = Some(n),
                },
                _ => {
                    return Err(SettingsError::Unknown {
                        setting: key.clone(),
                    });
                }
            }
        }
        let conflict = |setting: &str, with: &str| SettingsError::Conflict {
            setting: setting.to_owned(),
            with: with.to_owned(),
        };
        match (command, stream) {
            (Some(_), Some(_)) => Err(conflict("stream", "command")),
            (Some(words), None) => match (maxlen, dedup_ttl_s) {
                (Some(_), _) => Err(conflict("maxlen", "command")),
                (_, Some(_)) => Err(conflict("dedup_ttl_s", "command")),
                (None, None) => Ok(Action::Command { words, args }),
            },
            (None, Some(_)) if args.is_some() => Err(conflict("args", "stream")),
            (None, Some(stream)) => Ok(Action::Append {
                stream,
                maxlen: maxlen.unwrap_or(0),
                dedup_ttl_s: dedup_ttl_s.unwrap_or(DEFAULT_DEDUP_TTL_S),
            }),
            (None, None) => Err(SettingsError::Missing {
                setting: "command".to_owned(),
            }),
        }
    }
}

/// Splits `command` into its words (`SET`, `XADD`, `CONFIG GET`), refusing the commands a
/// pooled connection must not run.
fn command_words(value: &str) -> Result<Vec<String>, SettingsError> {
    let words: Vec<String> = value.split_whitespace().map(str::to_owned).collect();
    let name = words
        .first()
        .map(|w| w.to_ascii_uppercase())
        .unwrap_or_default();
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(SettingsError::malformed(
            "command",
            format!("`{name}` is not a command name"),
        ));
    }
    if REFUSED_COMMANDS.contains(&name.as_str()) {
        return Err(SettingsError::malformed(
            "command",
            format!("{name} would change or hold the pooled connection; it is not run"),
        ));
    }
    Ok(words)
}
