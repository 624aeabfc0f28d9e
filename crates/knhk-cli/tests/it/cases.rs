//! `knhk workflow ...` and `knhk case ...` across processes on one data directory.

use serde_json::Value;

use crate::{DataDir, PREFIXES, example, kinds, path_str, temp_file, text};

/// Registers the loan example and returns its workflow id.
fn register_loan(data: &DataDir) -> String {
    let w = data.json(&[
        "workflow",
        "register",
        &example("loan_application.ttl"),
        "--json",
    ]);
    assert_eq!(text(&w, "name"), "Loan application");
    assert_eq!(w["version"], 1);
    text(&w, "id").to_owned()
}

#[test]
fn workflows_are_listed_and_shown_with_their_tasks_and_source() {
    let data = DataDir::new();
    let id = register_loan(&data);
    let list = data.ok(&["workflow", "list"]);
    assert!(list.contains(&id), "{list}");
    assert!(list.contains("Loan application"), "{list}");
    let show = data.ok(&["workflow", "show", &id]);
    assert!(show.contains("name:       Loan application"), "{show}");
    assert!(show.contains("version:    1"), "{show}");
    assert!(show.contains("underwriter_decision"), "{show}");
    assert!(show.contains("human, role underwriter"), "{show}");
    assert!(show.contains("yawl:ControlTypeAnd"), "the source: {show}");
    // The same definition again is the version already stored (tests/it/versions.rs).
    let again = data.json(&[
        "workflow",
        "register",
        &example("loan_application.ttl"),
        "--json",
    ]);
    assert_eq!(
        (&again["id"], &again["version"]),
        (&Value::from(id), &Value::from(1))
    );
}

#[test]
fn a_case_created_by_one_process_is_executed_by_the_next() {
    let data = DataDir::new();
    let workflow = register_loan(&data);
    let created = data.json(&[
        "case",
        "create",
        &workflow,
        "--data",
        r#"{"amount": 5000}"#,
        "--json",
    ]);
    assert_eq!(text(&created, "state"), "created");
    assert_eq!(kinds(&created), ["case_created"]);
    let case = text(&created, "case_id");
    let executed = data.json(&["case", "execute", case, "--json"]);
    assert_eq!(text(&executed, "state"), "completed", "{executed:#}");
    assert_eq!(executed["data"]["decision"], "approved");
    // Executing it again is refused: it has ended.
    let err = data.fails(&["case", "execute", case]);
    assert!(err.contains("case is completed"), "{err}");
    let list = data.json(&["case", "list", "--status", "completed", "--json"]);
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list:#}");
    assert_eq!(list[0]["case_id"], case);
}

#[test]
fn cancelling_an_ended_case_fails_clearly() {
    let data = DataDir::new();
    let doc = data.json(&[
        "run",
        &example("order_approval.ttl"),
        "--data",
        r#"{"amount": 10}"#,
        "--json",
    ]);
    assert_eq!(text(&doc, "state"), "completed");
    let case = text(&doc, "case_id");
    let err = data.fails(&["case", "cancel", case]);
    assert_eq!(
        err.trim(),
        format!("error: cannot cancel case {case}: case is completed, cannot cancel")
    );
}

#[test]
fn cancelling_a_waiting_case_withdraws_its_work_items() {
    let data = DataDir::new();
    let doc = data.json(&[
        "run",
        &example("order_approval.ttl"),
        "--data",
        r#"{"amount": 1500}"#,
        "--json",
    ]);
    let case = text(&doc, "case_id");
    let cancelled = data.json(&[
        "case",
        "cancel",
        case,
        "--reason",
        "customer left",
        "--json",
    ]);
    assert_eq!(text(&cancelled, "state"), "cancelled");
    assert!(
        kinds(&cancelled).contains(&"work_item_cancelled"),
        "{cancelled:#}"
    );
    let last = cancelled["history"]
        .as_array()
        .and_then(|h| h.last())
        .cloned()
        .unwrap_or_default();
    assert_eq!(last["event"]["reason"], "customer left", "{cancelled:#}");
    assert!(
        data.ok(&["workitem", "list", "--role", "manager"])
            .contains("no work items")
    );
}

