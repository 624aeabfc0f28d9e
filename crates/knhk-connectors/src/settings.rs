//! Why a connector refuses a task's settings, and why a task's connector cannot be used.

/// A cause kept as a source: the error a value failed to parse with, whatever its type.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a connector refuses a task's settings, naming the setting at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// A required setting is absent.
    #[error("{setting}: missing")]
    Missing { setting: String },
    /// The connector has no setting of this name.
    #[error("unknown setting {setting}")]
    Unknown { setting: String },
    /// The setting is empty where a value is needed.
    #[error("{setting}: empty")]
    Empty { setting: String },
    /// The setting takes one of a few values, and `found` is none of them.
    #[error("{setting}: expected {}, found `{found}`", one_of(allowed))]
    NotOneOf {
        setting: String,
        allowed: Vec<String>,
        found: String,
    },
    /// The value does not parse, or is not acceptable; `source` says why.
    #[error("{setting}: {source}")]
    Malformed {
        setting: String,
        #[source]
        source: Cause,
    },
    /// The setting may not be given together with `with`.
    #[error("{setting}: conflicts with {with}")]
    Conflict { setting: String, with: String },
    /// The setting names something the connector sets itself.
    #[error("{setting}: the connector sets this itself")]
    Reserved { setting: String },
}

impl SettingsError {
    /// Returns the setting at fault.
    pub fn setting(&self) -> &str {
        match self {
            SettingsError::Missing { setting }
            | SettingsError::Unknown { setting }
            | SettingsError::Empty { setting }
            | SettingsError::NotOneOf { setting, .. }
            | SettingsError::Malformed { setting, .. }
            | SettingsError::Conflict { setting, .. }
            | SettingsError::Reserved { setting } => setting,
        }
    }

    /// A [`SettingsError::Malformed`] of `setting` caused by `source`.
    pub fn malformed(setting: impl Into<String>, source: impl Into<Cause>) -> SettingsError {
        SettingsError::Malformed {
            setting: setting.into(),
            source: source.into(),
        }
    }
}

/// Renders `["a", "b", "c"]` as ``"`a`, `b` or `c`"``.
fn one_of(allowed: &[String]) -> String {
    let quoted: Vec<String> = allowed.iter().map(|a| format!("`{a}`")).collect();
    match quoted.split_last() {
        None => "nothing".to_owned(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// Why a task's connector and settings cannot be used by a registry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BindingError {
    /// The registry has no connector of this name.
    #[error("unknown connector {connector}")]
    UnknownConnector { connector: String },
    /// The connector refuses the settings.
    #[error("connector {connector}: {source}")]
    Settings {
        connector: String,
        #[source]
        source: SettingsError,
    },
}
