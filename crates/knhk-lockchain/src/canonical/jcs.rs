//! RFC 8785 JSON Canonicalization (JCS) of any `Serialize` value, written in one pass.
//!
//! The value is written straight into the output as serde walks it; no `serde_json::Value` is
//! built. An object's members (of a struct or a map) are written as they come, `"key":value`,
//! and when the object ends they are put in key order if they are not in it already (a map
//! of serde_json usually is; a struct seldom is): its bytes are copied aside once and written
//! back member by member. So map order, struct field order and serde_json's features
//! (`preserve_order`, `arbitrary_precision`) never change the bytes.
//!
//! Why it is canonical: every JSON value has exactly one form here. Whitespace is never
//! written; keys are sorted by their UTF-16 code units and a repeated key is refused (RFC 8785
//! §3.2.3); strings are escaped as RFC 8785 §3.2.2.2 says (only `"`, `\` and the control
//! characters, these as `\b \t \n \f \r` or `\u00xx` in lowercase hex); literals are `null`,
//! `true`, `false`. Numbers follow one rule, stated once in [`write_f64`] and
//! [`write_integer`]: integers exact, other numbers by ECMAScript's Number-to-String.

use std::cell::RefCell;
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
    thread_local! {
        // Kept between calls so that writing an event allocates nothing but its output.
        static SCRATCH: RefCell<Scratch> = RefCell::default();
    }
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => {
            scratch.members.clear();
            scratch.keys.clear();
            value.serialize(Jcs {
                out,
                scratch: &mut scratch,
            })
        }
        // A value whose serialization writes canonical JSON itself: a scratch of its own.
        Err(_) => value.serialize(Jcs {
            out,
            scratch: &mut Scratch::default(),
        }),
    })
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
    let class = Class {
        finite: value.is_finite(),
        zero: value == 0.0,
        negative: value < 0.0,
        // See `Shortest::tie_to_even`: 10^-k < 2^-52 needs k > 15.65.
        tie_digits: if value.is_normal() { 16 } else { 1 },
    };
    write_float(out, value, class)
}

/// Appends an f32 by the rule of [`write_f64`], with the shortest digits that read back as
/// the same f32 (as serde_json writes an f32).
fn write_f32(out: &mut Vec<u8>, value: f32) -> Result<(), JcsError> {
    let class = Class {
        finite: value.is_finite(),
        zero: value == 0.0,
        negative: value < 0.0,
        // 10^-k < 2^-23 needs k > 6.92.
        tie_digits: if value.is_normal() { 7 } else { 1 },
    };
    write_float(out, value, class)
}

/// What [`write_float`] needs to know of a float besides its digits.
struct Class {
    finite: bool,
    zero: bool,
    negative: bool,
    /// The fewest digits a tie of two shortest forms can have.
    tie_digits: usize,
}

fn write_float<F>(out: &mut Vec<u8>, value: F, class: Class) -> Result<(), JcsError>
where
    F: fmt::LowerExp + fmt::Display + std::str::FromStr + PartialEq + Copy,
{
    if !class.finite {
        return Err(JcsError(format!("the number {value} has no JSON form")));
    }
    if class.zero {
        out.push(b'0');
        return Ok(());
    }
    let shortest = Shortest::of(value, None)?.tie_to_even(value, class.tie_digits)?;
    shortest.write(out, class.negative);
    Ok(())
}

/// The digits of a finite, non-zero float's magnitude: `0.d1..dk × 10^n`.
struct Shortest {
    digits: [u8; 40],
    k: usize,
    n: i32,
}

/// A stack buffer for the `{:e}` text of one number.
struct StackText {
    bytes: [u8; 48],
    len: usize,
}