#[test]
fn unknown_ids_are_named_with_the_data_directory_looked_in() {
    // Local only: it names the data directory looked in (a server says `asked the server URL`).
    let data = DataDir::local();
    register_loan(&data);
    let dir = data.path().display().to_string();
    let id = "6f1e1b0c-1111-4222-8333-444455556666";
    let err = data.fails(&["case", "show", id]);
    assert_eq!(
        err.trim(),
        format!("error: unknown case {id} (looked in the data directory {dir})")
    );
    let err = data.fails(&["workflow", "show", id]);
    assert_eq!(
        err.trim(),
        format!("error: unknown workflow {id} (looked in the data directory {dir})")
    );
    let err = data.fails(&["workitem", "complete", id, "--user", "ann"]);
    assert!(err.contains(&format!("unknown work item {id}")), "{err}");
    assert!(err.contains(&dir), "{err}");
    // An id that is not a UUID is a usage error, as clap reports them.
    let out = data.knhk(&["case", "show", "not-an-id"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_suspended_case_takes_no_work_until_resumed() {
    let data = DataDir::new();
    let doc = data.json(&[
        "run",
        &example("order_approval.ttl"),
        "--data",
        r#"{"amount": 1500}"#,
        "--json",
    ]);
    let case = text(&doc, "case_id");
    let item = text(&doc["work_items"][0], "id");
    let suspended = data.json(&["case", "suspend", case, "--json"]);
    assert_eq!(text(&suspended, "state"), "suspended");
    let err = data.fails(&["workitem", "complete", item, "--user", "ann"]);
    assert!(err.contains("case is suspended"), "{err}");
    let resumed = data.json(&["case", "resume", case, "--json"]);
    assert_eq!(text(&resumed, "state"), "running");
    let done = data.json(&["workitem", "complete", item, "--user", "ann", "--json"]);
    assert_eq!(text(&done, "state"), "completed");
}

#[test]
fn a_trigger_delivered_by_another_process_moves_the_case_on() {
    let file = temp_file(
        "payment.ttl",
        &format!(
            "{PREFIXES}\
             <#spec> a yawl:Specification ; yawl:hasDecomposition <#net> .\n\
             <#net> a yawl:Net ; yawl:isRootNet true ; yawl:hasInputCondition <#start> ;\n\
                 yawl:hasOutputCondition <#end> ; yawl:hasTask <#invoice>, <#paid> .\n\
             <#start> a yawl:InputCondition ; yawl:flowsInto [ yawl:nextElementRef <#invoice> ] .\n\
             <#invoice> a yawl:Task ; yawl:flowsInto [ yawl:nextElementRef <#paid> ] .\n\
             <#paid> a yawl:Task ; knhk:trigger \"payment_received\" ;\n\
                 yawl:flowsInto [ yawl:nextElementRef <#end> ] .\n\
             <#end> a yawl:OutputCondition .\n"
        ),
    );
    let data = DataDir::new();
    let text_out = data.ok(&["run", path_str(&file)]);
    assert!(
        text_out.contains(r#"the event "payment_received" for task paid"#),
        "{text_out}"
    );
    assert!(text_out.contains("case trigger "), "{text_out}");
    let list = data.json(&["case", "list", "--status", "running", "--json"]);
    let case = text(&list[0], "case_id");
    let doc = data.json(&[
        "case",
        "trigger",
        case,
        "payment_received",
        "--data",
        r#"{"paid": 42}"#,
        "--json",
    ]);
    assert_eq!(text(&doc, "state"), "completed", "{doc:#}");
    let err = data.fails(&["case", "trigger", case, "payment_received"]);
    assert!(err.contains("case is completed"), "{err}");
}

#[test]
fn a_yawl_xml_workflow_keeps_its_format_and_source() {
    let data = DataDir::new();
    let file = example("yawl-xml/expense_claim.yawl");
    let w = data.json(&["workflow", "register", &file, "--json"]);
    assert_eq!(text(&w, "format"), "yawl-xml", "{w:#}");
    let shown = data.json(&["workflow", "show", text(&w, "id"), "--json"]);
    assert_eq!(text(&shown, "format"), "yawl-xml");
    let source = std::fs::read_to_string(&file).expect("the example");
    assert_eq!(text(&shown, "source"), source);
    let turtle = data.json(&[
        "workflow",
        "register",
        &example("loan_application.ttl"),
        "--json",
    ]);
    assert_eq!(text(&turtle, "format"), "turtle");
}

#[test]
fn a_reading_command_on_a_folder_without_a_store_says_so_and_creates_none() {
    // Local only: a folder without a store (a server makes its store when it starts).
    let data = DataDir::local();
    for args in [
        vec!["workflow", "list"],
        vec!["case", "list"],
        vec!["workitem", "list"],
        vec!["case", "show", "6f1e1b0c-1111-4222-8333-444455556666"],
    ] {
        let err = data.fails(&args);
        assert!(
            err.contains("no knhk store in the data directory"),
            "{args:?}: {err}"
        );
        assert!(err.contains("--data-dir"), "{err}");
    }
    assert!(
        !data.path().join("knhk.db").exists(),
        "no empty store was left behind"
    );
    // Registering a workflow makes the store; then the same commands work.
    register_loan(&data);
    assert!(data.ok(&["case", "list"]).contains("no cases"));
}

#[test]
fn an_id_prefix_or_the_start_of_its_last_group_names_its_case_and_an_ambiguous_one_lists_the_matches()
 {
    let data = DataDir::new();
    let workflow = register_loan(&data);
    let mut ids = Vec::new();
    // 17 cases: two of them share the first digit of their last group.
    for _ in 0..17 {
        let created = data.json(&["case", "create", &workflow[..8], "--json"]);
        ids.push(text(&created, "case_id").to_owned());
    }
    let last = |id: &str| id.rsplit('-').next().unwrap().to_owned();
    // Ids are time-ordered (UUIDv7): their first 8 digits are the time, shared by cases
    // created within about a minute (17 cases fall in at most two such minutes). Those digits
    // name several cases: up to ten are listed.
    assert_eq!(&ids[0][14..15], "7", "a version 7 UUID: {}", ids[0]);
    let start = [&ids[0][..8], &ids[16][..8]]
        .into_iter()
        .max_by_key(|s| ids.iter().filter(|id| id.starts_with(*s)).count())
        .unwrap();
    let sharing: Vec<&String> = ids.iter().filter(|id| id.starts_with(start)).collect();
    assert!(sharing.len() > 8, "{ids:?}");
    let err = data.fails(&["case", "show", start]);
    assert!(err.contains("give more of it"), "{err}");
    if sharing.len() > 10 {
        assert!(err.contains("starts more than 10 cases"), "{err}");
    } else {
        assert!(sharing.iter().all(|id| err.contains(id.as_str())), "{err}");
    }
    // The whole time (the first 13 characters) tells apart cases made one after the other.
    let shown = data.json(&["case", "show", &ids[0][..13], "--json"]);
    assert_eq!(text(&shown, "case_id"), ids[0]);
    // The start of the last group, the random part, as the README shortens ids.
    let shown = data.json(&["case", "show", &last(&ids[1])[..8], "--json"]);
    assert_eq!(text(&shown, "case_id"), ids[1]);
    let dotted = format!("...{}", last(&ids[2]));
    let shown = data.json(&["case", "show", &dotted, "--json"]);
    assert_eq!(text(&shown, "case_id"), ids[2]);
    let dotted = format!("{}...", &ids[3][..13]);
    let shown = data.json(&["case", "show", &dotted, "--json"]);
    assert_eq!(text(&shown, "case_id"), ids[3]);
    // A first digit of last groups that several share: those cases are listed (with every
    // case whose id starts with it, when it is the ids' own first digit).
    let first = ids
        .iter()
        .map(|id| last(id)[..1].to_owned())
        .find(|c| {
            ids.iter()
                .filter(|id| last(id).starts_with(c.as_str()))
                .count()
                > 1
        })
        .expect("a shared first digit");
    let err = data.fails(&["case", "show", &first]);
    assert!(err.contains("give more of it"), "{err}");
    if !ids[0].starts_with(&first) {
        for id in ids.iter().filter(|id| last(id).starts_with(&first)) {
            assert!(err.contains(id.as_str()), "{err}");
        }
    }
    let err = data.fails(&["case", "show", "ffffffffffff"]);
    assert!(
        err.contains("no case id starts with it, nor the last group of one")
            || ids.iter().any(|id| last(id).starts_with("ffffffffffff")),
        "{err}"
    );
    // Work items too, by the start of their last group.
    let items = data.json(&["workitem", "list", "--json"]);
    let items = items.as_array().unwrap();
    if let Some(item) = items.first() {
        let id = item["id"].as_str().unwrap();
        let out = data.json(&["workitem", "list", "--after", &last(id)[..10], "--json"]);
        assert_eq!(out.as_array().unwrap().len(), items.len() - 1);
    }
}

/// Returns the time cells (date, time of day) of the history table of `case`, run with `TZ`
/// set to `tz` and `extra` flags.
fn history_times(data: &DataDir, case: &str, tz: &str, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["--data-dir", path_str(data.path()), "case", "history", case];
    args.extend_from_slice(extra);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_knhk"))
        .args(&args)
        .env_remove("KNHK_UTC")
        .env("TZ", tz)
        .output()
        .expect("the knhk binary runs");
    assert!(out.status.success(), "{}", crate::stderr(&out));
    crate::stdout(&out)
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|cells| cells.first().is_some_and(|c| c.parse::<u64>().is_ok()))
        .map(|cells| format!("{} {}", cells[1], cells[2]))
        .collect()
}

#[test]
fn history_times_show_the_date_and_the_zone_local_or_utc() {
    let data = DataDir::new();
    let case = data.start_loan();
    let case = text(&case, "case_id").to_owned();
    // A zone two hours east of UTC all year (POSIX `TZ` counts westwards).
    let local = history_times(&data, &case, "XST-2", &[]);
    let utc = history_times(&data, &case, "XST-2", &["--utc"]);
    assert!(!local.is_empty());
    assert_eq!(local.len(), utc.len());
    for (l, u) in local.iter().zip(&utc) {
        assert!(l.ends_with("+02:00"), "local time with its offset: {l}");
        assert!(u.ends_with('Z'), "UTC: {u}");
        // `YYYY-MM-DD` first, in both.
        assert_eq!(l.as_bytes()[4], b'-', "{l}");
        assert_eq!(u.as_bytes()[4], b'-', "{u}");
    }
    // The same instant: the local hour is two hours after the UTC one (mod 24).
    let hour = |t: &str| t[11..13].parse::<u32>().expect("an hour");
    assert_eq!(
        hour(&local[0]),
        (hour(&utc[0]) + 2) % 24,
        "{local:?} {utc:?}"
    );
    // JSON stays RFC 3339 in UTC whatever the zone.
    let doc = data.json(&["case", "history", &case, "--json"]);
    let first = text(&doc["history"][0], "time");
    assert!(
        first.contains('T') && first.ends_with('Z'),
        "RFC 3339: {first}"
    );
}

#[test]
fn a_history_is_read_page_by_page_after_a_sequence_number() {
    let data = DataDir::new();
    let case = data.start_loan();
    let case = text(&case, "case_id").to_owned();
    let whole = data.json(&["case", "history", &case, "--json"]);
    let all: Vec<u64> = whole["history"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect();
    assert!(all.len() > 8, "{all:?}");
    // Walk the history five events at a time, as a script would.
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let page = data.json(&[
            "case",
            "history",
            &case,
            "--after",
            &after.to_string(),
            "--limit",
            "5",
            "--json",
        ]);
        let events = page["history"].as_array().expect("a page");
        assert!(events.len() <= 5, "{page:#}");
        seen.extend(events.iter().map(|e| e["seq"].as_u64().expect("seq")));
        match page["next_after"].as_u64() {
            Some(next) => {
                assert_eq!(Some(next), seen.last().copied());
                after = next;
            }
            None => break,
        }
    }
    assert_eq!(seen, all, "the pages make the whole history, once each");
    // The table says how to go on.
    let first = data.ok(&["case", "history", &case, "--limit", "3"]);
    let rows = first
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|c| c.parse::<u64>().is_ok())
        })
        .count();
    assert_eq!(rows, 3, "{first}");
    assert!(
        first.contains(&format!("case history {case} --after 3 --limit 3")),
        "{first}"
    );
}

