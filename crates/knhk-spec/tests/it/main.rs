//! Integration tests of knhk-spec: parsing, validation, writing, the legacy files and the patterns.

mod damage;
mod editor;
mod legacy;
mod patterns;
mod robustness;
mod roundtrip;
mod validation;
mod xml;