impl fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let slot = self.bytes.get_mut(self.len..end).ok_or(fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Splits `d[.ddd]e[-]x` (after an optional `-`) into its digits and exponent.
fn split_scientific(text: &[u8]) -> Option<(impl Iterator<Item = u8> + '_, i32)> {
    let text = text.strip_prefix(b"-").unwrap_or(text);
    let e = text.iter().position(|&b| b == b'e')?;
    let exponent = std::str::from_utf8(&text[e + 1..]).ok()?.parse().ok()?;
    Some((
        text[..e].iter().copied().filter(u8::is_ascii_digit),
        exponent,
    ))
}

impl Shortest {
    /// Returns the digits `{:e}` (no precision: the shortest that read back) or `{:.p$e}`
    /// (`p + 1` digits, correctly rounded) gives.
    fn of<F: fmt::LowerExp + fmt::Display + Copy>(
        value: F,
        precision: Option<usize>,
    ) -> Result<Shortest, JcsError> {
        let mut text = StackText {
            bytes: [0; 48],
            len: 0,
        };
        match precision {
            None => write!(text, "{value:e}"),
            Some(p) => write!(text, "{value:.p$e}"),
        }
        .map_err(|_| JcsError(format!("the number {value} did not format")))?;
        let bad = || JcsError(format!("the number {value} has no JSON form"));
        let (digits, exponent) = split_scientific(&text.bytes[..text.len]).ok_or_else(bad)?;
        let mut s = Shortest {
            digits: [0; 40],
            k: 0,
            n: exponent + 1,
        };
        for d in digits {
            *s.digits.get_mut(s.k).ok_or_else(bad)? = d;
            s.k += 1;
        }
        if s.k == 0 {
            return Err(bad());
        }
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
    ///
    /// Both neighbours read back as `value`, so they are at most one unit in the last place
    /// (ulp) apart: `10^(n-k) <= ulp < 2^-52 · 10^n` for a normal double, so a tie needs
    /// `k >= 16` digits (`k >= 7` for a normal f32); `tie_digits` skips shorter ones. A
    /// subnormal's ulp is larger than that, so any of its digits may tie.
    fn tie_to_even<F>(mut self, value: F, tie_digits: usize) -> Result<Shortest, JcsError>
    where
        F: fmt::LowerExp + fmt::Display + std::str::FromStr + PartialEq + Copy,
    {
        let k = self.k;
        let last = self.digits[k - 1];
        if k < tie_digits || (last - b'0').is_multiple_of(2) {
            return Ok(self);
        }
        let longer = Shortest::of(value, Some(k))?;
        if longer.digits().last() != Some(&b'5') || longer.n != self.n {
            return Ok(self);
        }
        // An f64's exact decimal expansion has at most 767 significant digits.
        let exact = format!("{value:.800e}");
        let Some((digits, _)) = split_scientific(exact.as_bytes()) else {
            return Ok(self);
        };
        let mut exact: Vec<u8> = digits.collect();
        while exact.last() == Some(&b'0') {
            exact.pop();
        }
        if exact != longer.digits() {
            return Ok(self);
        }
        // `value` is d1..d(k-1) x 5: halfway between x-1 and x, or between x and x+1.
        let prefix = &longer.digits()[..k - 1];
        let candidate = if longer.digits()[k - 1] == last {
            last + 1
        } else if longer.digits()[k - 1] == last - 1 {
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
        // k <= 40: the cast cannot truncate.
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
    scratch: &'a mut Scratch,
}

/// What objects need while they are written, shared by all of one value's objects so that it
/// is allocated once: an object's members sit on `members` above those of the objects
/// around it, and `copy` holds an object's bytes while they are put in order.
#[derive(Default)]
struct Scratch {
    members: Vec<Member>,
    /// The members' keys, one after another.
    keys: String,
    copy: Vec<u8>,
}

/// A member of an object being written: where its key is in `keys`, and where `"key":value`
/// is in `out`.
struct Member {
    key: (usize, usize),
    start: usize,
    end: usize,
}

/// An object being written (a map, a struct or the body of a struct variant): its members
/// are written as they come, then put in key order if they are not in it already.
struct Object<'a> {
    out: &'a mut Vec<u8>,
    scratch: &'a mut Scratch,
    /// Where the members start in `out` (just after the `{`).
    body: usize,
    /// Where this object's members start in `scratch.members`.
    first: usize,
    /// Where this object's keys start in `scratch.keys`.
    first_key: usize,
    /// The key of a map entry whose value comes next, in `scratch.keys`.
    key: Option<(usize, usize)>,
    /// Closes the `{"variant":` of a struct variant after the object.
    variant: bool,
    /// A serde_json `arbitrary_precision` number: its one field is the number's text.
    number: bool,
}

impl Object<'_> {
    /// Puts a key in the key arena.
    fn key(&mut self, key: &str) -> (usize, usize) {
        let start = self.scratch.keys.len();
        self.scratch.keys.push_str(key);
        (start, self.scratch.keys.len())
    }

    /// Writes a member whose key is `key` in the key arena.
    fn member(
        &mut self,
        key: (usize, usize),
        value: &(impl Serialize + ?Sized),
    ) -> Result<(), JcsError> {
        if self.scratch.members.len() > self.first {
            self.out.push(b',');
        }
        let start = self.out.len();
        write_str(self.out, &self.scratch.keys[key.0..key.1]);
        self.out.push(b':');
        value.serialize(Jcs {
            out: &mut *self.out,
            scratch: &mut *self.scratch,
        })?;
        self.scratch.members.push(Member {
            key,
            start,
            end: self.out.len(),
        });
        Ok(())
    }

    fn finish(self) -> Result<(), JcsError> {
        let Scratch {
            members,
            keys,
            copy,
        } = &mut *self.scratch;
        let ours = &mut members[self.first..];
        let key = |m: &Member| &keys[m.key.0..m.key.1];
        let in_order = ours
            .windows(2)
            .all(|p| key_order(key(&p[0]), key(&p[1])) == Ordering::Less);
        if !in_order {
            ours.sort_by(|a, b| key_order(key(a), key(b)));
            if let Some(pair) = ours.windows(2).find(|p| key(&p[0]) == key(&p[1])) {
                return Err(JcsError(format!(
                    "the key {:?} appears twice in one object",
                    key(&pair[0])
                )));
            }
            copy.clear();
            copy.extend_from_slice(&self.out[self.body..]);
            self.out.truncate(self.body);
            for (i, m) in ours.iter().enumerate() {
                if i > 0 {
                    self.out.push(b',');
                }
                self.out
                    .extend_from_slice(&copy[m.start - self.body..m.end - self.body]);
            }
        }
        members.truncate(self.first);
        keys.truncate(self.first_key);
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
    scratch: &'a mut Scratch,
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
            scratch: &mut *self.scratch,
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
        if !number {
            self.out.push(b'{');
        }
        let body = self.out.len();
        let first = self.scratch.members.len();
        let first_key = self.scratch.keys.len();
        Object {
            out: self.out,
            scratch: self.scratch,
            body,
            first,
            first_key,
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
            scratch: self.scratch,
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
        let key = object.key(variant);
        object.member(key, value)?;
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
        let start = self.scratch.keys.len();
        key.serialize(KeyText(&mut self.scratch.keys))?;
        self.key = Some((start, self.scratch.keys.len()));
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
            let start = self.scratch.keys.len();
            value.serialize(KeyText(&mut self.scratch.keys))?;
            let written = write_number_text(self.out, &self.scratch.keys[start..]);
            self.scratch.keys.truncate(start);
            return written;
        }
        let key = self.key(key);
        self.member(key, value)
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
        let key = self.key(key);
        self.member(key, value)
    }

    fn end(self) -> Result<(), JcsError> {
        self.finish()
    }
}

/// Appends a map key's text to the key arena: strings and characters as they are, integers
/// as their digits (as serde_json does); anything else is refused.
struct KeyText<'a>(&'a mut String);

impl KeyText<'_> {
    fn text(self, v: impl fmt::Display) -> Result<(), JcsError> {
        write!(self.0, "{v}").map_err(|_| JcsError("a map key did not format".to_owned()))
    }

    fn refuse(what: &str) -> JcsError {
        JcsError(format!("a map key must be a string, not {what}"))
    }
}

