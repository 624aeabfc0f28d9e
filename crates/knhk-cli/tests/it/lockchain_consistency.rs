//! Consistency proofs between two checkpoints: `knhk lockchain consistency` on a data
//! directory and through `knhk serve` (the same output), `verify-consistency` with nothing but
//! the key (a tampered file refused with the reason), and REST's `GET /lockchain/consistency`
//! against gRPC's `GetConsistencyProof`, with their refusals.

use base64::Engine as _;
use knhk_api::grpc::pb;
use knhk_api::grpc::pb::workflow_service_client::WorkflowServiceClient;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::serve::{Server, code, create};
use crate::{DataDir, knhk, path_str, stderr, stdout, text};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The size of the latest checkpoint of a data directory.
fn latest_size(data: &DataDir) -> u64 {
    let doc: Value =
        serde_json::from_str(&data.ok(&["lockchain", "checkpoint", "--json"])).expect("JSON");
    doc["size"].as_u64().expect("size")
}

fn verify(file: &std::path::Path, key: &std::path::Path, json: bool) -> std::process::Output {
    let mut args = vec![
        "lockchain",
        "verify-consistency",
        path_str(file),
        "--public-key",
        path_str(key),
    ];
    if json {
        args.push("--json");
    }
    knhk(&args)
}

#[test]
fn a_consistency_proof_is_printed_verified_and_the_same_through_a_server() {
    let data = DataDir::served();
    // Each one-shot `knhk run` leaves a checkpoint of what it committed.
    data.start_loan();
    let old = latest_size(&data);
    data.start_loan();
    let new = latest_size(&data);
    assert!(old < new, "{old} < {new}");
    let (o, n) = (old.to_string(), new.to_string());

    let printed = data.ok(&["lockchain", "consistency", &o, &n]);
    let proof: Value = serde_json::from_str(&printed).expect("proof JSON");
    assert_eq!(proof["format"], "knhk-consistency/v1", "{proof:#}");
    assert_eq!(
        (proof["old_size"].as_u64(), proof["new_size"].as_u64()),
        (Some(old), Some(new))
    );
    assert!(
        !proof["proof"].as_array().expect("proof").is_empty(),
        "{proof:#}"
    );
    let old_note = text(&proof, "old_checkpoint");
    assert_eq!(old_note.lines().nth(1), Some(o.as_str()), "{old_note}");
    // NEW defaults to the latest checkpoint.
    assert_eq!(data.ok(&["lockchain", "consistency", &o]), printed);

    let file = data.path().join("consistency.json");
    let said = data.ok(&["lockchain", "consistency", &o, &n, "--out", path_str(&file)]);
    assert!(said.contains(path_str(&file)), "{said}");
    assert_eq!(std::fs::read_to_string(&file).expect("the file"), printed);

    let key_file = data.path().join("knhk.pub");
    std::fs::write(&key_file, data.ok(&["lockchain", "public-key"])).expect("the key file");
    let out = verify(&file, &key_file, false);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with(&format!("ok: the tree of {old} leaves (root ")),
        "{}",
        stdout(&out)
    );
    let out = verify(&file, &key_file, true);
    let doc: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(doc["ok"], true, "{doc}");
    assert_eq!(
        (doc["old_size"].as_u64(), doc["new_size"].as_u64()),
        (Some(old), Some(new))
    );

    // A tampered file fails with the reason.
    for (field, value, words) in [
        ("new_size", json!(new + 1), "new_size is"),
        ("proof", json!([b64(&[7; 32])]), "the consistency proof:"),
        (
            "old_checkpoint",
            proof["new_checkpoint"].clone(),
            "the old checkpoint signs a tree of",
        ),
    ] {
        let mut bad = proof.clone();
        bad[field] = value;
        let tampered = data.path().join("tampered.json");
        std::fs::write(&tampered, bad.to_string()).expect("the tampered file");
        let out = verify(&tampered, &key_file, false);
        assert_eq!(out.status.code(), Some(1), "{field}");
        assert!(
            stderr(&out).contains("does not hold"),
            "{field}: {}",
            stderr(&out)
        );
        assert!(stderr(&out).contains(words), "{field}: {}", stderr(&out));
        let out = verify(&tampered, &key_file, true);
        assert_eq!(out.status.code(), Some(1), "{field}");
        let doc: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
        assert_eq!(doc["ok"], false, "{doc}");
        assert!(text(&doc, "problem").contains(words), "{doc}");
    }

    // Through a server: the same proof, the same refusals.
    let url = data.server_url();
    let remote = |args: &[&str]| {
        let mut all = vec!["--server", url.as_str()];
        all.extend_from_slice(args);
        knhk(&all)
    };
    let out = remote(&["lockchain", "consistency", &o, &n]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), printed);
    let unknown = (old + 1).to_string();
    for place in ["local", "server"] {
        let run = |args: &[&str]| {
            if place == "local" {
                data.knhk(args)
            } else {
                remote(args)
            }
        };
        let out = run(&["lockchain", "consistency", &unknown, &n]);
        assert_eq!(out.status.code(), Some(1), "{place}");
        assert!(
            stderr(&out).contains(&format!("no checkpoint of tree size {unknown} is stored")),
            "{place}: {}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains(&format!("nearest stored are {old} and")),
            "{place}: {}",
            stderr(&out)
        );
        let out = run(&["lockchain", "consistency", &n, &o]);
        assert_eq!(out.status.code(), Some(1), "{place}");
        assert!(
            stderr(&out).contains(&format!("from {new} is larger than to {old}")),
            "{place}: {}",
            stderr(&out)
        );
        assert!(stdout(&out).is_empty(), "{place}");
    }
}

