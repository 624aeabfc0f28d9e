//! The `postgres` connector against the PostgreSQL server on this machine: statements, the
//! conversions both ways, typed errors, and the registry's timeout, retries and breaker.

use std::sync::Arc;
use std::time::Duration;

use knhk_connectors::{
    Binding, CallError, CallRequest, Connector, InstanceConfig, PostgresConnector, kinds,
};
use serde_json::{Value, json};

use crate::services::{
    admin, config, eventually, policy, postgres, postgres_url, registry, task, unique,
};

/// A table of its own for one test, dropped at the end of it.
pub struct Table {
    pub name: String,
}

impl Table {
    pub async fn create(columns: &str) -> Table {
        let name = unique("knhk_conn");
        admin()
            .await
            .batch_execute(&format!("CREATE TABLE {name} ({columns})"))
            .await
            .unwrap();
        Table { name }
    }

    pub async fn drop(self) {
        admin()
            .await
            .batch_execute(&format!("DROP TABLE {}", self.name))
            .await
            .unwrap();
    }
}

/// Prepares `settings` on `instance` and makes one attempt.
pub async fn call(
    instance: &dyn Connector,
    settings: &[(&str, &str)],
    input: Value,
    key: &str,
) -> Result<Value, CallError> {
    let binding: Arc<dyn Binding> = instance.prepare(&task(settings)).unwrap();
    binding
        .call(CallRequest {
            input,
            idempotency_key: key.to_owned(),
            attempt: 1,
            timeout: Duration::from_secs(10),
        })
        .await
}

#[tokio::test]
async fn parameters_and_rows_convert_between_json_and_postgres_types() {
    let pg = postgres(json!({}));
    let t = Table::create(
        "id int8 PRIMARY KEY, small int2, n int4, f float8, amount numeric(12,2), name text, \
         ok bool, doc jsonb, at timestamptz, day date, uid uuid, raw bytea, tags text[], \
         nums int8[], missing text",
    )
    .await;
    let insert = format!(
        "INSERT INTO {} (id, small, n, f, amount, name, ok, doc, at, day, uid, raw, tags, nums, \
         missing) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        t.name
    );
    let params = "[order_id, 7, 42, 1.5, amount, customer, true, {'lines': lines}, \
                  '2026-01-02T03:04:05.5Z', '2026-01-02', '67e55044-10b1-426f-9247-bb680e5fe0c8', \
                  'aGVsbG8=', ['a', 'b'], [1, 2, 3], null]";
    let input = json!({ "order_id": 9_007_199_254_740_993_i64, "amount": "1234.5",
                        "customer": "Ann", "lines": [{"sku": "x", "qty": 2}] });
    let out = call(
        &*pg,
        &[("statement", &insert), ("params", params)],
        input,
        "k1",
    )
    .await
    .unwrap();
    assert_eq!(out, json!({ "rows": [], "row_count": 1 }));

    let select = format!("SELECT * FROM {} WHERE id = $1", t.name);
    let out = call(
        &*pg,
        &[("statement", &select), ("params", "[order_id]")],
        json!({ "order_id": 9_007_199_254_740_993_i64 }),
        "k2",
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        json!({ "rows": [{
            "id": 9_007_199_254_740_993_i64, "small": 7, "n": 42, "f": 1.5,
            "amount": "1234.50", "name": "Ann", "ok": true,
            "doc": { "lines": [{"sku": "x", "qty": 2}] },
            "at": "2026-01-02T03:04:05.5Z", "day": "2026-01-02",
            "uid": "67e55044-10b1-426f-9247-bb680e5fe0c8", "raw": "aGVsbG8=",
            "tags": ["a", "b"], "nums": [1, 2, 3], "missing": null,
        }], "row_count": 1 })
    );
    t.drop().await;
}

