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
use std::fmt;

use serde::ser::{self, Serialize};

mod key;
mod number;

use key::KeyText;
use number::{write_f32, write_number_text};
pub use number::{write_f64, write_integer};

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

/// Appends the canonical JSON of `value` to `out`; on error `out` ends with part of it.
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
