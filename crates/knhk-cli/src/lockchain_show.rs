//! `knhk lockchain receipt|checkpoint|public-key`: what the engine keeps of the lockchain,
//! shown, on the data directory or through `--server`.
//!
//! The clap arguments are `lockchain.rs`'s; these functions take them as values.
//! PLACEHOLDER: the `surface` work fills these bodies; until then each says so and fails.

use std::path::Path;
use std::process::ExitCode;

use crate::session::{IdArg, Session};

/// `knhk lockchain receipt CASE SEQ [--out FILE]`: prints (or writes) the receipt JSON of
/// event `seq` of `case`.
pub(crate) async fn receipt(
    session: &Session,
    case: &IdArg,
    seq: u64,
    out: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let _ = (session, case, seq, out);
    not_built("receipt")
}

/// `knhk lockchain checkpoint [--json]`: prints the latest signed checkpoint.
pub(crate) async fn checkpoint(session: &Session, json: bool) -> anyhow::Result<ExitCode> {
    let _ = (session, json);
    not_built("checkpoint")
}

/// `knhk lockchain public-key`: prints the log's verifier key.
pub(crate) async fn public_key(session: &Session) -> anyhow::Result<ExitCode> {
    let _ = session;
    not_built("public-key")
}

fn not_built(command: &str) -> anyhow::Result<ExitCode> {
    eprintln!("error: `knhk lockchain {command}` is not built yet");
    Ok(ExitCode::FAILURE)
}
