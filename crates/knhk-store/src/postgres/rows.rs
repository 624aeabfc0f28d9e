//! Reading records out of PostgreSQL rows, and the read queries of the store.

use knhk_core::{CaseId, CaseStatus, Event, TimerId, Timestamp, WorkItemId, WorkflowId};
use serde::de::DeserializeOwned;
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, ToSql};
use uuid::Uuid;

use crate::error::{Corruption, Error};
use crate::record::{
    CaseFilter, CaseRecord, IdempotencyRecord, NodeRecord, QuarantineRecord, SnapshotRecord,
    TimerRecord, WorkItemFilter, WorkItemRecord, WorkflowRecord, WorkflowSummary,
};

/// A statement's parameter, owned so that queries built at run time can carry their own.
pub(super) type Param = Box<dyn ToSql + Sync + Send>;

pub(super) const WORKFLOW_COLUMNS: &str =
    "id, name, version, format, source, spec, registered_at, uri";
pub(super) const CASE_COLUMNS: &str =
    "id, workflow, status, data, marking, version, created_at, updated_at, in_flight, owner";
const WORK_ITEM_COLUMNS: [&str; 11] = [
    "id",
    "case_id",
    "task",
    "net_instance",
    "instance",
    "roles",
    "allocation",
    "state",
    "owner",
    "input",
    "offered_at",
];

fn col<'a, T: FromSql<'a>>(r: &'a Row, i: usize) -> Result<T, Error> {
    r.try_get(i)
        .map_err(|source| Error::Corrupt(Corruption::Value { column: i, source }))
}

fn uuid_col(r: &Row, i: usize) -> Result<Uuid, Error> {
    let text: String = col(r, i)?;
    Uuid::parse_str(&text).map_err(|source| Error::Corrupt(Corruption::Id { text, source }))
}

fn json_col<T: DeserializeOwned>(r: &Row, i: usize) -> Result<T, Error> {
    let text: &str = col(r, i)?;
    serde_json::from_str(text)
        .map_err(|source| Error::Corrupt(Corruption::Json { column: i, source }))
}

pub(super) fn u64_col(r: &Row, i: usize) -> Result<u64, Error> {
    let n: i64 = col(r, i)?;
    u64::try_from(n).map_err(|_| {
        Error::Corrupt(Corruption::Number {
            column: i,
            value: n,
        })
    })
}

fn u32_col(r: &Row, i: usize) -> Result<u32, Error> {
    let n: i64 = col(r, i)?;
    u32::try_from(n).map_err(|_| {
        Error::Corrupt(Corruption::Number {
            column: i,
            value: n,
        })
    })
}

fn time_col(r: &Row, i: usize) -> Result<Timestamp, Error> {
    col(r, i).map(Timestamp)
}

fn status_col(r: &Row, i: usize) -> Result<CaseStatus, Error> {
    let text: String = col(r, i)?;
    serde_json::from_value(serde_json::Value::String(text.clone()))
        .map_err(|_| Error::Corrupt(Corruption::CaseStatus(text)))
}

pub(super) fn workflow_row(r: &Row) -> Result<WorkflowRecord, Error> {
    Ok(WorkflowRecord {
        id: WorkflowId(uuid_col(r, 0)?),
        name: col(r, 1)?,
        version: u32_col(r, 2)?,
        format: col(r, 3)?,
        source: col(r, 4)?,
        spec: json_col(r, 5)?,
        registered_at: time_col(r, 6)?,
        uri: col(r, 7)?,
    })
}

/// The columns of a workflow's summary: no source, no specification.
const WORKFLOW_SUMMARY_COLUMNS: &str = "id, uri, name, version, format, registered_at, tasks";

pub(super) fn workflow_summary_row(r: &Row) -> Result<WorkflowSummary, Error> {
    Ok(WorkflowSummary {
        id: WorkflowId(uuid_col(r, 0)?),
        uri: col(r, 1)?,
        name: col(r, 2)?,
        version: u32_col(r, 3)?,
        format: col(r, 4)?,
        registered_at: time_col(r, 5)?,
        tasks: u32_col(r, 6)?,
    })
}

pub(super) fn workflow_summaries_sql() -> String {
    format!("SELECT {WORKFLOW_SUMMARY_COLUMNS} FROM workflows ORDER BY name, version, id")
}

