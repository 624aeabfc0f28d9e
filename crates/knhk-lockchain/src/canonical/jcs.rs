//! RFC 8785 JSON Canonicalization (JCS) of any `Serialize` value, written in one pass.
//!
//! The value is written straight into the output as serde walks it; no `serde_json::Value` is
//! built. Objects (structs and maps) are written member by member and then put in key order:
//! each member's value is written once at the end of the output, and when the object ends its
//! bytes are moved into place behind their sorted keys. So map order, struct field order and
//! serde_json's features (`preserve_order`, `arbitrary_precision`) never change the bytes.
//!
//! Why it is canonical: every JSON value has exactly one form here. Whitespace is never
//! written; keys are sorted by their UTF-16 code units and a repeated key is refused (RFC 8785
//! §3.2.3); strings are escaped as RFC 8785 §3.2.2.2 says (only `"`, `\` and the control
//! characters, these as `\b \t \n \f \r` or `\u00xx` in lowercase hex); literals are `null`,
//! `true`, `false`. Numbers follow one rule, stated once in [`write_f64`] and
//! [`write_integer`]: integers exact, other numbers by ECMAScript's Number-to-String.

use std::cmp::Ordering;
use std::fmt::{self, Write as _};

use serde::ser::{self, Serialize};

/// The struct name serde_json gives a number under its `arbitrary_precision` feature.
const NUMBER_TOKEN: &str = "$serde_json::private::Number";
/// The struct name serde_json gives a `RawValue`: unchecked JSON text, never canonical.
const RAW_TOKEN: &str = "$serde_json::private::RawValue";

/// Why a value has no canonical JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JcsError(pub String);

impl fmt::Display for JcsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for JcsError {}

impl ser::Error for JcsError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        JcsError(msg.to_string())
    }
}

/// Appends the canonical JSON of `value` to `out`.
pub fn write<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<(), JcsError> {
    value.serialize(Jcs { out })
}

/// Appends a JSON string: `s` quoted and escaped as RFC 8785 §3.2.2.2 says.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            0x0c => b"\\f",
            b'\r' => b"\\r",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[run..i]);
        run = i + 1;
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(escape);
        }
    }
    out.extend_from_slice(&bytes[run..]);
    out.push(b'"');
}

