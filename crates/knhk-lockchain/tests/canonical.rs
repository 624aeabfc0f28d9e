//! The canonical event bytes: RFC 8785 vectors for the JSON, the numbers the brief names,
//! independence from map and field order, the golden vectors of `tests/golden/`, and decoding.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, HashMap};

use knhk_core::{
    CaseId, CaseStatus, ElementId, Event, EventKind, FailedAttempt, TaskRef, TimerId, Timestamp,
    WorkItemId,
};
use knhk_lockchain::canonical::{self, CanonicalError, jcs};
use knhk_lockchain::merkle::leaf_hash;
use proptest::prelude::*;
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

fn jcs_text<T: Serialize + ?Sized>(value: &T) -> String {
    let mut out = Vec::new();
    jcs::write(&mut out, value).unwrap();
    String::from_utf8(out).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// RFC 8785 Appendix B: IEEE 754 doubles and their JCS text.
#[test]
fn numbers_match_rfc8785_appendix_b() {
    let vectors: &[(u64, &str)] = &[
        (0x0000000000000000, "0"),
        (0x8000000000000000, "0"),
        (0x0000000000000001, "5e-324"),
        (0x8000000000000001, "-5e-324"),
        (0x7fefffffffffffff, "1.7976931348623157e+308"),
        (0xffefffffffffffff, "-1.7976931348623157e+308"),
        (0x4340000000000000, "9007199254740992"),
        (0xc340000000000000, "-9007199254740992"),
        (0x4430000000000000, "295147905179352830000"),
        (0x44b52d02c7e14af5, "9.999999999999997e+22"),
        (0x44b52d02c7e14af6, "1e+23"),
        (0x44b52d02c7e14af7, "1.0000000000000001e+23"),
        (0x444b1ae4d6e2ef4e, "999999999999999700000"),
        (0x444b1ae4d6e2ef4f, "999999999999999900000"),
        (0x444b1ae4d6e2ef50, "1e+21"),
        (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
        (0x3eb0c6f7a0b5ed8d, "0.000001"),
        (0x41b3de4355555553, "333333333.3333332"),
        (0x41b3de4355555554, "333333333.33333325"),
        (0x41b3de4355555555, "333333333.3333333"),
        (0x41b3de4355555556, "333333333.3333334"),
        (0x41b3de4355555557, "333333333.33333343"),
        (0xbecbf647612f3696, "-0.0000033333333333333333"),
        (0x43143ff3c1cb0959, "1424953923781206.2"),
    ];
    for &(bits, want) in vectors {
        assert_eq!(jcs_text(&f64::from_bits(bits)), want, "{bits:016x}");
    }
}

#[test]
fn numbers_named_in_the_brief() {
    assert_eq!(jcs_text(&1e21), "1e+21");
    assert_eq!(jcs_text(&1e20), "100000000000000000000");
    assert_eq!(jcs_text(&0.1), "0.1");
    assert_eq!(jcs_text(&-0.0), "0");
    assert_eq!(jcs_text(&1.5e-7), "1.5e-7");
    assert_eq!(jcs_text(&1e-7), "1e-7");
    assert_eq!(jcs_text(&0.000001), "0.000001");
    assert_eq!(jcs_text(&2.5), "2.5");
    assert_eq!(jcs_text(&-123.0), "-123");
    assert_eq!(jcs_text(&1e300), "1e+300");
    // Integers are exact, never rounded to a double.
    assert_eq!(jcs_text(&u64::MAX), "18446744073709551615");
    assert_eq!(jcs_text(&i64::MIN), "-9223372036854775808");
    assert_eq!(jcs_text(&i64::MAX), "9223372036854775807");
    assert_eq!(jcs_text(&0u8), "0");
    assert_eq!(
        jcs_text(&u128::MAX),
        "340282366920938463463374607431768211455"
    );
    assert_eq!(
        jcs_text(&i128::MIN),
        "-170141183460469231731687303715884105728"
    );
    // serde_json keeps integers as integers and other numbers as doubles.
    assert_eq!(
        jcs_text(&json!([1, -1, 1.0, 1.5, u64::MAX])),
        "[1,-1,1,1.5,18446744073709551615]"
    );
    // An f32 by its own shortest digits, as serde_json writes it.
    assert_eq!(jcs_text(&0.1f32), "0.1");
}

#[test]
fn non_finite_numbers_are_refused() {
    for x in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let err = jcs::write(&mut Vec::new(), &x).unwrap_err();
        assert!(err.0.contains("no JSON form"), "{err}");
    }
}

/// RFC 8785 §3.2.4: the whole transformation of its example.
#[test]
fn rfc8785_example() {
    let input = r#"{
        "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
        "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
        "literals": [null, true, false]
    }"#;
    let value: Value = serde_json::from_str(input).unwrap();
    assert_eq!(
        jcs_text(&value),
        r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#
    );
}

