//! `knhk workflow register|list|show`: the workflow definitions in the store.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use knhk_core::model::Specification;
use knhk_workflow_engine::{Registration, WorkflowSummary, WorkflowView};
use serde_json::{Value, json};

use crate::report::{self, Zone, rfc3339};
use crate::session::Session;

#[derive(Debug, Subcommand)]
pub(crate) enum WorkflowCommand {
    /// Validates a definition file (Turtle or YAWL XML) and stores it as the next version of its
    /// specification URI; a definition identical to the latest version is that version.
    Register {
        /// The definition file.
        file: PathBuf,
        /// Prints the workflow as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Lists the stored workflows.
    List {
        /// Prints a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Shows a workflow: name, URI, version, tasks and the source it was registered from.
    Show {
        /// The workflow: its id (or a prefix), URI or name for the latest version, or
        /// NAME@VERSION / URI@VERSION.
        workflow: String,
        /// Prints the workflow as JSON, with its source.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) async fn run(session: &Session, command: WorkflowCommand) -> anyhow::Result<ExitCode> {
    let engine = &session.engine;
    match command {
        WorkflowCommand::Register { file, json } => {
            let registration = engine.register_file(&file).await?;
            let w = &registration.workflow;
            let definition = session.definition(w.id).await;
            let spec = definition.as_deref().map(|d| d.specification());
            if json {
                let mut doc = summary(w, spec);
                if let Value::Object(map) = &mut doc {
                    map.insert(
                        "already_registered".to_owned(),
                        Value::Bool(registration.already_registered),
                    );
                }
                outln!("{}", serde_json::to_string_pretty(&doc)?);
            } else {
                outln!("{} ({} tasks)", registered(&registration), task_count(spec));
                outln!(
                    "start a case with: {} case create {} --start --data '{{}}'",
                    session.command(),
                    w.id
                );
            }
        }
        WorkflowCommand::List { json } => {
            // Summaries, with their task counts: no source or definition is read.
            let all = engine.workflows().await?;
            if json {
                let docs: Vec<Value> = all.iter().map(listed).collect();
                outln!("{}", serde_json::to_string_pretty(&docs)?);
            } else if all.is_empty() {
                outln!("no workflows registered");
            } else {
                let zone = session.zone();
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|w| {
                        vec![
                            w.id.to_string(),
                            w.name.clone(),
                            w.version.to_string(),
                            w.uri.clone(),
                            w.tasks.to_string(),
                            zone.show(w.registered_at),
                        ]
                    })
                    .collect();
                out!(
                    "{}",
                    report::table(
                        &["id", "name", "version", "uri", "tasks", "registered"],
                        &rows
                    )
                );
            }
        }
        WorkflowCommand::Show { workflow, json } => {
            let w = session.workflow(&workflow).await?;
            let definition = session.definition(w.id).await;
            let spec = definition.as_deref().map(|d| d.specification());
            if json {
                let mut doc = summary(&w, spec);
                if let Value::Object(map) = &mut doc {
                    map.insert("source".to_owned(), Value::String(w.source.clone()));
                    map.insert("spec".to_owned(), serde_json::to_value(spec)?);
                }
                outln!("{}", serde_json::to_string_pretty(&doc)?);
            } else {
                show(&w, spec, &session.zone());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Returns a workflow of `workflow list --json`: what `summary` gives, from the summary.
fn listed(w: &WorkflowSummary) -> Value {
    json!({
        "id": w.id.to_string(),
        "name": w.name,
        "uri": w.uri,
        "version": w.version,
        "format": w.format.as_str(),
        "tasks": w.tasks,
        "registered_at": rfc3339(w.registered_at),
    })
}

fn summary(w: &WorkflowView, spec: Option<&Specification>) -> Value {
    json!({
        "id": w.id.to_string(),
        "name": w.name,
        "uri": w.uri,
        "version": w.version,
        "format": w.format.as_str(),
        "tasks": task_count(spec),
        "registered_at": rfc3339(w.registered_at),
    })
}

/// Says what registering did: a new version, or the latest one, identical.
pub(crate) fn registered(r: &Registration) -> String {
    let w = &r.workflow;
    if r.already_registered {
        format!(
            "workflow {} is already registered as version {} ({})",
            w.name, w.version, w.id
        )
    } else {
        format!("registered workflow {} v{} as {}", w.name, w.version, w.id)
    }
}

fn task_count(spec: Option<&Specification>) -> usize {
    spec.map_or(0, |s| s.nets.iter().map(|n| n.tasks.len()).sum())
}

fn show(w: &WorkflowView, spec: Option<&Specification>, zone: &Zone) {
    outln!("workflow {}", w.id);
    outln!("name:       {}", w.name);
    outln!("uri:        {}", w.uri);
    outln!("version:    {}", w.version);
    outln!("registered: {}", zone.show(w.registered_at));
    match spec {
        Some(spec) => {
            for net in &spec.nets {
                let root = if net.id == spec.root_net {
                    ", the root net"
                } else {
                    ""
                };
                outln!();
                outln!("net {}{root}", net.id);
                let rows: Vec<Vec<String>> = net
                    .tasks
                    .iter()
                    .map(|t| {
                        vec![
                            t.id.to_string(),
                            t.name.clone().unwrap_or_default(),
                            report::task_kind(&t.binding),
                            report::control_type(t.join).to_owned(),
                            report::control_type(t.split).to_owned(),
                            t.flows
                                .iter()
                                .map(|f| f.to.to_string())
                                .collect::<Vec<_>>()
                                .join(", "),
                        ]
                    })
                    .collect();
                out!(
                    "{}",
                    report::table(
                        &["task", "name", "does", "join", "split", "flows to"],
                        &rows
                    )
                );
            }
        }
        None => outln!("(the stored specification does not decode)"),
    }
    outln!();
    outln!("source ({}):", w.format);
    out!("{}", w.source);
    if !w.source.ends_with('\n') {
        outln!();
    }
}
