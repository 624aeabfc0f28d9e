//! Statement parameters from JSON: each value is converted to the type PostgreSQL gives the
//! parameter (`$1`, `$2`...) when it prepares the statement, by one rule per type, and refused
//! with a message naming the type when it does not fit.

use std::error::Error;

use base64::Engine;
use bytes::BytesMut;
use serde_json::Value;
use tokio_postgres::types::{IsNull, Kind, ToSql, Type, to_sql_checked};

type Cause = Box<dyn Error + Sync + Send>;

/// A JSON value sent as a parameter of the type the statement gives it.
#[derive(Debug)]
pub(super) struct JsonParam<'a>(pub(super) &'a Value);

impl ToSql for JsonParam<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Cause> {
        let value = self.0;
        if value.is_null() {
            return Ok(IsNull::Yes);
        }
        match ty.kind() {
            Kind::Array(_) => {
                let Value::Array(items) = value else {
                    return Err(refused(value, ty, "a list"));
                };
                // The driver writes the array's header and each item as the member type.
                let items: Vec<JsonParam<'_>> = items.iter().map(JsonParam).collect();
                return items.to_sql(ty, out);
            }
            Kind::Domain(inner) => return JsonParam(value).to_sql(inner, out),
            Kind::Enum(_) => return text(value, ty, out),
            _ => {}
        }
        match *ty {
            Type::BOOL => match value {
                Value::Bool(b) => b.to_sql(ty, out),
                _ => Err(refused(value, ty, "true or false")),
            },
            Type::INT2 => integer(value, ty)
                .and_then(|i| i16::try_from(i).map_err(|_| out_of_range(value, ty)))?
                .to_sql(ty, out),
            Type::INT4 => integer(value, ty)
                .and_then(|i| i32::try_from(i).map_err(|_| out_of_range(value, ty)))?
                .to_sql(ty, out),
            Type::INT8 => integer(value, ty)?.to_sql(ty, out),
            Type::OID => integer(value, ty)
                .and_then(|i| u32::try_from(i).map_err(|_| out_of_range(value, ty)))?
                .to_sql(ty, out),
            Type::FLOAT4 | Type::FLOAT8 => match value.as_f64() {
                Some(f) if *ty == Type::FLOAT4 => (f as f32).to_sql(ty, out),
                Some(f) => f.to_sql(ty, out),
                None => Err(refused(value, ty, "a number")),
            },
            Type::NUMERIC => {
                let decimal = match value {
                    Value::Number(n) => n.to_string(),
                    Value::String(s) => s.clone(),
                    _ => return Err(refused(value, ty, "a number or a decimal string")),
                };
                super::rows::numeric_to_sql(&decimal, out)
                    .map_err(|why| format!("{decimal} is not a numeric: {why}"))?;
                Ok(IsNull::No)
            }
            Type::JSON | Type::JSONB => tokio_postgres::types::Json(value).to_sql(ty, out),
            Type::UUID => {
                let s = string(value, ty, "a UUID string")?;
                uuid::Uuid::parse_str(s)
                    .map_err(|e| format!("{s} is not a uuid: {e}"))?
                    .to_sql(ty, out)
            }
            Type::TIMESTAMPTZ => {
                let s = string(value, ty, "an RFC 3339 string")?;
                s.parse::<jiff::Timestamp>()
                    .map_err(|e| format!("{s} is not an RFC 3339 time: {e}"))?
                    .to_sql(ty, out)
            }
            Type::TIMESTAMP => {
                let s = string(value, ty, "a date and time string")?;
                s.parse::<jiff::civil::DateTime>()
                    .map_err(|e| format!("{s} is not a date and time: {e}"))?
                    .to_sql(ty, out)
            }
            Type::DATE => {
                let s = string(value, ty, "a YYYY-MM-DD string")?;
                s.parse::<jiff::civil::Date>()
                    .map_err(|e| format!("{s} is not a date: {e}"))?
                    .to_sql(ty, out)
            }
            Type::TIME => {
                let s = string(value, ty, "an HH:MM:SS string")?;
                s.parse::<jiff::civil::Time>()
                    .map_err(|e| format!("{s} is not a time: {e}"))?
                    .to_sql(ty, out)
            }
            Type::BYTEA => {
                let s = string(value, ty, "a base64 string")?;
                base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .map_err(|e| format!("not base64: {e}"))?
                    .to_sql(ty, out)
            }
            _ if <String as ToSql>::accepts(ty) => text(value, ty, out),
            _ => Err(format!(
                "parameters of type {ty} are not converted from JSON; cast it in the \
                 statement (for example `$1::text::{ty}`)"
            )
            .into()),
        }
    }

    fn accepts(_: &Type) -> bool {
        // Every type is tried; `to_sql` refuses a value that does not fit, naming the type.
        true
    }

    to_sql_checked!();
}

/// Writes a JSON string as text; other values are refused rather than guessed at.
fn text(value: &Value, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Cause> {
    let s = string(value, ty, "a string")?;
    out.extend_from_slice(s.as_bytes());
    Ok(IsNull::No)
}

fn string<'v>(value: &'v Value, ty: &Type, wanted: &str) -> Result<&'v str, Cause> {
    value.as_str().ok_or_else(|| refused(value, ty, wanted))
}

/// Takes a JSON whole number (`5`, not `5.0` nor `"5"`).
fn integer(value: &Value, ty: &Type) -> Result<i64, Cause> {
    match value {
        Value::Number(n) => n.as_i64().ok_or_else(|| out_of_range(value, ty)),
        _ => Err(refused(value, ty, "a whole number")),
    }
}

fn refused(value: &Value, ty: &Type, wanted: &str) -> Cause {
    format!("{ty} takes {wanted}, not {}", kind_of(value)).into()
}

fn out_of_range(value: &Value, ty: &Type) -> Cause {
    format!("{value} is not a whole number in the range of {ty}").into()
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