impl ser::Serializer for KeyText<'_> {
    type Ok = ();
    type Error = JcsError;
    type SerializeSeq = ser::Impossible<(), JcsError>;
    type SerializeTuple = ser::Impossible<(), JcsError>;
    type SerializeTupleStruct = ser::Impossible<(), JcsError>;
    type SerializeTupleVariant = ser::Impossible<(), JcsError>;
    type SerializeMap = ser::Impossible<(), JcsError>;
    type SerializeStruct = ser::Impossible<(), JcsError>;
    type SerializeStructVariant = ser::Impossible<(), JcsError>;

    fn serialize_bool(self, _v: bool) -> Result<(), JcsError> {
        Err(KeyText::refuse("a boolean"))
    }
    fn serialize_i8(self, v: i8) -> Result<(), JcsError> {
        self.text(v)
    }
    fn serialize_i16(self, v: i16) -> Result<(), JcsError> {
        self.text(v)
    }
    fn serialize_i32(self, v: i32) -> Result<(), JcsError> {
        self.text(v)
    }
    fn serialize_i64(self, v: i64) -> Result<(), JcsError> {
        self.text(v)
    }
    fn serialize_i128(self, v: i128) -> Result<(), JcsError> {
        self.text(v)
    }
    fn serialize_u8(self, v: u8) -> Result<(), JcsError> {
        self.text(v)
    }
    fn serialize_u16(self, v: u16) -> Result<(), JcsError> {
        self.text(v)
    }
    fn serialize_u32(self, v: u32) -> Result<(), JcsError> {
        self.text(v)
    }
    fn serialize_u64(self, v: u64) -> Result<(), JcsError> {
        self.text(v)
    }
    fn serialize_u128(self, v: u128) -> Result<(), JcsError> {
        self.text(v)
    }
    fn serialize_f32(self, _v: f32) -> Result<(), JcsError> {
        Err(KeyText::refuse("a number"))
    }
    fn serialize_f64(self, _v: f64) -> Result<(), JcsError> {
        Err(KeyText::refuse("a number"))
    }
    fn serialize_char(self, v: char) -> Result<(), JcsError> {
        self.text(v)
    }
    fn serialize_str(self, v: &str) -> Result<(), JcsError> {
        self.0.push_str(v);
        Ok(())
    }
    fn serialize_bytes(self, _v: &[u8]) -> Result<(), JcsError> {
        Err(KeyText::refuse("bytes"))
    }
    fn serialize_none(self) -> Result<(), JcsError> {
        Err(KeyText::refuse("null"))
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), JcsError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), JcsError> {
        Err(KeyText::refuse("null"))
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), JcsError> {
        Err(KeyText::refuse("null"))
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), JcsError> {
        self.text(variant)
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
        _variant: &'static str,
        _value: &T,
    ) -> Result<(), JcsError> {
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