#[tokio::test]
async fn row_count_counts_the_rows_a_statement_touched() {
    let pg = postgres(json!({}));
    let t = Table::create("id int PRIMARY KEY, state text").await;
    let fill = format!(
        "INSERT INTO {} SELECT g, 'new' FROM generate_series(1, 5) g",
        t.name
    );
    call(&*pg, &[("statement", &fill)], json!({}), "k")
        .await
        .unwrap();
    let update = format!("UPDATE {} SET state = $1 WHERE id <= $2", t.name);
    let out = call(
        &*pg,
        &[("statement", &update), ("params", "[state, upto]")],
        json!({ "state": "done", "upto": 3 }),
        "k",
    )
    .await
    .unwrap();
    assert_eq!(out, json!({ "rows": [], "row_count": 3 }));
    // Rows and their count from one statement; a CTE orders what RETURNING gives.
    let select = format!(
        "WITH u AS (UPDATE {} SET state = 'x' WHERE id > 3 RETURNING id) \
         SELECT id FROM u ORDER BY id",
        t.name
    );
    let out = call(&*pg, &[("statement", &select)], json!({}), "k")
        .await
        .unwrap();
    assert_eq!(
        out,
        json!({ "rows": [{"id": 4}, {"id": 5}], "row_count": 2 })
    );
    t.drop().await;
}

#[tokio::test]
async fn idempotency_param_lets_a_repeated_call_insert_once() {
    let pg = postgres(json!({}));
    let t = Table::create("key text PRIMARY KEY, amount int").await;
    let insert = format!(
        "INSERT INTO {} (amount, key) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        t.name
    );
    let settings = [
        ("statement", insert.as_str()),
        ("params", "[amount]"),
        ("idempotency_param", "true"),
    ];
    let first = call(&*pg, &settings, json!({ "amount": 10 }), "case/task/1").await;
    let again = call(&*pg, &settings, json!({ "amount": 10 }), "case/task/1").await;
    let other = call(&*pg, &settings, json!({ "amount": 10 }), "case/task/2").await;
    assert_eq!(first.unwrap()["row_count"], 1);
    assert_eq!(
        again.unwrap()["row_count"],
        0,
        "the same key inserts nothing"
    );
    assert_eq!(other.unwrap()["row_count"], 1);
    let count = format!("SELECT key FROM {} ORDER BY key", t.name);
    let out = call(&*pg, &[("statement", &count)], json!({}), "k")
        .await
        .unwrap();
    assert_eq!(
        out["rows"],
        json!([{"key": "case/task/1"}, {"key": "case/task/2"}])
    );
    t.drop().await;
}

#[tokio::test]
async fn errors_are_typed_by_sqlstate() {
    let pg = postgres(json!({}));
    let raise = |code: &str| {
        format!("DO $$ BEGIN RAISE EXCEPTION 'raised by the test' USING ERRCODE = '{code}'; END $$")
    };
    for (code, retryable) in [
        ("40001", true),
        ("40P01", true),
        ("57P01", true),
        ("23505", false),
        ("22012", false),
    ] {
        let error = call(&*pg, &[("statement", &raise(code))], json!({}), "k")
            .await
            .unwrap_err();
        assert_eq!(error.is_retryable(), retryable, "{code}: {error}");
        assert!(error.message().contains(code), "{error}");
    }
    let syntax = call(&*pg, &[("statement", "SELEC 1")], json!({}), "k").await;
    let syntax = syntax.unwrap_err();
    assert!(
        !syntax.is_retryable() && syntax.message().contains("42601"),
        "{syntax}"
    );
}

#[tokio::test]
async fn a_value_that_does_not_fit_its_parameter_fails_permanently_naming_the_type() {
    let pg = postgres(json!({}));
    let statement = ("statement", "SELECT $1::int4 + 1 AS n");
    let cases = [
        (
            json!({ "v": "abc" }),
            "int4 takes a whole number, not a string",
        ),
        (
            json!({ "v": 1.5 }),
            "not a whole number in the range of int4",
        ),
        (
            json!({ "v": 5_000_000_000_i64 }),
            "not a whole number in the range of int4",
        ),
    ];
    for (input, expected) in cases {
        let error = call(&*pg, &[statement, ("params", "[v]")], input, "k")
            .await
            .unwrap_err();
        assert!(!error.is_retryable(), "{error}");
        assert!(error.message().contains(expected), "{error}");
    }
    let ok = call(
        &*pg,
        &[statement, ("params", "[v]")],
        json!({ "v": 41 }),
        "k",
    )
    .await;
    assert_eq!(ok.unwrap()["rows"], json!([{"n": 42}]));
    let count = call(&*pg, &[statement, ("params", "[1, 2]")], json!({}), "k").await;
    let count = count.unwrap_err();
    assert!(
        count
            .message()
            .contains("takes 1 parameters, the call gives 2"),
        "{count}"
    );
    let not_a_list = call(&*pg, &[statement, ("params", "v")], json!({ "v": 1 }), "k").await;
    assert!(not_a_list.unwrap_err().message().contains("not a list"));
}

