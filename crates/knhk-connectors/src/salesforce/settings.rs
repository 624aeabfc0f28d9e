//! A Salesforce task's settings, parsed once: the operation, the sObject, the record id or
//! external id, and the SOQL of a query.

use std::collections::BTreeMap;

use super::template::Template;
use crate::settings::SettingsError;

/// What a task does with each call.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Operation {
    /// Creates a record of the input's fields.
    Create { sobject: String },
    /// Creates a record, or finds the one an earlier attempt created: an upsert on the external
    /// id field `field` set to the call's idempotency key.
    CreateOnce { sobject: String, field: String },
    /// Updates the record `id` names with the input's other fields.
    Update { sobject: String, id: Template },
    /// Creates or updates the record whose external id field `field` holds the value `id`
    /// names.
    Upsert {
        sobject: String,
        field: String,
        id: Template,
    },
    /// Runs a SOQL query, its placeholders filled with literals.
    Query { soql: Template },
}

/// A setting's value that is not acceptable, with why.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Invalid(String);

const OPERATIONS: [&str; 4] = ["create", "update", "upsert", "query"];

impl Operation {
    pub(super) fn parse(settings: &BTreeMap<String, String>) -> Result<Operation, SettingsError> {
        for key in settings.keys() {
            let known = [
                "operation",
                "sobject",
                "id",
                "external_id_field",
                "idempotency_field",
                "soql",
            ];
            if !known.contains(&key.as_str()) {
                return Err(SettingsError::Unknown {
                    setting: key.clone(),
                });
            }
        }
        let operation = settings
            .get("operation")
            .ok_or_else(|| SettingsError::Missing {
                setting: "operation".to_owned(),
            })?;
        // Each operation takes some of the settings; any other is a mistake worth naming.
        let takes: &[&str] = match operation.as_str() {
            "create" => &["sobject", "idempotency_field"],
            "update" => &["sobject", "id"],
            "upsert" => &["sobject", "external_id_field", "id"],
            "query" => &["soql"],
            other => {
                return Err(SettingsError::NotOneOf {
                    setting: "operation".to_owned(),
                    allowed: OPERATIONS.iter().map(|o| (*o).to_owned()).collect(),
                    found: other.to_owned(),
                });
            }
        };
        if let Some(extra) = settings
            .keys()
            .find(|k| *k != "operation" && !takes.contains(&k.as_str()))
        {
            return Err(SettingsError::Conflict {
                setting: extra.clone(),
                with: format!("operation {operation}"),
            });
        }
        let name = |key: &str| -> Result<String, SettingsError> {
            let value = settings.get(key).ok_or_else(|| SettingsError::Missing {
                setting: key.to_owned(),
            })?;
            api_name(key, value)
        };
        let id = |default: &str| -> Result<Template, SettingsError> {
            let source = settings.get("id").map_or(default, String::as_str);
            Template::parse(source).map_err(|why| SettingsError::malformed("id", Invalid(why)))
        };
        Ok(match operation.as_str() {
            "create" => match settings.get("idempotency_field") {
                Some(_) => Operation::CreateOnce {
                    sobject: name("sobject")?,
                    field: name("idempotency_field")?,
                },
                None => Operation::Create {
                    sobject: name("sobject")?,
                },
            },
            "update" => Operation::Update {
                sobject: name("sobject")?,
                id: id("{Id}")?,
            },
            "upsert" => {
                let field = name("external_id_field")?;
                Operation::Upsert {
                    sobject: name("sobject")?,
                    id: id(&format!("{{{field}}}"))?,
                    field,
                }
            }
            _ => {
                let source = settings.get("soql").ok_or_else(|| SettingsError::Missing {
                    setting: "soql".to_owned(),
                })?;
                let soql = Template::parse(source)
                    .and_then(|t| t.check_soql().map(|()| t))
                    .map_err(|why| SettingsError::malformed("soql", Invalid(why)))?;
                Operation::Query { soql }
            }
        })
    }
}

/// Checks an API name (`Account`, `Order_Number__c`, `ns__Thing__c`): letters, digits and
/// underscores, starting with a letter; it goes into a URL path.
fn api_name(key: &str, value: &str) -> Result<String, SettingsError> {
    if value.is_empty() {
        return Err(SettingsError::Empty {
            setting: key.to_owned(),
        });
    }
    let legal = value.starts_with(|c: char| c.is_ascii_alphabetic())
        && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !legal {
        return Err(SettingsError::malformed(
            key,
            Invalid(format!(
                "`{value}` is not a Salesforce API name (letters, digits and `_`, from a letter)"
            )),
        ));
    }
    Ok(value.to_owned())
}
