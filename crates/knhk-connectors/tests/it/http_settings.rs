//! Load-time checks of the `http` connector's settings.

use knhk_connectors::{Connector, HttpConnector};

use crate::settings;

#[test]
fn check_settings_names_the_bad_setting() {
    let http = HttpConnector::new();
    let ok = "http://h/{id}".to_owned();
    let cases = [
        (settings([("method", "GET".to_owned())]), "url: missing"),
        (
            settings([("url", "http://h/{id".to_owned())]),
            "url: unclosed `{` at byte 9",
        ),
        (
            settings([("url", "ftp://h/{id}".to_owned())]),
            "url: expected an http or https URL, found scheme ftp",
        ),
        (
            settings([("url", ok.clone()), ("method", "TRACE".to_owned())]),
            "method: expected GET, POST, PUT, PATCH or DELETE, found `TRACE`",
        ),
        (
            settings([("url", ok.clone()), ("header.Bad Name", "v".to_owned())]),
            "header.Bad Name: not a valid header name",
        ),
        (
            settings([
                ("url", ok.clone()),
                ("header.X-A", "line\nbreak".to_owned()),
            ]),
            "header.X-A: not a valid header value",
        ),
        (
            settings([
                ("url", ok.clone()),
                ("header.Idempotency-Key", "v".to_owned()),
            ]),
            "header.Idempotency-Key: the connector sets this header itself",
        ),
        (
            settings([
                ("url", ok.clone()),
                ("bearer_token", "a".to_owned()),
                ("bearer_token_env", "B".to_owned()),
            ]),
            "bearer_token and bearer_token_env: set one, not both",
        ),
        (
            settings([
                ("url", ok.clone()),
                ("bearer_token", "a".to_owned()),
                ("header.Authorization", "Basic x".to_owned()),
            ]),
            "header.Authorization: conflicts with bearer_token or bearer_token_env",
        ),
        (
            settings([("url", ok.clone()), ("body", "all".to_owned())]),
            "body: expected `input` or `none`, found `all`",
        ),
        (
            settings([("url", ok.clone()), ("timeout", "5".to_owned())]),
            "unknown setting timeout",
        ),
    ];
    for (settings, expected) in cases {
        assert_eq!(
            http.check_settings(&settings),
            Err(expected.to_owned()),
            "{settings:?}"
        );
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
    assert_eq!(http.check_settings(&good), Ok(()));
}