/// The versions of the workflows whose URI or name is `$1`: two index ranges, one of the
/// unique `(uri, version)`, one of `workflows_by_name`.
pub(super) fn workflows_named_sql() -> String {
    format!(
        "SELECT {WORKFLOW_SUMMARY_COLUMNS} FROM workflows WHERE uri = $1 \
         UNION SELECT {WORKFLOW_SUMMARY_COLUMNS} FROM workflows WHERE name = $1 \
         ORDER BY 2, 4"
    )
}

pub(super) fn case_row(r: &Row) -> Result<CaseRecord, Error> {
    Ok(CaseRecord {
        id: CaseId(uuid_col(r, 0)?),
        workflow: WorkflowId(uuid_col(r, 1)?),
        status: status_col(r, 2)?,
        data: json_col(r, 3)?,
        marking: json_col(r, 4)?,
        version: u64_col(r, 5)?,
        created_at: time_col(r, 6)?,
        updated_at: time_col(r, 7)?,
        in_flight: col(r, 8)?,
        owner: opt_u64_col(r, 9)?,
    })
}

/// Reads a nullable non-negative integer column.
fn opt_u64_col(r: &Row, i: usize) -> Result<Option<u64>, Error> {
    let n: Option<i64> = col(r, i)?;
    n.map(|n| {
        u64::try_from(n).map_err(|_| {
            Error::Corrupt(Corruption::Number {
                column: i,
                value: n,
            })
        })
    })
    .transpose()
}

/// The expiry of one node's lease (`$1` its fencing token), locked against a renewal that
/// would end it while the transaction reading it runs.
pub(super) const LEASE_SQL: &str = "SELECT expires_at FROM nodes WHERE fence = $1 FOR SHARE";
/// The node owning one case's work in flight.
pub(super) const CASE_OWNER_SQL: &str = "SELECT owner FROM cases WHERE id = $1";
pub(super) const REGISTER_NODE_SQL: &str =
    "INSERT INTO nodes (name, started_at, expires_at) VALUES ($1, $2, $3) RETURNING fence";
/// Renews a lease that has not expired at `$2` until `$3`; an expiry at `$2` ends it.
pub(super) const RENEW_LEASE_SQL: &str =
    "UPDATE nodes SET expires_at = $3 WHERE fence = $1 AND expires_at > $2";
pub(super) const NODES_SQL: &str =
    "SELECT fence, name, started_at, expires_at FROM nodes ORDER BY fence";
/// Claims for `$1` the oldest running or suspended cases with work in flight owned by a node
/// whose lease expired at `$2`, at most `$3`; rows another transaction holds are skipped,
/// so that racing sweeps claim each case once.
pub(super) const CLAIM_DEAD_SQL: &str = "UPDATE cases SET owner = $1 WHERE id IN (
       SELECT id FROM cases
       WHERE in_flight AND status IN ('running', 'suspended')
         AND owner IN (SELECT fence FROM nodes WHERE expires_at <= $2)
       ORDER BY created_at, id LIMIT $3 FOR UPDATE SKIP LOCKED)
     RETURNING id, created_at";
/// Claims for `$1` the oldest running or suspended cases with work in flight that no node
/// owns, at most `$2`.
pub(super) const CLAIM_UNOWNED_SQL: &str = "UPDATE cases SET owner = $1 WHERE id IN (
       SELECT id FROM cases
       WHERE in_flight AND status IN ('running', 'suspended') AND owner IS NULL
       ORDER BY created_at, id LIMIT $2 FOR UPDATE SKIP LOCKED)
     RETURNING id, created_at";
/// Claims for `$1` until `$3` the timers due at `$2` that no live claim holds, at most `$4`,
/// earliest first, through the index by firing time.
pub(super) const CLAIM_TIMERS_SQL: &str =
    "UPDATE timers SET claimed_by = $1, claimed_until = $3 WHERE (case_id, id) IN (
       SELECT case_id, id FROM timers
       WHERE fires_at <= $2 AND (claimed_until IS NULL OR claimed_until <= $2)
       ORDER BY fires_at, id LIMIT $4 FOR UPDATE SKIP LOCKED)
     RETURNING id, case_id, fires_at";

pub(super) fn node_row(r: &Row) -> Result<NodeRecord, Error> {
    Ok(NodeRecord {
        fence: u64_col(r, 0)?,
        name: col(r, 1)?,
        started_at: time_col(r, 2)?,
        expires_at: time_col(r, 3)?,
    })
}

