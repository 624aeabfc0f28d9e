//! The `knhk` command: validates, simulates and exports workflow definitions.
//!
//! The durable runtime and the `run`/`serve` commands come with the runtime issue; until then
//! everything here works on definition files and in memory.

mod simulate;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use serde_json::{Map, Value};

/// knhk: a workflow engine with YAWL semantics.
#[derive(Debug, Parser)]
#[command(name = "knhk", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Checks workflow definition files (Turtle) and names every rule each one breaks.
    ///
    /// Exits with status 1 when any file is invalid.
    Validate {
        /// The definition files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Runs one case of a workflow in memory and prints its history.
    ///
    /// Empty tasks complete on their own; the work items of human tasks are completed with an
    /// empty output by the user "simulator"; timers fire when nothing else can move. The
    /// simulation stops when the case ends or waits for the outside world (a trigger or a
    /// connector call). Exits with status 1 when the case fails, is cancelled or never ends.
    Simulate {
        /// The definition file.
        file: PathBuf,
        /// The initial case data, a JSON object.
        #[arg(long, value_name = "JSON")]
        data: Option<String>,
    },
    /// Prints a definition as Turtle in the YAWL 4 vocabulary with knhk's terms.
    Export {
        /// The definition file.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate { files } => Ok(validate(&files)),
        Command::Simulate { file, data } => simulate(&file, data.as_deref()),
        Command::Export { file } => export(&file),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Loads each file and reports it; fails when any file does not load.
fn validate(files: &[PathBuf]) -> ExitCode {
    let mut failed = false;
    for file in files {
        match knhk_spec::load_file(file) {
            Ok(workflow) => {
                let spec = workflow.specification();
                let tasks: usize = spec.nets.iter().map(|n| n.tasks.len()).sum();
                println!(
                    "ok {}: {} {}, {} {}",
                    file.display(),
                    spec.nets.len(),
                    plural(spec.nets.len(), "net", "nets"),
                    tasks,
                    plural(tasks, "task", "tasks")
                );
            }
            Err(e) => {
                failed = true;
                for line in e.to_string().lines() {
                    eprintln!("error: {line}");
                }
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

fn load(file: &Path) -> anyhow::Result<knhk_core::Workflow> {
    // The error already names the file.
    knhk_spec::load_file(file).map_err(anyhow::Error::new)
}

fn simulate(file: &Path, data: Option<&str>) -> anyhow::Result<ExitCode> {
    let workflow = load(file)?;
    let data = match data {
        None => Map::new(),
        Some(text) => match serde_json::from_str(text).context("--data is not valid JSON")? {
            Value::Object(map) => map,
            other => bail!("--data must be a JSON object, got {}", json_kind(&other)),
        },
    };
    let run = simulate::run(&workflow, data, simulate::now())?;
    print!("{}", run.report(&workflow));
    Ok(if run.succeeded() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn export(file: &Path) -> anyhow::Result<ExitCode> {
    let workflow = load(file)?;
    print!("{}", knhk_spec::write_turtle(workflow.specification()));
    Ok(ExitCode::SUCCESS)
}
