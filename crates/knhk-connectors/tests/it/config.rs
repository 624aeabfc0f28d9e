//! `[connectors.NAME]` tables: what `InstanceConfig::parse` refuses, how a kind takes its keys
//! through `Keys` (unknown keys, secrets from the file or from a variable), and the pool's
//! defaults.

use std::time::Duration;

use knhk_connectors::{ConfigError, InstanceConfig, PoolConfig};
use serde_json::{Value, json};

fn table(value: Value) -> serde_json::Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not a table: {other}"),
    }
}

fn refused(name: &str, value: Value) -> ConfigError {
    InstanceConfig::parse(name, &table(value)).unwrap_err()
}

#[test]
fn a_table_without_a_kind_is_refused_naming_the_key() {
    let e = refused("orders", json!({"url": "postgres://h/db"}));
    assert_eq!((e.key.as_str(), e.problem.as_str()), ("kind", "missing"));
    assert_eq!(e.to_string(), "connectors.orders.kind: missing");
    let e = refused("orders", json!({"kind": 5}));
    assert_eq!(
        e.to_string(),
        "connectors.orders.kind: must be a non-empty string"
    );
    let e = refused("or ders", json!({"kind": "http"}));
    assert!(e.problem.contains("letters, digits"), "{e}");
}

#[test]
fn bad_pool_keys_are_refused_naming_the_key() {
    let cases = [
        (
            json!({"max_size": 0}),
            "connectors.db.pool.max_size: must be at least 1",
        ),
        (
            json!({"max_size": "ten"}),
            "connectors.db.pool.max_size: must be a whole number",
        ),
        (
            json!({"max_size": -1}),
            "connectors.db.pool.max_size: must be a whole number",
        ),
        (
            json!({"acquire_timeout_ms": 0}),
            "connectors.db.pool.acquire_timeout_ms: must be at least 1",
        ),
        (
            json!({"idle_timeout_ms": 1.5}),
            "connectors.db.pool.idle_timeout_ms: must be a whole number",
        ),
    ];
    for (pool, expected) in cases {
        let e = refused("db", json!({"kind": "postgres", "pool": pool}));
        assert_eq!(e.to_string(), expected);
    }
    let e = refused("db", json!({"kind": "postgres", "pool": {"size": 3}}));
    assert_eq!(e.key, "pool.size");
    assert!(e.problem.starts_with("unknown key"), "{e}");
    let e = refused("db", json!({"kind": "postgres", "pool": 3}));
    assert_eq!(e.to_string(), "connectors.db.pool: must be a table");
}

#[test]
fn pool_keys_are_read_and_zero_turns_expiry_off() {
    let c = InstanceConfig::parse("db", &table(json!({"kind": "postgres"}))).unwrap();
    assert_eq!(c.pool, PoolConfig::default());
    assert_eq!(
        (c.pool.max_size, c.pool.acquire_timeout),
        (16, Duration::from_secs(5))
    );
    assert_eq!(c.pool.idle_timeout, Some(Duration::from_secs(300)));
    assert_eq!(c.pool.max_lifetime, Some(Duration::from_secs(1800)));
    let c = InstanceConfig::parse(
        "db",
        &table(json!({"kind": "postgres", "pool": {
            "max_size": 2, "acquire_timeout_ms": 250, "idle_timeout_ms": 0, "max_lifetime_ms": 60000
        }})),
    )
    .unwrap();
    assert_eq!(
        c.pool,
        PoolConfig {
            max_size: 2,
            acquire_timeout: Duration::from_millis(250),
            idle_timeout: None,
            max_lifetime: Some(Duration::from_secs(60)),
        }
    );
}

#[test]
fn keys_no_kind_takes_are_refused_by_finish() {
    let c = InstanceConfig::parse(
        "db",
        &table(json!({"kind": "postgres", "url": "postgres://h/db", "colour": "red"})),
    )
    .unwrap();
    let mut keys = c.keys();
    assert_eq!(keys.required("url").unwrap(), "postgres://h/db");
    let e = keys.finish().unwrap_err();
    assert_eq!(e.key, "colour");
    assert!(
        e.to_string()
            .starts_with("connectors.db.colour: unknown key for kind postgres (known: url"),
        "{e}"
    );
    // `kind` and `pool` are the framework's, never the kind's unknown keys.
    let c = InstanceConfig::parse("db", &table(json!({"kind": "postgres", "pool": {}}))).unwrap();
    assert!(c.keys().finish().is_ok());
}