/// Appends an integer as its exact decimal digits, `-` first when negative.
///
/// RFC 8785 reads every number as an IEEE double, which would round integers past 2^53 (a
/// `seq`, a `u64` in case data). knhk writes integers exactly instead: the one place where it
/// is stricter than JCS. For integers up to 2^53 in magnitude the two agree.
pub fn write_integer(out: &mut Vec<u8>, negative: bool, magnitude: u128) {
    if negative && magnitude != 0 {
        out.push(b'-');
    }
    let mut digits = [0u8; 39];
    let mut i = digits.len();
    let mut m = magnitude;
    loop {
        i -= 1;
        // m % 10 < 10: the cast cannot truncate.
        digits[i] = b'0' + (m % 10) as u8;
        m /= 10;
        if m == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Appends a double as ECMAScript's Number-to-String writes it (ECMA-262 §6.1.6.1.20), which
/// is what RFC 8785 §3.2.2.3 requires: NaN and the infinities are refused; both zeros are
/// `0`; otherwise the shortest digits `d1..dk` that read back as the same double (of two
/// such, the closer to it; of two as close, the even one), with decimal exponent `n` (the
/// value is `0.d1..dk × 10^n`), laid out as plain digits when `-6 < n <= 21` and as
/// `d1.d2..dke±(n-1)` otherwise.
///
/// The shortest, closest digits come from Rust's `{:e}` formatting; it breaks an exact tie
/// upwards, so a tie is looked for and broken to even here (`Shortest::tie_to_even`).
pub fn write_f64(out: &mut Vec<u8>, value: f64) -> Result<(), JcsError> {
    write_float(out, value, value.is_finite(), value == 0.0, value < 0.0)
}

/// Appends an f32 by the rule of [`write_f64`], with the shortest digits that read back as
/// the same f32 (as serde_json writes an f32).
fn write_f32(out: &mut Vec<u8>, value: f32) -> Result<(), JcsError> {
    write_float(out, value, value.is_finite(), value == 0.0, value < 0.0)
}

fn write_float<F>(
    out: &mut Vec<u8>,
    value: F,
    finite: bool,
    zero: bool,
    negative: bool,
) -> Result<(), JcsError>
where
    F: fmt::LowerExp + fmt::Display + std::str::FromStr + PartialEq + Copy,
{
    if !finite {
        return Err(JcsError(format!("the number {value} has no JSON form")));
    }
    if zero {
        out.push(b'0');
        return Ok(());
    }
    let shortest = Shortest::of(value)?.tie_to_even(value)?;
    shortest.write(out, negative);
    Ok(())
}

/// The shortest digits of a finite, non-zero float's magnitude: `0.d1..dk × 10^n`.
struct Shortest {
    digits: [u8; 32],
    k: usize,
    n: i32,
}

/// Formats `value` with `{:e}` (or `{:.p$e}`) into a stack buffer and splits digits and
/// exponent; refuses NaN and the infinities.
fn scientific<F: fmt::LowerExp + fmt::Display + Copy>(
    value: F,
    precision: Option<usize>,
) -> Result<(Vec<u8>, i32), JcsError> {
    let mut text = String::with_capacity(32);
    match precision {
        None => write!(text, "{value:e}"),
        Some(p) => write!(text, "{value:.p$e}"),
    }
    .map_err(|_| JcsError(format!("the number {value} did not format")))?;
    let bad = || JcsError(format!("the number {value} has no JSON form"));
    let text = text.trim_start_matches('-');
    let (mantissa, exponent) = text.split_once('e').ok_or_else(bad)?;
    let exponent: i32 = exponent.parse().map_err(|_| bad())?;
    let digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    if digits.is_empty() {
        return Err(bad());
    }
    Ok((digits, exponent))
}

impl Shortest {
    fn of<F: fmt::LowerExp + fmt::Display + Copy>(value: F) -> Result<Shortest, JcsError> {
        let (digits, exponent) = scientific(value, None)?;
        let mut s = Shortest {
            digits: [0; 32],
            k: digits.len(),
            n: exponent + 1,
        };
        s.digits
            .get_mut(..digits.len())
            .ok_or_else(|| JcsError(format!("the number {value} has too many digits")))?
            .copy_from_slice(&digits);
        Ok(s)
    }

    fn digits(&self) -> &[u8] {
        &self.digits[..self.k]
    }

    /// Replaces odd digits that are exactly as far from `value` as their even neighbour (the
    /// same digits with the last one moved by one) by that neighbour, if it too reads back as
    /// `value`. Such a tie means `value` is exactly the decimal halfway between them, which
    /// is checked on its exact expansion; that is only worked out when rounding `value` to one
    /// more digit ends in `5`.
    fn tie_to_even<F>(mut self, value: F) -> Result<Shortest, JcsError>
    where
        F: fmt::LowerExp + fmt::Display + std::str::FromStr + PartialEq + Copy,
    {
        let k = self.k;
        let last = self.digits[k - 1];
        if (last - b'0').is_multiple_of(2) {
            return Ok(self);
        }
        let (longer, exponent) = scientific(value, Some(k))?;
        if longer.last() != Some(&b'5') || exponent + 1 != self.n {
            return Ok(self);
        }
        // An f64's exact decimal expansion has at most 767 significant digits.
        let (mut exact, _) = scientific(value, Some(800))?;
        while exact.last() == Some(&b'0') {
            exact.pop();
        }
        if exact != longer {
            return Ok(self);
        }
        // `value` is d1..d(k-1) x 5: halfway between x-1 and x, or between x and x+1.
        let prefix = &longer[..k - 1];
        let candidate = if longer[k - 1] == last {
            last + 1
        } else if longer[k - 1] == last - 1 {
            last - 1
        } else {
            return Ok(self);
        };
        if !candidate.is_ascii_digit() || prefix != &self.digits[..k - 1] {
            return Ok(self);
        }
        let mut text = String::with_capacity(k + 8);
        text.extend(prefix.iter().map(|&b| char::from(b)));
        text.push(char::from(candidate));
        text.push_str(&format!("e{}", self.n - i32::try_from(k).unwrap_or(0)));
        if text.parse::<F>().ok() == Some(value) {
            self.digits[k - 1] = candidate;
        }
        Ok(self)
    }

    /// Lays the digits out by ECMAScript's rule.
    fn write(&self, out: &mut Vec<u8>, negative: bool) {
        let digits = self.digits();
        let n = self.n;
        // k <= 32: the cast cannot truncate.
        let k = self.k as i32;
        if negative {
            out.push(b'-');
        }
        if k <= n && n <= 21 {
            out.extend_from_slice(digits);
            out.extend(std::iter::repeat_n(b'0', (n - k) as usize));
        } else if 0 < n && n <= 21 {
            let (int, frac) = digits.split_at(n as usize);
            out.extend_from_slice(int);
            out.push(b'.');
            out.extend_from_slice(frac);
        } else if -6 < n && n <= 0 {
            out.extend_from_slice(b"0.");
            out.extend(std::iter::repeat_n(b'0', (-n) as usize));
            out.extend_from_slice(digits);
        } else {
            out.push(digits[0]);
            if digits.len() > 1 {
                out.push(b'.');
                out.extend_from_slice(&digits[1..]);
            }
            out.push(b'e');
            out.push(if n > 0 { b'+' } else { b'-' });
            write_integer(out, false, u128::from((n - 1).unsigned_abs()));
        }
    }
}

/// Appends a number given as JSON text (serde_json's `arbitrary_precision` form): an integer
/// literal in the i64 or u64 range exactly, anything else as the double it reads as.
fn write_number_text(out: &mut Vec<u8>, text: &str) -> Result<(), JcsError> {
    if let Ok(u) = text.parse::<u64>() {
        write_integer(out, false, u128::from(u));
    } else if let Ok(i) = text.parse::<i64>() {
        write_integer(out, i < 0, u128::from(i.unsigned_abs()));
    } else {
        let f: f64 = text
            .parse()
            .map_err(|_| JcsError(format!("{text:?} is not a JSON number")))?;
        write_f64(out, f)?;
    }
    Ok(())
}

/// Orders object keys as RFC 8785 §3.2.3 says: by their UTF-16 code units.
pub fn key_order(a: &str, b: &str) -> Ordering {
    // UTF-8 byte order is code point order, which differs from UTF-16 order only between a
    // character past U+FFFF and one in U+E000..=U+FFFF: compare bytes when either is ASCII.
    if a.is_ascii() || b.is_ascii() {
        a.as_bytes().cmp(b.as_bytes())
    } else {
        a.encode_utf16().cmp(b.encode_utf16())
    }
}

/// The serializer: writes one value at the end of `out`.
struct Jcs<'a> {
    out: &'a mut Vec<u8>,
}

/// A member of an object being written: its key and where its value's bytes are in `out`.
struct Member {
    key: String,
    start: usize,
    end: usize,
}

/// An object being written (a map, a struct or the body of a struct variant).
struct Object<'a> {
    out: &'a mut Vec<u8>,
    /// Where the members' values start in `out`.
    base: usize,
    members: Vec<Member>,
    /// The key of a map entry whose value comes next.
    key: Option<String>,
    /// Closes the `{"variant":` of a struct variant after the object.
    variant: bool,
    /// A serde_json `arbitrary_precision` number: its one field is the number's text.
    number: bool,
}

