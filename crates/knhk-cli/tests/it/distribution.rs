//! Work items that YAWL leaves to be distributed at run time (`<offer initiator="user"/>`, or no
//! resourcing in a Beta file) wait in the administrators' queue until an administrator offers
//! or allocates them.

use crate::{DataDir, example, text};

const DIRECTORY: &str = r#"{"roles": {"admin": ["ada"], "boss": ["bo"], "clerk": ["ann", "bob"]}}"#;

/// Starts a leave request (its Submit task is distributed at run time) and returns the case
/// document.
fn leave_request(data: &DataDir, extra: &[&str]) -> serde_json::Value {
    std::fs::write(data.path().join("directory.json"), DIRECTORY).expect("directory");
    let file = example("yawl/leave_request.yawl");
    let mut args = extra.to_vec();
    args.extend(["run", &file, "--json"]);
    data.json(&args)
}

#[test]
fn an_administrator_offers_a_work_item_from_the_admin_queue_to_a_role() {
    let data = DataDir::new();
    let doc = leave_request(&data, &[]);
    let item = &doc["work_items"][0];
    assert_eq!(item["roles"], serde_json::json!(["admin"]), "{doc:#}");
    let id = text(item, "id").to_owned();
    let queue = data.json(&["workitem", "list", "--role", "admin", "--json"]);
    assert_eq!(queue[0]["id"], id.as_str());

    // Someone who is not an administrator may not distribute it; nothing changes.
    let err = data.fails(&["workitem", "offer", &id, "--role", "clerk", "--user", "ann"]);
    assert!(err.contains("ann may not distribute work items"), "{err}");
    assert!(err.contains("role admin"), "{err}");
    assert_eq!(
        data.json(&["workitem", "list", "--role", "admin", "--json"])[0]["id"],
        id.as_str()
    );

    let out = data.ok(&["workitem", "offer", &id, "--role", "clerk", "--user", "ada"]);
    assert!(out.contains("offered to role clerk"), "{out}");
    let clerks = data.json(&["workitem", "list", "--role", "clerk", "--json"]);
    assert_eq!(clerks[0]["id"], id.as_str(), "{clerks:#}");
    assert_eq!(clerks[0]["state"], "offered");
    let admins = data.json(&["workitem", "list", "--role", "admin", "--json"]);
    assert_eq!(admins, serde_json::json!([]));

    // A clerk claims and completes it as any offered work item.
    data.ok(&["workitem", "claim", &id, "--user", "bob"]);
    let done = data.json(&["workitem", "complete", &id, "--user", "bob", "--json"]);
    let kinds: Vec<&str> = done["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|e| e["kind"].as_str().expect("kind"))
        .collect();
    assert!(kinds.contains(&"work_item_reoffered"), "{kinds:?}");
    assert!(kinds.contains(&"work_item_completed"), "{kinds:?}");
}

#[test]
fn an_administrator_allocates_a_work_item_to_a_user() {
    let data = DataDir::new();
    let doc = leave_request(&data, &[]);
    let id = text(&doc["work_items"][0], "id").to_owned();
    let err = data.fails(&["workitem", "allocate", &id, "--to", "ann", "--user", "bob"]);
    assert!(err.contains("bob may not distribute work items"), "{err}");
    data.ok(&["workitem", "allocate", &id, "--to", "ann", "--user", "ada"]);
    let mine = data.json(&["workitem", "list", "--user", "ann", "--json"]);
    assert_eq!(mine[0]["id"], id.as_str(), "{mine:#}");
    assert_eq!(mine[0]["state"], "allocated");
    // Allocated, it can no longer be offered elsewhere.
    let err = data.fails(&["workitem", "offer", &id, "--role", "clerk", "--user", "ada"]);
    assert!(err.contains("cannot offer work item"), "{err}");
    // The item is offered to the admin role, which ann is not in: holding it is enough to do
    // it, and someone else of no role still may not.
    let err = data.fails(&["workitem", "start", &id, "--user", "bob"]);
    assert!(err.contains("bob may not take work item"), "{err}");
    data.ok(&["workitem", "start", &id, "--user", "ann"]);
    let done = data.json(&["workitem", "complete", &id, "--user", "ann", "--json"]);
    assert_eq!(text(&done, "state"), "completed", "{done:#}");
}

#[test]
fn the_administrators_role_is_configurable() {
    let data = DataDir::new();
    let doc = leave_request(&data, &["--admin-role", "boss"]);
    let item = &doc["work_items"][0];
    assert_eq!(item["roles"], serde_json::json!(["boss"]), "{doc:#}");
    let id = text(item, "id").to_owned();
    let err = data.fails(&[
        "--admin-role",
        "boss",
        "workitem",
        "offer",
        &id,
        "--role",
        "clerk",
        "--user",
        "ada",
    ]);
    assert!(err.contains("role boss"), "{err}");
    data.ok(&[
        "--admin-role",
        "boss",
        "workitem",
        "offer",
        &id,
        "--role",
        "clerk",
        "--user",
        "bo",
    ]);
}
