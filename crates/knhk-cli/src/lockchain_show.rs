//! `knhk lockchain receipt`, `consistency`, `checkpoint` and `public-key`: what the lockchain shows of
//! itself, read from the engine on the data directory or from a `knhk serve` (`--server`).
//!
//! Each prints the same in both places, because both go through the same [`Backend`] call
//! and print the API's wire types: the receipt is the JSON that `knhk lockchain
//! verify-receipt` reads, the consistency proof the JSON that `verify-consistency` reads (the
//! API crate holds both equal to the lockchain's own), the
//! checkpoint is the signed note as signed, the key is the signed-note verifier key. The
//! clap definitions of these commands are in the `lockchain` subcommand, not here.
//!
//! [`Backend`]: crate::backend::Backend

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::session::{IdArg, Session};

/// Prints the receipt of event `seq` of case `case` (an id, or a start of one) as JSON, or
/// writes it to `out` and says where it went.
pub(crate) async fn receipt(
    session: &Session,
    case: &IdArg,
    seq: u64,
    out: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    if seq == 0 {
        anyhow::bail!("SEQ: 0 is not an event's sequence number (they start at 1)");
    }
    let id = session.case_id(case).await?;
    let receipt = session.engine.receipt(id, seq).await?;
    let text = serde_json::to_string_pretty(&receipt)?;
    match out {
        None => outln!("{text}"),
        Some(file) => {
            std::fs::write(file, format!("{text}\n"))
                .with_context(|| format!("cannot write the receipt to {}", file.display()))?;
            outln!(
                "wrote the receipt of event {seq} of case {id} to {} (leaf {} of a tree of {})",
                file.display(),
                receipt.leaf_index,
                receipt.tree_size
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the consistency proof between the stored checkpoints of sizes `from` and `to` (the
/// latest when `None`) as JSON, or writes it to `out` and says where it went.
pub(crate) async fn consistency(
    session: &Session,
    from: u64,
    to: Option<u64>,
    out: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let proof = session.engine.consistency_proof(from, to).await?;
    let text = serde_json::to_string_pretty(&proof)?;
    match out {
        None => outln!("{text}"),
        Some(file) => {
            std::fs::write(file, format!("{text}\n")).with_context(|| {
                format!("cannot write the consistency proof to {}", file.display())
            })?;
            outln!(
                "wrote the consistency proof from the tree of {} leaves to the tree of {} to {} \
                 ({} hashes)",
                proof.old_size,
                proof.new_size,
                file.display(),
                proof.proof.len()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the latest signed checkpoint: the signed note as it was signed, or with `json` a
/// document with `size`, `root`, `note` and `taken_at`.
pub(crate) async fn checkpoint(session: &Session, json: bool) -> anyhow::Result<ExitCode> {
    let checkpoint = session.engine.latest_checkpoint().await?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&checkpoint)?);
    } else {
        // A signed note ends with a newline; it is printed as it is.
        out!("{}", checkpoint.note);
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the verifier key of the log's checkpoints, one line: what `verify-receipt
/// --public-key FILE` and standard signed-note tools take.
pub(crate) async fn public_key(session: &Session) -> anyhow::Result<ExitCode> {
    let key = session.engine.lockchain_public_key().await?;
    outln!("{key}");
    Ok(ExitCode::SUCCESS)
}