impl Object<'_> {
    fn member(&mut self, key: String, value: &(impl Serialize + ?Sized)) -> Result<(), JcsError> {
        let start = self.out.len();
        value.serialize(Jcs {
            out: &mut *self.out,
        })?;
        self.members.push(Member {
            key,
            start,
            end: self.out.len(),
        });
        Ok(())
    }

    fn finish(mut self) -> Result<(), JcsError> {
        self.members.sort_by(|a, b| key_order(&a.key, &b.key));
        if let Some(pair) = self.members.windows(2).find(|p| p[0].key == p[1].key) {
            return Err(JcsError(format!(
                "the key {:?} appears twice in one object",
                pair[0].key
            )));
        }
        let values = self.out.split_off(self.base);
        self.out.push(b'{');
        for (i, m) in self.members.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            write_str(self.out, &m.key);
            self.out.push(b':');
            self.out
                .extend_from_slice(&values[m.start - self.base..m.end - self.base]);
        }
        self.out.push(b'}');
        if self.variant {
            self.out.push(b'}');
        }
        Ok(())
    }
}

/// An array being written (a sequence, a tuple, or the body of a tuple variant).
struct Array<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
    variant: bool,
}

impl Array<'_> {
    fn element(&mut self, value: &(impl Serialize + ?Sized)) -> Result<(), JcsError> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        value.serialize(Jcs {
            out: &mut *self.out,
        })
    }

    fn finish(self) -> Result<(), JcsError> {
        self.out.push(b']');
        if self.variant {
            self.out.push(b'}');
        }
        Ok(())
    }
}

