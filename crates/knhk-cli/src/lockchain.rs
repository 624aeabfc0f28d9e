//! `knhk lockchain`: the lockchain's commands. The `verify` helper's branch owns this file and
//! its `verify` and `verify-receipt` commands; this stand-in only routes `receipt`,
//! `checkpoint` and `public-key` to `lockchain_show.rs`, so that they can be built and tested
//! before that branch lands. On merge, the `verify` branch's version of this file wins.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use crate::lockchain_show;
use crate::session::Session;

#[derive(Debug, Subcommand)]
pub(crate) enum LockchainCommand {
    /// Prints the receipt of one event of a case as JSON: its leaf index, its inclusion proof
    /// and the signed checkpoint that covers it (the file `verify-receipt` checks).
    Receipt {
        /// The case: its id, or a start of one.
        case: String,
        /// The event's sequence number in the case's history, from 1.
        seq: u64,
        /// Writes the receipt to this file instead of printing it.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Prints the latest signed checkpoint (a C2SP signed note).
    Checkpoint {
        /// Prints a JSON document: `size`, `root`, `note`, `taken_at`.
        #[arg(long)]
        json: bool,
    },
    /// Prints the verifier key of the log's checkpoints.
    PublicKey,
}

/// Runs a `knhk lockchain` command on the session (a data directory or a server).
pub(crate) async fn run(session: &Session, command: LockchainCommand) -> anyhow::Result<ExitCode> {
    match command {
        LockchainCommand::Receipt { case, seq, out } => {
            lockchain_show::receipt(session, &case, seq, out.as_deref()).await
        }
        LockchainCommand::Checkpoint { json } => lockchain_show::checkpoint(session, json).await,
        LockchainCommand::PublicKey => lockchain_show::public_key(session).await,
    }
}
