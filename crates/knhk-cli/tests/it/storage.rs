//! Storage faults where the user meets them: a full disk, a corrupt row.
//!
//! A full disk is met for real: `--store-max-pages` caps the store file at the pages it has
//! (SQLite's `max_page_count`), so that the next write needing a new page fails inside SQLite
//! with `SQLITE_FULL`, exactly as when the file system has no block left to give.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;

use serde_json::Value;

use crate::{DataDir, PREFIXES, example, path_str, stderr, stdout, temp_file, text};

/// Returns the store file's size in 4 KiB pages: a cap at it lets nothing grow.
fn pages(data: &DataDir) -> String {
    let len = std::fs::metadata(data.path().join("knhk.db"))
        .expect("the store file")
        .len();
    (len / 4096).to_string()
}

/// Returns the number of times `needle` occurs in `haystack`.
fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

/// Registers a workflow and returns its id.
fn register(data: &DataDir, file: &str) -> String {
    let doc = data.json(&["workflow", "register", file, "--json"]);
    text(&doc, "id").to_owned()
}

#[test]
fn a_full_disk_fails_the_command_naming_the_cause_once_and_stores_nothing() {
    let data = DataDir::new();
    let workflow = register(&data, &example("loan_application.ttl"));
    let cap = pages(&data);
    // Case data too large for the pages the file has: the first commit needs new ones.
    let big = format!(
        r#"{{"applicant": "{}", "amount": 25000}}"#,
        "A".repeat(50_000)
    );
    let err = data.fails(&[
        "--store-max-pages",
        &cap,
        "case",
        "create",
        &workflow,
        "--start",
        "--data",
        &big,
    ]);
    assert_eq!(count(&err, "database or disk is full"), 1, "{err}");
    assert!(err.contains("cannot start a case of workflow"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(data.ok(&["case", "list"]).trim(), "no cases");
}

/// Starts an HTTP server on port 0 that answers every request with a JSON object holding
/// `bytes` bytes of text, and returns its address.
fn large_reply_server(bytes: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a port");
    let addr = listener.local_addr().expect("an address");
    std::thread::spawn(move || {
        let reply = format!(r#"{{"report": "{}"}}"#, "r".repeat(bytes));
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("a stream"));
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{reply}",
                reply.len()
            );
        }
    });
    format!("http://{addr}")
}

/// A workflow of one HTTP task whose result is stored in the case, then an empty task.
fn report_workflow(server: &str) -> String {
    let file = temp_file(
        "report.ttl",
        &format!(
            "{PREFIXES}\
             <#spec> a yawl:Specification ; yawl:hasDecomposition <#net> .\n\
             <#net> a yawl:Net ; yawl:isRootNet true ; yawl:hasInputCondition <#start> ;\n\
                 yawl:hasOutputCondition <#end> ; yawl:hasTask <#fetch>, <#file> .\n\
             <#start> a yawl:InputCondition ; yawl:flowsInto [ yawl:nextElementRef <#fetch> ] .\n\
             <#fetch> a yawl:Task ; knhk:connector \"http\" ;\n\
                 knhk:setting [ knhk:key \"url\" ; knhk:value \"{server}/report\" ] ;\n\
                 yawl:flowsInto [ yawl:nextElementRef <#file> ] .\n\
             <#file> a yawl:Task ; yawl:flowsInto [ yawl:nextElementRef <#end> ] .\n\
             <#end> a yawl:OutputCondition .\n"
        ),
    );
    path_str(&file).to_owned()
}

#[test]
fn a_result_that_cannot_be_stored_fails_the_command_and_a_worker_finishes_it_later() {
    let server = large_reply_server(60_000);
    let data = DataDir::new();
    let workflow = register(&data, &report_workflow(&server));
    let cap = pages(&data);
    // The case and its first step fit in the file's pages; the connector's large result does
    // not. The command must neither hang nor exit 0 with the case left running.
    let out = data.knhk(&[
        "--store-max-pages",
        &cap,
        "case",
        "create",
        &workflow,
        "--start",
        "--json",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}\n{}", stdout(&out));
    // Reported loudly (the engine's error log says it too), and the error names it once.
    let error = err
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line in {err}"));
    assert!(
        error.contains("could not take the result of its step"),
        "{err}"
    );
    assert_eq!(count(error, "database or disk is full"), 1, "{err}");
    // What was acknowledged is there: the case runs, its call in flight.
    let cases: Value = data.json(&["case", "list", "--json"]);
    let case = text(&cases[0], "case_id").to_owned();
    assert_eq!(text(&cases[0], "state"), "running");
    // Once there is room, a worker makes the call again and the case goes on to its end.
    data.ok(&["worker", "--until-idle"]);
    let doc = data.json(&["case", "show", &case, "--json"]);
    assert_eq!(text(&doc, "state"), "completed", "{doc:#}");
    assert_eq!(doc["data"]["report"].as_str().map(str::len), Some(60_000));
}

/// Runs SQL on the store file of a data directory, as damage from outside would.
fn damage(data: &DataDir, sql: &str) {
    let conn = rusqlite::Connection::open(data.path().join("knhk.db")).expect("the store file");
    conn.execute_batch(sql).expect("the damage is done");
}

#[test]
fn a_corrupt_version_column_is_named_as_corruption_not_as_a_busy_case() {
    let data = DataDir::new();
    let case = text(&data.start_loan(), "case_id").to_owned();
    damage(
        &data,
        &format!("UPDATE cases SET version = 3 WHERE id = '{case}'"),
    );
    let err = data.fails(&["case", "cancel", &case]);
    assert!(
        err.contains(&format!(
            "stored case {case} is corrupt: its row says version 3, but its history ends at event"
        )),
        "{err}"
    );
    assert!(!err.contains("concurrent"), "{err}");
}
