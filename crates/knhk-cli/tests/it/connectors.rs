//! The config file's connector instances through the binary: found in the data directory or
//! given with `--config`, called by the tasks that name them, listed and probed by `knhk
//! connector`, `GET /connectors` and gRPC `ListConnectors`, refused at start-up naming the key at fault, and printed by
//! `knhk serve --print-config` with their secrets masked.

use std::path::Path;

use reqwest::StatusCode;
use serde_json::Value;

use crate::http_server::{Reply, serve};
use crate::serve::Server;
use crate::{PREFIXES, knhk, path_str, stderr, stdout, temp_file};

/// A workflow of one task that calls `connector` at `url`.
fn calling(connector: &str, url: &str) -> String {
    format!(
        "{PREFIXES}\
         <#spec> a yawl:Specification ; yawl:hasDecomposition <#net> .\n\
         <#net> a yawl:Net ; yawl:isRootNet true ; yawl:hasInputCondition <#start> ;\n\
             yawl:hasOutputCondition <#end> ; yawl:hasTask <#charge> .\n\
         <#start> a yawl:InputCondition ; yawl:flowsInto [ yawl:nextElementRef <#charge> ] .\n\
         <#charge> a yawl:Task ; knhk:connector \"{connector}\" ;\n\
             knhk:setting [ knhk:key \"url\" ; knhk:value \"{url}\" ] ;\n\
             yawl:flowsInto [ yawl:nextElementRef <#end> ] .\n\
         <#end> a yawl:OutputCondition .\n"
    )
}

fn json(out: &std::process::Output) -> Value {
    serde_json::from_str(&stdout(out))
        .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(out), stderr(out)))
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("a file");
    path_str(&path).to_owned()
}

