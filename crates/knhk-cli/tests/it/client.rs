//! The CLI as a client of `knhk serve` (`--server URL`): the same commands, run once on a
//! data directory and once against a server on another one, print the same (but for ids
//! and times) and exit with the same codes.

use std::collections::HashMap;

use serde_json::Value;

use crate::http_server::{Reply, serve};
use crate::{DataDir, PREFIXES, example, path_str, stderr, stdout, temp_file, text};

/// What one command did: its name, exit code, and stdout with ids and times replaced.
#[derive(Debug, PartialEq)]
struct Step {
    command: String,
    code: Option<i32>,
    stdout: String,
    /// Errors and progress, with where an id was looked up replaced too.
    stderr: String,
}

/// Runs commands on a data directory, keeping what each did.
struct Script<'a> {
    data: &'a DataDir,
    steps: Vec<Step>,
    /// Every stdout so far, for ids to be numbered across them in order.
    ids: HashMap<String, usize>,
}

impl Script<'_> {
    fn run(&mut self, args: &[&str]) -> String {
        let mut all = args.to_vec();
        all.push("--utc");
        let out = self.data.knhk(&all);
        let text = stdout(&out);
        let normal = normalize(&text, &mut self.ids);
        // A failure is an error line (or a failed or cancelled case shown), never a panic.
        let err = stderr(&out);
        assert!(!err.contains("panicked"), "knhk {args:?}: {err}");
        let err = normalize(&looked_up(&err), &mut self.ids);
        self.steps.push(Step {
            command: args.join(" "),
            code: out.status.code(),
            stdout: normal,
            stderr: err,
        });
        text
    }

    fn json(&mut self, args: &[&str]) -> Value {
        let text = self.run(args);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("knhk {args:?}: {e}\n{text}"))
    }
}