impl<'a> Jcs<'a> {
    fn object(self, variant: Option<&str>, number: bool) -> Object<'a> {
        if let Some(name) = variant {
            self.out.push(b'{');
            write_str(self.out, name);
            self.out.push(b':');
        }
        let base = self.out.len();
        Object {
            out: self.out,
            base,
            members: Vec::new(),
            key: None,
            variant: variant.is_some(),
            number,
        }
    }

    fn array(self, variant: Option<&str>) -> Array<'a> {
        if let Some(name) = variant {
            self.out.push(b'{');
            write_str(self.out, name);
            self.out.push(b':');
        }
        self.out.push(b'[');
        Array {
            out: self.out,
            first: true,
            variant: variant.is_some(),
        }
    }
}

impl<'a> ser::Serializer for Jcs<'a> {
    type Ok = ();
    type Error = JcsError;
    type SerializeSeq = Array<'a>;
    type SerializeTuple = Array<'a>;
    type SerializeTupleStruct = Array<'a>;
    type SerializeTupleVariant = Array<'a>;
    type SerializeMap = Object<'a>;
    type SerializeStruct = Object<'a>;
    type SerializeStructVariant = Object<'a>;

    fn serialize_bool(self, v: bool) -> Result<(), JcsError> {
        self.out
            .extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }

    fn serialize_i8(self, v: i8) -> Result<(), JcsError> {
        self.serialize_i64(i64::from(v))
    }

    fn serialize_i16(self, v: i16) -> Result<(), JcsError> {
        self.serialize_i64(i64::from(v))
    }

    fn serialize_i32(self, v: i32) -> Result<(), JcsError> {
        self.serialize_i64(i64::from(v))
    }

    fn serialize_i64(self, v: i64) -> Result<(), JcsError> {
        write_integer(self.out, v < 0, u128::from(v.unsigned_abs()));
        Ok(())
    }

    fn serialize_i128(self, v: i128) -> Result<(), JcsError> {
        write_integer(self.out, v < 0, v.unsigned_abs());
        Ok(())
    }

    fn serialize_u8(self, v: u8) -> Result<(), JcsError> {
        self.serialize_u64(u64::from(v))
    }

    fn serialize_u16(self, v: u16) -> Result<(), JcsError> {
        self.serialize_u64(u64::from(v))
    }

    fn serialize_u32(self, v: u32) -> Result<(), JcsError> {
        self.serialize_u64(u64::from(v))
    }

    fn serialize_u64(self, v: u64) -> Result<(), JcsError> {
        write_integer(self.out, false, u128::from(v));
        Ok(())
    }

