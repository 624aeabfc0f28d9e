//! `knhk serve` consumes the `[[subscriptions]]` of its config file: messages published on a NATS
//! subject (the machine's real server) start cases of the named workflow, once per message id
//! however often a message is published again; `GET /connectors` probes the subscription. A
//! Kafka topic's records start cases too, with the offsets kept in `DATA_DIR/intake` (when
//! `KNHK_TEST_KAFKA` names a broker).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::serve::Server;
use crate::{PREFIXES, path_str, temp_file};

/// A workflow named "Intake order" whose cases wait for a clerk.
fn waiting_workflow() -> String {
    format!(
        "{PREFIXES}\
         <#spec> a yawl:Specification ; yawl:name \"Intake order\" ; yawl:hasDecomposition <#net> .\n\
         <#net> a yawl:Net ; yawl:isRootNet true ; yawl:hasInputCondition <#start> ;\n\
             yawl:hasOutputCondition <#end> ; yawl:hasTask <#approve> ;\n\
             yawl:hasLocalVariable [ yawl:name \"order\" ; yawl:type \"string\" ] .\n\
         <#start> a yawl:InputCondition ; yawl:flowsInto [ yawl:nextElementRef <#approve> ] .\n\
         <#approve> a yawl:Task ; knhk:role \"clerk\" ; yawl:flowsInto [ yawl:nextElementRef <#end> ] .\n\
         <#end> a yawl:OutputCondition .\n"
    )
}

/// The cases the server holds, by their `order`.
async fn orders(http: &reqwest::Client, server: &Server) -> Vec<String> {
    let page: Value = http
        .get(format!("{}/cases?page_size=100", server.base()))
        .send()
        .await
        .expect("the server answers")
        .error_for_status()
        .expect("the cases are listed")
        .json()
        .await
        .expect("a JSON page");
    let mut orders = Vec::new();
    for case in page["items"].as_array().into_iter().flatten() {
        let id = case["id"].as_str().expect("an id");
        let case: Value = http
            .get(format!("{}/cases/{id}", server.base()))
            .send()
            .await
            .expect("the server answers")
            .json()
            .await
            .expect("a case");
        orders.push(case["data"]["order"].as_str().unwrap_or("?").to_owned());
    }
    orders.sort();
    orders
}