#[tokio::test]
async fn a_column_of_a_type_without_a_json_form_fails_naming_it_and_void_is_null() {
    let pg = postgres(json!({}));
    let point = call(
        &*pg,
        &[("statement", "SELECT point(1, 2) AS p")],
        json!({}),
        "k",
    )
    .await;
    let point = point.unwrap_err();
    assert!(!point.is_retryable(), "{point}");
    assert!(point.message().contains("columns of type point"), "{point}");
    let cast = call(
        &*pg,
        &[("statement", "SELECT point(1, 2)::text AS p")],
        json!({}),
        "k",
    );
    assert_eq!(cast.await.unwrap()["rows"], json!([{"p": "(1,2)"}]));
    let channel = unique("knhk_chan");
    let notify = call(
        &*pg,
        &[
            ("statement", "SELECT pg_notify($1, 'hi') AS sent"),
            ("params", "[c]"),
        ],
        json!({ "c": channel }),
        "k",
    );
    assert_eq!(notify.await.unwrap()["rows"], json!([{"sent": null}]));
}

#[tokio::test]
async fn settings_are_checked_when_prepared() {
    let pg = postgres(json!({}));
    let refused = |pairs: &[(&str, &str)]| pg.prepare(&task(pairs)).unwrap_err();
    assert_eq!(refused(&[("params", "[a]")]).setting(), "statement");
    assert_eq!(
        refused(&[("statement", "SELECT 1"), ("colour", "red")]).setting(),
        "colour"
    );
    let bad_cel = refused(&[("statement", "SELECT $1"), ("params", "[a,")]);
    assert_eq!(bad_cel.setting(), "params");
    let bad_flag = refused(&[("statement", "SELECT $1"), ("idempotency_param", "yes")]);
    assert_eq!(bad_flag.setting(), "idempotency_param");
}

#[test]
fn the_config_never_shows_the_password() {
    let variable = unique("KNHK_TEST_UNSET");
    let table = json!({ "kind": "postgres", "url": "postgres://ann@127.0.0.1/test",
                        "password_env": variable });
    let error = PostgresConnector::from_config(&config("orders", table)).unwrap_err();
    assert_eq!(error.key, "password_env");
    assert!(error.problem.contains(&variable), "{error}");
    let table = json!({ "kind": "postgres", "url": "postgres://ann:hunter2@127.0.0.1/test",
                        "password": "other" });
    let error = PostgresConnector::from_config(&config("orders", table)).unwrap_err();
    assert_eq!(error.key, "password");
    assert!(!error.to_string().contains("hunter2"), "{error}");
    let table = json!({ "kind": "postgres", "url": "postgres://ann:hunter2@127.0.0.1:x/test" });
    let error = PostgresConnector::from_config(&config("orders", table)).unwrap_err();
    assert_eq!(error.key, "url");
    assert!(!error.to_string().contains("hunter2"), "{error}");
    let table = json!({ "kind": "postgres", "url": "postgres://ann@127.0.0.1/test",
                        "password": "hunter2" });
    let pg = PostgresConnector::from_config(&config("orders", table)).unwrap();
    let shown = format!("{pg:?} {:?}", pg.pool().manager());
    assert!(!shown.contains("hunter2"), "{shown}");
    let table = json!({ "kind": "postgres", "url": "mysql://127.0.0.1/test" });
    assert!(PostgresConnector::from_config(&config("orders", table)).is_err());
}

#[tokio::test]
async fn kinds_build_a_postgres_instance_that_probes_the_server() {
    let table = json!({ "kind": "postgres", "url": postgres_url(), "pool": { "max_size": 2 } });
    let instance: InstanceConfig = config(&unique("pg"), table);
    let connector = kinds::build(&instance).unwrap();
    assert_eq!(connector.kind(), "postgres");
    let probe = connector.probe().await.unwrap();
    assert!(
        probe
            .detail
            .as_deref()
            .unwrap_or("")
            .starts_with("PostgreSQL "),
        "{probe:?}"
    );
    connector.close().await;
    let closed = call(&*connector, &[("statement", "SELECT 1")], json!({}), "k").await;
    assert!(
        !closed.unwrap_err().is_retryable(),
        "a closed instance fails for good"
    );
}

