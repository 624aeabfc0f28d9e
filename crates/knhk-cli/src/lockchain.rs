//! `knhk lockchain ...`: the tamper-evident case history. `verify` checks the store's whole
//! log offline, `verify-receipt` one receipt and `verify-consistency` one consistency proof
//! with nothing but the log's key (all here); `receipt`, `consistency`, `checkpoint` and
//! `public-key` show what the engine keeps (`lockchain_show.rs`).
//!
//! `verify` only reads: it works on a store that cannot be written, and refuses `--server`,
//! since a log is verified where its events are, not through the engine that wrote them.

use std::io::{IsTerminal as _, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use base64::Engine as _;
use clap::{Args, Subcommand};
use knhk_lockchain::consistency::ConsistencyProof;
use knhk_lockchain::note::Verifier;
use knhk_lockchain::receipt::Receipt;
use knhk_lockchain::verify::{Options, Place, Progress, Report};
use knhk_workflow_engine::{KeySource, VerifyOptions, VerifyReport};
use serde_json::{Value, json};

use crate::lockchain_show;
use crate::session::{IdArg, Session};

#[derive(Debug, Subcommand)]
pub(crate) enum LockchainCommand {
    /// Verifies the store's whole lockchain offline, from the stored events themselves: each
    /// event hashed again against its leaf, the tree rebuilt and held against the stored
    /// tiles, every signed checkpoint (its signature and root) and, with --git, every commit
    /// of the anchor repository; events that the log does not hold are looked for too.
    ///
    /// Reads only. Exits with status 0 when the log holds, 1 when anything is wrong, the first
    /// bad record named first (leaf, case and event, tile, checkpoint or commit) with what is
    /// wrong with it. Progress goes to stderr on a terminal, or with --progress.
    Verify(VerifyArgs),
    /// Checks one receipt (the JSON file `knhk lockchain receipt` writes) with nothing but the
    /// log's public key: the checkpoint's signature, and the event's inclusion proof under
    /// its root. Exits with status 1, saying why, when it does not hold.
    VerifyReceipt(VerifyReceiptArgs),
    /// Prints the receipt of an event: its leaf index, its inclusion proof and the signed
    /// checkpoint that covers it, as JSON (the file `verify-receipt` reads).
    Receipt {
        /// The case id.
        case: IdArg,
        /// The event's sequence number in the case's history.
        seq: u64,
        /// Writes the receipt to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Prints the proof that the stored checkpoint of tree size OLD is a prefix of the one of
    /// size NEW (the latest when not given), with both signed notes, as JSON (the file
    /// `verify-consistency` reads).
    Consistency {
        /// The tree size of the older stored checkpoint.
        old: u64,
        /// The tree size of the newer stored checkpoint; the latest when not given.
        new: Option<u64>,
        /// Writes the proof to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Checks one consistency proof (the JSON file `knhk lockchain consistency` writes) with
    /// nothing but the log's public key: both checkpoints' signatures and sizes, and the proof
    /// that the older tree is a prefix of the newer. Exits with status 1, saying why, when it
    /// does not hold.
    VerifyConsistency(VerifyConsistencyArgs),
    /// Prints the latest signed checkpoint of the log (a C2SP signed note).
    Checkpoint {
        /// Prints one JSON document: `size`, `root`, `note`, `taken_at`.
        #[arg(long)]
        json: bool,
    },
    /// Prints the log's public key, the verifier key text that `verify` and
    /// `verify-receipt` take with --public-key.
    PublicKey,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The git repository of the checkpoint anchors: each commit's note verifies, their sizes
    /// grow, each parent is the commit before, and each root is the log's at its size.
    #[arg(long, value_name = "DIR")]
    git: Option<PathBuf>,
    /// The file of the log's public key (the text `knhk lockchain public-key` prints).
    /// Unset: the engine's own key, which proves less (whoever changed the store may have
    /// changed that key too).
    #[arg(long, value_name = "FILE")]
    public_key: Option<PathBuf>,
    /// Prints progress to stderr even when it is not a terminal, one line at a time.
    #[arg(long)]
    progress: bool,
    /// Stops after this many problems.
    #[arg(long, default_value_t = 100, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_problems: u64,
    /// Prints one JSON document: `store`, `ok`, `key`, `git` (and `git_missing`: the
    /// engine's own anchor, not found), the counts, `elapsed_ms`,
    /// `events_per_second` and `problems` (each with `place` and `problem`).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyReceiptArgs {
    /// The receipt file (JSON); `-` reads standard input.
    file: PathBuf,
    /// The file of the log's public key (the text `knhk lockchain public-key` prints).
    #[arg(long, value_name = "FILE")]
    public_key: PathBuf,
    /// Prints one JSON document: `ok`, and what the receipt proves or why it does not hold.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyConsistencyArgs {
    /// The consistency proof file (JSON); `-` reads standard input.
    file: PathBuf,
    /// The file of the log's public key (the text `knhk lockchain public-key` prints).
    #[arg(long, value_name = "FILE")]
    public_key: PathBuf,
    /// Prints one JSON document: `ok`, and what the proof proves or why it does not hold.
    #[arg(long)]
    json: bool,
}

/// Runs a `knhk lockchain` command that needs the engine (all but `verify-receipt` and
/// `verify-consistency`).
pub(crate) async fn run(session: &Session, command: LockchainCommand) -> anyhow::Result<ExitCode> {
    match command {
        LockchainCommand::Verify(args) => verify(session, args).await,
        LockchainCommand::VerifyReceipt(args) => verify_receipt(&args),
        LockchainCommand::VerifyConsistency(args) => verify_consistency(&args),
        LockchainCommand::Consistency { old, new, out } => {
            lockchain_show::consistency(session, old, new, out.as_deref()).await
        }
        LockchainCommand::Receipt { case, seq, out } => {
            lockchain_show::receipt(session, &case, seq, out.as_deref()).await
        }
        LockchainCommand::Checkpoint { json } => lockchain_show::checkpoint(session, json).await,
        LockchainCommand::PublicKey => lockchain_show::public_key(session).await,
    }
}

/// Reads a public key file: the verifier key text on its first line that is not blank.
fn read_key(path: &Path) -> anyhow::Result<Verifier> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the public key {}", path.display()))?;
    let line = text.lines().map(str::trim).find(|l| !l.is_empty());
    let Some(line) = line else {
        anyhow::bail!("the public key {} is empty", path.display());
    };
    Verifier::parse(line).with_context(|| {
        format!(
            "the public key {} is not a verifier key (name+hash+key, as `knhk lockchain \
             public-key` prints it)",
            path.display()
        )
    })
}

async fn verify(session: &Session, args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let engine = session.engine.local("lockchain verify")?;
    let key = args.public_key.as_deref().map(read_key).transpose()?;
    if key.is_none()
        && let Err(knhk_workflow_engine::Error::LockchainOff) = engine.lockchain_public_key()
    {
        anyhow::bail!(
            "the lockchain is off in this data directory's configuration, so there is no key of \
             its own to check the checkpoints with: give the log's public key with --public-key \
             FILE"
        );
    }
    let stderr_tty = std::io::stderr().is_terminal();
    let show = args.progress || stderr_tty;
    let progress: Box<dyn FnMut(&Progress) + Send> = if show {
        Box::new(move |p: &Progress| print_progress(p, stderr_tty))
    } else {
        Box::new(|_: &Progress| {})
    };
    let options = VerifyOptions {
        key,
        git_dir: args.git.clone(),
        verify: Options {
            max_problems: usize::try_from(args.max_problems).unwrap_or(usize::MAX),
            ..Options::default()
        },
    };
    let verified = engine.verify_lockchain(options, progress).await?;
    if show && stderr_tty {
        eprintln!();
    }
    let store = session.store_shown();
    let key_from = match verified.key_source {
        KeySource::Given => args
            .public_key
            .as_ref()
            .map_or_else(String::new, |p| p.display().to_string()),
        KeySource::Engine => "the engine's own".to_owned(),
    };
    if args.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&document(&store, &key_from, &verified))?
        );
    } else {
        print_report(&store, &key_from, &verified);
    }
    Ok(if verified.report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Prints how far a verification got: on a terminal one line rewritten in place, else a line
/// each time.
fn print_progress(p: &Progress, terminal: bool) {
    let percent = if p.size == 0 {
        100.0
    } else {
        p.leaves as f64 * 100.0 / p.size as f64
    };
    let line = format!(
        "verified {} of {} leaves ({percent:.0}%), {:.0} leaves/s",
        p.leaves,
        p.size,
        p.per_second()
    );
    let mut err = std::io::stderr();
    let _ = if terminal {
        write!(err, "\r{line}")
    } else {
        writeln!(err, "{line}")
    };
    let _ = err.flush();
}

fn print_report(store: &str, key_from: &str, verified: &VerifyReport) {
    let r = &verified.report;
    outln!("store {store}");
    outln!("key {} ({key_from})", verified.key_name);
    match (&verified.git_dir, &verified.anchor_missing) {
        (Some(dir), _) => outln!("anchors {}", dir.display()),
        (None, Some(dir)) => outln!(
            "anchors not checked: the engine's anchor {} does not exist (--git DIR names one)",
            dir.display()
        ),
        (None, None) => outln!("anchors not checked (no --git DIR, and the engine has none)"),
    }
    outln!(
        "checked {} of {} leaves, {} events, {} checkpoints, {} anchors, {} cases ({} without \
         leaves) in {:.2} s: {:.0} events/s",
        r.leaves,
        r.size,
        r.events,
        r.checkpoints,
        r.anchors,
        r.cases,
        r.cases_outside,
        r.elapsed.as_secs_f64(),
        r.events_per_second()
    );
    for p in &r.problems {
        outln!("problem: {p}");
    }
    match r.problems.len() {
        0 => outln!(
            "ok: the log holds: {} leaves, root {}",
            r.size,
            base64::engine::general_purpose::STANDARD.encode(r.root)
        ),
        1 => outln!("1 problem found"),
        n if r.stopped => outln!("{n} problems found; stopped there (--max-problems)"),
        n => outln!("{n} problems found"),
    }
}

fn place(p: &Place) -> Value {
    match p {
        Place::Leaf { index, case, seq } => {
            json!({"kind": "leaf", "leaf": index, "case": case.to_string(), "seq": seq})
        }
        Place::Tile(id) => json!({"kind": "tile", "level": id.level, "index": id.index}),
        Place::Head => json!({"kind": "head"}),
        Place::Checkpoint { size } => json!({"kind": "checkpoint", "size": size}),
        Place::Anchor { commit } => json!({"kind": "anchor", "commit": commit}),
        Place::Event { case, seq } => {
            json!({"kind": "event", "case": case.to_string(), "seq": seq})
        }
    }
}

fn document(store: &str, key_from: &str, verified: &VerifyReport) -> Value {
    let r: &Report = &verified.report;
    let problems: Vec<Value> = r
        .problems
        .iter()
        .map(|p| json!({"place": place(&p.place), "problem": p.problem, "text": p.to_string()}))
        .collect();
    json!({
        "store": store,
        "ok": r.is_clean(),
        "key": {"name": verified.key_name, "from": key_from},
        "git": verified.git_dir.as_ref().map(|d| d.display().to_string()),
        "git_missing": verified.anchor_missing.as_ref().map(|d| d.display().to_string()),
        "size": r.size,
        "root": base64::engine::general_purpose::STANDARD.encode(r.root),
        "leaves": r.leaves,
        "events": r.events,
        "checkpoints": r.checkpoints,
        "anchors": r.anchors,
        "cases": r.cases,
        "cases_without_leaves": r.cases_outside,
        "elapsed_ms": r.elapsed.as_millis() as u64,
        "events_per_second": r.events_per_second(),
        "problems": problems,
        "stopped": r.stopped,
    })
}

/// Reads a file named on the command line, `-` being standard input; `what` names it in
/// errors.
fn read_input(file: &Path, what: &str) -> anyhow::Result<String> {
    if file == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .with_context(|| format!("cannot read the {what} from standard input"))?;
        Ok(text)
    } else {
        std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the {what} {}", file.display()))
    }
}

