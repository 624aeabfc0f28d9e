//! Rows as JSON: each column converted by its type (numbers, text, booleans, json, times as
//! RFC 3339, uuids, bytea as base64, numeric as a decimal string, arrays as lists), and the
//! binary `numeric` format both ways.

use std::error::Error;
use std::fmt::Write;

use base64::Engine;
use bytes::{BufMut, BytesMut};
use serde_json::{Map, Value};
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, Kind, Type};

type Cause = Box<dyn Error + Sync + Send>;

/// Converts a row into a JSON object keyed by column name.
pub(super) fn row_json(row: &Row) -> Result<Value, tokio_postgres::Error> {
    let mut object = Map::new();
    for (i, column) in row.columns().iter().enumerate() {
        let Cell(value) = row.try_get(i)?;
        object.insert(column.name().to_owned(), value);
    }
    Ok(Value::Object(object))
}

/// One value of a column, as JSON.
struct Cell(Value);

impl<'a> FromSql<'a> for Cell {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Cell, Cause> {
        match ty.kind() {
            Kind::Array(_) => {
                let items = Vec::<Cell>::from_sql(ty, raw)?;
                return Ok(Cell(Value::Array(items.into_iter().map(|c| c.0).collect())));
            }
            Kind::Domain(inner) => return Cell::from_sql(inner, raw),
            Kind::Enum(_) => return Ok(Cell(Value::String(std::str::from_utf8(raw)?.to_owned()))),
            _ => {}
        }
        let value = match *ty {
            // A function returning nothing (`SELECT pg_notify(...)`): a value with no content.
            Type::VOID => Value::Null,
            Type::BOOL => Value::Bool(bool::from_sql(ty, raw)?),
            Type::INT2 => Value::from(i16::from_sql(ty, raw)?),
            Type::INT4 => Value::from(i32::from_sql(ty, raw)?),
            Type::INT8 => Value::from(i64::from_sql(ty, raw)?),
            Type::OID => Value::from(u32::from_sql(ty, raw)?),
            Type::FLOAT4 => float(f64::from(f32::from_sql(ty, raw)?)),
            Type::FLOAT8 => float(f64::from_sql(ty, raw)?),
            Type::NUMERIC => Value::String(numeric_text(raw)?),
            Type::JSON | Type::JSONB => Value::from_sql(ty, raw)?,
            Type::UUID => Value::String(uuid::Uuid::from_sql(ty, raw)?.to_string()),
            Type::TIMESTAMPTZ => Value::String(jiff::Timestamp::from_sql(ty, raw)?.to_string()),
            Type::TIMESTAMP => Value::String(jiff::civil::DateTime::from_sql(ty, raw)?.to_string()),
            Type::DATE => Value::String(jiff::civil::Date::from_sql(ty, raw)?.to_string()),
            Type::TIME => Value::String(jiff::civil::Time::from_sql(ty, raw)?.to_string()),
            Type::BYTEA => Value::String(base64::engine::general_purpose::STANDARD.encode(raw)),
            _ if <String as FromSql>::accepts(ty) => Value::String(String::from_sql(ty, raw)?),
            _ => {
                return Err(format!(
                    "columns of type {ty} are not converted to JSON; cast it in the statement \
                     (for example `col::text`)"
                )
                .into());
            }
        };
        Ok(Cell(value))
    }

    fn from_sql_null(_: &Type) -> Result<Cell, Cause> {
        Ok(Cell(Value::Null))
    }

    fn accepts(_: &Type) -> bool {
        // Every type is tried; `from_sql` refuses the ones it cannot show, naming the type.
        true
    }
}

/// A float as a JSON number; NaN and the infinities, which JSON lacks, as PostgreSQL spells
/// them.
fn float(f: f64) -> Value {
    match serde_json::Number::from_f64(f) {
        Some(n) => Value::Number(n),
        None if f.is_nan() => Value::String("NaN".to_owned()),
        None if f > 0.0 => Value::String("Infinity".to_owned()),
        None => Value::String("-Infinity".to_owned()),
    }
}

const NUMERIC_POS: u16 = 0x0000;
const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;
/// The largest decimal exponent a parameter may carry: far beyond any amount, and short of
/// what would make a huge value from a short string.
const MAX_EXPONENT: i64 = 1000;