#[test]
fn case_lists_are_read_page_by_page_after_a_case() {
    let data = DataDir::new();
    let workflow = register_loan(&data);
    for _ in 0..5 {
        data.ok(&["case", "create", &workflow, "--data", r#"{"amount": 1}"#]);
    }
    let ids = |doc: &serde_json::Value| -> Vec<String> {
        doc.as_array()
            .expect("a list")
            .iter()
            .map(|c| text(c, "case_id").to_owned())
            .collect()
    };
    let all = ids(&data.json(&["case", "list", "--json"]));
    assert_eq!(all.len(), 5);
    // Two at a time, each page after the last case of the one before.
    let mut seen = ids(&data.json(&["case", "list", "--limit", "2", "--json"]));
    loop {
        let last = seen.last().expect("a case").clone();
        let page = ids(&data.json(&["case", "list", "--limit", "2", "--after", &last, "--json"]));
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 2, "{page:?}");
        seen.extend(page);
    }
    assert_eq!(seen, all, "the pages make the list, in order, once each");
    let table = data.ok(&["case", "list", "--limit", "2"]);
    assert!(
        table.contains(&format!("case list --after {} --limit 2", all[1])),
        "{table}"
    );
}

#[test]
fn work_item_lists_are_read_page_by_page_after_an_item() {
    let data = DataDir::new();
    for _ in 0..5 {
        data.start_loan();
    }
    let ids = |doc: &serde_json::Value| -> Vec<String> {
        doc.as_array()
            .expect("a list")
            .iter()
            .map(|w| text(w, "id").to_owned())
            .collect()
    };
    let all = ids(&data.json(&["workitem", "list", "--role", "underwriter", "--json"]));
    assert_eq!(all.len(), 5);
    let page = |after: Option<&str>| {
        let mut args = vec!["workitem", "list", "--role", "underwriter", "--limit", "2"];
        if let Some(after) = after {
            args.extend(["--after", after]);
        }
        args.push("--json");
        ids(&data.json(&args))
    };
    let mut seen = page(None);
    loop {
        let last = seen.last().expect("an item").clone();
        let next = page(Some(&last));
        if next.is_empty() {
            break;
        }
        assert!(next.len() <= 2, "{next:?}");
        seen.extend(next);
    }
    assert_eq!(seen, all, "the pages make the list, in order, once each");
    let table = data.ok(&["workitem", "list", "--role", "underwriter", "--limit", "2"]);
    assert!(
        table.contains(&format!(
            "workitem list --role underwriter --after {} --limit 2",
            all[1]
        )),
        "{table}"
    );
    // Without a filter too, and an item named by the start of its last group.
    let last_group = all[0].rsplit('-').next().unwrap();
    let rest = ids(&data.json(&["workitem", "list", "--after", &last_group[..8], "--json"]));
    assert_eq!(rest, all[1..].to_vec());
}

/// Reads JSON lines: one object a line.
fn lines(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn long_lists_print_json_lines_read_page_by_page() {
    let data = DataDir::new();
    let mut started = Vec::new();
    for _ in 0..5 {
        started.push(text(&data.start_loan(), "case_id").to_owned());
    }
    // Pages of two rows: every list crosses pages.
    let cases = data.json(&["case", "list", "--json"]);
    let got = lines(&data.ok(&["--page-size", "2", "case", "list", "--jsonl"]));
    assert_eq!(
        &got,
        cases.as_array().unwrap(),
        "the objects of --json, one a line"
    );
    let got = lines(&data.ok(&[
        "--page-size",
        "2",
        "case",
        "list",
        "--jsonl",
        "--after",
        &started[0],
        "--limit",
        "3",
    ]));
    let ids: Vec<&str> = got.iter().map(|c| text(c, "case_id")).collect();
    assert_eq!(
        ids,
        started[1..4].iter().map(String::as_str).collect::<Vec<_>>()
    );

    let items = data.json(&["workitem", "list", "--json"]);
    let got = lines(&data.ok(&["--page-size", "2", "workitem", "list", "--jsonl"]));
    assert_eq!(&got, items.as_array().unwrap());
    let got = lines(&data.ok(&["workitem", "list", "--jsonl", "--limit", "1"]));
    assert_eq!(got, items.as_array().unwrap()[..1].to_vec());

    let history = data.json(&["case", "history", &started[0], "--json"]);
    let got = lines(&data.ok(&[
        "--page-size",
        "3",
        "case",
        "history",
        &started[0],
        "--jsonl",
    ]));
    assert_eq!(&got, history["history"].as_array().unwrap());
    let got = lines(&data.ok(&[
        "--page-size",
        "3",
        "case",
        "history",
        &started[0],
        "--jsonl",
        "--after",
        "2",
        "--limit",
        "4",
    ]));
    let seqs: Vec<u64> = got.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, vec![3, 4, 5, 6]);
    // --json and --jsonl exclude each other.
    let out = data.knhk(&["case", "list", "--json", "--jsonl"]);
    assert_eq!(out.status.code(), Some(2));
}
