//! `knhk workitem ...`: people doing the work of human tasks, one process per command.

use crate::{DataDir, PREFIXES, completed_tasks, example, kinds, path_str, temp_file, text};

#[test]
fn work_items_are_listed_claimed_and_completed_across_processes() {
    let data = DataDir::new();
    let w = data.json(&[
        "workflow",
        "register",
        &example("loan_application.ttl"),
        "--json",
    ]);
    let created = data.json(&[
        "case",
        "create",
        text(&w, "id"),
        "--data",
        r#"{"applicant": "Ada", "amount": 25000}"#,
        "--json",
    ]);
    let case = text(&created, "case_id").to_owned();
    let running = data.json(&["case", "execute", &case, "--json"]);
    assert_eq!(text(&running, "state"), "running");

    let items = data.json(&["workitem", "list", "--role", "underwriter", "--json"]);
    let items = items.as_array().expect("a list");
    assert_eq!(items.len(), 1);
    let item = text(&items[0], "id").to_owned();
    assert_eq!(text(&items[0], "case_id"), case);
    assert_eq!(text(&items[0], "state"), "offered");
    let table = data.ok(&["workitem", "list", "--role", "underwriter"]);
    assert!(table.contains(&item), "{table}");
    assert!(table.contains("underwriter_decision"), "{table}");
    assert!(
        data.ok(&["workitem", "list", "--role", "clerk"])
            .contains("no work items")
    );

    let claimed = data.ok(&["workitem", "claim", &item, "--user", "uma"]);
    assert!(claimed.contains("allocated to uma"), "{claimed}");
    let err = data.fails(&["workitem", "claim", &item, "--user", "bob"]);
    assert_eq!(
        err.trim(),
        format!("error: cannot claim work item {item}: it is already allocated by uma")
    );
    let mine = data.json(&["workitem", "list", "--user", "uma", "--json"]);
    assert_eq!(mine[0]["id"], item.as_str());
    let err = data.fails(&["workitem", "complete", &item, "--user", "bob"]);
    assert!(err.contains("is allocated to uma, not to bob"), "{err}");
    let err = data.fails(&[
        "workitem", "complete", &item, "--user", "uma", "--output", "[true]",
    ]);
    assert!(
        err.contains("--output must be a JSON object, got an array"),
        "{err}"
    );

    let done = data.json(&[
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
    assert_eq!(done["data"]["decided_by"], "underwriter");
    assert_eq!(done["data"]["decision"], "approved");
    let err = data.fails(&["workitem", "complete", &item, "--user", "uma"]);
    assert!(err.contains(&format!("unknown work item {item}")), "{err}");

    // The history holds every event of the three processes, in order, without gaps.
    let history = data.json(&["case", "history", &case, "--json"]);
    let events = history["history"].as_array().expect("history");
    let seqs: Vec<u64> = events.iter().filter_map(|e| e["seq"].as_u64()).collect();
    assert_eq!(seqs, (1..=events.len() as u64).collect::<Vec<_>>());
    let list = data.json(&["case", "list", "--json"]);
    assert_eq!(list[0]["events"], events.len());
    let kinds = kinds(&history);
    for kind in [
        "case_created",
        "case_state_changed",
        "work_item_offered",
        "work_item_allocated",
        "work_item_started",
        "work_item_completed",
        "data_updated",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing: {kinds:?}");
    }
    assert_eq!(
        completed_tasks(&history),
        [
            "check_application",
            "open_file",
            "credit_check",
            "document_check",
            "assess",
            "underwriter_decision",
            "notify_approval"
        ]
    );
    let table = data.ok(&["case", "history", &case]);
    assert!(table.contains("work_item_allocated"), "{table}");
    assert!(table.contains("by uma"), "{table}");
    assert!(
        table.contains(&format!("case {case}: completed")),
        "{table}"
    );
}

#[test]
fn round_robin_allocates_from_the_role_directory() {
    let file = temp_file(
        "round_robin.ttl",
        &format!(
            "{PREFIXES}\
             <#spec> a yawl:Specification ; yawl:hasDecomposition <#net> .\n\
             <#net> a yawl:Net ; yawl:isRootNet true ; yawl:hasInputCondition <#start> ;\n\
                 yawl:hasOutputCondition <#end> ; yawl:hasTask <#split>, <#pack>, <#label>, <#ship> .\n\
             <#start> a yawl:InputCondition ; yawl:flowsInto [ yawl:nextElementRef <#split> ] .\n\
             <#split> a yawl:Task ; yawl:hasSplit yawl:ControlTypeAnd ;\n\
                 yawl:flowsInto [ yawl:nextElementRef <#pack> ], [ yawl:nextElementRef <#label> ] .\n\
             <#pack> a yawl:Task ; knhk:role \"clerk\" ; knhk:allocation knhk:RoundRobin ;\n\
                 yawl:flowsInto [ yawl:nextElementRef <#ship> ] .\n\
             <#label> a yawl:Task ; knhk:role \"clerk\" ; knhk:allocation knhk:RoundRobin ;\n\
                 yawl:flowsInto [ yawl:nextElementRef <#ship> ] .\n\
             <#ship> a yawl:Task ; yawl:hasJoin yawl:ControlTypeAnd ;\n\
                 yawl:flowsInto [ yawl:nextElementRef <#end> ] .\n\
             <#end> a yawl:OutputCondition .\n"
        ),
    );
    let data = DataDir::new();
    std::fs::write(
        data.path().join("directory.json"),
        r#"{"roles": {"clerk": ["ann", "bob"]}}"#,
    )
    .expect("directory.json");
    let doc = data.json(&["run", path_str(&file), "--json"]);
    assert_eq!(text(&doc, "state"), "running");
    let mut owners: Vec<&str> = doc["work_items"]
        .as_array()
        .expect("work items")
        .iter()
        .map(|w| w["owner"].as_str().expect("allocated"))
        .collect();
    owners.sort_unstable();
    assert_eq!(owners, ["ann", "bob"], "{doc:#}");
    for user in ["ann", "bob"] {
        let mine = data.json(&["workitem", "list", "--user", user, "--json"]);
        let item = text(&mine[0], "id").to_owned();
        data.ok(&["workitem", "start", &item, "--user", user]);
        data.json(&["workitem", "complete", &item, "--user", user, "--json"]);
    }
    let done = data.json(&["case", "show", text(&doc, "case_id"), "--json"]);
    assert_eq!(text(&done, "state"), "completed", "{done:#}");
}

#[test]
fn a_bad_role_directory_is_named() {
    // Local only: a bad role directory stops a server from starting at all.
    let data = DataDir::local();
    std::fs::write(data.path().join("directory.json"), r#"{"roles": ["ann"]}"#)
        .expect("directory.json");
    let err = data.fails(&["workflow", "register", &example("loan_application.ttl")]);
    assert!(err.contains("directory.json"), "{err}");
}

#[test]
fn round_robin_turns_go_on_across_processes() {
    let file = temp_file(
        "round_robin_one.ttl",
        &format!(
            "{PREFIXES}\
             <#spec> a yawl:Specification ; yawl:hasDecomposition <#net> .\n\
             <#net> a yawl:Net ; yawl:isRootNet true ; yawl:hasInputCondition <#start> ;\n\
                 yawl:hasOutputCondition <#end> ; yawl:hasTask <#pack> .\n\
             <#start> a yawl:InputCondition ; yawl:flowsInto [ yawl:nextElementRef <#pack> ] .\n\
             <#pack> a yawl:Task ; knhk:role \"clerk\" ; knhk:allocation knhk:RoundRobin ;\n\
                 yawl:flowsInto [ yawl:nextElementRef <#end> ] .\n\
             <#end> a yawl:OutputCondition .\n"
        ),
    );
    let data = DataDir::new();
    std::fs::write(
        data.path().join("directory.json"),
        r#"{"roles": {"clerk": ["ann", "bob", "cy"]}}"#,
    )
    .expect("directory.json");
    // Each `knhk run` is a process of its own; the turn is kept in the store.
    let owners: Vec<String> = (0..4)
        .map(|_| {
            let doc = data.json(&["run", path_str(&file), "--json"]);
            text(&doc["work_items"][0], "owner").to_owned()
        })
        .collect();
    assert_eq!(owners, ["ann", "bob", "cy", "ann"]);
}

#[test]
fn with_a_directory_only_members_of_the_items_role_may_claim_start_complete_or_fail_it() {
    let data = DataDir::new();
    std::fs::write(
        data.path().join("directory.json"),
        r#"{"roles": {"underwriter": ["uma"], "clerk": ["eve"]}}"#,
    )
    .expect("directory");
    let started = data.start_loan();
    let case = text(&started, "case_id").to_owned();
    let item = text(&started["work_items"][0], "id").to_owned();
    let before = data.json(&["case", "show", &case, "--json"]);
    for args in [
        vec!["workitem", "claim", &item, "--user", "eve"],
        vec!["workitem", "start", &item, "--user", "eve"],
        vec![
            "workitem", "complete", &item, "--user", "eve", "--output", "{}",
        ],
        vec!["workitem", "fail", &item, "--user", "eve", "--reason", "no"],
    ] {
        let err = data.fails(&args);
        assert!(
            err.contains("eve may not take work item") && err.contains("underwriter"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(
        data.json(&["case", "show", &case, "--json"]),
        before,
        "nothing changed"
    );
    let done = data.json(&[
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
}

#[test]
fn a_work_item_is_released_to_its_role_and_delegated_to_another_member() {
    let data = DataDir::new();
    std::fs::write(
        data.path().join("directory.json"),
        r#"{"roles": {"underwriter": ["uma", "ulf"], "clerk": ["eve"]}}"#,
    )
    .expect("directory");
    let started = data.start_loan();
    let item = text(&started["work_items"][0], "id").to_owned();
    data.ok(&["workitem", "claim", &item, "--user", "uma"]);
    // Someone else cannot give it back.
    let err = data.fails(&["workitem", "release", &item, "--user", "ulf"]);
    assert!(err.contains("allocated to uma"), "{err}");
    let out = data.ok(&["workitem", "release", &item, "--user", "uma"]);
    assert!(out.contains("offered to role underwriter again"), "{out}");
    let offered = data.json(&["workitem", "list", "--role", "underwriter", "--json"]);
    assert_eq!(offered[0]["state"], "offered", "{offered:#}");
    assert!(offered[0]["owner"].is_null());

    data.ok(&["workitem", "claim", &item, "--user", "uma"]);
    // Only to a member of the item's roles.
    let err = data.fails(&[
        "workitem", "delegate", &item, "--to", "eve", "--user", "uma",
    ]);
    assert!(err.contains("eve may not take work item"), "{err}");
    data.ok(&[
        "workitem", "delegate", &item, "--to", "ulf", "--user", "uma",
    ]);
    let mine = data.json(&["workitem", "list", "--user", "ulf", "--json"]);
    assert_eq!(mine[0]["id"], item.as_str(), "{mine:#}");
    let done = data.json(&[
        "workitem",
        "complete",
        &item,
        "--user",
        "ulf",
        "--output",
        r#"{"approved": true}"#,
        "--json",
    ]);
    assert_eq!(text(&done, "state"), "completed", "{done:#}");
    let history = done["history"].as_array().expect("history");
    let audit: Vec<&str> = history
        .iter()
        .filter(|e| e["kind"] == "work_item_released" || e["kind"] == "work_item_delegated")
        .map(|e| e["detail"].as_str().expect("detail"))
        .collect();
    assert_eq!(audit.len(), 2, "{audit:?}");
    assert!(audit[0].ends_with("by uma"), "{audit:?}");
    assert!(audit[1].ends_with("from uma to ulf"), "{audit:?}");
}

#[test]
fn worklist_commands_print_the_work_item_as_json_with_json() {
    let data = DataDir::new();
    let started = data.start_loan();
    let item = text(&started["work_items"][0], "id").to_owned();
    let claimed = data.json(&["workitem", "claim", &item, "--user", "uma", "--json"]);
    assert_eq!(claimed["id"], item.as_str(), "{claimed:#}");
    assert_eq!(claimed["state"], "allocated");
    assert_eq!(claimed["owner"], "uma");
    let released = data.json(&["workitem", "release", &item, "--user", "uma", "--json"]);
    assert_eq!(released["state"], "offered", "{released:#}");
    assert!(released["owner"].is_null());
    let started = data.json(&["workitem", "start", &item, "--user", "ulf", "--json"]);
    assert_eq!(started["state"], "started", "{started:#}");
    assert_eq!(started["owner"], "ulf");
}

#[test]
fn claim_and_complete_races_between_processes_have_exactly_one_winner() {
    use std::process::{Command, Stdio};

    let data = DataDir::new();
    let case = data.start_loan();
    let item = text(&case["work_items"][0], "id").to_owned();
    // Every process is started before any is waited for, so that they overlap.
    let race = |args: &dyn Fn(usize) -> Vec<String>| -> Vec<std::process::Output> {
        let children: Vec<_> = (0..16)
            .map(|n| {
                Command::new(env!("CARGO_BIN_EXE_knhk"))
                    .arg("--data-dir")
                    .arg(data.path())
                    .args(args(n))
                    .env_remove("KNHK_DATA_DIR")
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("knhk starts")
            })
            .collect();
        children
            .into_iter()
            .map(|c| c.wait_with_output().expect("knhk ends"))
            .collect()
    };
    let claims = race(&|n| {
        ["workitem", "claim", &item, "--user", &format!("user{n}")]
            .map(str::to_owned)
            .to_vec()
    });
    let winners: Vec<usize> = (0..claims.len())
        .filter(|&n| claims[n].status.success())
        .collect();
    assert_eq!(winners.len(), 1, "one claim wins: {claims:?}");
    for (n, out) in claims.iter().enumerate() {
        if !out.status.success() {
            let err = crate::stderr(out);
            assert!(
                err.contains("is allocated") || err.contains("already allocated"),
                "user{n}: {err}"
            );
        }
    }
    let winner = format!("user{}", winners[0]);
    let completions = race(&|n| {
        let output = format!(r#"{{"approved": true, "by": {n}}}"#);
        [
            "workitem", "complete", &item, "--user", &winner, "--output", &output,
        ]
        .map(str::to_owned)
        .to_vec()
    });
    let done = completions.iter().filter(|o| o.status.success()).count();
    assert_eq!(done, 1, "one completion wins: {completions:?}");
    let case_id = text(&case, "case_id");
    let history = data.json(&["case", "history", case_id, "--json"]);
    let completed = history["history"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["kind"] == "work_item_completed")
        .count();
    assert_eq!(completed, 1, "the item completed once: {history:#}");
}