/// Renders a binary `numeric` as its decimal text, with its scale (`12.50`).
pub(super) fn numeric_text(raw: &[u8]) -> Result<String, Cause> {
    let word = |i: usize| -> Result<u16, Cause> {
        match raw.get(i * 2..i * 2 + 2) {
            Some(b) => Ok(u16::from_be_bytes([b[0], b[1]])),
            None => Err("a numeric value shorter than its header says".into()),
        }
    };
    let ndigits = usize::from(word(0)?);
    let weight = i64::from(word(1)? as i16);
    let sign = word(2)?;
    let dscale = usize::from(word(3)?);
    let digits = (0..ndigits)
        .map(|i| word(4 + i))
        .collect::<Result<Vec<u16>, Cause>>()?;
    let digit = |i: i64| -> u16 {
        usize::try_from(i)
            .ok()
            .and_then(|i| digits.get(i).copied())
            .unwrap_or(0)
    };
    let mut text = String::new();
    match sign {
        NUMERIC_NAN => return Ok("NaN".to_owned()),
        NUMERIC_PINF => return Ok("Infinity".to_owned()),
        NUMERIC_NINF => return Ok("-Infinity".to_owned()),
        NUMERIC_NEG => text.push('-'),
        _ => {}
    }
    if weight < 0 {
        text.push('0');
    } else {
        for i in 0..=weight {
            let d = digit(i);
            let _ = if i == 0 {
                write!(text, "{d}")
            } else {
                write!(text, "{d:04}")
            };
        }
    }
    if dscale > 0 {
        let mut fraction = String::new();
        let mut i = weight + 1;
        while fraction.len() < dscale {
            let _ = write!(fraction, "{:04}", digit(i));
            i += 1;
        }
        fraction.truncate(dscale);
        text.push('.');
        text.push_str(&fraction);
    }
    Ok(text)
}

/// Writes a decimal (`-12.50`, `1e3`) as a binary `numeric`; the scale is the number of
/// digits after the point, as written.
pub(super) fn numeric_to_sql(decimal: &str, out: &mut BytesMut) -> Result<(), String> {
    let s = decimal.trim();
    let (negative, s) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(at) => {
            let e: i64 = s[at + 1..]
                .parse()
                .map_err(|_| "a bad exponent".to_owned())?;
            (&s[..at], e)
        }
        None => (s, 0),
    };
    if exponent.abs() > MAX_EXPONENT {
        return Err(format!("an exponent beyond ±{MAX_EXPONENT}"));
    }
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return Err("not a decimal number".to_owned());
    }
    // value = digits × 10^shift
    let mut digits = format!("{whole}{fraction}");
    let shift = exponent - fraction.len() as i64;
    let scale = usize::try_from(-shift).unwrap_or(0);
    if shift > 0 {
        digits.extend(std::iter::repeat_n('0', shift as usize));
    }
    // Split at the point, padding with zeros on the left when it lies before the digits.
    let point = digits.len() as i64 - scale as i64;
    if point < 0 {
        digits.insert_str(0, &"0".repeat((-point) as usize));
    }
    let split = digits.len() - scale;
    let (int_part, frac_part) = digits.split_at(split);
    // Base-10000 groups, aligned on the point.
    let int_pad = (4 - int_part.len() % 4) % 4;
    let int_part = format!("{}{int_part}", "0".repeat(int_pad));
    let frac_pad = (4 - frac_part.len() % 4) % 4;
    let frac_part = format!("{frac_part}{}", "0".repeat(frac_pad));
    let mut groups: Vec<u16> = int_part
        .as_bytes()
        .chunks(4)
        .chain(frac_part.as_bytes().chunks(4))
        .map(|c| c.iter().fold(0u16, |acc, b| acc * 10 + u16::from(b - b'0')))
        .collect();
    let mut weight = (int_part.len() / 4) as i64 - 1;
    while groups.first() == Some(&0) {
        groups.remove(0);
        weight -= 1;
    }
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    let header = [
        u16::try_from(groups.len()).map_err(|_| "too many digits".to_owned())?,
        i16::try_from(weight).map_err(|_| "too large".to_owned())? as u16,
        if negative && !groups.is_empty() {
            NUMERIC_NEG
        } else {
            NUMERIC_POS
        },
        u16::try_from(scale).map_err(|_| "too many digits".to_owned())?,
    ];
    for word in header.into_iter().chain(groups) {
        out.put_u16(word);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(decimal: &str) -> String {
        let mut out = BytesMut::new();
        numeric_to_sql(decimal, &mut out).unwrap();
        numeric_text(&out).unwrap()
    }

    #[test]
    fn numerics_keep_their_digits_and_scale() {
        assert_eq!(round_trip("12.50"), "12.50");
        assert_eq!(round_trip("-0.00001"), "-0.00001");
        assert_eq!(round_trip("123456789.123456789"), "123456789.123456789");
        assert_eq!(round_trip("1e3"), "1000");
        assert_eq!(round_trip("1.5E-3"), "0.0015");
        assert_eq!(round_trip("0"), "0");
        assert_eq!(round_trip("10000"), "10000");
        assert!(numeric_to_sql("1.2.3", &mut BytesMut::new()).is_err());
        assert!(numeric_to_sql("1e99999", &mut BytesMut::new()).is_err());
    }
}
