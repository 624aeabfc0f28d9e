//! Initial values of net variables: XML Schema simple types converted to the JSON values of
//! the case data. knhk's case data is untyped JSON; a value that has no faithful JSON form is
//! refused rather than dropped.

use serde_json::Value;

/// The XML Schema namespace the simple types are in.
pub(crate) const XSD: &str = "http://www.w3.org/2001/XMLSchema";

/// Converts the initial value `text` of a variable of XML Schema type `type_name` (with or
/// without a prefix such as `xs:`) to JSON; says why when it cannot.
pub(crate) fn initial_value(type_name: &str, text: &str) -> Result<Value, String> {
    let local = type_name.rsplit(':').next().unwrap_or(type_name).trim();
    let trimmed = text.trim();
    match local {
        "string" => Ok(Value::String(text.to_owned())),
        "boolean" => match trimmed {
            "true" | "1" => Ok(Value::Bool(true)),
            "false" | "0" => Ok(Value::Bool(false)),
            _ => Err(format!("{trimmed:?} is not an xs:boolean")),
        },
        "int" | "integer" | "long" => trimmed
            .strip_prefix('+')
            .unwrap_or(trimmed)
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| format!("{trimmed:?} is not a whole number knhk can hold (xs:{local})")),
        "double" | "float" | "decimal" => {
            // A whole number stays one, as in data given at case creation (`{"amount": 0}`).
            if let Ok(whole) = trimmed.parse::<i64>() {
                return Ok(Value::from(whole));
            }
            let number = trimmed
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite())
                .and_then(serde_json::Number::from_f64);
            match number {
                Some(n) => Ok(Value::Number(n)),
                None => Err(format!("{trimmed:?} is not a finite number (xs:{local})")),
            }
        }
        "" => Err("the variable has no type".to_owned()),
        other => Err(format!(
            "its type {other:?} is not one knhk can convert to case data (boolean, int, integer, long, double, float, decimal, string)"
        )),
    }
}

/// Returns the XML Schema type name and the text knhk writes for a JSON initial value.
pub(crate) fn written(value: &Value) -> (&'static str, String) {
    match value {
        Value::Bool(b) => ("boolean", b.to_string()),
        Value::Number(n) if n.is_i64() || n.is_u64() => ("long", n.to_string()),
        Value::Number(n) => ("double", n.to_string()),
        Value::String(s) => ("string", s.clone()),
        // No simple type holds these: written as JSON text under a type that reads back as
        // refused, never as a different value.
        other => ("anyType", other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn simple_types_convert_and_others_are_refused() {
        assert_eq!(initial_value("xs:boolean", " true "), Ok(json!(true)));
        assert_eq!(initial_value("long", "-42"), Ok(json!(-42)));
        assert_eq!(initial_value("decimal", "2.5"), Ok(json!(2.5)));
        assert_eq!(initial_value("double", "0"), Ok(json!(0)));
        assert_eq!(initial_value("string", " a "), Ok(json!(" a ")));
        assert!(initial_value("boolean", "yes").is_err());
        assert!(initial_value("int", "1.5").is_err());
        assert!(initial_value("double", "NaN").is_err());
        assert!(initial_value("date", "2024-01-01").is_err());
        assert!(initial_value("OrderType", "<a/>").is_err());
    }
}
