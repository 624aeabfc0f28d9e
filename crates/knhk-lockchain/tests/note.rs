//! Signed checkpoints: Go's note package test vectors, real checkpoints of sum.golang.org,
//! our own round trip, and every refusal the format asks for.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use knhk_lockchain::note::{
    Checkpoint, MAX_NOTE_LEN, MAX_SIGNATURES, NoteError, Signer, Verifier, key_hash,
};

/// The keys and note of golang.org/x/mod/sumdb/note's tests.
const PETER_SKEY: &str =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
const PETER_TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                          then you don't know what your problem is.\n";
const PETER_SIG: &str = "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
const ENOCH_SIG: &str = "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

/// The verifier key of sum.golang.org, as the go command carries it.
const SUMDB_VKEY: &str = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8";

fn malformed(r: Result<impl std::fmt::Debug, NoteError>) -> String {
    match r {
        Err(NoteError::Malformed(m)) => m,
        other => panic!("expected Malformed, got {other:?}"),
    }
}

fn bad_signature(r: Result<impl std::fmt::Debug, NoteError>) -> String {
    match r {
        Err(NoteError::BadSignature(m)) => m,
        other => panic!("expected BadSignature, got {other:?}"),
    }
}

#[test]
fn go_note_keys_and_signature() {
    let signer = Signer::from_key_text(PETER_SKEY).unwrap();
    assert_eq!(signer.name(), "PeterNeumann");
    assert_eq!(signer.key_hash(), 0xc74f20a3);
    assert_eq!(signer.verifier_key(), PETER_VKEY);
    assert_eq!(signer.to_key_text(), PETER_SKEY);
    // Ed25519 is deterministic: the same note as Go's.
    let note = signer.sign_note(PETER_TEXT).unwrap();
    assert_eq!(note, format!("{PETER_TEXT}\n{PETER_SIG}"));

    let verifier = Verifier::parse(PETER_VKEY).unwrap();
    assert_eq!(verifier.to_string(), PETER_VKEY);
    assert_eq!(verifier.open(&note).unwrap(), PETER_TEXT);
    // Another signer's line is ignored, before or after ours; its own key verifies it.
    for note in [
        format!("{PETER_TEXT}\n{PETER_SIG}{ENOCH_SIG}"),
        format!("{PETER_TEXT}\n{ENOCH_SIG}{PETER_SIG}"),
    ] {
        assert_eq!(verifier.open(&note).unwrap(), PETER_TEXT);
        let enoch = Verifier::parse(ENOCH_VKEY).unwrap();
        assert_eq!(enoch.open(&note).unwrap(), PETER_TEXT);
    }
    // Only another signer's line: not ours.
    let only_enoch = format!("{PETER_TEXT}\n{ENOCH_SIG}");
    assert_eq!(
        bad_signature(verifier.open(&only_enoch)),
        "the note carries no signature by key PeterNeumann+c74f20a3"
    );
}

/// Real signed tree heads of sum.golang.org, as the go command stores and prints them.
#[test]
fn sum_golang_org_checkpoints_verify() {
    let verifier = Verifier::parse(SUMDB_VKEY).unwrap();
    assert_eq!(verifier.name(), "sum.golang.org");
    assert_eq!(verifier.key_hash(), 0x033de0ae);
    let notes = [
        (
            "go.sum database tree\n6476701\nmb8QLQIs0Z0yP5Cstq6guj87oXWeC9gEM8oVikmm9Wk=\n\n\
             — sum.golang.org Az3grsLX85Gz+s1SiTbgkuqxgItqFq7gsMUEyVnrsa9LM7Us9S+1xbFIGu95949rj4nPRYfvimWEPWL+o3GeoWwOoAw=\n",
            6476701,
        ),
        (
            "go.sum database tree\n65209736\n5+uGFjx6xBZG8ip1+wi77v+grwbhhukIrxEUS8PXvRo=\n\n\
             — sum.golang.org Az3grnbssgK7ubgFX36gVETtNv0U23qxyAhAMai2QUfeGa3nB/akvkMdlUErfcZz7l/R3cVtYspg3dxXABkGZZKdsQ8=\n",
            65209736,
        ),
    ];
    for (note, size) in notes {
        let checkpoint = verifier.verify(note).unwrap();
        assert_eq!(checkpoint.origin, "go.sum database tree");
        assert_eq!(checkpoint.size, size);
        assert!(checkpoint.extensions.is_empty());
        // The body we write for it is the body that was signed.
        assert_eq!(checkpoint.body(), verifier.open(note).unwrap());
        // One changed digit of the size, and the signature no longer holds.
        let changed = note.replacen(&size.to_string(), &(size + 1).to_string(), 1);
        bad_signature(verifier.verify(&changed));
    }
}

