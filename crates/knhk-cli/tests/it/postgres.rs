//! `--store postgres://...`: the commands and `knhk serve` on a PostgreSQL schema of their
//! own (in the database `test` of the server at `KNHK_TEST_POSTGRES_URL`, by default
//! `postgres://postgres@127.0.0.1:5432/test`), dropped after each test. When the server cannot
//! be reached the tests fail, saying to run `.ci/services`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

use crate::{example, knhk, path_str, stderr, stdout, text};

fn server() -> String {
    std::env::var("KNHK_TEST_POSTGRES_URL")
        .or_else(|_| std::env::var("KNHK_TEST_POSTGRES"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A schema of one test, dropped with everything in it when this is dropped.
pub(crate) struct Schema {
    name: String,
    /// The store address: the server with the schema as its search_path.
    pub(crate) url: String,
    /// An empty data directory: the commands must not need it for the store.
    dir: tempfile::TempDir,
}

impl Schema {
    pub(crate) fn fresh() -> Schema {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "knhk_cli_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let base = server();
        let join = if base.contains('?') { '&' } else { '?' };
        Schema {
            url: format!("{base}{join}options=-csearch_path%3D{name}"),
            name,
            dir: tempfile::tempdir().expect("temporary data directory"),
        }
    }

    /// Runs `knhk --data-dir DIR --store URL ARGS...`.
    fn knhk(&self, args: &[&str]) -> std::process::Output {
        let mut all = vec![
            "--data-dir",
            path_str(self.dir.path()),
            "--store",
            self.url.as_str(),
        ];
        all.extend_from_slice(args);
        knhk(&all)
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.knhk(args);
        assert!(
            out.status.success(),
            "knhk {args:?} failed with {:?}\nstdout: {}\nstderr: {}\n(PostgreSQL not reachable? \
             run .ci/services)",
            out.status.code(),
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    }

    fn json(&self, args: &[&str]) -> Value {
        let text = self.ok(args);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("knhk {args:?}: {e}\n{text}"))
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async move {
                let (client, conn) = tokio_postgres::connect(&server(), tokio_postgres::NoTls)
                    .await
                    .ok()?;
                tokio::spawn(conn);
                client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
                    .await
                    .ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("could not drop the test schema {}", self.name);
        }
    }
}

#[test]
fn run_case_and_workitem_commands_work_on_a_postgres_schema() {
    let pg = Schema::fresh();
    let started = pg.json(&[
        "run",
        &example("loan_application.ttl"),
        "--data",
        r#"{"applicant": "Ada", "amount": 25000}"#,
        "--json",
    ]);
    let case = text(&started, "case_id").to_owned();
    assert_eq!(text(&started, "state"), "running", "{started:#}");
    // Nothing went to the data directory: the store is the schema.
    assert!(!pg.dir.path().join("knhk.db").exists());

    let list = pg.json(&["case", "list", "--json"]);
    let ids: Vec<&str> = list
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|c| c["case_id"].as_str())
        .collect();
    assert_eq!(ids, vec![case.as_str()]);

    let items = pg.json(&["workitem", "list", "--role", "underwriter", "--json"]);
    let items = items.as_array().expect("a list");
    assert_eq!(items.len(), 1, "{items:?}");
    let item = text(&items[0], "id").to_owned();
    pg.ok(&["workitem", "claim", &item, "--user", "uma"]);
    let done = pg.json(&[
        "workitem",
        "complete",
        &item,
        "--user",
        "uma",
        "--output",
        r#"{"approved": true}"#,
        "--json",
    ]);
    assert_eq!(text(&done, "state"), "completed", "{done:#}");

    let history = pg.json(&["case", "history", &case, "--json"]);
    let events = history["history"].as_array().expect("history");
    let seqs: Vec<u64> = events.iter().filter_map(|e| e["seq"].as_u64()).collect();
    assert_eq!(seqs, (1..=events.len() as u64).collect::<Vec<_>>());

    let check = pg.json(&["store", "check", "--json"]);
    assert_eq!(check["ok"], true, "{check:#}");
    assert_eq!(check["cases"], 1);
    assert!(
        text(&check, "store").contains(&pg.name),
        "the check names the store: {check:#}"
    );
}

#[test]
fn sqlite_only_settings_and_bad_addresses_are_refused_with_a_clear_message() {
    let pg = Schema::fresh();
    let out = pg.knhk(&["--store-max-pages", "100", "case", "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--store-max-pages (config key store_max_pages) caps a SQLite file"),
        "{}",
        stderr(&out)
    );
    let out = pg.knhk(&["--durability", "normal", "case", "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is PostgreSQL, whose durability is the server's"),
        "{}",
        stderr(&out)
    );
    // And the pool size is PostgreSQL's.
    let dir = tempfile::tempdir().expect("a data directory");
    let out = knhk(&[
        "--data-dir",
        path_str(dir.path()),
        "--store-pool-size",
        "4",
        "workflow",
        "register",
        &example("order_approval.ttl"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("sizes the pool of a PostgreSQL store"),
        "{}",
        stderr(&out)
    );
    let out = knhk(&["--store", "mysql://ann:s3cret@db/knhk", "case", "list"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("neither sqlite:PATH nor a PostgreSQL URL"),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "{err}");
    // A server that does not answer: the command says which store, without the password.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("its address")
        .port();
    let out = knhk(&[
        "--store",
        &format!("postgres://ann:s3cret@127.0.0.1:{port}/test"),
        "case",
        "list",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "cannot open the store postgres://ann:***@127.0.0.1:{port}/test"
        )),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_on_the_store_of_its_config_and_masks_its_password() {
    let pg = Schema::fresh();
    // Trust authentication ignores the password, which only the printed config shows.
    let with_password = pg.url.replacen("://postgres@", "://postgres:s3cret@", 1);
    let file = pg.dir.path().join("knhk.toml");
    std::fs::write(
        &file,
        format!("store = \"{with_password}\"\npool_size = 4\n"),
    )
    .expect("config file");
    let printed = Command::new(env!("CARGO_BIN_EXE_knhk"))
        .args(["serve", "--print-config", "--config"])
        .arg(&file)
        .env_remove("KNHK_STORE")
        .output()
        .expect("knhk runs");
    let text_out = stdout(&printed);
    assert!(printed.status.success(), "{}", stderr(&printed));
    assert!(text_out.contains("pool_size = 4"), "{text_out}");
    if with_password.contains("s3cret") {
        assert!(!text_out.contains("s3cret"), "{text_out}");
        assert!(text_out.contains("postgres:***@"), "{text_out}");
    }

    let mut child = Command::new(env!("CARGO_BIN_EXE_knhk"))
        .args(["serve", "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0"])
        .arg("--config")
        .arg(&file)
        .arg("--data-dir")
        .arg(pg.dir.path())
        .env_remove("KNHK_STORE")
        .env_remove("KNHK_DATA_DIR")
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("knhk serve starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the first line of knhk serve");
    let addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http="))
        .unwrap_or_else(|| panic!("first line of knhk serve: {line:?}"))
        .to_owned();
    let url = format!("http://{addr}");
    let client = knhk(&[
        "--server",
        &url,
        "workflow",
        "register",
        &example("order_approval.ttl"),
        "--json",
    ]);
    assert!(client.status.success(), "{}", stderr(&client));
    let registered: Value = serde_json::from_slice(&client.stdout).expect("a workflow document");
    let created = knhk(&[
        "--server",
        &url,
        "case",
        "create",
        text(&registered, "id"),
        "--data",
        r#"{"amount": 5000}"#,
        "--json",
    ]);
    let _ = child.kill();
    let _ = child.wait();
    assert!(created.status.success(), "{}", stderr(&created));
    let created: Value = serde_json::from_slice(&created.stdout).expect("a case document");
    let case = text(&created, "case_id");
    // What the server stored is in the schema, read by another process directly.
    let shown = pg.json(&["case", "show", case, "--json"]);
    assert_eq!(text(&shown, "case_id"), case, "{shown:#}");
    assert!(!pg.dir.path().join("knhk.db").exists());
}
