//! Storage faults where the user meets them: a full disk, a corrupt row.
//!
//! A full disk is met for real: `--store-max-pages` caps the store file at the pages it has
//! (SQLite's `max_page_count`), so that the next write needing a new page fails inside SQLite
//! with `SQLITE_FULL`, exactly as when the file system has no block left to give.

use serde_json::Value;

use std::io::{BufRead, BufReader};

use crate::http_server::{Reply, serve};
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
    let reply = format!(r#"{{"report": "{}"}}"#, "r".repeat(bytes));
    serve(move |_| Reply::json("200 OK", reply.clone()))
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

#[test]
fn store_check_passes_a_sound_store_and_names_every_problem_of_a_damaged_one() {
    let data = DataDir::new();
    let loan = text(&data.start_loan(), "case_id").to_owned();
    let invoice = text(
        &data.json(&["run", &example("invoice_reminder.ttl"), "--json"]),
        "case_id",
    )
    .to_owned();
    let out = data.ok(&["store", "check"]);
    assert!(
        out.contains("checked 2 cases, 2 work items, 1 timers"),
        "{out}"
    );
    assert!(out.contains("ok: no problems found"), "{out}");

    damage(
        &data,
        &format!(
            "UPDATE cases SET version = 3 WHERE id = '{loan}';
             DELETE FROM events WHERE case_id = '{invoice}' AND seq = 4;
             UPDATE work_items SET owner = 'eve' WHERE case_id = '{loan}';
             INSERT INTO timers (id, case_id, fires_at) VALUES ('11111111-1111-1111-1111-111111111111',
                                                         '22222222-2222-2222-2222-222222222222', 5);"
        ),
    );
    let out = data.knhk(&["store", "check"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = stdout(&out);
    for problem in [
        format!("case {loan}: its row says version 3, but its history ends at event"),
        format!("case {invoice}: its history jumps from event 3 to 5"),
        format!("but case {loan}'s history says offered for nobody"),
        "timer 11111111-1111-1111-1111-111111111111: its case 22222222-2222-2222-2222-222222222222 \
         is not stored"
            .to_owned(),
        "4 problems found".to_owned(),
    ] {
        assert!(report.contains(&problem), "{problem}\n{report}");
    }
    let out = data.knhk(&["store", "check", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let doc: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["problems"].as_array().map(Vec::len), Some(4), "{doc:#}");
    assert_eq!(doc["problems"][0]["subject"], "case");
}

#[test]
fn a_store_left_open_by_a_killed_process_is_checked_quickly_on_the_next_open() {
    // Local only: the note of a store left open is printed by the process that opens it.
    let data = DataDir::local();
    data.start_loan();
    let mut worker = std::process::Command::new(env!("CARGO_BIN_EXE_knhk"))
        .args(["--data-dir", path_str(data.path()), "worker"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("a worker runs");
    // The worker says it started once it holds the store open.
    let mut line = String::new();
    BufReader::new(worker.stderr.take().expect("its stderr"))
        .read_line(&mut line)
        .expect("the worker's first line");
    assert!(line.contains("worker: picked up"), "{line}");
    worker.kill().expect("kill -9");
    worker.wait().expect("the worker ends");

    let out = data.knhk(&["case", "list"]);
    assert!(out.status.success());
    let err = stderr(&out);
    assert!(err.contains("did not close it"), "{err}");
    assert!(err.contains("a quick check found nothing wrong"), "{err}");
    // Checked once: the next command has nothing to say.
    let out = data.knhk(&["case", "list"]);
    assert_eq!(stderr(&out), "");
}

#[test]
fn a_case_that_does_not_load_is_quarantined_and_the_others_go_on() {
    let data = DataDir::new();
    let ids: Vec<String> = (0..3)
        .map(|_| text(&data.start_loan(), "case_id").to_owned())
        .collect();
    let broken = &ids[1];
    let original: String = rusqlite::Connection::open(data.path().join("knhk.db"))
        .expect("the store file")
        .query_row(
            "SELECT payload FROM events WHERE case_id = ?1 AND seq = 5",
            [broken],
            |r| r.get(0),
        )
        .expect("event 5");
    // One event of one case no longer decodes (a torn or foreign write). The cases wait for
    // people, so recovery would not read them; marked as having work in flight (as every case
    // of a store migrated from before format 6 is), recovery reads all three.
    damage(
        &data,
        &format!(
            "UPDATE events SET payload = '{{\"type\": \"nonsense\"}}'
             WHERE case_id = '{broken}' AND seq = 5;
             UPDATE cases SET in_flight = 1"
        ),
    );
    // Recovery picks up the other two, and names the broken one.
    let out = data.knhk(&["worker", "--until-idle"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("picked up 2 unfinished cases"), "{err}");
    assert!(
        err.contains(&format!(
            "worker: case {broken} is quarantined and left alone"
        )),
        "{err}"
    );
    assert!(!err.contains("expected one of"), "{err}");

    let listed: Value = data.json(&["case", "list", "--status", "broken", "--json"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed:#}");
    assert_eq!(text(&listed[0], "case_id"), broken);
    assert!(text(&listed[0], "reason").contains("unknown variant `nonsense`"));
    let list = data.ok(&["case", "list"]);
    assert!(!list.contains(broken.as_str()), "{list}");
    let items = data.ok(&["workitem", "list"]);
    assert!(!items.contains(broken.as_str()), "{items}");
    assert_eq!(items.lines().count(), 3, "a header and two items: {items}");
    assert!(
        list.contains("1 quarantined cases are not listed"),
        "{list}"
    );

    // Every command on it says so, and why.
    for args in [["case", "show"], ["case", "cancel"]] {
        let err = data.fails(&[args[0], args[1], broken]);
        assert!(
            err.contains(&format!("case {broken} is quarantined: ")),
            "{err}"
        );
        assert!(err.contains("nonsense"), "{err}");
    }
    // The others go on.
    let other = data.json(&["case", "cancel", &ids[2], "--json"]);
    assert_eq!(text(&other, "state"), "cancelled");
    // The check names the damage and the quarantine.
    let out = data.knhk(&["store", "check"]);
    assert_eq!(out.status.code(), Some(1));
    let report = stdout(&out);
    assert!(
        report.contains(&format!("case {broken}: it is quarantined")),
        "{report}"
    );
    assert!(
        report.contains(&format!(
            "case {broken}: its history does not decode: stored data is corrupt: event 5 does \
             not decode: unknown variant `nonsense`"
        )),
        "{report}"
    );

    // `case list --json` without a status ends with it, as the table names it.
    let all: Value = data.json(&["case", "list", "--json"]);
    let all = all.as_array().expect("a list").clone();
    assert_eq!(all.len(), 3, "{all:#?}");
    assert_eq!(text(&all[2], "case_id"), broken);
    assert_eq!(text(&all[2], "state"), "broken");
    assert!(text(&all[2], "reason").contains("nonsense"), "{all:#?}");
    let lines = data.ok(&["case", "list", "--jsonl"]);
    assert_eq!(lines.lines().count(), 3, "{lines}");
    assert!(
        lines.lines().last().unwrap_or("").contains("\"broken\""),
        "{lines}"
    );

    // Released only once repaired: refused, naming why, and still set aside.
    let err = data.fails(&["case", "release", broken]);
    assert!(
        err.contains(&format!("cannot release case {broken}")),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "case {broken} stays quarantined: its history does not decode"
        )),
        "{err}"
    );
    let listed: Value = data.json(&["case", "list", "--status", "broken", "--json"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed:#}");
    let conn = rusqlite::Connection::open(data.path().join("knhk.db")).expect("the store file");
    conn.execute(
        "UPDATE events SET payload = ?1 WHERE case_id = ?2 AND seq = 5",
        [&original, broken],
    )
    .expect("the repair");
    drop(conn);
    let released = data.ok(&["case", "release", broken]);
    assert!(
        released.contains(&format!("case {broken} released from quarantine")),
        "{released}"
    );
    let listed: Value = data.json(&["case", "list", "--status", "broken", "--json"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(0), "{listed:#}");
    let shown = data.json(&["case", "show", broken, "--json"]);
    assert_eq!(text(&shown, "state"), "running");
    let err = data.fails(&["case", "release", broken]);
    assert!(
        err.contains(&format!("case {broken} is not quarantined")),
        "{err}"
    );
}

/// Sets the permission bits of a path (`0o555`: nobody may write).
fn chmod(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[test]
fn a_read_only_store_serves_reads_and_refuses_writes_naming_itself() {
    let data = DataDir::new();
    let case = text(&data.start_loan(), "case_id").to_owned();
    let file = data.path().join("knhk.db");
    // Closed cleanly: one self-contained file, as a read-only mount would hold it.
    let names = |dir: &std::path::Path| {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("the data directory")
            .map(|e| {
                e.expect("an entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        names
    };
    // The lockchain's folder holds its key and anchor.
    assert_eq!(names(data.path()), ["knhk.db", "lockchain"]);
    // No write permission for anyone (which even the superuser's knhk honours, though the
    // kernel would let it write).
    chmod(&file, 0o444);
    chmod(data.path(), 0o555);

    for args in [
        vec!["workflow", "list"],
        vec!["case", "list"],
        vec!["case", "show", &case],
        vec!["case", "history", &case],
        vec!["workitem", "list"],
        vec!["store", "check"],
    ] {
        data.ok(&args);
    }
    let shown = data.json(&["case", "show", &case, "--json"]);
    assert_eq!(text(&shown, "state"), "running");

    let read_only = format!("the store {} is read-only", path_str(&file));
    for args in [
        vec!["case", "cancel", &case],
        vec!["run", &example("loan_application.ttl")],
    ] {
        let err = data.fails(&args);
        assert!(err.contains(&read_only), "{err}");
    }
    // Nothing was written: no WAL, no marker, and the case is as it was.
    assert_eq!(names(data.path()), ["knhk.db", "lockchain"]);
    chmod(data.path(), 0o755);
    chmod(&file, 0o644);
    let after = data.json(&["case", "show", &case, "--json"]);
    assert_eq!(text(&after, "state"), "running");
    assert_eq!(after["history"], shown["history"]);
}

#[test]
fn durability_normal_runs_a_case_to_its_end_on_synchronous_normal_and_a_bad_mode_is_refused() {
    let data = DataDir::new();
    // A name that is no mode is refused, naming the option and the modes; nothing is created.
    let out = data.knhk(&["--durability", "bogus", "workflow", "list"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("--durability"), "{err}");
    assert!(
        err.contains("bogus") && err.contains("full") && err.contains("normal"),
        "{err}"
    );
    assert!(!data.path().join("knhk.db").exists());
    // `normal` runs a case to its end; the store's writer runs synchronous=NORMAL (1), as the
    // debug log of the opened store says.
    let run = |durability: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_knhk"))
            .arg("--data-dir")
            .arg(data.path())
            .args([
                "--durability",
                durability,
                "run",
                &example("loan_application.ttl"),
            ])
            .args([
                "--data",
                r#"{"applicant": "Ada", "amount": 5000}"#,
                "--json",
            ])
            .env_remove("KNHK_DURABILITY")
            .env_remove("KNHK_SERVER")
            .env("RUST_LOG", "knhk=debug")
            .output()
            .expect("knhk runs")
    };
    let out = run("normal");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("synchronous=1"), "{}", stderr(&out));
    let doc: Value = serde_json::from_str(&stdout(&out)).expect("one JSON document");
    assert_eq!(text(&doc, "state"), "completed", "{doc:#}");
    // The case is in the store for the next command, which runs FULL (2) by default.
    let out = run("full");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("synchronous=2"), "{}", stderr(&out));
    let listed = data.json(&["case", "list", "--json"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed:#}");
}