fn checkpoint() -> Checkpoint {
    Checkpoint {
        origin: "knhk.example/log".to_owned(),
        size: 1234,
        root: [7; 32],
        extensions: vec!["time 1767225600000".to_owned(), "— extension".to_owned()],
    }
}

#[test]
fn sign_and_verify_a_checkpoint() {
    let signer = Signer::generate("knhk.example/log").unwrap();
    let note = signer.sign(&checkpoint()).unwrap();
    assert!(note.starts_with(
        "knhk.example/log\n1234\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\ntime 1767225600000\n— extension\n\n— knhk.example/log "
    ));
    let verifier = Verifier::parse(&signer.verifier_key()).unwrap();
    assert_eq!(verifier, signer.verifier());
    assert_eq!(verifier.public_key(), signer.public_key());
    assert_eq!(verifier.verify(&note).unwrap(), checkpoint());

    // Another key of the same name: its hash differs, and it says so.
    let other = Signer::generate("knhk.example/log").unwrap();
    let err = bad_signature(other.verifier().verify(&note));
    assert!(err.contains("names key hash"), "{err}");

    // The seed and the key text give back the same key.
    let again = Signer::from_seed("knhk.example/log", signer.seed()).unwrap();
    assert_eq!(again.verifier_key(), signer.verifier_key());
    let text = signer.to_key_text();
    assert!(text.starts_with("PRIVATE+KEY+knhk.example/log+"));
    let read = Signer::from_key_text(&format!("{text}\n")).unwrap();
    assert_eq!(read.seed(), signer.seed());
    assert_eq!(read.sign(&checkpoint()).unwrap(), note);
}

#[test]
fn key_hash_is_the_first_four_bytes_of_sha256() {
    let signer = Signer::from_key_text(PETER_SKEY).unwrap();
    assert_eq!(key_hash("PeterNeumann", &signer.public_key()), 0xc74f20a3);
}