/// Replaces ids (numbered by first appearance), times and the way the data is reached
/// (`knhk --data-dir DIR`, `knhk --server URL`) with placeholders.
fn normalize(text: &str, ids: &mut HashMap<String, usize>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if let Some(id) = uuid_at(rest) {
            let n = ids.len() + 1;
            let n = *ids.entry(id.to_owned()).or_insert(n);
            out.push_str(&format!("<id{n}>"));
            rest = &rest[id.len()..];
        } else if let Some(len) = time_at(rest) {
            out.push_str("<time>");
            rest = &rest[len..];
        } else if let Some(after) = rest.strip_prefix("\"time_ms\":") {
            out.push_str("\"time_ms\":<ms>");
            rest = after.trim_start_matches(|c: char| c.is_ascii_digit() || c == ' ');
        } else if let Some(after) = rest
            .strip_prefix("knhk --data-dir ")
            .or_else(|| rest.strip_prefix("knhk --server "))
        {
            out.push_str("knhk");
            rest = after.trim_start_matches(|c: char| !c.is_whitespace());
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// Replaces where an unknown id was looked up, `(looked in the data directory DIR)` or
/// `(asked the server URL)`, with `(looked up)`.
fn looked_up(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    loop {
        let at = ["(looked in the data directory ", "(asked the server "]
            .iter()
            .filter_map(|p| rest.find(p))
            .min();
        let Some(at) = at else { break };
        out.push_str(&rest[..at]);
        out.push_str("(looked up)");
        rest = &rest[at..];
        rest = rest.find(')').map_or("", |end| &rest[end + 1..]);
    }
    out.push_str(rest);
    out
}

/// Returns the UUID `s` starts with, if any.
fn uuid_at(s: &str) -> Option<&str> {
    let id = s.get(..36)?;
    let ok = id.char_indices().all(|(i, c)| match i {
        8 | 13 | 18 | 23 => c == '-',
        _ => c.is_ascii_hexdigit(),
    });
    ok.then_some(id)
}

/// Returns the length of the point in time `s` starts with (`2026-01-02T03:04:05.678Z`,
/// `2026-01-02 03:04:05.678+00:00`), if any.
fn time_at(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let date = b.len() >= 16
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[7] == b'-'
        && (b[10] == b'T' || b[10] == b' ')
        && b[11..13].iter().all(u8::is_ascii_digit)
        && b[13] == b':';
    if !date {
        return None;
    }
    let len = 11
        + s[11..]
            .find(|c: char| !(c.is_ascii_digit() || ":.+-Z".contains(c)))
            .unwrap_or(s.len() - 11);
    Some(len)
}

/// The scenario: a workflow registered from a file; a case created, started, shown, listed
/// and its history read in pages; its human task claimed, started and completed; another
/// case cancelled; and the errors of an unknown id and a double completion.
fn scenario(data: &DataDir) -> Vec<Step> {
    let mut s = Script {
        data,
        steps: Vec::new(),
        ids: HashMap::new(),
    };
    let loan = example("loan_application.ttl");
    let w = s.json(&["workflow", "register", &loan, "--json"]);
    let workflow = text(&w, "id").to_owned();
    s.run(&["workflow", "register", &loan]);
    s.run(&["workflow", "list"]);
    s.run(&["workflow", "list", "--json"]);
    s.run(&["workflow", "show", &workflow]);
    s.run(&["workflow", "show", "loan_application", "--json"]);

    let data_arg = r#"{"applicant": "Ada", "amount": 25000}"#;
    let created = s.json(&["case", "create", &workflow, "--data", data_arg, "--json"]);
    let case = text(&created, "case_id").to_owned();
    s.run(&["case", "show", &case]);
    s.run(&["case", "execute", &case]);
    s.run(&["case", "show", &case]);
    s.run(&["case", "show", &case, "--json"]);
    s.run(&["case", "list"]);
    s.run(&["case", "list", "--status", "running", "--json"]);

    let items = s.json(&["workitem", "list", "--role", "underwriter", "--json"]);
    let item = text(&items[0], "id").to_owned();
    s.run(&["workitem", "list", "--role", "underwriter"]);
    s.run(&["workitem", "list", "--case", &case, "--jsonl"]);
    s.run(&["workitem", "claim", &item, "--user", "uma"]);
    s.run(&["workitem", "claim", &item, "--user", "bob"]);
    s.run(&["workitem", "start", &item, "--user", "uma", "--json"]);
    s.run(&["workitem", "list", "--user", "uma"]);
    s.run(&[
        "workitem",
        "complete",
        &item,
        "--user",
        "uma",
        "--output",
        r#"{"approved": true}"#,
    ]);
    // Completed once: the second completion is refused.
    s.run(&["workitem", "complete", &item, "--user", "uma"]);

    s.run(&["case", "history", &case]);
    s.run(&["case", "history", &case, "--json"]);
    s.run(&["case", "history", &case, "--limit", "3"]);
    s.run(&[
        "case", "history", &case, "--after", "3", "--limit", "3", "--json",
    ]);
    s.run(&["case", "history", &case, "--after", "6", "--jsonl"]);

    let second = s.json(&[
        "case", "create", &workflow, "--data", data_arg, "--start", "--json",
    ]);
    let second = text(&second, "case_id").to_owned();
    s.run(&["case", "list", "--limit", "1"]);
    s.run(&["case", "list", "--after", &case, "--jsonl"]);
    s.run(&["case", "suspend", &second]);
    s.run(&["case", "resume", &second]);
    s.run(&["case", "cancel", &second, "--reason", "withdrawn"]);
    s.run(&["case", "cancel", &second]);
    s.run(&["case", "show", &second]);
    s.run(&["case", "list", "--status", "cancelled"]);

    // Unknown ids, and an unknown workflow.
    let unknown = "0192f0c4-8a55-7cc2-9d3e-2101816761d4";
    s.run(&["case", "show", unknown]);
    s.run(&["workitem", "claim", unknown, "--user", "uma"]);
    s.run(&["case", "create", "no_such_workflow"]);
    s.steps
}

/// The last group of an id, as tables shorten it and commands take it.
fn last_group(id: &str) -> &str {
    id.rsplit('-').next().unwrap_or(id)
}

/// Workflows named by URI and by name at a version, ids shortened, work items released,
/// delegated, failed, offered and allocated by an administrator, a case retried and its data
/// set, lists read in pages.
fn operator_scenario(data: &DataDir) -> Vec<Step> {
    let mut s = Script {
        data,
        steps: Vec::new(),
        ids: HashMap::new(),
    };
    let loan = example("loan_application.ttl");
    s.run(&["workflow", "register", &loan]);
    s.run(&["workflow", "show", "Loan application@1", "--json"]);
    s.run(&["workflow", "show", "Loan application@2"]);
    let data_arg = r#"{"applicant": "Ada", "amount": 25000}"#;
    let uri = "https://knhk.dev/examples/loan-application";
    let first = s.json(&[
        "case", "create", uri, "--data", data_arg, "--start", "--json",
    ]);
    let case = text(&first, "case_id").to_owned();
    s.run(&["case", "create", uri, "--data", data_arg, "--start"]);
    s.run(&["case", "show", last_group(&case)]);
    s.run(&["workitem", "list", "--limit", "1"]);
    s.run(&["workitem", "list", "--jsonl"]);
    let item = text(&first["work_items"][0], "id").to_owned();
    let short = last_group(&item);
    s.run(&["workitem", "claim", short, "--user", "uma"]);
    s.run(&["workitem", "release", short, "--user", "uma"]);
    s.run(&["workitem", "claim", short, "--user", "uma", "--json"]);
    s.run(&[
        "workitem", "delegate", short, "--to", "eve", "--user", "uma",
    ]);
    s.run(&[
        "workitem", "delegate", short, "--to", "ulf", "--user", "uma",
    ]);
    s.run(&[
        "workitem",
        "fail",
        short,
        "--user",
        "eve",
        "--reason",
        "no papers",
    ]);
    s.run(&["case", "show", &case]);
    s.run(&["case", "trigger", &case, "no_such_event"]);
    let retried = s.json(&["case", "retry", &case, "--json"]);
    s.run(&[
        "case",
        "set-data",
        &case,
        "--data",
        r#"{"note": "papers came"}"#,
    ]);
    let again = text(&retried["work_items"][0], "id").to_owned();
    s.run(&[
        "workitem", "offer", &again, "--role", "clerk", "--user", "admin",
    ]);
    s.run(&["workitem", "list", "--role", "clerk"]);
    s.run(&[
        "workitem", "allocate", &again, "--to", "uma", "--user", "admin",
    ]);
    s.run(&[
        "workitem",
        "complete",
        &again,
        "--user",
        "uma",
        "--output",
        r#"{"approved": false}"#,
        "--json",
    ]);
    s.run(&["case", "retry", &case]);
    s.run(&["case", "add-instance", &case, "underwriter_decision"]);
    s.run(&["case", "complete-task", &case, "underwriter_decision"]);
    s.run(&["case", "list", "--jsonl"]);
    s.run(&["case", "list", "--status", "completed", "--limit", "1"]);
    s.run(&[
        "case",
        "history",
        last_group(&case),
        "--limit",
        "5",
        "--after",
        "20",
    ]);
    s.steps
}

/// A case whose connector call the server makes after it has answered the step: the command
/// follows the case until no call is in flight, as the engine in this process does. The
/// payment service takes its time and declines the first charge of each order.
fn connector_scenario(data: &DataDir) -> Vec<Step> {
    let mut paths = std::collections::HashSet::new();
    let payments = serve(move |request| {
        // A slow service: the answer comes well after the step that made the call.
        std::thread::sleep(std::time::Duration::from_millis(300));
        if paths.insert(request.line.clone()) {
            Reply::json("400 Bad Request", r#"{"error": "card declined"}"#)
        } else {
            Reply::json("200 OK", r#"{"charged": true}"#)
        }
    });
    let file = temp_file(
        &format!(
            "client_charge_{}.ttl",
            payments.replace([':', '/', '.'], "_")
        ),
        &format!(
            "{PREFIXES}\
             <#spec> a yawl:Specification ; yawl:uri <urn:test:client:charge> ;\n\
                 yawl:hasDecomposition <#net> .\n\
             <#net> a yawl:Net ; yawl:isRootNet true ; yawl:hasInputCondition <#start> ;\n\
                 yawl:hasOutputCondition <#end> ; yawl:hasTask <#charge>, <#ship> .\n\
             <#start> a yawl:InputCondition ; yawl:flowsInto [ yawl:nextElementRef <#charge> ] .\n\
             <#charge> a yawl:Task ; knhk:connector \"http\" ;\n\
                 knhk:setting [ knhk:key \"url\" ; knhk:value \"{payments}/charge/{{order}}\" ] ;\n\
                 yawl:flowsInto [ yawl:nextElementRef <#ship> ] .\n\
             <#ship> a yawl:Task ; yawl:flowsInto [ yawl:nextElementRef <#end> ] .\n\
             <#end> a yawl:OutputCondition .\n"
        ),
    );
    let mut s = Script {
        data,
        steps: Vec::new(),
        ids: HashMap::new(),
    };
    let w = s.json(&["workflow", "register", path_str(&file), "--json"]);
    let workflow = text(&w, "id").to_owned();
    let failed = s.json(&[
        "case",
        "create",
        &workflow,
        "--data",
        r#"{"order": "A-1"}"#,
        "--start",
        "--json",
    ]);
    let case = text(&failed, "case_id").to_owned();
    s.run(&["case", "show", &case]);
    s.run(&["case", "retry", &case]);
    s.run(&[
        "case",
        "create",
        &workflow,
        "--data",
        r#"{"order": "A-2"}"#,
        "--start",
    ]);
    s.steps
}

#[test]
fn a_step_whose_connector_call_the_server_makes_later_is_followed_to_its_end() {
    let local = connector_scenario(&DataDir::local());
    let remote = connector_scenario(&DataDir::served());
    same(&local, &remote);
    // Declined, then charged on the retry: the case failed, then completed.
    let codes: Vec<Option<i32>> = remote.iter().map(|s| s.code).collect();
    assert_eq!(codes, [Some(0), Some(1), Some(1), Some(0), Some(1)]);
    assert!(
        remote[3].stdout.contains(": completed"),
        "{}",
        remote[3].stdout
    );
}

/// Lists and histories longer than a page of the server's.
fn long_lists(data: &DataDir) -> Vec<Step> {
    let mut s = Script {
        data,
        steps: Vec::new(),
        ids: HashMap::new(),
    };
    let loan = example("loan_application.ttl");
    s.run(&["workflow", "register", &loan]);
    let mut last = String::new();
    let mut first = String::new();
    for n in 0..5 {
        let doc = s.json(&[
            "case",
            "create",
            "Loan application",
            "--data",
            &format!(r#"{{"applicant": "A{n}", "amount": 25000}}"#),
            "--start",
            "--json",
        ]);
        last = text(&doc, "case_id").to_owned();
        if n == 0 {
            first = last.clone();
        }
    }
    s.run(&["case", "list", "--jsonl"]);
    s.run(&["case", "list", "--limit", "3", "--json"]);
    s.run(&["workitem", "list"]);
    s.run(&["workitem", "list", "--jsonl", "--limit", "4"]);
    s.run(&["case", "history", &last]);
    s.run(&["case", "history", &last, "--jsonl"]);
    s.run(&["case", "history", &last, "--after", "2", "--limit", "7"]);
    // Pages after a case or a work item: the server is asked with `after=ID`.
    s.run(&["case", "list", "--after", &first, "--limit", "3", "--json"]);
    s.run(&["case", "list", "--after", &first, "--jsonl"]);
    let items = s.json(&["workitem", "list", "--json"]);
    let second = text(&items[1], "id").to_owned();
    s.run(&["workitem", "list", "--after", &second, "--limit", "2"]);
    s.run(&["workitem", "list", "--after", &second, "--jsonl"]);
    s.run(&["workflow", "list"]);
    s.run(&["workflow", "list", "--json"]);
    s.run(&["case", "release", &first]);
    s.steps
}

#[test]
fn lists_longer_than_the_servers_pages_are_read_whole() {
    let local = long_lists(&DataDir::local());
    let remote = long_lists(&DataDir::served_with(&[("KNHK_MAX_PAGE_SIZE", "2")]));
    same(&local, &remote);
    let lines = remote[6].stdout.lines().count();
    assert_eq!(lines, 5, "{}", remote[6].stdout);
    // After the first case, the four others; after the second item, the three others.
    assert_eq!(
        remote[14].stdout.lines().count(),
        4,
        "{}",
        remote[14].stdout
    );
    assert_eq!(
        remote[17].stdout.lines().count(),
        3,
        "{}",
        remote[17].stdout
    );
    assert!(
        remote[19].stdout.contains("\"tasks\""),
        "{}",
        remote[19].stdout
    );
    assert_eq!(remote[20].code, Some(1), "{:?}", remote[20]);
    assert!(
        remote[20].stderr.contains("is not quarantined"),
        "{}",
        remote[20].stderr
    );
}

/// Asserts that two runs printed the same and exited with the same codes, step by step.
fn same(local: &[Step], remote: &[Step]) {
    assert_eq!(local.len(), remote.len());
    for (l, r) in local.iter().zip(remote) {
        assert_eq!(
            (l.code, &l.stdout, &l.stderr),
            (r.code, &r.stdout, &r.stderr),
            "knhk {} printed or exited otherwise with --server",
            l.command
        );
    }
}

#[test]
fn an_operators_commands_print_the_same_and_exit_the_same_on_a_server() {
    let local = operator_scenario(&DataDir::local());
    let remote = operator_scenario(&DataDir::served());
    same(&local, &remote);
    let failed: Vec<&str> = remote
        .iter()
        .filter(|s| s.code != Some(0))
        .map(|s| s.command.as_str())
        .collect();
    // Refused both ways: a second delegation by who no longer holds the item, a trigger
    // nothing waits for, a retry of a completed case, the commands of a multiple-instance
    // task on a task that is none; and the case failed by its work item.
    assert_eq!(failed.len(), 8, "{failed:#?}");
    for done in [
        "release", "offer", "allocate", "set-data", "retry", "complete",
    ] {
        assert!(
            remote
                .iter()
                .any(|s| s.command.contains(done) && s.code == Some(0)),
            "{done}: {failed:#?}"
        );
    }
}

#[test]
fn the_commands_print_the_same_and_exit_the_same_on_a_server_as_on_a_data_directory() {
    let local = scenario(&DataDir::local());
    let remote = scenario(&DataDir::served());
    same(&local, &remote);
    // The scenario did what it says, both ways: a refused double completion, an unknown id.
    let codes: Vec<Option<i32>> = remote.iter().map(|s| s.code).collect();
    assert!(
        codes.iter().filter(|c| **c == Some(1)).count() >= 5,
        "{codes:?}"
    );
}

#[test]
fn commands_that_run_the_engine_here_refuse_a_server() {
    let data = DataDir::local();
    for args in [
        &["run", "x.ttl"][..],
        &["worker", "--until-idle"][..],
        &["store", "check"][..],
    ] {
        let mut all = vec!["--server", "http://127.0.0.1:9"];
        all.extend_from_slice(args);
        let err = data.fails(&all);
        assert!(err.contains("does not take --server"), "{args:?}: {err}");
    }
    // A server that does not answer is named.
    let err = data.fails(&["--server", "http://127.0.0.1:9", "workflow", "list"]);
    assert!(
        err.contains("cannot reach the knhk server at http://127.0.0.1:9"),
        "{err}"
    );
}

/// Sends a request and returns the status and the JSON body.
async fn call(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    let body = response.json().await.expect("a JSON body");
    (status, body)
}

#[tokio::test]
async fn the_routes_the_cli_added_answer_and_refuse_bad_input_changing_nothing() {
    let data = DataDir::served();
    let w = data.json(&[
        "workflow",
        "register",
        &example("loan_application.ttl"),
        "--json",
    ]);
    let started = |data: &DataDir| {
        data.json(&[
            "case",
            "create",
            "Loan application",
            "--data",
            r#"{"applicant": "Ada", "amount": 25000}"#,
            "--start",
            "--json",
        ])
    };
    let doc = started(&data);
    started(&data);
    let case = text(&doc, "case_id").to_owned();
    let item = text(&doc["work_items"][0], "id").to_owned();
    let base = data.server_url();
    let http = reqwest::Client::new();
    let get = |path: &str| http.get(format!("{base}{path}"));
    let post = |path: &str, body: Value| http.post(format!("{base}{path}")).json(&body);
    let (_, before) = call(get(&format!("/cases/{case}"))).await;

    // What the case waits for, the workflow's specification, lookups.
    let (status, waits) = call(get(&format!("/cases/{case}/waits"))).await;
    assert_eq!(status, 200, "{waits}");
    assert_eq!(waits["waits"][0]["kind"], "work_item", "{waits}");
    assert_eq!(waits["waits"][0]["item"], item.as_str());
    assert_eq!(waits["waits"][0]["task"], "underwriter_decision");
    let (status, spec) = call(get(&format!("/workflows/{}/spec", text(&w, "id")))).await;
    assert_eq!(status, 200, "{spec}");
    assert_eq!(spec["nets"][0]["tasks"].as_array().map(Vec::len), Some(9));
    let last = case.rsplit('-').next().expect("a last group");
    let (status, found) = call(get(&format!("/lookup/cases/{last}"))).await;
    assert_eq!((status, &found["id"]), (200, &Value::from(case.as_str())));
    // Both cases start with the same digits (time-ordered ids of one minute).
    let (status, err) = call(get(&format!("/lookup/cases/{}", &case[..4]))).await;
    assert_eq!(
        (status, &err["error"]["code"]),
        (400, &Value::from("invalid_argument"))
    );
    let (status, err) = call(get("/lookup/workitems/ffffffff")).await;
    assert_eq!(
        (status, &err["error"]["code"]),
        (404, &Value::from("not_found"))
    );
    let (status, err) = call(get("/lookup/workflows/Loan%20application@9")).await;
    assert_eq!(status, 404, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("has no version 9")),
        "{err}"
    );
    let (status, found) = call(get("/lookup/workflows/Loan%20application@1")).await;
    assert_eq!((status, &found["id"]), (200, &w["id"]));

    // Refused, each naming what is wrong, and nothing changes.
    let (status, err) = call(post(
        &format!("/workitems/{item}/offer"),
        serde_json::json!({"user": "admin", "roles": []}),
    ))
    .await;
    assert_eq!(
        (status, &err["error"]["details"]["field"]),
        (400, &Value::from("roles"))
    );
    let (status, err) = call(post(
        &format!("/cases/{case}/data"),
        serde_json::json!({"data": {"a": 1}, "extra": true}),
    ))
    .await;
    assert_eq!(status, 400, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("extra")),
        "{err}"
    );
    let (status, err) = call(post(&format!("/cases/{case}/retry"), serde_json::json!({}))).await;
    assert_eq!(
        (status, &err["error"]["code"]),
        (409, &Value::from("failed_precondition"))
    );
    let (status, err) = call(post(
        &format!("/cases/{case}/instances"),
        serde_json::json!({"item": 1}),
    ))
    .await;
    assert_eq!(status, 400, "{err}");
    let (status, err) = call(post(
        &format!("/cases/{case}/complete-task"),
        serde_json::json!({"task": "underwriter_decision"}),
    ))
    .await;
    assert!((400..500).contains(&status), "{status} {err}");
    let (status, err) = call(post(
        &format!("/workitems/{item}/allocate"),
        serde_json::json!({"user": "admin", "to": ""}),
    ))
    .await;
    assert_eq!(
        (status, &err["error"]["details"]["field"]),
        (400, &Value::from("to"))
    );
    let (_, after) = call(get(&format!("/cases/{case}"))).await;
    assert_eq!(before, after);
}