/// RFC 8785 §3.2.3: keys sort by UTF-16 code units (an emoji, a surrogate pair, before U+FB33).
#[test]
fn keys_sort_by_utf16_code_units() {
    let input = r#"{
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\ud83d\ude00": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis"
    }"#;
    let value: Value = serde_json::from_str(input).unwrap();
    let text = jcs_text(&value);
    let order: Vec<&str> = [
        "\"\\r\"",
        "\"1\"",
        "\"\u{80}\"",
        "\"\u{f6}\"",
        "\"\u{20ac}\"",
        "\"\u{1f600}\"",
        "\"\u{fb33}\"",
    ]
    .to_vec();
    let positions: Vec<usize> = order.iter().map(|k| text.find(k).unwrap()).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
    // UTF-8 byte order would put U+FB33 before the emoji: serde_json's own map does.
    let plain = serde_json::to_string(&value).unwrap();
    assert!(plain.find('\u{fb33}').unwrap() < plain.find('\u{1f600}').unwrap());
}

#[test]
fn strings_are_escaped_as_jcs_says() {
    let all_controls: String = (0u8..0x20).map(char::from).collect();
    assert_eq!(
        jcs_text(&all_controls),
        "\"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r\\u000e\\u000f\
         \\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f\""
    );
    // Only `"`, `\` and controls are escaped: `/`, DEL, U+2028 and non-ASCII stay as they are.
    assert_eq!(
        jcs_text("a\"b\\c/d\u{7f}e\u{2028}f\u{e9}\u{1f600}"),
        "\"a\\\"b\\\\c/d\u{7f}e\u{2028}f\u{e9}\u{1f600}\""
    );
    assert_eq!(jcs_text(&'\n'), "\"\\n\"");
}

#[test]
fn map_and_field_order_do_not_change_the_bytes() {
    let keys: Vec<String> = (0..200)
        .map(|i| format!("k{}", (i * 7919) % 1000))
        .collect();
    let hashed: HashMap<&str, usize> = keys.iter().map(|k| (k.as_str(), k.len())).collect();
    let sorted: BTreeMap<&str, usize> = keys.iter().map(|k| (k.as_str(), k.len())).collect();
    assert_eq!(jcs_text(&hashed), jcs_text(&sorted));

    #[derive(Serialize)]
    struct Ab {
        a: u8,
        b: Vec<u8>,
    }
    #[derive(Serialize)]
    struct Ba {
        b: Vec<u8>,
        a: u8,
    }
    let ab = jcs_text(&Ab { a: 1, b: vec![2] });
    assert_eq!(ab, r#"{"a":1,"b":[2]}"#);
    assert_eq!(ab, jcs_text(&Ba { b: vec![2], a: 1 }));
}

#[test]
fn nested_objects_sort_at_every_level() {
    let value = json!({"z": {"y": [ {"b": 1, "a": 2} ], "x": null}, "a": {"d": true, "c": "é"}});
    assert_eq!(
        jcs_text(&value),
        r#"{"a":{"c":"é","d":true},"z":{"x":null,"y":[{"a":2,"b":1}]}}"#
    );
}

#[test]
fn repeated_keys_are_refused() {
    struct Twice;
    impl Serialize for Twice {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeMap;
            let mut m = s.serialize_map(Some(2))?;
            m.serialize_entry("k", &1)?;
            m.serialize_entry("k", &2)?;
            m.end()
        }
    }
    let err = jcs::write(&mut Vec::new(), &Twice).unwrap_err();
    assert_eq!(err.0, "the key \"k\" appears twice in one object");
}

