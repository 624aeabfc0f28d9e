//! Workflow versions through the CLI: a workflow is its specification URI, registering the
//! same definition again is the version already stored, racing registrations get distinct
//! versions, and commands take a workflow by id, URI or name (`@N` for a version).

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::{DataDir, PREFIXES, example, path_str, stderr, temp_file, text};

/// A one-task workflow of specification `uri` named `name`; `doc` makes versions differ.
fn definition(file: &str, uri: &str, name: &str, doc: &str) -> String {
    let text = format!(
        "{PREFIXES}\
         <#spec> a yawl:Specification ; yawl:uri <{uri}> ; yawl:name \"{name}\" ;\n\
             yawl:documentation \"{doc}\" ; yawl:hasDecomposition <#net> .\n\
         <#net> a yawl:Net ; yawl:isRootNet true ; yawl:hasInputCondition <#start> ;\n\
             yawl:hasOutputCondition <#end> ; yawl:hasTask <#work> .\n\
         <#start> a yawl:InputCondition ; yawl:flowsInto [ yawl:nextElementRef <#work> ] .\n\
         <#work> a yawl:Task ; yawl:flowsInto [ yawl:nextElementRef <#end> ] .\n\
         <#end> a yawl:OutputCondition .\n"
    );
    path_str(&temp_file(file, &text)).to_owned()
}

fn register(data: &DataDir, file: &str) -> Value {
    data.json(&["workflow", "register", file, "--json"])
}

#[test]
fn registering_the_same_definition_again_returns_the_version_stored() {
    let data = DataDir::new();
    let loan = example("loan_application.ttl");
    let first = register(&data, &loan);
    assert_eq!(first["already_registered"], false);
    assert_eq!(
        text(&first, "uri"),
        "https://knhk.dev/examples/loan-application"
    );
    let out = data.ok(&["workflow", "register", &loan]);
    assert_eq!(
        out.lines().next(),
        Some(
            format!(
                "workflow Loan application is already registered as version 1 ({}) (9 tasks)",
                text(&first, "id")
            )
            .as_str()
        ),
        "{out}"
    );
    let again = register(&data, &loan);
    assert_eq!(again["already_registered"], true);
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["version"], 1);
    // `run` of the same file runs that version too.
    let run = data.ok(&[
        "run",
        &loan,
        "--data",
        r#"{"applicant": "Ada", "amount": 10}"#,
    ]);
    assert!(
        run.contains("workflow Loan application is already registered as version 1"),
        "{run}"
    );
    let all = data.json(&["workflow", "list", "--json"]);
    assert_eq!(all.as_array().map(Vec::len), Some(1), "{all:#}");
}

#[test]
fn a_changed_definition_is_the_next_version_of_its_uri_whatever_its_name() {
    let data = DataDir::new();
    let uri = "urn:test:versions:orders";
    let v1 = register(&data, &definition("v-orders-1.ttl", uri, "Orders", "first"));
    let v2 = register(
        &data,
        &definition("v-orders-2.ttl", uri, "Orders", "second"),
    );
    // Renamed, it is still the same workflow.
    let v3 = register(
        &data,
        &definition("v-orders-3.ttl", uri, "Sales orders", "third"),
    );
    let versions: Vec<(&Value, &Value)> = [&v1, &v2, &v3]
        .iter()
        .map(|w| (&w["uri"], &w["version"]))
        .collect();
    assert_eq!(
        versions,
        [
            (&Value::from(uri), &Value::from(1)),
            (&Value::from(uri), &Value::from(2)),
            (&Value::from(uri), &Value::from(3))
        ]
    );
    // Another URI with the name of the first starts at version 1.
    let other = register(
        &data,
        &definition(
            "v-orders-other.ttl",
            "urn:test:versions:other",
            "Sales orders",
            "x",
        ),
    );
    assert_eq!(other["version"], 1);
    let list = data.ok(&["workflow", "list"]);
    assert!(
        list.contains(uri) && list.contains("urn:test:versions:other"),
        "{list}"
    );
}