/// Decodes a claimed case: its creation time and id.
pub(super) fn claimed_case(r: &Row) -> Result<(Timestamp, CaseId), Error> {
    Ok((time_col(r, 1)?, CaseId(uuid_col(r, 0)?)))
}

/// Decodes a nullable owner column.
pub(super) fn owner_row(r: &Row) -> Result<Option<u64>, Error> {
    opt_u64_col(r, 0)
}

/// Decodes a lease expiry.
pub(super) fn lease_row(r: &Row) -> Result<Timestamp, Error> {
    time_col(r, 0)
}

pub(super) fn event_row(r: &Row) -> Result<Event, Error> {
    let seq = u64_col(r, 0)?;
    let payload: &str = col(r, 2)?;
    Ok(Event {
        seq,
        time: time_col(r, 1)?,
        kind: serde_json::from_str(payload)
            .map_err(|source| Error::Corrupt(Corruption::Event { seq, source }))?,
    })
}

pub(super) fn work_item_row(r: &Row) -> Result<WorkItemRecord, Error> {
    Ok(WorkItemRecord {
        id: WorkItemId(uuid_col(r, 0)?),
        case_id: CaseId(uuid_col(r, 1)?),
        task: col(r, 2)?,
        net_instance: u32_col(r, 3)?,
        instance: u32_col(r, 4)?,
        roles: json_col(r, 5)?,
        allocation: col(r, 6)?,
        state: col(r, 7)?,
        owner: col(r, 8)?,
        input: json_col(r, 9)?,
        offered_at: time_col(r, 10)?,
    })
}

pub(super) fn timer_row(r: &Row) -> Result<TimerRecord, Error> {
    Ok(TimerRecord {
        id: TimerId(uuid_col(r, 0)?),
        case_id: CaseId(uuid_col(r, 1)?),
        fires_at: time_col(r, 2)?,
    })
}

pub(super) fn idempotency_row(r: &Row) -> Result<IdempotencyRecord, Error> {
    Ok(IdempotencyRecord {
        key: col(r, 0)?,
        response: json_col(r, 1)?,
        at: time_col(r, 2)?,
    })
}

pub(super) fn snapshot_row(r: &Row) -> Result<SnapshotRecord, Error> {
    Ok(SnapshotRecord {
        seq: u64_col(r, 0)?,
        format: u32_col(r, 1)?,
        state: col(r, 2)?,
    })
}

pub(super) fn quarantine_row(r: &Row) -> Result<QuarantineRecord, Error> {
    Ok(QuarantineRecord {
        case: CaseId(uuid_col(r, 0)?),
        reason: col(r, 1)?,
        at: time_col(r, 2)?,
    })
}

pub(super) fn id_row(r: &Row) -> Result<Uuid, Error> {
    uuid_col(r, 0)
}