/// Publishes `body` with the message id `id`, again and again (core NATS drops what no
/// subscriber takes, and the server subscribes in the background), until `orders` shows
/// `expected`; each publication after the first is a redelivery the intake must drop.
async fn publish_until(
    nats: &async_nats::Client,
    subject: &str,
    id: &str,
    body: &Value,
    http: &reqwest::Client,
    server: &Server,
    expected: &[&str],
) -> usize {
    let started = Instant::now();
    let mut published = 0;
    loop {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", id);
        nats.publish_with_headers(subject.to_owned(), headers, body.to_string().into())
            .await
            .expect("a publish");
        nats.flush().await.expect("a flush");
        published += 1;
        if orders(http, server).await == expected {
            return published;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no case for message {id} after 60 s: {:?}",
            orders(http, server).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_on_a_subscribed_subject_start_one_case_each_however_often_they_come() {
    let subject = format!(
        "knhk.cli.intake.{}.{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("a clock")
            .as_nanos()
    );
    // One message at a time, so that a message's case exists only once the ones before it
    // (the repeats) were taken and dropped.
    let config = temp_file(
        "intake.toml",
        &format!(
            "[connectors.bus]\nkind = \"nats\"\nurl = \"nats://127.0.0.1:4222\"\n\n\
             [[subscriptions]]\nconnector = \"bus\"\nsubject = \"{subject}\"\n\
             start = \"Intake order\"\nprefetch = 1\n"
        ),
    );
    let server = Server::start_with(&[("KNHK_CONFIG", path_str(&config))]);
    let http = reqwest::Client::new();
    let res = http
        .post(format!("{}/workflows", server.base()))
        .header("content-type", "text/turtle")
        .body(waiting_workflow())
        .send()
        .await
        .expect("registering");
    assert!(res.status().is_success(), "{:?}", res.text().await);
    let nats = async_nats::connect("nats://127.0.0.1:4222")
        .await
        .expect("NATS on 127.0.0.1:4222 (run .ci/services)");

    publish_until(
        &nats,
        &subject,
        "m-1",
        &json!({"order": "A-1"}),
        &http,
        &server,
        &["A-1"],
    )
    .await;
    // The same message three more times: redeliveries, dropped.
    for _ in 0..3 {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", "m-1");
        nats.publish_with_headers(
            subject.clone(),
            headers,
            json!({"order": "A-1"}).to_string().into(),
        )
        .await
        .expect("a publish");
    }
    // The next message's case comes after the repeats were taken: still one case of A-1.
    publish_until(
        &nats,
        &subject,
        "m-2",
        &json!({"order": "B-2"}),
        &http,
        &server,
        &["A-1", "B-2"],
    )
    .await;
    assert_eq!(orders(&http, &server).await, ["A-1", "B-2"]);

    // The subscription answers a probe of its broker, beside the connector instances.
    let connectors: Value = http
        .get(format!("{}/connectors", server.base()))
        .send()
        .await
        .expect("the server answers")
        .json()
        .await
        .expect("a JSON body");
    let subscriptions = connectors["subscriptions"]
        .as_array()
        .expect("subscriptions");
    assert_eq!(subscriptions.len(), 1, "{connectors}");
    assert_eq!(
        subscriptions[0]["name"],
        format!("bus/{subject}"),
        "{connectors}"
    );
    assert_eq!(subscriptions[0]["ok"], true, "{connectors}");
    // gRPC ListConnectors lists it too; core NATS tells no backlog.
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
    assert_eq!(listed.subscriptions.len(), 1, "{listed:?}");
    let probed = &listed.subscriptions[0];
    assert_eq!(probed.name, format!("bus/{subject}"));
    assert!(probed.ok, "{probed:?}");
    assert_eq!((probed.pending, probed.unacknowledged), (None, None));
    assert_eq!(probed.error, None);
    // `knhk connector list --server` shows it with its probe.
    let out = tokio::task::spawn_blocking({
        let url = server.base().to_owned();
        move || crate::knhk(&["--server", &url, "connector", "list", "--json"])
    })
    .await
    .expect("the command runs");
    assert!(out.status.success(), "{}", crate::stderr(&out));
    let listed: Value = serde_json::from_str(&crate::stdout(&out)).expect("JSON");
    assert_eq!(listed["subscriptions"][0]["name"], format!("bus/{subject}"));
    assert_eq!(listed["subscriptions"][0]["ok"], true, "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_of_a_subscribed_kafka_topic_start_cases_and_the_offsets_are_kept_in_the_data_directory()
 {
    let broker = match std::env::var("KNHK_TEST_KAFKA") {
        Ok(b) if !b.is_empty() => b,
        _ => {
            eprintln!(
                "skipped: KNHK_TEST_KAFKA is not set (scripts/kafka-broker.sh starts a broker; \
                 then KNHK_TEST_KAFKA=127.0.0.1:9092)"
            );
            return;
        }
    };
    let topic = format!(
        "knhk-cli-intake-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("a clock")
            .as_nanos()
    );
    let client = rskafka::client::ClientBuilder::new(vec![broker.clone()])
        .build()
        .await
        .expect("the broker answers");
    client
        .controller_client()
        .expect("a controller")
        .create_topic(&topic, 1, 1, 5_000)
        .await
        .expect("the topic is made");
    let config = temp_file(
        "kafka-intake.toml",
        &format!(
            "[connectors.log]\nkind = \"kafka\"\nbrokers = \"{broker}\"\n\n\
             [[subscriptions]]\nconnector = \"log\"\ntopic = \"{topic}\"\n\
             start = \"Intake order\"\n"
        ),
    );
    let server = Server::start_with(&[("KNHK_CONFIG", path_str(&config))]);
    let http = reqwest::Client::new();
    let res = http
        .post(format!("{}/workflows", server.base()))
        .header("content-type", "text/turtle")
        .body(waiting_workflow())
        .send()
        .await
        .expect("registering");
    assert!(res.status().is_success(), "{:?}", res.text().await);
    let partition = client
        .partition_client(
            topic.as_str(),
            0,
            rskafka::client::partition::UnknownTopicHandling::Retry,
        )
        .await
        .expect("a partition client");
    let records = ["K-1", "K-2"].map(|order| rskafka::record::Record {
        key: None,
        value: Some(json!({"order": order}).to_string().into_bytes()),
        headers: Default::default(),
        timestamp: rskafka::chrono::DateTime::from_timestamp_millis(1_700_000_000_000)
            .expect("a time"),
    });
    partition
        .produce(
            records.to_vec(),
            rskafka::client::partition::Compression::NoCompression,
        )
        .await
        .expect("produced");
    // Produced once the workflow is registered: a record read before would be refused.
    let started = Instant::now();
    while orders(&http, &server).await != ["K-1", "K-2"] {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no cases after 60 s: {:?}",
            orders(&http, &server).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let file = server
        .data_dir()
        .join("intake")
        .join(format!("log%2F{topic}.offsets"));
    let started = Instant::now();
    loop {
        let saved = std::fs::read_to_string(&file).unwrap_or_default();
        if saved.contains("\"0\":2") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{} says {saved:?}",
            file.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let connectors: Value = http
        .get(format!("{}/connectors", server.base()))
        .send()
        .await
        .expect("the server answers")
        .json()
        .await
        .expect("a JSON body");
    let probed = &connectors["subscriptions"][0];
    assert_eq!(probed["name"], format!("log/{topic}"), "{connectors}");
    assert_eq!(probed["ok"], true, "{connectors}");
    assert_eq!(probed["pending"], 0, "{connectors}");
    assert_eq!(probed["unacknowledged"], 0, "{connectors}");
}