#[test]
fn typed_keys_name_the_key_at_fault() {
    let c = InstanceConfig::parse(
        "q",
        &table(json!({"kind": "amqp", "port": "five", "tls": 1, "url": "", "vhost": 3})),
    )
    .unwrap();
    let mut keys = c.keys();
    assert_eq!(
        keys.number("port").unwrap_err().to_string(),
        "connectors.q.port: must be a whole number"
    );
    assert_eq!(
        keys.boolean("tls").unwrap_err().to_string(),
        "connectors.q.tls: must be true or false"
    );
    assert_eq!(
        keys.string("url").unwrap_err().to_string(),
        "connectors.q.url: empty"
    );
    assert_eq!(
        keys.string("vhost").unwrap_err().to_string(),
        "connectors.q.vhost: must be a string"
    );
    assert_eq!(
        keys.required("exchange").unwrap_err().to_string(),
        "connectors.q.exchange: missing"
    );
}

#[test]
fn a_secret_comes_from_the_file_or_a_variable_and_never_shows() {
    let c = InstanceConfig::parse(
        "db",
        &table(json!({"kind": "postgres", "password": "hunter2"})),
    )
    .unwrap();
    let secret = c.keys().secret("password").unwrap().unwrap();
    assert_eq!(secret.expose(), "hunter2");
    assert_eq!(format!("{secret} {secret:?}"), "*** ***");
    assert!(!format!("{c:?}").is_empty());

    let env = |name: &str| (name == "DB_PASSWORD_SET").then(|| "s3cret".to_owned());
    let c = InstanceConfig::parse(
        "db",
        &table(json!({"kind": "postgres", "password_env": "DB_PASSWORD_SET"})),
    )
    .unwrap();
    let mut keys = c.keys_with_env(&env);
    assert_eq!(keys.secret("password").unwrap().unwrap().expose(), "s3cret");
    assert!(keys.finish().is_ok());
}

#[test]
fn a_password_env_naming_an_unset_variable_names_the_variable_not_a_value() {
    let env = |_: &str| None;
    let c = InstanceConfig::parse(
        "db",
        &table(json!({"kind": "postgres", "password_env": "KNHK_TEST_UNSET_PASSWORD"})),
    )
    .unwrap();
    let e = c.keys_with_env(&env).secret("password").unwrap_err();
    assert_eq!(e.key, "password_env");
    assert_eq!(
        e.to_string(),
        "connectors.db.password_env: the environment variable KNHK_TEST_UNSET_PASSWORD is not set"
    );
    // Both forms at once are refused, without showing the one written in the file.
    let c = InstanceConfig::parse(
        "db",
        &table(json!({"kind": "postgres", "password": "hunter2", "password_env": "X"})),
    )
    .unwrap();
    let e = c.keys_with_env(&env).secret("password").unwrap_err();
    assert_eq!(
        e.to_string(),
        "connectors.db.password: conflicts with password_env"
    );
    assert!(!e.to_string().contains("hunter2"));
}

#[test]
fn kinds_build_named_http_instances_and_refuse_unknown_kinds() {
    let c = InstanceConfig::parse(
        "crm",
        &table(json!({"kind": "http", "pool": {"max_size": 2}})),
    )
    .unwrap();
    let built = knhk_connectors::kinds::build(&c).unwrap();
    assert_eq!((built.name(), built.kind()), ("crm", "http"));
    let c = InstanceConfig::parse("crm", &table(json!({"kind": "http", "url": "x"}))).unwrap();
    let e = knhk_connectors::kinds::build(&c).unwrap_err();
    assert_eq!(e.key, "url");
    let c = InstanceConfig::parse("x", &table(json!({"kind": "ftp"}))).unwrap();
    let e = knhk_connectors::kinds::build(&c).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("connectors.x.kind: unknown kind `ftp`"),
        "{e}"
    );
}
