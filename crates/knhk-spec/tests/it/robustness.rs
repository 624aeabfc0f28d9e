//! Whatever the bytes, reading never panics: random input and damaged versions of the example
//! files give `Ok` or `Err`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::path::PathBuf;

use knhk_spec::{Options, Source, load_turtle, load_turtle_with, parse_turtle};
use proptest::prelude::*;

use crate::damage::{Damage, apply};

fn corpus() -> Vec<String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut texts = Vec::new();
    for dir in ["legacy", "patterns"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
        paths.sort();
        for path in paths {
            if path.extension().is_some_and(|e| e == "ttl") {
                texts.push(std::fs::read_to_string(path).unwrap());
            }
        }
    }
    assert!(texts.len() >= 8, "the example files are missing");
    texts
}

/// Reads `bytes` both ways; the results are only required to exist.
fn read(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    for base_iri in ["file:///fuzz/wf.ttl", ""] {
        let source = Source {
            name: "fuzz.ttl",
            base_iri,
            text: &text,
        };
        let parsed = parse_turtle(&source);
        let loaded = load_turtle(&source);
        // The static checks of `validate` run on whatever loads.
        if let Ok(with_notes) = load_turtle_with(&source, &Options::default()) {
            for w in with_notes.warnings() {
                assert!(!w.to_string().is_empty());
            }
        }
        // A definition that validates also parses.
        assert!(loaded.is_err() || parsed.is_ok());
        if let Err(e) = parsed {
            assert!(!e.to_string().is_empty());
        }
    }
}

fn damage() -> impl Strategy<Value = Damage> {
    let tokens = prop_oneof![
        Just(" .".to_owned()),
        Just(" ;".to_owned()),
        Just("[".to_owned()),
        Just("\"".to_owned()),
        Just("<#".to_owned()),
        Just(" yawl:flowsInto <#start>".to_owned()),
        Just(" yawl:hasRemovesTokens <#end>".to_owned()),
        Just(" a yawl:MultipleInstanceTask".to_owned()),
        Just(" yawl:maximum \"-1\"".to_owned()),
        Just(" yawl:isRootNet true".to_owned()),
        any::<String>(),
    ];
    crate::damage::damage(tokens)
}

/// How many inputs each property tries: 256, or `KNHK_FUZZ_CASES` for a longer fuzzing run.
fn fuzz_cases() -> u32 {
    std::env::var("KNHK_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: fuzz_cases(), ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        read(&bytes);
    }

    #[test]
    fn random_turtle_like_text_never_panics(text in "(@prefix yawl: <http://www.yawlfoundation.org/yawlschema#> \\.|<#[a-z]{1,2}>|yawl:[a-zA-Z]{1,16}|\\[|\\]|;|,|\\.|\"[a-z0-9]{0,3}\"|[0-9]{1,3}| )*") {
        read(text.as_bytes());
    }

    #[test]
    fn damaged_examples_never_panic(
        file in any::<prop::sample::Index>(),
        damages in proptest::collection::vec(damage(), 1..4),
    ) {
        let corpus = corpus();
        let mut text = corpus[file.index(corpus.len())].clone();
        for d in &damages {
            text = String::from_utf8_lossy(&apply(&text, d)).into_owned();
        }
        read(text.as_bytes());
    }
}

#[test]
fn every_example_reads_without_panic_after_each_line_is_deleted() {
    for text in corpus() {
        let lines = text.lines().count();
        for line in 0..lines {
            read(&apply(&text, &Damage::DeleteLine { line }));
        }
    }
}