#[test]
fn an_instance_of_the_data_directory_file_is_called_listed_and_probed() {
    let server = serve(|request| {
        assert_eq!(
            request.header("user-agent").map(|u| u.starts_with("knhk/")),
            Some(true)
        );
        Reply::json("200 OK", r#"{"charged": true}"#)
    });
    let dir = tempfile::tempdir().expect("a data directory");
    let data_dir = path_str(dir.path());
    write(
        dir.path(),
        "knhk.toml",
        "[connectors.payments]\nkind = \"http\"\npool.max_size = 2\n",
    );
    let file = write(
        dir.path(),
        "charge.ttl",
        &calling("payments", &format!("{server}/charge")),
    );
    let out = knhk(&["--data-dir", data_dir, "validate", &file]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = knhk(&["--data-dir", data_dir, "run", &file, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc = json(&out);
    assert_eq!(doc["state"], "completed", "{doc}");
    assert_eq!(doc["data"]["charged"], true, "{doc}");

    let out = knhk(&["--data-dir", data_dir, "connector", "list", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let listed = json(&out);
    assert_eq!(listed["subscriptions"], serde_json::json!([]), "{listed}");
    let names: Vec<(&str, &str)> = listed["items"]
        .as_array()
        .expect("an array")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or(""),
                c["kind"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(names, [("http", "http"), ("payments", "http")]);
    let out = knhk(&["--data-dir", data_dir, "connector", "list"]);
    assert!(stdout(&out).contains("payments"), "{}", stdout(&out));

    let out = knhk(&[
        "--data-dir",
        data_dir,
        "connector",
        "probe",
        "payments",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let probed = json(&out);
    assert_eq!(probed[0]["name"], "payments");
    assert_eq!(probed[0]["ok"], true);
    assert!(probed[0]["latency_ms"].is_u64(), "{probed}");
    let out = knhk(&["--data-dir", data_dir, "connector", "probe", "ledger"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("unknown connector ledger (known: http, payments)"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_workflow_naming_an_instance_the_file_lacks_is_refused_at_registration() {
    let dir = tempfile::tempdir().expect("a data directory");
    let data_dir = path_str(dir.path());
    let config = write(
        dir.path(),
        "other.toml",
        "[connectors.payments]\nkind = \"http\"\n",
    );
    let file = write(
        dir.path(),
        "charge.ttl",
        &calling("ledger", "http://127.0.0.1:9/x"),
    );
    let out = knhk(&[
        "--data-dir",
        data_dir,
        "--config",
        &config,
        "workflow",
        "register",
        &file,
    ]);
    assert!(!out.status.success());
    let text = stderr(&out);
    assert!(text.contains("ledger") && text.contains("charge"), "{text}");
    // The same task naming the file's instance registers.
    let file = write(
        dir.path(),
        "charge.ttl",
        &calling("payments", "http://127.0.0.1:9/x"),
    );
    let out = knhk(&[
        "--data-dir",
        data_dir,
        "--config",
        &config,
        "workflow",
        "register",
        &file,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Without the file, it is refused.
    let out = knhk(&["--data-dir", data_dir, "validate", &file]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("payments"), "{}", stderr(&out));
}

#[test]
fn bad_connector_tables_are_refused_at_start_up_naming_the_key() {
    let dir = tempfile::tempdir().expect("a data directory");
    let data_dir = path_str(dir.path());
    let cases = [
        (
            "[connectors.payments]\nkind = \"http\"\ncolour = \"red\"\n",
            "connectors.payments.colour: unknown key for kind http",
        ),
        (
            "[connectors.payments]\nkind = \"ftp\"\n",
            "connectors.payments.kind: unknown kind `ftp`",
        ),
        (
            "[connectors.payments]\nurl = \"http://x\"\n",
            "connectors.payments.kind: missing",
        ),
        (
            "[connectors.payments]\nkind = \"http\"\npool.max_size = 0\n",
            "connectors.payments.pool.max_size: must be at least 1",
        ),
        (
            "[connectors.http]\nkind = \"http\"\n",
            "connectors.http: the name http is the built-in connector's",
        ),
        ("colour = \"red\"\n", "unknown key `colour`"),
    ];
    let file = write(
        dir.path(),
        "charge.ttl",
        &calling("http", "http://127.0.0.1:9/x"),
    );
    for (text, expected) in cases {
        let config = write(dir.path(), "knhk.toml", text);
        for args in [
            &["--data-dir", data_dir, "connector", "list"][..],
            &["--data-dir", data_dir, "run", &file][..],
            &["--config", &config, "connector", "probe"][..],
            // The server refuses it before it listens.
            &[
                "--data-dir",
                data_dir,
                "serve",
                "--http",
                "127.0.0.1:0",
                "--grpc",
                "127.0.0.1:0",
            ][..],
        ] {
            let out = knhk(args);
            assert!(!out.status.success(), "{args:?} {text}");
            assert!(
                stderr(&out).contains(expected),
                "{args:?}: {}",
                stderr(&out)
            );
        }
        // Refused before the store was made.
        assert!(!dir.path().join("knhk.db").exists());
    }
    let out = knhk(&["--config", "/nonexistent/knhk.toml", "connector", "list"]);
    assert!(
        stderr(&out).contains("--config /nonexistent/knhk.toml: no such file"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn print_config_shows_the_instances_with_their_secrets_masked() {
    let config = temp_file(
        "secrets.toml",
        "max_tasks = 11\n\
         [connectors.crm]\nkind = \"salesforce\"\nclient_id = \"app\"\n\
         client_secret = \"s3cret-value\"\nrefresh_token = \"t0ken-value\"\n\
         [connectors.db]\nkind = \"postgres\"\nurl = \"postgres://knhk:pa55word@db:5432/orders\"\n\
         password_env = \"ORDERS_DB_PASSWORD\"\n\
         [connectors.cache]\nkind = \"redis\"\npassword = \"hunter2-value\"\n\
         [[subscriptions]]\nconnector = \"bus\"\nsubject = \"orders.created\"\nstart = \"order\"\n",
    );
    let out = knhk(&["--config", path_str(&config), "serve", "--print-config"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for secret in ["s3cret-value", "t0ken-value", "pa55word", "hunter2-value"] {
        assert!(!text.contains(secret), "{secret} shown: {text}");
    }
    for shown in [
        "max_tasks = 11",
        "[connectors.crm]",
        "client_id = \"app\"",
        "client_secret = \"***\"",
        "password_env = \"ORDERS_DB_PASSWORD\"",
        "[[subscriptions]]",
        "subject = \"orders.created\"",
    ] {
        assert!(text.contains(shown), "{shown} missing: {text}");
    }
}

#[tokio::test]
async fn serve_lists_and_probes_its_instances_on_get_connectors() {
    let config = temp_file(
        "served.toml",
        "[connectors.payments]\nkind = \"http\"\npool.max_size = 3\n",
    );
    let server = Server::start_with(&[("KNHK_CONFIG", path_str(&config))]);
    let (status, body) = server.get("/connectors").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let items = body["items"].as_array().expect("items");
    let names: Vec<&str> = items.iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(names, ["http", "payments"]);
    assert!(items.iter().all(|c| c["ok"] == true), "{body}");
    assert_eq!(
        items[1]["pool"],
        Value::Null,
        "a named http instance has no pool of its own"
    );
    // gRPC answers the same.
    let mut grpc = knhk_api::grpc::pb::workflow_service_client::WorkflowServiceClient::connect(
        format!("http://{}", server.grpc),
    )
    .await
    .expect("a gRPC connection");
    let listed = grpc
        .list_connectors(knhk_api::grpc::pb::ListConnectorsRequest {})
        .await
        .expect("ListConnectors")
        .into_inner();
    let both: Vec<(&str, &str, bool)> = listed
        .items
        .iter()
        .map(|c| (c.name.as_str(), c.kind.as_str(), c.ok))
        .collect();
    assert_eq!(both, [("http", "http", true), ("payments", "http", true)]);
    assert!(listed.subscriptions.is_empty(), "{listed:?}");
    // The CLI asks the server with --server.
    let out = tokio::task::spawn_blocking({
        let url = server.base().to_owned();
        move || knhk(&["--server", &url, "connector", "probe", "payments", "--json"])
    })
    .await
    .expect("the command runs");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json(&out)[0]["name"], "payments");
    let status = server.terminate().await;
    assert!(status.success(), "{status:?}");
}

#[test]
fn connector_list_shows_the_subscriptions_of_the_config_file() {
    let dir = tempfile::tempdir().expect("a directory");
    let config = write(
        dir.path(),
        "subs.toml",
        "[connectors.bus]\nkind = \"nats\"\nurl = \"nats://127.0.0.1:4222\"\n\
         [connectors.log]\nkind = \"kafka\"\nbrokers = \"127.0.0.1:9092\"\n\
         [[subscriptions]]\nconnector = \"bus\"\nsubject = \"orders.new\"\nstart = \"Order\"\n\
         [[subscriptions]]\nname = \"payments\"\nconnector = \"log\"\ntopic = \"paid\"\n\
         prefetch = 8\ndead_letter = \"paid.dead\"\ndeliver = \"paid\"\n\
         correlation = \"message.case\"\n",
    );
    let out = knhk(&["--config", &config, "connector", "list", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let listed = json(&out);
    assert_eq!(
        listed["subscriptions"],
        serde_json::json!([
            {"name": "bus/orders.new", "connector": "bus", "source": "orders.new",
             "prefetch": 64, "dead_letter": null, "start": "Order"},
            {"name": "payments", "connector": "log", "source": "paid",
             "prefetch": 8, "dead_letter": "paid.dead", "deliver": "paid"},
        ]),
        "{listed}"
    );
    let out = knhk(&["--config", &config, "connector", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("SUBSCRIPTION"))
        .unwrap_or_else(|| panic!("no subscriptions table: {text}"));
    assert_eq!(
        lines[at..]
            .iter()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .collect::<Vec<_>>(),
        [
            vec!["SUBSCRIPTION", "CONNECTOR", "SOURCE", "ACTION"],
            vec!["bus/orders.new", "bus", "orders.new", "start", "Order"],
            vec!["payments", "log", "paid", "deliver", "paid"],
        ],
        "{text}"
    );
    // A subscription that does not parse is refused naming it, as `knhk serve` refuses it.
    let bad = write(
        dir.path(),
        "bad.toml",
        "[connectors.bus]\nkind = \"nats\"\nurl = \"nats://127.0.0.1:4222\"\n\
         [[subscriptions]]\nconnector = \"bus\"\nstart = \"W\"\n",
    );
    let out = knhk(&["--config", &bad, "connector", "list"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("subscriptions[0].subject: missing"),
        "{}",
        stderr(&out)
    );
}

/// `examples/knhk.toml` declares one instance of every kind and a subscription of each form,
/// and is read whole; each instance is made as a command would make it (every kind is part of
/// this build), with its secrets' variables set.
#[test]
fn the_example_config_file_declares_every_kind_and_its_instances_are_accepted() {
    let example = crate::examples().join("knhk.toml");
    let text = std::fs::read_to_string(&example).expect("examples/knhk.toml");
    let doc: toml::Table = text.parse().expect("TOML");
    let instances = doc["connectors"].as_table().expect("[connectors.*]");
    let mut kinds: Vec<&str> = instances
        .values()
        .filter_map(|t| t.get("kind").and_then(toml::Value::as_str))
        .collect();
    kinds.sort_unstable();
    let mut every = knhk_connectors::kinds::KINDS.to_vec();
    every.sort_unstable();
    assert_eq!(kinds, every);
    let subscriptions = doc["subscriptions"].as_array().expect("[[subscriptions]]");
    assert!(subscriptions.iter().any(|s| s.get("start").is_some()));
    assert!(
        subscriptions
            .iter()
            .any(|s| s.get("deliver").is_some() && s.get("correlation").is_some())
    );
    let out = knhk(&["--config", path_str(&example), "serve", "--print-config"]);
    assert!(out.status.success(), "{}", stderr(&out));

    let dir = tempfile::tempdir().expect("a folder");
    let mut made = Vec::new();
    for (name, table) in instances {
        let mut one = toml::Table::new();
        one.insert(name.clone(), table.clone());
        let mut file = toml::Table::new();
        file.insert("connectors".to_owned(), toml::Value::Table(one));
        let config = write(
            dir.path(),
            "one.toml",
            &toml::to_string(&file).expect("TOML"),
        );
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_knhk"))
            .args(["--config", &config, "connector", "list", "--json"])
            .env_remove("KNHK_DATA_DIR")
            .env("ORDERS_DB_PASSWORD", "example")
            .env("RABBIT_PASSWORD", "example")
            .env("SALESFORCE_CLIENT_SECRET", "example")
            .output()
            .expect("knhk runs");
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        assert!(
            stdout(&out).contains(&format!("\"name\": \"{name}\"")),
            "{}",
            stdout(&out)
        );
        made.push(name.as_str());
    }
    assert_eq!(made.len(), knhk_connectors::kinds::KINDS.len(), "{made:?}");
}
