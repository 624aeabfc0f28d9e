//! What the lockchain shows of itself: `knhk lockchain receipt`, `checkpoint` and
//! `public-key` on a data directory and through `knhk serve` (the same output), and REST's
//! `GET /cases/{id}/events/{seq}/receipt`, `/lockchain/checkpoint`, `/lockchain/public-key`
//! against gRPC's `GetReceipt`, `GetCheckpoint`, `GetPublicKey`, field by field, with their
//! refusals.

use base64::Engine as _;
use knhk_api::grpc::pb;
use knhk_api::grpc::pb::workflow_service_client::WorkflowServiceClient;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::serve::{Server, code, create};
use crate::{DataDir, example, knhk, path_str, stderr, stdout, text};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Runs `knhk --server URL ARGS...`.
fn remote(url: &str, args: &[&str]) -> std::process::Output {
    let mut all = vec!["--server", url];
    all.extend_from_slice(args);
    knhk(&all)
}

fn ok_out(out: &std::process::Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed with {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        stdout(out),
        stderr(out)
    );
    stdout(out)
}

/// Checks what a receipt says of itself: its format, event, a proof no longer than the
/// tree's height, and a checkpoint note of its tree size.
fn check_receipt(r: &Value, case: &str, seq: u64) {
    assert_eq!(r["format"], "knhk-receipt/v1", "{r:#}");
    assert_eq!(r["case"], case, "{r:#}");
    assert_eq!(r["seq"], seq, "{r:#}");
    let leaf = r["leaf_index"].as_u64().expect("leaf_index");
    let size = r["tree_size"].as_u64().expect("tree_size");
    assert!(leaf < size, "{r:#}");
    let height = u64::BITS - (size - 1).leading_zeros();
    let proof = r["inclusion"].as_array().expect("inclusion");
    assert!(proof.len() as u32 <= height, "{r:#}");
    for h in proof {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(h.as_str().expect("a base64 hash"))
            .expect("base64");
        assert_eq!(bytes.len(), 32, "{r:#}");
    }
    let event = base64::engine::general_purpose::STANDARD
        .decode(r["event"].as_str().expect("event"))
        .expect("base64 event");
    assert!(!event.is_empty());
    let note = r["checkpoint"].as_str().expect("checkpoint");
    let mut lines = note.lines();
    assert!(
        lines.next().is_some_and(|origin| !origin.is_empty()),
        "{note}"
    );
    assert_eq!(lines.next(), Some(size.to_string().as_str()), "{note}");
    assert!(note.contains("\n\n\u{2014} "), "a signed note: {note}");
}

/// The three commands print the same on the data directory and through a server on it: the
/// receipt (also written with `--out`), the signed note, the verifier key.
#[test]
fn receipt_checkpoint_and_public_key_print_the_same_on_a_data_directory_and_through_a_server() {
    let data = DataDir::served();
    let case = data.start_loan();
    let id = text(&case, "case_id").to_owned();
    let dir = path_str(data.path()).to_owned();
    let local = |args: &[&str]| {
        let mut all = vec!["--data-dir", dir.as_str()];
        all.extend_from_slice(args);
        knhk(&all)
    };

    let receipt_text = ok_out(&local(&["lockchain", "receipt", &id, "1"]), "receipt");
    let receipt: Value = serde_json::from_str(&receipt_text).expect("receipt JSON");
    check_receipt(&receipt, &id, 1);
    // A shortened id names the case too.
    let short = id.get(..8).expect("an id");
    let again = ok_out(&local(&["lockchain", "receipt", short, "1"]), "receipt");
    assert_eq!(again, receipt_text);
    let file = data.path().join("receipt.json");
    let said = ok_out(
        &local(&["lockchain", "receipt", &id, "1", "--out", path_str(&file)]),
        "receipt --out",
    );
    assert!(said.contains(path_str(&file)), "{said}");
    assert_eq!(
        std::fs::read_to_string(&file).expect("the receipt file"),
        receipt_text
    );

    let note = ok_out(&local(&["lockchain", "checkpoint"]), "checkpoint");
    assert!(note.contains("\n\n\u{2014} "), "{note}");
    let doc: Value = serde_json::from_str(&ok_out(
        &local(&["lockchain", "checkpoint", "--json"]),
        "checkpoint --json",
    ))
    .expect("checkpoint JSON");
    assert_eq!(doc["note"], note.as_str());
    assert!(doc["size"].as_u64() >= receipt["tree_size"].as_u64());
    let key = ok_out(&local(&["lockchain", "public-key"]), "public-key");
    let parts: Vec<&str> = key.trim_end().split('+').collect();
    assert_eq!(parts.len(), 3, "name+hash+key: {key}");
    assert_eq!(parts[1].len(), 8, "{key}");
    assert!(
        note.starts_with(parts[0]),
        "the note's origin names the key: {note} {key}"
    );

    // The receipt holds with nothing but the key: `verify-receipt` checks the file.
    let key_file = data.path().join("knhk.pub");
    std::fs::write(&key_file, &key).expect("the key file");
    let checked = ok_out(
        &knhk(&[
            "lockchain",
            "verify-receipt",
            path_str(&file),
            "--public-key",
            path_str(&key_file),
        ]),
        "verify-receipt",
    );
    assert!(checked.contains(&id), "{checked}");

    let url = data.server_url();
    let served = ok_out(
        &remote(&url, &["lockchain", "receipt", &id, "1"]),
        "receipt",
    );
    assert_eq!(served, receipt_text);
    let served = ok_out(
        &remote(&url, &["lockchain", "receipt", short, "1"]),
        "receipt",
    );
    assert_eq!(served, receipt_text);
    assert_eq!(
        ok_out(&remote(&url, &["lockchain", "checkpoint"]), "checkpoint"),
        note
    );
    assert_eq!(
        ok_out(&remote(&url, &["lockchain", "public-key"]), "public-key"),
        key
    );
}

