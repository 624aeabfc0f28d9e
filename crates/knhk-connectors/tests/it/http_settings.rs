//! Load-time checks of the `http` connector's settings.

use knhk_connectors::{Connector, HttpConnector, SettingsError};

use crate::settings;

#[test]
fn check_settings_names_the_bad_setting() {
    let http = HttpConnector::new();
    let ok = "http://h/{id}".to_owned();
    let cases = [
        (
            settings([("method", "GET".to_owned())]),
            "url",
            "url: missing",
        ),
        (
            settings([("url", "http://h/{id".to_owned())]),
            "url",
            "url: unclosed `{` at byte 9",
        ),
        (
            settings([("url", "ftp://h/{id}".to_owned())]),
            "url",
            "url: expected an http or https URL, found scheme ftp",
        ),
        (
            settings([("url", ok.clone()), ("method", "TRACE".to_owned())]),
            "method",
            "method: expected `GET`, `POST`, `PUT`, `PATCH` or `DELETE`, found `TRACE`",
        ),
        (
            settings([("url", ok.clone()), ("header.Bad Name", "v".to_owned())]),
            "header.Bad Name",
            "header.Bad Name: invalid HTTP header name",
        ),
        (
            settings([
                ("url", ok.clone()),
                ("header.X-A", "line\nbreak".to_owned()),
            ]),
            "header.X-A",
            "header.X-A: failed to parse header value",
        ),
        (
            settings([
                ("url", ok.clone()),
                ("header.Idempotency-Key", "v".to_owned()),
            ]),
            "header.Idempotency-Key",
            "header.Idempotency-Key: the connector sets this itself",
        ),
        (
            settings([
                ("url", ok.clone()),
                ("bearer_token", "a".to_owned()),
                ("bearer_token_env", "B".to_owned()),
            ]),
            "bearer_token_env",
            "bearer_token_env: conflicts with bearer_token",
        ),
        (
            settings([
                ("url", ok.clone()),
                ("bearer_token", "a".to_owned()),
                ("header.Authorization", "Basic x".to_owned()),
            ]),
            "header.Authorization",
            "header.Authorization: conflicts with bearer_token",
        ),
        (
            settings([("url", ok.clone()), ("body", "all".to_owned())]),
            "body",
            "body: expected `input` or `none`, found `all`",
        ),
        (
            settings([("url", ok.clone()), ("timeout", "5".to_owned())]),
            "timeout",
            "unknown setting timeout",
        ),
        (
            settings([("url", ok.clone()), ("bearer_token_env", String::new())]),
            "bearer_token_env",
            "bearer_token_env: empty",
        ),
        (
            settings([("url", ok.clone()), ("bearer_token", "a\nb".to_owned())]),
            "bearer_token",
            "bearer_token: failed to parse header value",
        ),
        (
            settings([("url", "http://[::1/{id}".to_owned())]),
            "url",
            "url: http://[::1/x is not a URL: invalid IPv6 address",
        ),
    ];
    for (settings, setting, message) in cases {
        let err = http.check_settings(&settings).unwrap_err();
        assert_eq!(err.setting(), setting, "{settings:?}");
        assert_eq!(err.to_string(), message, "{settings:?}");
    }
    let good = settings([
        (
            "url",
            "https://api.example.com/v1/{id}?k={idempotency_key}".to_owned(),
        ),
        ("method", "patch".to_owned()),
        ("header.X-Tenant", "acme".to_owned()),
        ("bearer_token_env", "API_TOKEN".to_owned()),
        ("body", "none".to_owned()),
    ]);
    assert!(http.check_settings(&good).is_ok());
}

#[test]
fn check_settings_says_what_kind_of_fault() {
    let http = HttpConnector::new();
    let ok = "http://h/{id}".to_owned();
    let err = http
        .check_settings(&settings([("method", "GET".to_owned())]))
        .unwrap_err();
    assert!(matches!(err, SettingsError::Missing { .. }), "{err:?}");
    let err = http
        .check_settings(&settings([("url", ok.clone()), ("body", "all".to_owned())]))
        .unwrap_err();
    match err {
        SettingsError::NotOneOf { allowed, found, .. } => {
            assert_eq!(allowed, ["input", "none"]);
            assert_eq!(found, "all");
        }
        other => panic!("expected NotOneOf, got {other:?}"),
    }
    // A value that does not parse keeps the parser's error as its source.
    let err = http
        .check_settings(&settings([("url", "http://h/{id".to_owned())]))
        .unwrap_err();
    assert!(matches!(err, SettingsError::Malformed { .. }), "{err:?}");
    let source = std::error::Error::source(&err).expect("a source");
    assert_eq!(source.to_string(), "unclosed `{` at byte 9");
    let err = http
        .check_settings(&settings([
            ("url", ok),
            ("header.Idempotency-Key", "v".to_owned()),
        ]))
        .unwrap_err();
    assert!(matches!(err, SettingsError::Reserved { .. }), "{err:?}");
}