#[tokio::test]
async fn a_statement_over_its_timeout_is_retried_then_fails_retryably_and_is_cancelled() {
    let pg = postgres(json!({}));
    let registry = registry(pg.clone(), 100);
    let marker = unique("sleeper");
    let statement = format!("SELECT pg_sleep(5), '{marker}'");
    let settings = task(&[("statement", &statement)]);
    let failure = registry
        .call(
            pg.name(),
            &settings,
            json!({}),
            "k",
            &policy(2, Duration::from_millis(200)),
        )
        .await
        .unwrap_err();
    assert_eq!(failure.attempts, 2);
    assert!(failure.error.is_retryable(), "{failure}");
    assert!(failure.error.message().contains("timed out"), "{failure}");
    // Each abandoned statement was cancelled on the server and its connection closed.
    let admin = admin().await;
    eventually("the sleeping statements are cancelled", || {
        let admin = &admin;
        let pattern = format!("%{marker}%");
        async move {
            let row = admin
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE query LIKE $1 \
                     AND pid <> pg_backend_pid()",
                    &[&pattern],
                )
                .await
                .unwrap();
            row.get::<_, i64>(0) == 0
        }
    })
    .await;
    let status = pg.pool().status();
    assert_eq!(
        (status.active, status.idle, status.closed),
        (0, 0, 2),
        "{status:?}"
    );
    let after = registry
        .call(
            pg.name(),
            &task(&[("statement", "SELECT 1 AS one")]),
            json!({}),
            "k2",
            &policy(1, Duration::from_secs(5)),
        )
        .await
        .unwrap();
    assert_eq!(after.output["rows"], json!([{"one": 1}]));
}

#[tokio::test]
async fn a_permanent_error_is_tried_once_and_a_retryable_one_again() {
    let pg = postgres(json!({}));
    let registry = registry(pg.clone(), 100);
    let t = Table::create("id int PRIMARY KEY").await;
    let insert = task(&[("statement", &format!("INSERT INTO {} VALUES (1)", t.name))]);
    let p = policy(3, Duration::from_secs(5));
    registry
        .call(pg.name(), &insert, json!({}), "a", &p)
        .await
        .unwrap();
    let dup = registry
        .call(pg.name(), &insert, json!({}), "b", &p)
        .await
        .unwrap_err();
    assert_eq!(
        dup.attempts, 1,
        "a constraint violation is not retried: {dup}"
    );
    assert!(dup.error.message().contains("23505"), "{dup}");
    let deadlock = task(&[(
        "statement",
        "DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '40P01'; END $$",
    )]);
    let failure = registry
        .call(pg.name(), &deadlock, json!({}), "c", &p)
        .await
        .unwrap_err();
    assert_eq!(failure.attempts, 3, "a deadlock is retried: {failure}");
    assert_eq!(failure.failed_attempts.len(), 2);
    t.drop().await;
}

#[tokio::test]
async fn the_circuit_opens_after_repeated_failures_of_an_unreachable_server() {
    // Port 1 on loopback: nothing listens there, so every connection is refused at once.
    let table = json!({ "kind": "postgres", "url": "postgres://postgres@127.0.0.1:1/test",
                        "pool": { "acquire_timeout_ms": 2000 } });
    let name = unique("pg_down");
    let pg = Arc::new(PostgresConnector::from_config(&config(&name, table)).unwrap());
    let registry = registry(pg.clone(), 2);
    let settings = task(&[("statement", "SELECT 1")]);
    let p = policy(1, Duration::from_secs(5));
    for _ in 0..2 {
        let failure = registry
            .call(&name, &settings, json!({}), "k", &p)
            .await
            .unwrap_err();
        assert!(failure.error.is_retryable(), "{failure}");
        assert!(
            failure.error.message().contains("cannot connect"),
            "{failure}"
        );
    }
    let failure = registry
        .call(&name, &settings, json!({}), "k", &p)
        .await
        .unwrap_err();
    assert!(failure.error.message().contains("circuit"), "{failure}");
    assert_eq!(
        pg.pool().status().failed,
        2,
        "the open circuit spared the server"
    );
    let health = registry.health(Duration::from_secs(5)).await;
    assert!(health[0].result.is_err(), "{health:?}");
}