    fn serialize_u128(self, v: u128) -> Result<(), JcsError> {
        write_integer(self.out, false, v);
        Ok(())
    }

    fn serialize_f32(self, v: f32) -> Result<(), JcsError> {
        write_f32(self.out, v)
    }

    fn serialize_f64(self, v: f64) -> Result<(), JcsError> {
        write_f64(self.out, v)
    }

    fn serialize_char(self, v: char) -> Result<(), JcsError> {
        write_str(self.out, v.encode_utf8(&mut [0; 4]));
        Ok(())
    }

    fn serialize_str(self, v: &str) -> Result<(), JcsError> {
        write_str(self.out, v);
        Ok(())
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<(), JcsError> {
        // As serde_json writes bytes: an array of numbers.
        let mut array = self.array(None);
        for b in v {
            array.element(b)?;
        }
        array.finish()
    }

    fn serialize_none(self) -> Result<(), JcsError> {
        self.serialize_unit()
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), JcsError> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), JcsError> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), JcsError> {
        self.serialize_unit()
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), JcsError> {
        self.serialize_str(variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), JcsError> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), JcsError> {
        let mut object = self.object(None, false);
        object.member(variant.to_owned(), value)?;
        object.finish()
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Array<'a>, JcsError> {
        Ok(self.array(None))
    }

    fn serialize_tuple(self, _len: usize) -> Result<Array<'a>, JcsError> {
        Ok(self.array(None))
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Array<'a>, JcsError> {
        Ok(self.array(None))
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Array<'a>, JcsError> {
        Ok(self.array(Some(variant)))
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Object<'a>, JcsError> {
        Ok(self.object(None, false))
    }

    fn serialize_struct(self, name: &'static str, _len: usize) -> Result<Object<'a>, JcsError> {
        if name == RAW_TOKEN {
            return Err(JcsError(
                "raw JSON text has no canonical form: pass a value".to_owned(),
            ));
        }
        Ok(self.object(None, name == NUMBER_TOKEN))
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Object<'a>, JcsError> {
        Ok(self.object(Some(variant), false))
    }
}

impl ser::SerializeSeq for Array<'_> {
    type Ok = ();
    type Error = JcsError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), JcsError> {
        self.element(value)
    }

    fn end(self) -> Result<(), JcsError> {
        self.finish()
    }
}

impl ser::SerializeTuple for Array<'_> {
    type Ok = ();
    type Error = JcsError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), JcsError> {
        self.element(value)
    }

    fn end(self) -> Result<(), JcsError> {
        self.finish()
    }
}

impl ser::SerializeTupleStruct for Array<'_> {
    type Ok = ();
    type Error = JcsError;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), JcsError> {
        self.element(value)
    }

    fn end(self) -> Result<(), JcsError> {
        self.finish()
    }
}

impl ser::SerializeTupleVariant for Array<'_> {
    type Ok = ();
    type Error = JcsError;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), JcsError> {
        self.element(value)
    }

    fn end(self) -> Result<(), JcsError> {
        self.finish()
    }
}

impl ser::SerializeMap for Object<'_> {
    type Ok = ();
    type Error = JcsError;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), JcsError> {
        self.key = Some(key.serialize(KeyText)?);
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), JcsError> {
        let key = self
            .key
            .take()
            .ok_or_else(|| JcsError("a map value came without its key".to_owned()))?;
        self.member(key, value)
    }

    fn end(self) -> Result<(), JcsError> {
        self.finish()
    }
}

impl ser::SerializeStruct for Object<'_> {
    type Ok = ();
    type Error = JcsError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), JcsError> {
        if self.number {
            let text = value.serialize(KeyText)?;
            return write_number_text(self.out, &text);
        }
        self.member(key.to_owned(), value)
    }

    fn end(self) -> Result<(), JcsError> {
        if self.number {
            return Ok(());
        }
        self.finish()
    }
}

