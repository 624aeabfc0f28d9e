//! `knhk workitem ...`: the work items of human tasks, offered to roles and done by people.

use std::process::ExitCode;

use clap::Subcommand;
use knhk_core::WorkItemId;
use knhk_workflow_engine::{Error as EngineError, ItemCursor, WorkItemQuery, WorkItemView};

use crate::backend::is_not_found;
use serde_json::Value;

use crate::report::{self, WORK_ITEM_HEADER};
use crate::run::drive;
use crate::session::{IdArg, Session, json_object};

#[derive(Debug, Subcommand)]
pub(crate) enum WorkItemCommand {
    /// Lists live work items, oldest first.
    List {
        /// Only items offered to this role.
        #[arg(long)]
        role: Option<String>,
        /// Only items of this case.
        #[arg(long = "case", value_name = "CASE_ID")]
        case: Option<IdArg>,
        /// Only items allocated to (or started by) this user.
        #[arg(long)]
        user: Option<String>,
        /// Prints a JSON array.
        #[arg(long)]
        json: bool,
        /// Lists at most this many items (a page); the table ends with the command for the
        /// next one.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        limit: Option<u64>,
        /// Lists only the items after this one, in the list's order (oldest first): the next
        /// page after a page that ended with it.
        #[arg(long, value_name = "ITEM")]
        after: Option<IdArg>,
        /// Prints JSON lines: one item a line (the objects of `--json`), read and printed page
        /// by page, so that a list of any length takes little memory.
        #[arg(long, conflicts_with = "json")]
        jsonl: bool,
    },
    /// Allocates an offered work item to a user; nobody else may take it then.
    Claim {
        /// The work item id (see `knhk workitem list`).
        id: IdArg,
        #[arg(long, value_parser = crate::input::user_name)]
        user: String,
        /// Prints the work item as it is afterwards, as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Starts a work item (claiming it if nobody has).
    Start {
        /// The work item id (see `knhk workitem list`).
        id: IdArg,
        #[arg(long, value_parser = crate::input::user_name)]
        user: String,
        /// Prints the work item as it is afterwards, as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Gives an allocated work item back to its roles: it is offered to them again.
    Release {
        /// The work item id (see `knhk workitem list --user USER`).
        id: IdArg,
        /// The user it is allocated to.
        #[arg(long, value_parser = crate::input::user_name)]
        user: String,
        /// Prints the work item as it is afterwards, as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Hands a work item you hold (allocated or started) to another member of its roles; the
    /// history records who delegated it to whom.
    Delegate {
        /// The work item id (see `knhk workitem list --user USER`).
        id: IdArg,
        /// The user who gets it.
        #[arg(long, value_name = "USER", value_parser = crate::input::user_name)]
        to: String,
        /// The user who holds it now.
        #[arg(long, value_parser = crate::input::user_name)]
        user: String,
        /// Prints the work item as it is afterwards, as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Offers a work item nobody has yet to other roles, in place of those it was offered to
    /// (an administrator distributing a work item, as YAWL's unoffered queue).
    Offer {
        /// The work item id (see `knhk workitem list --role admin`).
        id: IdArg,
        /// A role to offer it to; repeat for several.
        #[arg(long = "role", value_name = "ROLE", required = true)]
        roles: Vec<String>,
        /// The administrator doing it (a member of the administrators' role, when
        /// `directory.json` names roles).
        #[arg(long, value_parser = crate::input::user_name)]
        user: String,
        /// Prints the work item as it is afterwards, as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Allocates a work item to a user (an administrator distributing a work item).
    Allocate {
        /// The work item id (see `knhk workitem list --role admin`).
        id: IdArg,
        /// The user who gets it.
        #[arg(long, value_name = "USER", value_parser = crate::input::user_name)]
        to: String,
        /// The administrator doing it.
        #[arg(long, value_parser = crate::input::user_name)]
        user: String,
        /// Prints the work item as it is afterwards, as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Gives up on a work item: its task fails, and the case follows the task's failure flow
    /// (or fails, when the task has none).
    Fail {
        /// The work item id (see `knhk workitem list`).
        id: IdArg,
        #[arg(long, value_parser = crate::input::user_name)]
        user: String,
        /// Why, recorded in the history.
        #[arg(long, value_name = "TEXT")]
        reason: String,
        /// Prints the case as one JSON document; progress goes to stderr.
        #[arg(long)]
        json: bool,
    },
    /// Completes a work item; its output merges into the case data, and the case runs on
    /// until it waits or ends.
    Complete {
        /// The work item id (see `knhk workitem list`).
        id: IdArg,
        #[arg(long, value_parser = crate::input::user_name)]
        user: String,
        /// What the work produced, a JSON object.
        #[arg(long, value_name = "JSON")]
        output: Option<String>,
        /// Prints the case as one JSON document; progress goes to stderr.
        #[arg(long)]
        json: bool,
    },
}

/// Prints the work items of a list as JSON lines, reading one page of the store at a time,
/// at most `query.limit` of them, after `query.after`.
async fn item_lines(session: &Session, mut query: WorkItemQuery) -> anyhow::Result<ExitCode> {
    let engine = &session.engine;
    let mut left = query.limit.unwrap_or(usize::MAX);
    while left > 0 {
        query.limit = Some(left.min(session.page_size()));
        let items = engine.work_items(&query).await?;
        let lines: Vec<Value> = items.iter().map(report::work_item_json).collect();
        if !report::write_lines(&lines) {
            break;
        }
        // Items of quarantined cases are left out of a page: read on until one is empty.
        let Some(last) = items.last() else { break };
        // The place of the last item, which holds even if it is completed meanwhile.
        query.after = Some(ItemCursor::At(last.offered_at, last.id));
        left = left.saturating_sub(items.len());
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn run(session: &Session, command: WorkItemCommand) -> anyhow::Result<ExitCode> {
    let engine = &session.engine;
    match command {
        WorkItemCommand::List {
            role,
            case,
            user,
            json,
            limit,
            after,
            jsonl,
        } => {
            let case_arg = case.as_ref().map(|c| c.to_string());
            let case = match &case {
                Some(arg) => Some(session.case_id(arg).await?),
                None => None,
            };
            let after = match &after {
                Some(arg) => Some(ItemCursor::Item(session.work_item_id(arg).await?)),
                None => None,
            };
            let query = WorkItemQuery {
                role,
                case,
                owner: user,
                status: None,
                limit: limit.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
                after,
            };
            if jsonl {
                return item_lines(session, query).await;
            }
            let items = engine.work_items(&query).await?;
            // A full page may have a next one: it starts after its last item.
            let next = items.last().map(|w| w.id).filter(|_| {
                limit.is_some_and(|n| u64::try_from(items.len()).is_ok_and(|l| l == n))
            });
            if json {
                let docs: Vec<Value> = items.iter().map(report::work_item_json).collect();
                outln!("{}", serde_json::to_string_pretty(&docs)?);
            } else if items.is_empty() {
                outln!("no work items");
            } else {
                out!(
                    "{}",
                    report::table(
                        &WORK_ITEM_HEADER,
                        &report::work_item_rows(&items, &session.zone())
                    )
                );
                if let (Some(next), Some(n)) = (next, limit) {
                    let mut filters = String::new();
                    if let Some(role) = &query.role {
                        filters.push_str(&format!(" --role {role}"));
                    }
                    if let Some(case) = case_arg {
                        filters.push_str(&format!(" --case {case}"));
                    }
                    if let Some(user) = &query.owner {
                        filters.push_str(&format!(" --user {user}"));
                    }
                    outln!(
                        "more with: {} workitem list{filters} --after {next} --limit {n}",
                        session.command()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        WorkItemCommand::Claim { id, user, json } => {
            let id = session.work_item_id(&id).await?;
            let item = live_item(session, id).await?;
            if let Some(owner) = &item.owner {
                anyhow::bail!(
                    "cannot claim work item {id}: it is already {} by {owner}",
                    item.status
                );
            }
            engine.claim(id, &user).await.item_context("claim", id)?;
            if json {
                print_item(session, id).await?;
            } else {
                outln!(
                    "work item {id} of task {} allocated to {user}",
                    report::task_label(&item.task)
                );
                outln!(
                    "complete it with: {} workitem complete {id} --user {user} --output '{{}}'",
                    session.command()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        WorkItemCommand::Start { id, user, json } => {
            let id = session.work_item_id(&id).await?;
            let item = live_item(session, id).await?;
            engine
                .start_work_item(id, &user)
                .await
                .item_context("start", id)?;
            if json {
                print_item(session, id).await?;
            } else {
                outln!(
                    "work item {id} of task {} started by {user}",
                    report::task_label(&item.task)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        WorkItemCommand::Release { id, user, json } => {
            let id = session.work_item_id(&id).await?;
            let item = live_item(session, id).await?;
            engine
                .release_work_item(id, &user)
                .await
                .item_context("release", id)?;
            if json {
                print_item(session, id).await?;
            } else {
                outln!(
                    "work item {id} of task {} released by {user}: offered to role {} again",
                    report::task_label(&item.task),
                    item.roles.join(", ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        WorkItemCommand::Delegate { id, to, user, json } => {
            let id = session.work_item_id(&id).await?;
            let item = live_item(session, id).await?;
            engine
                .delegate_work_item(id, &user, &to)
                .await
                .item_context("delegate", id)?;
            if json {
                print_item(session, id).await?;
            } else {
                outln!(
                    "work item {id} of task {} delegated by {user} to {to}",
                    report::task_label(&item.task)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        WorkItemCommand::Offer {
            id,
            roles,
            user,
            json,
        } => {
            let id = session.work_item_id(&id).await?;
            let item = live_item(session, id).await?;
            engine
                .offer_work_item(id, roles.clone(), &user)
                .await
                .item_context("offer", id)?;
            if json {
                print_item(session, id).await?;
            } else {
                outln!(
                    "work item {id} of task {} offered to role {}",
                    report::task_label(&item.task),
                    roles.join(", ")
                );
                outln!(
                    "members see it with: {} workitem list --role {}",
                    session.command(),
                    roles.first().map_or("ROLE", String::as_str)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        WorkItemCommand::Allocate { id, to, user, json } => {
            let id = session.work_item_id(&id).await?;
            let item = live_item(session, id).await?;
            engine
                .allocate_work_item(id, &to, &user)
                .await
                .item_context("allocate", id)?;
            if json {
                print_item(session, id).await?;
            } else {
                outln!(
                    "work item {id} of task {} allocated to {to}",
                    report::task_label(&item.task)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        WorkItemCommand::Fail {
            id,
            user,
            reason,
            json,
        } => {
            let id = session.work_item_id(&id).await?;
            let item = live_item(session, id).await?;
            if item.owner.as_deref().is_some_and(|owner| owner != user) {
                anyhow::bail!(
                    "cannot fail work item {id}: it is {} by {}, not {user}",
                    item.status,
                    item.owner.as_deref().unwrap_or_default()
                );
            }
            let reason = format!("{reason} (by {user})");
            let step = async {
                engine
                    .fail_work_item(id, &user, &reason)
                    .await
                    .item_context("fail", id)
            };
            drive(session, item.case, json, false, step).await
        }
        WorkItemCommand::Complete {
            id,
            user,
            output,
            json,
        } => {
            let id = session.work_item_id(&id).await?;
            let output = json_object("--output", output.as_deref())?;
            let item = live_item(session, id).await?;
            let step = async {
                engine
                    .complete_work_item(id, &user, Value::Object(output))
                    .await
                    .item_context("complete", id)
            };
            drive(session, item.case, json, false, step).await
        }
    }
}

/// Prints a work item as it is now, as JSON; one that the step completed or withdrew is
/// `null`.
async fn print_item(session: &Session, id: WorkItemId) -> anyhow::Result<()> {
    let doc = match session.engine.work_item(id).await {
        Ok(item) => report::work_item_json(&item),
        Err(e) if is_not_found(&e) => Value::Null,
        Err(e) => return Err(e),
    };
    outln!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(())
}

/// Returns a live work item, or says clearly that there is none with this id.
async fn live_item(session: &Session, id: WorkItemId) -> anyhow::Result<WorkItemView> {
    match session.engine.work_item(id).await {
        Ok(item) => Ok(item),
        Err(e) if is_not_found(&e) => anyhow::bail!(
            "unknown work item {id}: no live work item has this id (it may have been \
             completed or withdrawn; see `knhk workitem list`) ({})",
            session.looked_in()
        ),
        Err(e) => Err(e),
    }
}

/// Says which work item a refused step was about, without naming it twice: an engine error
/// that names the item already is kept as it is, and a wrong state is said once, as
/// `cannot claim work item ID: it is allocated`.
trait ItemContext<T> {
    fn item_context(self, action: &str, id: WorkItemId) -> anyhow::Result<T>;
}

impl<T> ItemContext<T> for anyhow::Result<T> {
    fn item_context(self, action: &str, id: WorkItemId) -> anyhow::Result<T> {
        self.map_err(|e| match e.downcast::<EngineError>() {
            Ok(e) => engine_item_error(e, action, id),
            // A server's error names the item already; a wrong state is said as here.
            Err(e) => match e
                .downcast_ref::<crate::backend::RemoteError>()
                .and_then(|r| r.state.clone())
            {
                Some(state) => anyhow::anyhow!("cannot {action} work item {id}: it is {state}"),
                None => e,
            },
        })
    }
}

/// Says which work item a refused step of the engine in this process was about.
fn engine_item_error(e: EngineError, action: &str, id: WorkItemId) -> anyhow::Error {
    use knhk_core::Error as Core;
    {
        match e {
            EngineError::Case(Core::WrongWorkItemState { state, .. }) => {
                anyhow::anyhow!("cannot {action} work item {id}: it is {state}")
            }
            EngineError::Case(
                Core::NotAllocatedTo { .. } | Core::FourEyes { .. } | Core::UnknownWorkItem(_),
            )
            | EngineError::NotInRole { .. }
            | EngineError::UnknownWorkItem(_) => anyhow::Error::new(e),
            e => anyhow::Error::new(e).context(format!("cannot {action} work item {id}")),
        }
    }
}