/// `knhk lockchain verify-consistency FILE --public-key FILE`: needs no store.
pub(crate) fn verify_consistency(args: &VerifyConsistencyArgs) -> anyhow::Result<ExitCode> {
    let text = read_input(&args.file, "consistency proof")?;
    let shown = args.file.display();
    let proof: ConsistencyProof = serde_json::from_str(&text).with_context(|| {
        format!("{shown} is not a consistency proof (the JSON `knhk lockchain consistency` prints)")
    })?;
    let key = read_key(&args.public_key)?;
    let held = proof.verify(&key);
    let b64 = |h: &knhk_lockchain::Hash| base64::engine::general_purpose::STANDARD.encode(h);
    if args.json {
        let doc = match &held {
            Ok(v) => json!({
                "ok": true,
                "origin": v.origin,
                "old_size": v.old_size,
                "new_size": v.new_size,
                "old_root": b64(&v.old_root),
                "new_root": b64(&v.new_root),
                "key": key.name(),
            }),
            Err(e) => json!({"ok": false, "problem": e.to_string(), "key": key.name()}),
        };
        outln!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(if held.is_ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    match held {
        Ok(v) => {
            outln!(
                "ok: the tree of {} leaves (root {}) is a prefix of the tree of {} leaves (root \
                 {}), both signed by {} (key {})",
                v.old_size,
                b64(&v.old_root),
                v.new_size,
                b64(&v.new_root),
                v.origin,
                key.name()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => anyhow::bail!("the consistency proof {shown} does not hold: {e}"),
    }
}

/// `knhk lockchain verify-receipt FILE --public-key FILE`: needs no store.
pub(crate) fn verify_receipt(args: &VerifyReceiptArgs) -> anyhow::Result<ExitCode> {
    let text = read_input(&args.file, "receipt")?;
    let shown = args.file.display();
    let receipt: Receipt = serde_json::from_str(&text).with_context(|| {
        format!("{shown} is not a receipt (the JSON `knhk lockchain receipt` prints)")
    })?;
    let key = read_key(&args.public_key)?;
    let held = receipt.verify(&key);
    if args.json {
        let doc = match &held {
            Ok(v) => json!({
                "ok": true,
                "origin": v.origin,
                "case": v.case.to_string(),
                "seq": v.seq,
                "leaf": v.leaf_index,
                "tree_size": v.tree_size,
                "root": base64::engine::general_purpose::STANDARD.encode(v.root),
                "key": key.name(),
            }),
            Err(e) => json!({"ok": false, "problem": e.to_string(), "key": key.name()}),
        };
        outln!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(if held.is_ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    match held {
        Ok(v) => {
            outln!(
                "ok: event {} of case {} is leaf {} of the tree of {} leaves (root {}) that {} \
                 signed (key {})",
                v.seq,
                v.case,
                v.leaf_index,
                v.tree_size,
                base64::engine::general_purpose::STANDARD.encode(v.root),
                v.origin,
                key.name()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => anyhow::bail!("the receipt {shown} does not hold: {e}"),
    }
}
