//! The lockchain as the CLI wires it: the key made once in the data directory, `knhk run`'s
//! last checkpoint anchored in the data directory's git repository, and the `[lockchain]`
//! table of the config file.

use std::path::Path;
use std::process::Command;

use knhk_lockchain::note::Signer;

use crate::*;

/// Runs git on the anchor repository of a data directory.
fn git_log(data: &Path) -> Vec<String> {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(data.join("lockchain/anchor.git"))
        .args(["log", "--format=%s|%P"])
        .output()
        .expect("git runs");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Returns the signed note of the newest anchored checkpoint.
fn newest_note(data: &Path) -> String {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(data.join("lockchain/anchor.git"))
        .args(["show", "HEAD:checkpoint"])
        .output()
        .expect("git runs");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn knhk_run_anchors_a_checkpoint_signed_by_the_key_made_once() {
    use std::os::unix::fs::PermissionsExt;
    let data = DataDir::local();
    data.start_loan();
    let key = data.path().join("lockchain/key");
    let mode = std::fs::metadata(&key)
        .expect("the key")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    let signer = Signer::from_key_text(&std::fs::read_to_string(&key).expect("the key"))
        .expect("a signer key");
    let log = git_log(data.path());
    assert_eq!(log.len(), 1, "{log:?}");
    let (first, parents) = log[0].split_once('|').expect("subject|parents");
    assert!(first.starts_with("checkpoint "), "{first}");
    assert_eq!(parents, "");
    let checkpoint = signer
        .verifier()
        .verify(&newest_note(data.path()))
        .expect("signed by the data directory's key");
    assert_eq!(checkpoint.origin, "knhk.local/lockchain");
    assert_eq!(first, format!("checkpoint {}", checkpoint.size));

    // The next run signs with the same key, on top of the first.
    data.start_loan();
    let log = git_log(data.path());
    assert_eq!(log.len(), 2, "{log:?}");
    let later = signer
        .verifier()
        .verify(&newest_note(data.path()))
        .expect("the same key");
    assert!(later.size > checkpoint.size);
    assert_eq!(
        Signer::from_key_text(&std::fs::read_to_string(&key).expect("the key"))
            .expect("a signer key")
            .verifier_key(),
        signer.verifier_key(),
        "the key is made once"
    );
}

#[test]
fn the_lockchain_table_turns_it_off_or_takes_a_key_from_a_variable() {
    let data = DataDir::local();
    std::fs::write(
        data.path().join("knhk.toml"),
        "[lockchain]\nenabled = false\n",
    )
    .expect("the config file");
    data.start_loan();
    assert!(!data.path().join("lockchain").exists(), "no key, no anchor");

    let data = DataDir::local();
    let signer = Signer::generate("example.com/audit").expect("a key");
    std::fs::write(
        data.path().join("knhk.toml"),
        "[lockchain]\nkey_env = \"KNHK_TEST_LOCKCHAIN_KEY\"\norigin = \"example.com/audit\"\n\
         checkpoint_events = 50\n",
    )
    .expect("the config file");
    let out = Command::new(env!("CARGO_BIN_EXE_knhk"))
        .args(["--data-dir", path_str(data.path()), "run"])
        .arg(example("loan_application.ttl"))
        .args(["--data", r#"{"applicant": "Ada", "amount": 25000}"#])
        .env("KNHK_TEST_LOCKCHAIN_KEY", signer.to_key_text())
        .env_remove("KNHK_CONFIG")
        .output()
        .expect("knhk runs");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!data.path().join("lockchain/key").exists(), "no key made");
    let checkpoint = signer
        .verifier()
        .verify(&newest_note(data.path()))
        .expect("signed by the variable's key");
    assert_eq!(checkpoint.origin, "example.com/audit");

    // Without the variable, the command stops naming it.
    let err = data.fails(&["run", &example("loan_application.ttl")]);
    assert!(
        err.contains("lockchain.key_env: the variable KNHK_TEST_LOCKCHAIN_KEY is not set"),
        "{err}"
    );
    std::fs::write(
        data.path().join("knhk.toml"),
        "[lockchain]\ncheckpoint_secs = 0\n",
    )
    .expect("the config file");
    let err = data.fails(&["case", "list"]);
    assert!(
        err.contains("lockchain.checkpoint_secs: must be at least 1"),
        "{err}"
    );
    std::fs::write(data.path().join("knhk.toml"), "[lockchain]\nkey = 1\n")
        .expect("the config file");
    let err = data.fails(&["case", "list"]);
    assert!(err.contains("lockchain.key: unknown key"), "{err}");
}