#[test]
fn commands_take_a_workflow_by_id_prefix_uri_or_name_and_at_a_version() {
    let data = DataDir::new();
    let uri = "urn:test:versions:refs";
    let v1 = register(&data, &definition("v-refs-1.ttl", uri, "Refs", "first"));
    let v2 = register(&data, &definition("v-refs-2.ttl", uri, "Refs", "second"));
    let created = |reference: &str| {
        let doc = data.json(&["case", "create", reference, "--json"]);
        doc["workflow_id"].clone()
    };
    // The name and the URI mean the latest version; `@N` another one.
    assert_eq!(created("Refs"), v2["id"]);
    assert_eq!(created(uri), v2["id"]);
    assert_eq!(created("Refs@1"), v1["id"]);
    assert_eq!(created(&format!("{uri}@1")), v1["id"]);
    assert_eq!(created(text(&v1, "id")), v1["id"]);
    assert_eq!(created(&text(&v1, "id")[..8]), v1["id"]);
    // `run` takes a registered workflow as well as a file.
    let run = data.json(&["run", "Refs@1", "--json"]);
    assert_eq!(text(&run, "state"), "completed", "{run:#}");
    assert_eq!(run["workflow_id"], v1["id"]);
    assert_eq!(text(&run, "workflow_uri"), uri);
    let show = data.ok(&["workflow", "show", "Refs"]);
    assert!(show.contains(&format!("uri:        {uri}")), "{show}");
    assert!(show.contains("version:    2"), "{show}");

    let err = data.fails(&["case", "create", "Refs@7"]);
    // Then where it was looked up: the data directory, or the server (`--server`).
    assert!(
        err.starts_with("error: workflow Refs has no version 7 (its latest is 2) (looked in")
            || err.starts_with(
                "error: workflow Refs has no version 7 (its latest is 2) (asked the server"
            ),
        "{err}"
    );
    let err = data.fails(&["run", "Nothing"]);
    assert!(
        err.starts_with(
            "error: unknown workflow Nothing: no workflow has it as id, URI or name (looked in"
        ),
        "{err}"
    );
}

#[test]
fn a_name_that_two_uris_share_is_ambiguous_and_lists_them() {
    let data = DataDir::new();
    register(
        &data,
        &definition("v-twins-a.ttl", "urn:test:twins:a", "Twins", "a"),
    );
    register(
        &data,
        &definition("v-twins-b.ttl", "urn:test:twins:b", "Twins", "b"),
    );
    let err = data.fails(&["case", "create", "Twins"]);
    assert_eq!(
        err.trim(),
        "error: Twins names 2 workflows: urn:test:twins:a (latest version 1), \
         urn:test:twins:b (latest version 1); give the URI"
    );
    let doc = data.json(&["case", "create", "urn:test:twins:b", "--json"]);
    assert_eq!(text(&doc, "workflow_uri"), "urn:test:twins:b");
}

/// Starts `knhk workflow register FILE --json` on the data directory, without waiting.
fn spawn_register(data: &DataDir, file: &str) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_knhk"))
        .args([
            "--data-dir",
            path_str(data.path()),
            "workflow",
            "register",
            file,
            "--json",
        ])
        .env_remove("KNHK_DATA_DIR")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the knhk binary starts")
}

fn finished(child: std::process::Child) -> Value {
    let out = child.wait_with_output().expect("knhk ends");
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("one JSON document")
}

#[test]
fn processes_registering_at_once_get_distinct_versions() {
    let data = DataDir::new();
    // The store exists first, so that the processes race on versions, not on creating it.
    register(&data, &example("order_approval.ttl"));
    let uri = "urn:test:versions:raced";
    let files: Vec<String> = (0..4)
        .map(|n| {
            definition(
                &format!("v-raced-{n}.ttl"),
                uri,
                "Raced",
                &format!("take {n}"),
            )
        })
        .collect();
    let children: Vec<_> = files.iter().map(|f| spawn_register(&data, f)).collect();
    let docs: Vec<Value> = children.into_iter().map(finished).collect();
    let versions: BTreeSet<u64> = docs.iter().filter_map(|d| d["version"].as_u64()).collect();
    assert_eq!(versions, BTreeSet::from([1, 2, 3, 4]), "{docs:#?}");
    let ids: BTreeSet<&str> = docs.iter().map(|d| text(d, "id")).collect();
    assert_eq!(ids.len(), 4);

    // The same definition registered by two processes at once is one version.
    let same = definition("v-raced-same.ttl", "urn:test:versions:same", "Same", "one");
    let children = [spawn_register(&data, &same), spawn_register(&data, &same)];
    let docs: Vec<Value> = children.into_iter().map(finished).collect();
    assert_eq!(docs[0]["id"], docs[1]["id"], "{docs:#?}");
    assert_eq!(docs[0]["version"], 1);
    let all = data.json(&["workflow", "list", "--json"]);
    assert_eq!(all.as_array().map(Vec::len), Some(6), "{all:#}");
}
