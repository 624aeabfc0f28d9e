//! The text of a map key: JSON object keys are strings, and serde_json also takes characters
//! and integers (as their digits); the text goes straight into the key arena of the object.

use std::fmt::{self, Write as _};

use serde::ser::{self, Serialize};

use super::JcsError;

/// Appends a map key's text to the key arena: strings and characters as they are, integers
/// as their digits (as serde_json does); anything else is refused.
pub(super) struct KeyText<'a>(pub(super) &'a mut String);

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