#[test]
fn enums_are_written_as_serde_json_writes_them() {
    #[derive(Serialize)]
    enum E {
        Unit,
        New(u8),
        Tuple(u8, u8),
        Struct { b: u8, a: u8 },
    }
    assert_eq!(jcs_text(&E::Unit), r#""Unit""#);
    assert_eq!(jcs_text(&E::New(1)), r#"{"New":1}"#);
    assert_eq!(jcs_text(&E::Tuple(1, 2)), r#"{"Tuple":[1,2]}"#);
    assert_eq!(
        jcs_text(&E::Struct { b: 1, a: 2 }),
        r#"{"Struct":{"a":2,"b":1}}"#
    );
    assert_eq!(jcs_text(&(1, "x", None::<u8>, ())), r#"[1,"x",null,null]"#);
}

proptest! {
    /// Every finite double is written in a form that reads back as the same double, and the
    /// text is what serde_json writes for it up to layout (same value).
    #[test]
    fn doubles_read_back_exactly(bits in any::<u64>()) {
        let x = f64::from_bits(bits);
        prop_assume!(x.is_finite());
        let text = jcs_text(&x);
        let back: f64 = text.parse().unwrap();
        prop_assert!(back == x, "{x:e} -> {text} -> {back:e}");
    }

    /// JCS over any JSON value equals JCS over the same value read back from serde_json's
    /// text of it, and again over its own output: the form is a fixed point.
    #[test]
    fn canonical_json_is_a_fixed_point(value in json_value()) {
        let once = jcs_text(&value);
        let reread: Value = serde_json::from_str(&once).unwrap();
        prop_assert_eq!(&once, &jcs_text(&reread));
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        "\\PC{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("\\PC{0,6}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

// ---- the event encoding ----

fn case(n: u128) -> CaseId {
    CaseId(Uuid::from_u128(n))
}

fn task(name: &str) -> TaskRef {
    TaskRef {
        net_instance: 0,
        task: ElementId::new(name),
    }
}

fn data(value: Value) -> serde_json::Map<String, Value> {
    match value {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}

/// The events of the golden vectors: several kinds, unicode, nested data, floats, extremes.
fn golden_events() -> Vec<(&'static str, CaseId, Event)> {
    let c = case(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
    let item = WorkItemId(Uuid::from_u128(0xfeed_0000_0000_0000_0000_0000_0000_0001));
    let timer = TimerId(Uuid::from_u128(7));
    vec![
        (
            "case_created",
            c,
            Event {
                seq: 1,
                time: Timestamp(1_767_225_600_000),
                kind: EventKind::CaseCreated {
                    workflow: "order-approval".to_owned(),
                    data: data(json!({
                        "customer": {"name": "Zoë Ångström", "tier": "gold", "tags": ["a", "b"]},
                        "amount": 1234.5,
                        "quantity": 3,
                        "ratio": 0.1,
                        "big": u64::MAX,
                        "negative": i64::MIN,
                        "tiny": 1.5e-7,
                        "huge": 1e21,
                        "zero": -0.0,
                        "note": "line1\nline2\t\"quoted\" \\ /",
                        "€": "euro", "😀": "emoji", "דּ": "dalet",
                        "empty": {}, "list": [], "nothing": null, "yes": true
                    })),
                },
            },
        ),
        (
            "case_state_changed",
            c,
            Event {
                seq: 2,
                time: Timestamp(1_767_225_600_001),
                kind: EventKind::CaseStateChanged {
                    from: CaseStatus::Created,
                    to: CaseStatus::Running,
                    reason: None,
                },
            },
        ),
        (
            "case_cancelled_with_reason",
            c,
            Event {
                seq: 3,
                time: Timestamp(1_767_225_600_002),
                kind: EventKind::CaseStateChanged {
                    from: CaseStatus::Running,
                    to: CaseStatus::Cancelled,
                    reason: Some("annulé par l'opérateur — 取消".to_owned()),
                },
            },
        ),
        (
            "task_started",
            c,
            Event {
                seq: 4,
                time: Timestamp(1_767_225_601_000),
                kind: EventKind::TaskStarted {
                    task: TaskRef {
                        net_instance: 3,
                        task: ElementId::new("review"),
                    },
                    instances: vec![
                        json!({"reviewer": "ann"}),
                        json!({"reviewer": "bob"}),
                        json!(42),
                    ],
                },
            },
        ),
        (
            "work_item_completed",
            c,
            Event {
                seq: 5,
                time: Timestamp(1_767_225_602_000),
                kind: EventKind::WorkItemCompleted {
                    item,
                    user: "ann".to_owned(),
                    output: json!({"approved": true, "score": 97.25, "comments": [{"at": 1, "text": "ok"}]}),
                },
            },
        ),
        (
            "connector_call_succeeded",
            c,
            Event {
                seq: 6,
                time: Timestamp(1_767_225_603_000),
                kind: EventKind::ConnectorCallSucceeded {
                    item,
                    output: json!({"status": 200, "body": {"id": "x-1"}}),
                    failed_attempts: vec![FailedAttempt {
                        attempt: 1,
                        error: "503 Service Unavailable".to_owned(),
                    }],
                },
            },
        ),
        (
            "task_failed_without_produced",
            c,
            Event {
                seq: 7,
                time: Timestamp(1_767_225_604_000),
                kind: EventKind::TaskFailed {
                    task: task("charge"),
                    reason: "card declined".to_owned(),
                    produced: vec![],
                },
            },
        ),
        (
            "timer_armed",
            c,
            Event {
                seq: 8,
                time: Timestamp(-1),
                kind: EventKind::TimerArmed {
                    timer,
                    task: task("remind"),
                    fires_at: Timestamp(i64::MAX),
                },
            },
        ),
        (
            "data_updated",
            case(1),
            Event {
                seq: u64::MAX,
                time: Timestamp(i64::MIN),
                kind: EventKind::DataUpdated {
                    changes: data(
                        json!({"b": [1.0, 2.5, -3e-9], "a": {"nested": {"deeper": [null]}}}),
                    ),
                },
            },
        ),
        (
            "tokens_removed",
            case(2),
            Event {
                seq: 9,
                time: Timestamp(0),
                kind: EventKind::TokensRemoved {
                    net_instance: 0,
                    condition: ElementId::new("c\u{0}ontrol"),
                    count: u32::MAX,
                },
            },
        ),
    ]
}

const GOLDEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/golden/canonical-v1.json"
);

/// The golden vectors: each event's canonical bytes (hex) and leaf hash are recorded in
/// `tests/golden/canonical-v1.json`; any change to the encoding (or to how an event kind
/// serializes) fails here. `KNHK_WRITE_GOLDEN=1` rewrites the file, for a new encoding only.
#[test]
fn golden_vectors_do_not_change() {
    let mut vectors = Vec::new();
    for (name, case, event) in golden_events() {
        let bytes = canonical::event_bytes(case, &event).unwrap();
        vectors.push(json!({
            "name": name,
            "case": case,
            "event": event,
            "text": String::from_utf8_lossy(&bytes[1..]),
            "bytes": hex(&bytes),
            "leaf": hex(&leaf_hash(&bytes)),
        }));
    }
    let written = serde_json::to_string_pretty(&vectors).unwrap() + "\n";
    if std::env::var("KNHK_WRITE_GOLDEN").as_deref() == Ok("1") {
        std::fs::write(GOLDEN, &written).unwrap();
    }
    let golden = std::fs::read_to_string(GOLDEN).unwrap();
    let golden: Vec<Value> = serde_json::from_str(&golden).unwrap();
    assert_eq!(golden.len(), vectors.len());
    for (want, have) in golden.iter().zip(&vectors) {
        assert_eq!(want["name"], have["name"]);
        assert_eq!(want["bytes"], have["bytes"], "bytes of {}", want["name"]);
        assert_eq!(want["leaf"], have["leaf"], "leaf of {}", want["name"]);
        // The file's event, read back, encodes to the file's bytes: the vectors hold for a
        // verifier that starts from the event JSON.
        let event: Event = serde_json::from_value(want["event"].clone()).unwrap();
        let case: CaseId = serde_json::from_value(want["case"].clone()).unwrap();
        let bytes = canonical::event_bytes(case, &event).unwrap();
        assert_eq!(Value::from(hex(&bytes)), want["bytes"], "{}", want["name"]);
    }
}

/// The worked example of docs/lockchain.md.
#[test]
fn documented_example() {
    let event = Event {
        seq: 2,
        time: Timestamp(1_767_225_600_001),
        kind: EventKind::CaseStateChanged {
            from: CaseStatus::Created,
            to: CaseStatus::Running,
            reason: None,
        },
    };
    let c = case(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
    let bytes = canonical::event_bytes(c, &event).unwrap();
    assert_eq!(bytes[0], 0x01);
    assert_eq!(
        std::str::from_utf8(&bytes[1..]).unwrap(),
        r#"{"case":"01234567-89ab-cdef-0123-456789abcdef","event":{"from":"created","to":"running","type":"case_state_changed"},"seq":2,"time":1767225600001}"#
    );
    assert_eq!(
        hex(&canonical::event_leaf(c, &event).unwrap()),
        hex(&leaf_hash(&bytes))
    );
}

#[test]
fn the_same_event_gives_the_same_bytes_and_leaf() {
    for (_, case, event) in golden_events() {
        let a = canonical::event_bytes(case, &event).unwrap();
        let b = canonical::event_bytes(case, &event.clone()).unwrap();
        assert_eq!(a, b);
        assert_eq!(canonical::event_leaf(case, &event).unwrap(), leaf_hash(&a));
        // Another case, or another seq, is another leaf.
        let other = canonical::event_bytes(CaseId(Uuid::from_u128(99)), &event).unwrap();
        assert_ne!(a, other);
    }
}

#[test]
fn decode_reads_back_every_golden_event() {
    for (name, case, event) in golden_events() {
        let bytes = canonical::event_bytes(case, &event).unwrap();
        let decoded = canonical::decode(&bytes).unwrap();
        assert_eq!(decoded.case, case, "{name}");
        assert_eq!(decoded.event.seq, event.seq, "{name}");
        assert_eq!(
            canonical::event_bytes(decoded.case, &decoded.event).unwrap(),
            bytes,
            "{name}"
        );
    }
}

#[test]
fn decode_refuses_what_is_not_canonical() {
    let (_, case, event) = golden_events().swap_remove(1);
    let bytes = canonical::event_bytes(case, &event).unwrap();
    let text = std::str::from_utf8(&bytes[1..]).unwrap();
    let with = |t: &str| [&[1u8][..], t.as_bytes()].concat();

    let err = |b: &[u8]| match canonical::decode(b) {
        Err(CanonicalError::Bytes(m)) => m,
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert_eq!(err(&[]), "empty");
    assert_eq!(
        err(&[&[2u8][..], text.as_bytes()].concat()),
        "version byte 0x02, expected 0x01"
    );
    assert!(err(&with(&text.replace(',', ", "))).starts_with("not in canonical form"));
    assert!(
        err(&with(&text.replace(
            r#""seq":2,"time""#,
            r#""time":1767225600001,"seq":2,"x""#
        )))
        .starts_with("not an event's JSON")
    );
    assert!(err(&with(&text.replace("\"seq\":2", "\"seq\":2.0"))).starts_with("not "));
    assert!(err(&with(&text.replace("}", ",\"extra\":1}"))).starts_with("not an event's JSON"));
    assert!(err(&with("{")).starts_with("not an event's JSON"));
    // Keys out of order decode but are not canonical.
    let reordered = text.replace(r#"{"case":"01234567-89ab-cdef-0123-456789abcdef","#, "{");
    let reordered =
        reordered.replacen("}", r#"},"case":"01234567-89ab-cdef-0123-456789abcdef""#, 1);
    assert!(err(&with(&reordered)).starts_with("not in canonical form"));
}

/// A number as serde_json's `arbitrary_precision` feature hands it over (a private struct
/// holding the number's text) is written as the same number without the feature would be.
#[test]
fn numbers_as_arbitrary_precision_text_are_written_alike() {
    struct Text(&'static str);
    impl Serialize for Text {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeStruct;
            let mut st = s.serialize_struct("$serde_json::private::Number", 1)?;
            st.serialize_field("$serde_json::private::Number", self.0)?;
            st.end()
        }
    }
    for (text, want) in [
        ("1", "1"),
        ("-7", "-7"),
        ("1.0", "1"),
        ("1e2", "100"),
        ("0.10", "0.1"),
        ("18446744073709551615", "18446744073709551615"),
        ("18446744073709551616", "18446744073709552000"),
        ("-9223372036854775808", "-9223372036854775808"),
        ("1E21", "1e+21"),
    ] {
        assert_eq!(jcs_text(&Text(text)), want, "{text}");
        let plain: Value = serde_json::from_str(text).unwrap();
        assert_eq!(jcs_text(&plain), want, "{text} without the feature");
    }
}

/// `write_event` appends, so one buffer serves many events.
#[test]
fn write_event_appends_to_the_buffer() {
    let events = golden_events();
    let mut out = Vec::new();
    let mut ends = Vec::new();
    for (_, case, event) in &events {
        canonical::write_event(&mut out, *case, event).unwrap();
        ends.push(out.len());
    }
    let mut start = 0;
    for ((_, case, event), end) in events.iter().zip(ends) {
        assert_eq!(
            out[start..end],
            canonical::event_bytes(*case, event).unwrap()[..]
        );
        start = end;
    }
}

/// Every event of the recorded histories of knhk-spec (real runs: 124 histories, about 3000
/// events of 29 kinds) has canonical bytes that decode back to the same event and that, read
/// as plain JSON, say the same as the event's own JSON.
#[test]
fn every_recorded_event_encodes_and_decodes() {
    fn files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files(&path, out);
            } else if path.to_string_lossy().ends_with(".events.jsonl") {
                out.push(path);
            }
        }
    }
    let root =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../knhk-spec/tests/histories");
    let mut paths = Vec::new();
    files(&root, &mut paths);
    assert!(
        paths.len() >= 100,
        "{} histories under {}",
        paths.len(),
        root.display()
    );
    let mut kinds = std::collections::BTreeSet::new();
    let mut events = 0;
    for (i, path) in paths.iter().enumerate() {
        let c = case(i as u128 + 1);
        for line in std::fs::read_to_string(path).unwrap().lines() {
            let event: Event = serde_json::from_str(line).unwrap();
            let bytes = canonical::event_bytes(c, &event).unwrap();
            let decoded = canonical::decode(&bytes).unwrap();
            assert_eq!(decoded.case, c);
            assert_eq!(decoded.event, event, "{}", path.display());
            let plain: Value = serde_json::from_slice(&bytes[1..]).unwrap();
            let want = json!({
                "case": c,
                "event": serde_json::to_value(&event.kind).unwrap(),
                "seq": event.seq,
                "time": event.time,
            });
            assert_eq!(plain, want, "{}", path.display());
            kinds.insert(event.kind.name());
            events += 1;
        }
    }
    assert!(
        events > 2000 && kinds.len() > 25,
        "{events} events of {} kinds",
        kinds.len()
    );
}