impl ser::SerializeStructVariant for Object<'_> {
    type Ok = ();
    type Error = JcsError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), JcsError> {
        self.member(key.to_owned(), value)
    }

    fn end(self) -> Result<(), JcsError> {
        self.finish()
    }
}

/// Serializes a map key to its text: strings and characters as they are, integers as their
/// digits (as serde_json does); anything else is refused.
struct KeyText;

impl KeyText {
    fn refuse(what: &str) -> JcsError {
        JcsError(format!("a map key must be a string, not {what}"))
    }
}

impl ser::Serializer for KeyText {
    type Ok = String;
    type Error = JcsError;
    type SerializeSeq = ser::Impossible<String, JcsError>;
    type SerializeTuple = ser::Impossible<String, JcsError>;
    type SerializeTupleStruct = ser::Impossible<String, JcsError>;
    type SerializeTupleVariant = ser::Impossible<String, JcsError>;
    type SerializeMap = ser::Impossible<String, JcsError>;
    type SerializeStruct = ser::Impossible<String, JcsError>;
    type SerializeStructVariant = ser::Impossible<String, JcsError>;

    fn serialize_bool(self, _v: bool) -> Result<String, JcsError> {
        Err(KeyText::refuse("a boolean"))
    }
    fn serialize_i8(self, v: i8) -> Result<String, JcsError> {
        Ok(v.to_string())
    }
    fn serialize_i16(self, v: i16) -> Result<String, JcsError> {
        Ok(v.to_string())
    }
    fn serialize_i32(self, v: i32) -> Result<String, JcsError> {
        Ok(v.to_string())
    }
    fn serialize_i64(self, v: i64) -> Result<String, JcsError> {
        Ok(v.to_string())
    }
    fn serialize_i128(self, v: i128) -> Result<String, JcsError> {
        Ok(v.to_string())
    }
    fn serialize_u8(self, v: u8) -> Result<String, JcsError> {
        Ok(v.to_string())
    }
    fn serialize_u16(self, v: u16) -> Result<String, JcsError> {
        Ok(v.to_string())
    }
    fn serialize_u32(self, v: u32) -> Result<String, JcsError> {
        Ok(v.to_string())
    }
    fn serialize_u64(self, v: u64) -> Result<String, JcsError> {
        Ok(v.to_string())
    }
    fn serialize_u128(self, v: u128) -> Result<String, JcsError> {
        Ok(v.to_string())
    }
    fn serialize_f32(self, _v: f32) -> Result<String, JcsError> {
        Err(KeyText::refuse("a number"))
    }
    fn serialize_f64(self, _v: f64) -> Result<String, JcsError> {
        Err(KeyText::refuse("a number"))
    }
    fn serialize_char(self, v: char) -> Result<String, JcsError> {
        Ok(v.to_string())
    }
    fn serialize_str(self, v: &str) -> Result<String, JcsError> {
        Ok(v.to_owned())
    }
    fn serialize_bytes(self, _v: &[u8]) -> Result<String, JcsError> {
        Err(KeyText::refuse("bytes"))
    }
    fn serialize_none(self) -> Result<String, JcsError> {
        Err(KeyText::refuse("null"))
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<String, JcsError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<String, JcsError> {
        Err(KeyText::refuse("null"))
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<String, JcsError> {
        Err(KeyText::refuse("null"))
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<String, JcsError> {
        Ok(variant.to_owned())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<String, JcsError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<String, JcsError> {
        Err(KeyText::refuse("an enum with data"))
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, JcsError> {
        Err(KeyText::refuse("an array"))
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, JcsError> {
        Err(KeyText::refuse("an array"))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, JcsError> {
        Err(KeyText::refuse("an array"))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, JcsError> {
        Err(KeyText::refuse("an array"))
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, JcsError> {
        Err(KeyText::refuse("an object"))
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, JcsError> {
        Err(KeyText::refuse("an object"))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, JcsError> {
        Err(KeyText::refuse("an object"))
    }
}
