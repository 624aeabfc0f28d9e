//! Integration tests of knhk-spec: parsing, validation, writing, the legacy files, the patterns and
//! the corpus of recorded histories.

mod damage;
mod editor;
mod histories;
mod legacy;
mod patterns;
mod robustness;
mod roundtrip;
mod validation;
mod warnings;
mod xml;