#[test]
fn verifier_keys_are_refused_when_wrong() {
    assert_eq!(
        malformed(Verifier::parse(
            "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
        )),
        "the verifier key's hash c74f20a4 is not that of its name and key, c74f20a3"
    );
    malformed(Verifier::parse("PeterNeumann+c74f20a3"));
    malformed(Verifier::parse(
        "PeterNeumann+c74f20+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ));
    malformed(Verifier::parse(
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ));
    malformed(Verifier::parse(
        "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ));
    // Wrong length, with the hash adjusted; unknown algorithm, with the hash adjusted (Go's
    // own cases).
    malformed(Verifier::parse(
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
    ));
    assert!(
        malformed(Verifier::parse(
            "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
        ))
        .contains("algorithm")
    );
    // Every one-byte change of a good key is refused.
    let mut bytes = PETER_VKEY.as_bytes().to_vec();
    for i in 0..bytes.len() {
        bytes[i] = bytes[i].wrapping_add(1);
        if let Ok(text) = std::str::from_utf8(&bytes) {
            assert!(Verifier::parse(text).is_err(), "{text}");
        }
        bytes[i] = bytes[i].wrapping_sub(1);
    }
}

#[test]
fn signer_keys_are_refused_when_wrong() {
    assert!(malformed(Signer::from_key_text(&PETER_SKEY[1..])).contains("PRIVATE+KEY+"));
    let wrong_hash = PETER_SKEY.replace("c74f20a3", "c74f20a4");
    assert!(malformed(Signer::from_key_text(&wrong_hash)).contains("not its public key's"));
    malformed(Signer::from_key_text(
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEK",
    ));
    malformed(Signer::from_key_text("PRIVATE+KEY+PeterNeumann+c74f20a3"));
    malformed(Signer::from_seed("has space", [1; 32]));
    malformed(Signer::from_seed("has+plus", [1; 32]));
    malformed(Signer::from_seed("", [1; 32]));
}

#[test]
fn notes_are_refused_when_malformed() {
    let verifier = Verifier::parse(PETER_VKEY).unwrap();
    let good = format!("{PETER_TEXT}\n{PETER_SIG}");
    assert!(verifier.open(&good).is_ok());

    // No blank line between the text and the signatures.
    assert_eq!(
        malformed(verifier.open(&format!("{PETER_TEXT}{PETER_SIG}"))),
        "the note has no blank line between its text and its signatures"
    );
    malformed(verifier.open(PETER_TEXT));
    malformed(verifier.open(&format!("{PETER_TEXT}\n")));
    // The last signature line without its newline.
    malformed(verifier.open(&good[..good.len() - 1]));
    // A control character, or a line that is not a signature.
    assert!(malformed(verifier.open(&format!("\u{1}{good}"))).contains("control character"));
    assert!(
        malformed(verifier.open(&format!("{good}Unexpected line.\n")))
            .contains("does not start with an em dash")
    );
    malformed(verifier.open(&good.replace("— PeterNeumann", "- PeterNeumann")));
    malformed(verifier.open(&good.replace("— PeterNeumann", "— Bad Name")));
    // Bad base64, in our line or another's.
    assert!(malformed(verifier.open(&good.replace("x08go/", "x08go!"))).contains("not base64"));
    let enoch_bad = ENOCH_SIG.replace("rwz+", "rwz!");
    assert!(
        malformed(verifier.open(&format!("{PETER_TEXT}\n{PETER_SIG}{enoch_bad}")))
            .contains("signature line 2")
    );
    // Too long, too many signatures.
    let long = format!("{}\n\n{PETER_SIG}", "x".repeat(MAX_NOTE_LEN));
    assert!(malformed(verifier.open(&long)).contains("more than the limit"));
    let many = format!("{PETER_TEXT}\n{}", PETER_SIG.repeat(MAX_SIGNATURES + 1));
    assert!(malformed(verifier.open(&many)).contains("more than 100 signature lines"));
    // A signature of the wrong length.
    let short = "— PeterNeumann x08go/ZJ\n";
    malformed(verifier.open(&format!("{PETER_TEXT}\n{short}")));
}

#[test]
fn notes_are_refused_when_not_signed_by_the_key() {
    let verifier = Verifier::parse(PETER_VKEY).unwrap();
    // The text changed.
    let changed = format!("{}\n{PETER_SIG}", PETER_TEXT.replace("problem", "question"));
    assert!(bad_signature(verifier.open(&changed)).contains("does not verify"));
    // The signature changed (a character inside it).
    let sig = PETER_SIG.replace("ZJkuBS9UG", "ZJkuBS9UH");
    bad_signature(verifier.open(&format!("{PETER_TEXT}\n{sig}")));
    // Our name, another key hash.
    let sig = PETER_SIG.replace("x08g", "xxxx");
    assert!(bad_signature(verifier.open(&format!("{PETER_TEXT}\n{sig}"))).contains("key hash"));
    // A good signature of ours and a bad one: refused.
    let bad = PETER_SIG.replace("ZJkuBS9UG", "ZJkuBS9UH");
    bad_signature(verifier.open(&format!("{PETER_TEXT}\n{PETER_SIG}{bad}")));
}

#[test]
fn checkpoint_bodies_are_parsed_strictly() {
    let root = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
    let ok = Checkpoint::parse(&format!("origin\n0\n{root}\n")).unwrap();
    assert_eq!(ok.size, 0);
    assert_eq!(ok.root, [7; 32]);
    let max = Checkpoint::parse(&format!("origin\n{}\n{root}\next\n", u64::MAX)).unwrap();
    assert_eq!(max.size, u64::MAX);
    assert_eq!(max.extensions, vec!["ext".to_owned()]);

    for size in [
        "12a",
        "+12",
        "-1",
        "012",
        "",
        " 12",
        "1e3",
        "18446744073709551616",
    ] {
        let err = malformed(Checkpoint::parse(&format!("origin\n{size}\n{root}\n")));
        assert!(err.contains("size"), "{size:?}: {err}");
    }
    let short = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcH";
    assert_eq!(
        malformed(Checkpoint::parse(&format!("origin\n1\n{short}\n"))),
        "the checkpoint's root hash is 30 bytes, not 32"
    );
    assert!(malformed(Checkpoint::parse("origin\n1\nnot base64!\n")).contains("not base64"));
    malformed(Checkpoint::parse(&format!("\n1\n{root}\n")));
    malformed(Checkpoint::parse(&format!("origin\n1\n{root}")));
    malformed(Checkpoint::parse("origin\n1\n"));
    malformed(Checkpoint::parse(&format!(
        "origin\n1\n{root}\n\nafter blank\n"
    )));

    // A signer refuses a checkpoint whose body would not parse back.
    let signer = Signer::from_key_text(PETER_SKEY).unwrap();
    let mut bad = checkpoint();
    bad.extensions.push(String::new());
    malformed(signer.sign(&bad));
    let mut bad = checkpoint();
    bad.origin = "two\nlines".to_owned();
    malformed(signer.sign(&bad));
    malformed(signer.sign_note("no final newline"));
}