/// An unknown case, an event the case does not have, and sequence number 0 are refused the
/// same way on a data directory and through a server, naming what is unknown.
#[test]
fn a_receipt_of_an_unknown_case_or_event_is_refused_naming_it() {
    let data = DataDir::served();
    let case = data.start_loan();
    let id = text(&case, "case_id").to_owned();
    let dir = path_str(data.path()).to_owned();
    let url = data.server_url();
    let unknown = "00000000-0000-0000-0000-0000000000aa";
    for place in [
        vec!["--data-dir", dir.as_str()],
        vec!["--server", url.as_str()],
    ] {
        let run = |args: &[&str]| {
            let mut all = place.clone();
            all.extend_from_slice(args);
            knhk(&all)
        };
        let out = run(&["lockchain", "receipt", unknown, "1"]);
        assert_eq!(out.status.code(), Some(1), "{place:?}");
        assert!(
            stderr(&out).contains(unknown),
            "{place:?}: {}",
            stderr(&out)
        );
        let out = run(&["lockchain", "receipt", &id, "9999"]);
        assert_eq!(out.status.code(), Some(1), "{place:?}");
        assert!(stderr(&out).contains("9999"), "{place:?}: {}", stderr(&out));
        let out = run(&["lockchain", "receipt", &id, "0"]);
        assert_eq!(out.status.code(), Some(1), "{place:?}");
        assert!(stderr(&out).contains("SEQ"), "{place:?}: {}", stderr(&out));
        assert!(stdout(&out).is_empty());
    }
}

/// A data directory with no store: the lockchain commands say so rather than make one.
#[test]
fn the_lockchain_commands_need_a_store() {
    let dir = tempfile::tempdir().expect("temporary folder");
    for args in [
        vec!["lockchain", "checkpoint"],
        vec!["lockchain", "public-key"],
        vec![
            "lockchain",
            "receipt",
            "00000000-0000-0000-0000-000000000000",
            "1",
        ],
    ] {
        let mut all = vec!["--data-dir", path_str(dir.path())];
        all.extend_from_slice(&args);
        let out = knhk(&all);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(stderr(&out).contains("no knhk store"), "{}", stderr(&out));
        assert!(!dir.path().join("knhk.db").exists());
    }
}