/// Converts a count or limit to PostgreSQL's `bigint`, saturating (a limit past `i64::MAX` is
/// no limit).
pub(super) fn big(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(super) fn workflow_sql() -> String {
    format!("SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE id = $1")
}

pub(super) fn latest_workflow_sql() -> String {
    format!("SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE uri = $1 ORDER BY version DESC LIMIT 1")
}

pub(super) fn workflows_sql() -> String {
    format!("SELECT {WORKFLOW_COLUMNS} FROM workflows ORDER BY name, version, id")
}

pub(super) fn case_sql() -> String {
    format!("SELECT {CASE_COLUMNS} FROM cases WHERE id = $1")
}

pub(super) fn work_item_sql() -> String {
    format!(
        "SELECT {} FROM work_items WHERE id = $1",
        WORK_ITEM_COLUMNS.join(", ")
    )
}

pub(super) const CASE_VERSION_SQL: &str = "SELECT version FROM cases WHERE id = $1";
pub(super) const EVENTS_SQL: &str =
    "SELECT seq, time, payload FROM events WHERE case_id = $1 AND seq > $2 ORDER BY seq";
pub(super) const EVENTS_PAGE_SQL: &str =
    "SELECT seq, time, payload FROM events WHERE case_id = $1 AND seq > $2 ORDER BY seq LIMIT $3";
pub(super) const SNAPSHOT_SQL: &str = "SELECT seq, format, state FROM snapshots WHERE case_id = $1";
pub(super) const TIMERS_SQL: &str =
    "SELECT id, case_id, fires_at FROM timers ORDER BY fires_at, id";
pub(super) const IDEMPOTENCY_SQL: &str = "SELECT key, response, at FROM idempotency WHERE key = $1";
pub(super) const QUARANTINE_OF_SQL: &str =
    "SELECT case_id, reason, at FROM quarantine WHERE case_id = $1";
/// Takes a case out of the quarantine.
pub(super) const RELEASE_QUARANTINE_SQL: &str = "DELETE FROM quarantine WHERE case_id = $1";
pub(super) const QUARANTINE_SQL: &str =
    "SELECT case_id, reason, at FROM quarantine ORDER BY at, case_id";
/// Marks a case as having no work in flight, if its version is still the one given.
pub(super) const SETTLE_IN_FLIGHT_SQL: &str =
    "UPDATE cases SET in_flight = FALSE WHERE id = $1 AND version = $2";
/// Adds one to a named sequence, creating it at 1: one statement, atomic across processes.
pub(super) const NEXT_IN_SEQUENCE_SQL: &str = "INSERT INTO sequences (name, value) VALUES ($1, 1)
     ON CONFLICT (name) DO UPDATE SET value = sequences.value + 1
     RETURNING value";
/// Sets a case aside; one already set aside keeps its first reason.
pub(super) const QUARANTINE_INSERT_SQL: &str =
    "INSERT INTO quarantine (case_id, reason, at) VALUES ($1, $2, $3)
     ON CONFLICT (case_id) DO NOTHING";

/// The status names of `status`, as a text array parameter.
fn statuses(status: &[CaseStatus]) -> Param {
    Box::new(
        status
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect::<Vec<String>>(),
    )
}

/// Builds the query of the cases that match `f`, with only the conditions it sets (the
/// status and the workflow each have an index ordered by creation).
pub(super) fn cases_query(f: &CaseFilter) -> (String, Vec<Param>) {
    let mut sql = format!("SELECT {CASE_COLUMNS} FROM cases WHERE TRUE");
    let mut args: Vec<Param> = Vec::new();
    if !f.status.is_empty() {
        args.push(statuses(&f.status));
        sql.push_str(&format!(" AND status = ANY(${})", args.len()));
    }
    if let Some(w) = f.workflow {
        args.push(Box::new(w.to_string()));
        sql.push_str(&format!(" AND workflow = ${}", args.len()));
    }
    if let Some((created_at, id)) = f.after {
        args.push(Box::new(created_at.0));
        args.push(Box::new(id.to_string()));
        sql.push_str(&format!(
            " AND (created_at, id) > (${}, ${})",
            args.len() - 1,
            args.len()
        ));
    }
    sql.push_str(" ORDER BY created_at, id");
    if let Some(limit) = f.limit {
        args.push(Box::new(big(limit)));
        sql.push_str(&format!(" LIMIT ${}", args.len()));
    }
    (sql, args)
}

/// Builds the query of the ids of the cases in any of `status` (all when empty), with work in
/// flight only when `in_flight` (read through the partial index of those cases).
pub(super) fn case_ids_query(status: &[CaseStatus], in_flight: bool) -> (String, Vec<Param>) {
    let mut sql = "SELECT id FROM cases WHERE TRUE".to_owned();
    let mut args: Vec<Param> = Vec::new();
    if !status.is_empty() {
        args.push(statuses(status));
        sql.push_str(" AND status = ANY($1)");
    }
    if in_flight {
        sql.push_str(" AND in_flight");
    }
    sql.push_str(" ORDER BY created_at, id");
    (sql, args)
}

/// The ids of a table whose id starts with a prefix: a range of its id index, from the
/// prefix (`$1`) to the prefix followed by `g` (`$2`), above every digit and `-`.
pub(super) fn ids_by_prefix_sql(table: &str) -> String {
    format!("SELECT id FROM {table} WHERE id >= $1 AND id < $2 ORDER BY id LIMIT $3")
}

/// The ids of a table whose last group (the 12 hex digits after the last `-`, from the 25th
/// character of a hyphenated id) starts with a prefix: a range of the expression index on
/// `substr(id, 25)`.
pub(super) fn ids_by_last_group_sql(table: &str) -> String {
    format!(
        "SELECT id FROM {table} WHERE substr(id, 25) >= $1 AND substr(id, 25) < $2 \
         ORDER BY substr(id, 25) LIMIT $3"
    )
}

/// Builds the query of the work items that match `f`, with only the conditions it sets, so
/// that the planner can use the index of the most selective one: the case (a few items, by
/// the primary key), else the user (a queue), else the role (through `work_item_roles`, in
/// offer order), else the state. The other conditions are checked on the rows found. A page
/// (`after`) starts inside the index range in the list's order (offer time, then id).
pub(super) fn work_items_query(f: &WorkItemFilter) -> (String, Vec<Param>) {
    let columns = WORK_ITEM_COLUMNS
        .iter()
        .map(|c| format!("w.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut args: Vec<Param> = Vec::new();
    let has_role = |args: &mut Vec<Param>, role: &str| {
        args.push(Box::new(role.to_owned()));
        format!(
            " AND EXISTS (SELECT 1 FROM work_item_roles r
                  WHERE r.case_id = w.case_id AND r.item = w.id AND r.role = ${})",
            args.len()
        )
    };
    let after = |sql: &mut String, at: &str, id: &str, args: &mut Vec<Param>| {
        if let Some((offered_at, item)) = f.after {
            args.push(Box::new(offered_at.0));
            args.push(Box::new(item.to_string()));
            sql.push_str(&format!(
                " AND ({at}, {id}) > (${}, ${})",
                args.len() - 1,
                args.len()
            ));
        }
    };
    // A state beside a more selective condition is checked on the rows that one finds.
    let state = |sql: &mut String, args: &mut Vec<Param>| {
        if let Some(state) = &f.state {
            args.push(Box::new(state.clone()));
            sql.push_str(&format!(" AND w.state = ${}", args.len()));
        }
    };
    let mut sql = match (&f.case, &f.owner, &f.role) {
        (Some(case), owner, role) => {
            args.push(Box::new(case.to_string()));
            let mut sql = format!("SELECT {columns} FROM work_items w WHERE w.case_id = $1");
            if let Some(owner) = owner {
                args.push(Box::new(owner.clone()));
                sql.push_str(&format!(" AND w.owner = ${}", args.len()));
            }
            if let Some(role) = role {
                let cond = has_role(&mut args, role);
                sql.push_str(&cond);
            }
            state(&mut sql, &mut args);
            after(&mut sql, "w.offered_at", "w.id", &mut args);
            sql + " ORDER BY w.offered_at, w.id"
        }
        (None, Some(owner), role) => {
            args.push(Box::new(owner.clone()));
            let mut sql = format!("SELECT {columns} FROM work_items w WHERE w.owner = $1");
            if let Some(role) = role {
                let cond = has_role(&mut args, role);
                sql.push_str(&cond);
            }
            state(&mut sql, &mut args);
            after(&mut sql, "w.offered_at", "w.id", &mut args);
            sql + " ORDER BY w.offered_at, w.id"
        }
        (None, None, Some(role)) => {
            args.push(Box::new(role.clone()));
            let mut sql = format!(
                "SELECT {columns} FROM work_item_roles r
                 JOIN work_items w ON w.case_id = r.case_id AND w.id = r.item
                 WHERE r.role = $1"
            );
            state(&mut sql, &mut args);
            after(&mut sql, "r.offered_at", "r.item", &mut args);
            sql + " ORDER BY r.offered_at, r.item"
        }
        (None, None, None) => {
            let mut sql = match &f.state {
                Some(state) => {
                    args.push(Box::new(state.clone()));
                    format!("SELECT {columns} FROM work_items w WHERE w.state = $1")
                }
                None => format!("SELECT {columns} FROM work_items w WHERE TRUE"),
            };
            after(&mut sql, "w.offered_at", "w.id", &mut args);
            sql + " ORDER BY w.offered_at, w.id"
        }
    };
    if let Some(limit) = f.limit {
        args.push(Box::new(big(limit)));
        sql.push_str(&format!(" LIMIT ${}", args.len()));
    }
    (sql, args)
}

/// The grouped count of the work items of a list of users (`$1`, a text array), over the
/// owner index.
pub(super) const QUEUE_LENGTHS_SQL: &str =
    "SELECT owner, count(*) FROM work_items WHERE owner = ANY($1) GROUP BY owner";

/// Borrows owned parameters as the driver takes them.
pub(super) fn refs(args: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    args.iter()
        .map(|a| a.as_ref() as &(dyn ToSql + Sync))
        .collect()
}