/// REST and gRPC give one consistency proof (gRPC's bytes are REST's base64), and refuse the
/// same sizes with the same codes and messages.
#[tokio::test]
async fn rest_and_grpc_give_the_same_consistency_proof() {
    let server = Server::start();
    server.register("order_approval.ttl").await;
    let mut sizes = Vec::new();
    for amount in [10, 20] {
        let case = create(
            &server,
            "https://knhk.dev/examples/order-approval",
            json!({"amount": amount}),
            true,
        )
        .await;
        let id = case["id"].as_str().expect("id").to_owned();
        // A receipt of the case's last event takes a checkpoint covering it.
        let (status, history) = server.get(&format!("/cases/{id}/history")).await;
        assert_eq!(status, StatusCode::OK, "{history}");
        let last = history["events"].as_array().expect("events").len();
        let (status, receipt) = server
            .get(&format!("/cases/{id}/events/{last}/receipt"))
            .await;
        assert_eq!(status, StatusCode::OK, "{receipt}");
        sizes.push(receipt["tree_size"].as_u64().expect("tree_size"));
    }
    let (old, new) = (sizes[0], sizes[1]);
    assert!(old < new, "{sizes:?}");

    let (status, proof) = server
        .get(&format!("/lockchain/consistency?from={old}&to={new}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{proof}");
    let mut grpc = WorkflowServiceClient::connect(format!("http://{}", server.grpc))
        .await
        .expect("a gRPC connection");
    let p = grpc
        .get_consistency_proof(pb::GetConsistencyProofRequest {
            from: old,
            to: Some(new),
        })
        .await
        .expect("GetConsistencyProof")
        .into_inner();
    assert!(p.proof.iter().all(|h| h.len() == 32));
    assert_eq!(
        json!({
            "format": p.format, "old_size": p.old_size, "new_size": p.new_size,
            "proof": p.proof.iter().map(|h| b64(h)).collect::<Vec<_>>(),
            "old_checkpoint": p.old_checkpoint, "new_checkpoint": p.new_checkpoint,
        }),
        proof
    );

    for (path, from, to, status, grpc_code) in [
        (
            format!("/lockchain/consistency?from={}", old + 1),
            old + 1,
            None,
            StatusCode::NOT_FOUND,
            tonic::Code::NotFound,
        ),
        (
            format!("/lockchain/consistency?from={old}&to={}", new + 100),
            old,
            Some(new + 100),
            StatusCode::NOT_FOUND,
            tonic::Code::NotFound,
        ),
        (
            format!("/lockchain/consistency?from={new}&to={old}"),
            new,
            Some(old),
            StatusCode::BAD_REQUEST,
            tonic::Code::InvalidArgument,
        ),
    ] {
        let (got, body) = server.get(&path).await;
        assert_eq!(got, status, "{path}: {body}");
        let e = grpc
            .get_consistency_proof(pb::GetConsistencyProofRequest { from, to })
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