/// REST and gRPC give one receipt, checkpoint and key: gRPC's bytes are REST's base64, and
/// the checkpoint's note is what `Accept: text/plain` gets. Their refusals match too.
#[tokio::test]
async fn rest_and_grpc_give_the_same_receipt_checkpoint_and_key() {
    let server = Server::start();
    server.register("order_approval.ttl").await;
    let case = create(
        &server,
        "https://knhk.dev/examples/order-approval",
        json!({"amount": 10}),
        true,
    )
    .await;
    assert_eq!(case["status"], "completed", "{case}");
    let id = case["id"].as_str().expect("id").to_owned();

    let (status, receipt) = server.get(&format!("/cases/{id}/events/2/receipt")).await;
    assert_eq!(status, StatusCode::OK, "{receipt}");
    check_receipt(&receipt, &id, 2);
    let mut grpc = WorkflowServiceClient::connect(format!("http://{}", server.grpc))
        .await
        .expect("a gRPC connection");
    let r = grpc
        .get_receipt(pb::GetReceiptRequest {
            case_id: id.clone(),
            seq: 2,
        })
        .await
        .expect("GetReceipt")
        .into_inner();
    assert_eq!(
        json!({
            "format": r.format, "case": r.case_id, "seq": r.seq, "leaf_index": r.leaf_index,
            "tree_size": r.tree_size, "event": b64(&r.event),
            "inclusion": r.inclusion.iter().map(|h| b64(h)).collect::<Vec<_>>(),
            "checkpoint": r.checkpoint,
        }),
        receipt
    );

    let (status, checkpoint) = server.get("/lockchain/checkpoint").await;
    assert_eq!(status, StatusCode::OK, "{checkpoint}");
    let http = reqwest::Client::new();
    let res = http
        .get(format!("{}/lockchain/checkpoint", server.base()))
        .header("accept", "text/plain")
        .send()
        .await
        .expect("GET");
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .is_ok_and(|t| t.starts_with("text/plain"))
    );
    assert_eq!(res.text().await.expect("body"), text(&checkpoint, "note"));
    let c = grpc
        .get_checkpoint(pb::GetCheckpointRequest {})
        .await
        .expect("GetCheckpoint")
        .into_inner();
    assert_eq!(
        json!({"size": c.size, "root": b64(&c.root), "note": c.note, "taken_at": c.taken_at}),
        checkpoint
    );
    assert_eq!(c.root.len(), 32);

    let res = http
        .get(format!("{}/lockchain/public-key", server.base()))
        .send()
        .await
        .expect("GET");
    assert_eq!(res.status(), StatusCode::OK);
    let key = res.text().await.expect("body");
    let k = grpc
        .get_public_key(pb::GetPublicKeyRequest {})
        .await
        .expect("GetPublicKey")
        .into_inner();
    assert_eq!(format!("{}\n", k.key), key);

    // Refusals: an unknown case or event is not found, a bad id or seq invalid, in both.
    let unknown = "00000000-0000-0000-0000-0000000000aa";
    for (path, case_id, seq, status, grpc_code) in [
        (
            format!("/cases/{unknown}/events/1/receipt"),
            unknown.to_owned(),
            1,
            StatusCode::NOT_FOUND,
            tonic::Code::NotFound,
        ),
        (
            format!("/cases/{id}/events/9999/receipt"),
            id.clone(),
            9999,
            StatusCode::NOT_FOUND,
            tonic::Code::NotFound,
        ),
        (
            "/cases/nope/events/1/receipt".to_owned(),
            "nope".to_owned(),
            1,
            StatusCode::BAD_REQUEST,
            tonic::Code::InvalidArgument,
        ),
        (
            format!("/cases/{id}/events/0/receipt"),
            id.clone(),
            0,
            StatusCode::BAD_REQUEST,
            tonic::Code::InvalidArgument,
        ),
    ] {
        let (got, body) = server.get(&path).await;
        assert_eq!(got, status, "{path}: {body}");
        let e = grpc
            .get_receipt(pb::GetReceiptRequest {
                case_id: case_id.clone(),
                seq,
            })
            .await
            .expect_err("refused");
        assert_eq!(e.code(), grpc_code, "{path}: {e:?}");
        assert_eq!(e.message(), body["error"]["message"], "{path}");
        assert_eq!(
            e.metadata()
                .get(knhk_api::grpc::ERROR_CODE_KEY)
                .and_then(|v| v.to_str().ok()),
            Some(code(&body)),
            "{path}"
        );
    }
}

/// The lockchain is on by default, and a one-shot `knhk run` leaves a checkpoint of what it
/// committed behind it, which `knhk lockchain checkpoint` prints.
#[test]
fn the_examples_run_with_the_lockchain_on_by_default() {
    let data = DataDir::local();
    let out = data.knhk(&[
        "run",
        &example("order_approval.ttl"),
        "--data",
        r#"{"amount": 10}"#,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let note = data.ok(&["lockchain", "checkpoint"]);
    assert!(note.contains("\n\n\u{2014} "), "{note}");
}
