//! Reading records out of SQLite rows, and the read queries of the store.

use knhk_core::WorkflowId;
use knhk_core::{CaseId, CaseStatus, Event, TimerId, Timestamp, WorkItemId};
use rusqlite::types::{FromSql, Value as SqlValue};
use rusqlite::{Connection, Params, Row, params, params_from_iter};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::error::{Corruption, Error};
use crate::record::{
    CaseFilter, CaseRecord, IdempotencyRecord, NodeRecord, QuarantineRecord, SnapshotRecord,
    TimerRecord, WorkItemFilter, WorkItemRecord, WorkflowRecord, WorkflowSummary,
};

use super::sqlite;

const WORKFLOW_COLUMNS: &str = "id, name, version, format, source, spec, registered_at, uri";
const CASE_COLUMNS: &str =
    "id, workflow, status, data, marking, version, created_at, updated_at, in_flight, owner";
const WORK_ITEM_COLUMNS: &str = "id, case_id, task, net_instance, instance, roles, allocation, \
                                 state, owner, input, offered_at";

/// Runs a query and decodes every row.
fn query_all<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    decode: fn(&Row<'_>) -> Result<T, Error>,
) -> Result<Vec<T>, Error> {
    let mut stmt = conn
        .prepare_cached(sql)
        .map_err(sqlite("preparing a query"))?;
    let rows = stmt
        .query_map(params, |r| Ok(decode(r)))
        .map_err(sqlite("running a query"))?;
    let mut out = Vec::new();
    for row in rows {
        out.push(row.map_err(sqlite("reading a row"))??);
    }
    Ok(out)
}

/// Runs a query that returns at most one row.
fn query_one<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    decode: fn(&Row<'_>) -> Result<T, Error>,
) -> Result<Option<T>, Error> {
    Ok(query_all(conn, sql, params, decode)?.into_iter().next())
}

fn col<T: FromSql>(r: &Row<'_>, i: usize) -> Result<T, Error> {
    r.get(i)
        .map_err(|source| Error::Corrupt(Corruption::Column { column: i, source }))
}

fn uuid_col(r: &Row<'_>, i: usize) -> Result<Uuid, Error> {
    let text: String = col(r, i)?;
    Uuid::parse_str(&text).map_err(|source| Error::Corrupt(Corruption::Id { text, source }))
}

fn json_col<T: DeserializeOwned>(r: &Row<'_>, i: usize) -> Result<T, Error> {
    let text: String = col(r, i)?;
    serde_json::from_str(&text)
        .map_err(|source| Error::Corrupt(Corruption::Json { column: i, source }))
}

fn u64_col(r: &Row<'_>, i: usize) -> Result<u64, Error> {
    let n: i64 = col(r, i)?;
    u64::try_from(n).map_err(|_| {
        Error::Corrupt(Corruption::Number {
            column: i,
            value: n,
        })
    })
}

fn u32_col(r: &Row<'_>, i: usize) -> Result<u32, Error> {
    let n: i64 = col(r, i)?;
    u32::try_from(n).map_err(|_| {
        Error::Corrupt(Corruption::Number {
            column: i,
            value: n,
        })
    })
}

fn time_col(r: &Row<'_>, i: usize) -> Result<Timestamp, Error> {
    col(r, i).map(Timestamp)
}

fn status_col(r: &Row<'_>, i: usize) -> Result<CaseStatus, Error> {
    let text: String = col(r, i)?;
    serde_json::from_value(serde_json::Value::String(text.clone()))
        .map_err(|_| Error::Corrupt(Corruption::CaseStatus(text)))
}

fn workflow_row(r: &Row<'_>) -> Result<WorkflowRecord, Error> {
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

fn case_row(r: &Row<'_>) -> Result<CaseRecord, Error> {
    Ok(CaseRecord {
        id: CaseId(uuid_col(r, 0)?),
        workflow: WorkflowId(uuid_col(r, 1)?),
        status: status_col(r, 2)?,
        data: json_col(r, 3)?,
        marking: json_col(r, 4)?,
        version: u64_col(r, 5)?,
        created_at: time_col(r, 6)?,
        updated_at: time_col(r, 7)?,
        in_flight: col::<i64>(r, 8)? != 0,
        owner: col::<Option<i64>>(r, 9)?
            .map(|n| {
                u64::try_from(n).map_err(|_| Corruption::Number {
                    column: 9,
                    value: n,
                })
            })
            .transpose()?,
    })
}

fn event_row(r: &Row<'_>) -> Result<Event, Error> {
    let seq = u64_col(r, 0)?;
    let payload: String = col(r, 2)?;
    Ok(Event {
        seq,
        time: time_col(r, 1)?,
        kind: serde_json::from_str(&payload)
            .map_err(|source| Error::Corrupt(Corruption::Event { seq, source }))?,
    })
}

fn work_item_row(r: &Row<'_>) -> Result<WorkItemRecord, Error> {
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

fn timer_row(r: &Row<'_>) -> Result<TimerRecord, Error> {
    Ok(TimerRecord {
        id: TimerId(uuid_col(r, 0)?),
        case_id: CaseId(uuid_col(r, 1)?),
        fires_at: time_col(r, 2)?,
    })
}

fn idempotency_row(r: &Row<'_>) -> Result<IdempotencyRecord, Error> {
    Ok(IdempotencyRecord {
        key: col(r, 0)?,
        response: json_col(r, 1)?,
        at: time_col(r, 2)?,
    })
}

pub(super) fn workflow(conn: &Connection, id: WorkflowId) -> Result<Option<WorkflowRecord>, Error> {
    let sql = format!("SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE id = ?1");
    query_one(conn, &sql, [id.to_string()], workflow_row)
}

pub(super) fn latest_workflow(
    conn: &Connection,
    uri: &str,
) -> Result<Option<WorkflowRecord>, Error> {
    let sql = format!(
        "SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE uri = ?1 ORDER BY version DESC LIMIT 1"
    );
    query_one(conn, &sql, [uri], workflow_row)
}

pub(super) fn workflows(conn: &Connection) -> Result<Vec<WorkflowRecord>, Error> {
    let sql = format!("SELECT {WORKFLOW_COLUMNS} FROM workflows ORDER BY name, version, id");
    query_all(conn, &sql, [], workflow_row)
}

/// The columns of a workflow's summary: its tasks counted inside SQLite from the stored
/// specification (the lengths of the `tasks` lists of its `nets`), which is not read out.
const WORKFLOW_SUMMARY_COLUMNS: &str = "id, uri, name, version, format, registered_at, \
     (SELECT coalesce(sum(json_array_length(n.value, '$.tasks')), 0) \
      FROM json_each(CASE WHEN json_valid(spec) THEN spec ELSE '{}' END, '$.nets') AS n)";

fn workflow_summary_row(r: &Row<'_>) -> Result<WorkflowSummary, Error> {
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

pub(super) fn workflow_summaries(conn: &Connection) -> Result<Vec<WorkflowSummary>, Error> {
    let sql =
        format!("SELECT {WORKFLOW_SUMMARY_COLUMNS} FROM workflows ORDER BY name, version, id");
    query_all(conn, &sql, [], workflow_summary_row)
}

/// The versions of the workflows whose URI or name is `?1`: two index ranges, one of
/// `workflows_by_uri`, one of `workflows_by_name`.
pub(super) fn workflows_named_sql() -> String {
    format!(
        "SELECT {WORKFLOW_SUMMARY_COLUMNS} FROM workflows WHERE uri = ?1 \
         UNION SELECT {WORKFLOW_SUMMARY_COLUMNS} FROM workflows WHERE name = ?1 \
         ORDER BY 2, 4"
    )
}

pub(super) fn workflows_named(conn: &Connection, key: &str) -> Result<Vec<WorkflowSummary>, Error> {
    query_all(conn, &workflows_named_sql(), [key], workflow_summary_row)
}

pub(super) fn case(conn: &Connection, id: CaseId) -> Result<Option<CaseRecord>, Error> {
    let sql = case_sql();
    query_one(conn, &sql, [id.to_string()], case_row)
}

pub(super) fn cases(conn: &Connection, f: &CaseFilter) -> Result<Vec<CaseRecord>, Error> {
    let (sql, args) = cases_query(f);
    query_all(conn, &sql, params_from_iter(args), case_row)
}

/// Builds the query of the cases that match `f`, with only the conditions it sets (the
/// status and the workflow each have an index ordered by creation).
pub(super) fn cases_query(f: &CaseFilter) -> (String, Vec<SqlValue>) {
    let mut sql = format!("SELECT {CASE_COLUMNS} FROM cases WHERE 1 = 1");
    let mut args: Vec<SqlValue> = Vec::new();
    if !f.status.is_empty() {
        let marks = vec!["?"; f.status.len()].join(", ");
        sql.push_str(&format!(" AND status IN ({marks})"));
        args.extend(
            f.status
                .iter()
                .map(|s| SqlValue::Text(s.as_str().to_owned())),
        );
    }
    if let Some(w) = f.workflow {
        sql.push_str(" AND workflow = ?");
        args.push(SqlValue::Text(w.to_string()));
    }
    if let Some((created_at, id)) = f.after {
        sql.push_str(" AND (created_at, id) > (?, ?)");
        args.push(SqlValue::Integer(created_at.0));
        args.push(SqlValue::Text(id.to_string()));
    }
    sql.push_str(" ORDER BY created_at, id");
    if let Some(limit) = f.limit {
        sql.push_str(" LIMIT ?");
        args.push(SqlValue::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
    }
    (sql, args)
}

pub(super) fn case_ids(conn: &Connection, status: &[CaseStatus]) -> Result<Vec<CaseId>, Error> {
    let (sql, args) = case_ids_query(status);
    query_all(conn, &sql, params_from_iter(args), |r| {
        uuid_col(r, 0).map(CaseId)
    })
}

pub(super) fn case_ids_in_flight(
    conn: &Connection,
    status: &[CaseStatus],
) -> Result<Vec<CaseId>, Error> {
    let (sql, args) = case_ids_in_flight_query(status);
    query_all(conn, &sql, params_from_iter(args), |r| {
        uuid_col(r, 0).map(CaseId)
    })
}

/// Builds the query of the ids of the cases in any of `status` with work in flight, read
/// through the partial index of those cases.
pub(super) fn case_ids_in_flight_query(status: &[CaseStatus]) -> (String, Vec<SqlValue>) {
    let (sql, args) = case_ids_query(status);
    let sql = if status.is_empty() {
        sql.replace(" ORDER BY", " WHERE in_flight = 1 ORDER BY")
    } else {
        sql.replace(" ORDER BY", " AND in_flight = 1 ORDER BY")
    };
    (sql, args)
}

/// Builds the query of the ids of the cases in any of `status` (all when empty).
pub(super) fn case_ids_query(status: &[CaseStatus]) -> (String, Vec<SqlValue>) {
    let mut sql = "SELECT id FROM cases".to_owned();
    if !status.is_empty() {
        let marks = vec!["?"; status.len()].join(", ");
        sql.push_str(&format!(" WHERE status IN ({marks})"));
    }
    sql.push_str(" ORDER BY created_at, id");
    let args = status
        .iter()
        .map(|s| SqlValue::Text(s.as_str().to_owned()))
        .collect();
    (sql, args)
}

pub(super) fn case_sql() -> String {
    format!("SELECT {CASE_COLUMNS} FROM cases WHERE id = ?1")
}

pub(super) fn work_item_sql() -> String {
    format!("SELECT {WORK_ITEM_COLUMNS} FROM work_items WHERE id = ?1")
}

pub(super) const EVENTS_SQL: &str =
    "SELECT seq, time, payload FROM events WHERE case_id = ?1 AND seq > ?2 ORDER BY seq";
pub(super) const CASE_VERSION_SQL: &str = "SELECT version FROM cases WHERE id = ?1";
pub(super) const EVENTS_PAGE_SQL: &str =
    "SELECT seq, time, payload FROM events WHERE case_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3";
pub(super) const SNAPSHOT_SQL: &str = "SELECT seq, format, state FROM snapshots WHERE case_id = ?1";

/// Returns the latest snapshot of a case, if one was written.
pub(super) fn snapshot(conn: &Connection, case: CaseId) -> Result<Option<SnapshotRecord>, Error> {
    query_one(conn, SNAPSHOT_SQL, [case.to_string()], |r| {
        Ok(SnapshotRecord {
            seq: u64_col(r, 0)?,
            format: u32_col(r, 1)?,
            state: col(r, 2)?,
        })
    })
}

pub(super) fn events(conn: &Connection, case: CaseId, after_seq: u64) -> Result<Vec<Event>, Error> {
    // No stored seq exceeds i64::MAX, so nothing comes after a larger one.
    let Ok(after) = i64::try_from(after_seq) else {
        return Ok(Vec::new());
    };
    query_all(
        conn,
        EVENTS_SQL,
        params![case.to_string(), after],
        event_row,
    )
}

/// Returns at most `limit` events of a case after `after_seq`, by the primary key's order.
pub(super) fn events_page(
    conn: &Connection,
    case: CaseId,
    after_seq: u64,
    limit: usize,
) -> Result<Vec<Event>, Error> {
    let (Ok(after), Ok(limit)) = (i64::try_from(after_seq), i64::try_from(limit)) else {
        return Ok(Vec::new());
    };
    query_all(
        conn,
        EVENTS_PAGE_SQL,
        params![case.to_string(), after, limit],
        event_row,
    )
}

/// The ids of a table whose id starts with a prefix: a range of its primary key, from the
/// prefix (`?1`) to the prefix followed by `g` (`?2`), above every digit and `-`.
pub(super) fn ids_by_prefix_sql(table: &str) -> String {
    format!("SELECT id FROM {table} WHERE id >= ?1 AND id < ?2 ORDER BY id LIMIT ?3")
}

/// The ids of a table whose last group (the 12 hex digits after the last `-`, from the 25th
/// character of a hyphenated id) starts with a prefix: a range of the expression index on
/// `substr(id, 25)`.
pub(super) fn ids_by_last_group_sql(table: &str) -> String {
    format!(
        "SELECT id FROM {table} WHERE substr(id, 25) >= ?1 AND substr(id, 25) < ?2 \
         ORDER BY substr(id, 25) LIMIT ?3"
    )
}

/// Returns at most `limit` ids of `table` (`cases` or `work_items`) whose id or last group
/// starts with `prefix`, in id order: two index ranges, merged.
pub(super) fn ids_by_prefix(
    conn: &Connection,
    table: &str,
    prefix: &str,
    limit: usize,
) -> Result<Vec<Uuid>, Error> {
    let prefix = prefix.to_ascii_lowercase();
    let end = format!("{prefix}g");
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut ids = query_all(
        conn,
        &ids_by_prefix_sql(table),
        params![prefix, end, limit],
        |r| uuid_col(r, 0),
    )?;
    // A last group has no `-`: a prefix with one names ids by their start only.
    if !prefix.contains('-') {
        ids.extend(query_all(
            conn,
            &ids_by_last_group_sql(table),
            params![prefix, end, limit],
            |r| uuid_col(r, 0),
        )?);
    }
    // A UUID's order is its bytes', which is its hex text's.
    ids.sort_unstable();
    ids.dedup();
    ids.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok(ids)
}

/// Marks a case as having no work in flight, if its version is still the one given.
pub(super) const SETTLE_IN_FLIGHT_SQL: &str =
    "UPDATE cases SET in_flight = 0 WHERE id = ?1 AND version = ?2";

pub(super) fn work_items(
    conn: &Connection,
    f: &WorkItemFilter,
) -> Result<Vec<WorkItemRecord>, Error> {
    let (sql, args) = work_items_query(f);
    query_all(conn, &sql, params_from_iter(args), work_item_row)
}

/// Builds the query of the work items that match `f`, with only the conditions it sets, so
/// that the planner can use the index of the most selective one: the case (a few items),
/// else the user (a queue), else the role (through `work_item_roles`, in offer order). The
/// other conditions are checked on the rows found (`+` keeps a column's index out of the
/// plan). With only a state, the items in that state are read from its index, in offer order.
/// Without any, every item is read in offer order. A page (`after`) starts inside the
/// index range in the list's order (offer time, then id), so that it reads only itself.
pub(super) fn work_items_query(f: &WorkItemFilter) -> (String, Vec<SqlValue>) {
    let text = |s: &str| SqlValue::Text(s.to_owned());
    let columns = WORK_ITEM_COLUMNS
        .split(", ")
        .map(|c| format!("w.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    let has_role = "EXISTS (SELECT 1 FROM work_item_roles r
                    WHERE r.role = ? AND r.offered_at = w.offered_at AND r.item = w.id)";
    let mut args = Vec::new();
    // The cursor's condition on the columns of the list's order (`w.offered_at, w.id`, or
    // the role table's own).
    let after = |sql: &mut String, at: &str, id: &str, args: &mut Vec<SqlValue>| {
        if let Some((offered_at, item)) = f.after {
            sql.push_str(&format!(" AND ({at}, {id}) > (?, ?)"));
            args.push(SqlValue::Integer(offered_at.0));
            args.push(SqlValue::Text(item.to_string()));
        }
    };
    // A state beside a more selective condition is checked on the rows that one finds.
    let state = |sql: &mut String, args: &mut Vec<SqlValue>| {
        if let Some(state) = &f.state {
            sql.push_str(" AND +w.state = ?");
            args.push(text(state));
        }
    };
    let mut sql = match (&f.case, &f.owner, &f.role) {
        (Some(case), owner, role) => {
            let mut sql = format!("SELECT {columns} FROM work_items w WHERE w.case_id = ?");
            args.push(SqlValue::Text(case.to_string()));
            if let Some(owner) = owner {
                sql.push_str(" AND +w.owner = ?");
                args.push(text(owner));
            }
            if let Some(role) = role {
                sql.push_str(&format!(" AND {has_role}"));
                args.push(text(role));
            }
            state(&mut sql, &mut args);
            after(&mut sql, "+w.offered_at", "w.id", &mut args);
            sql + " ORDER BY w.offered_at, w.id"
        }
        (None, Some(owner), role) => {
            let mut sql = format!("SELECT {columns} FROM work_items w WHERE w.owner = ?");
            args.push(text(owner));
            if let Some(role) = role {
                sql.push_str(&format!(" AND {has_role}"));
                args.push(text(role));
            }
            state(&mut sql, &mut args);
            after(&mut sql, "w.offered_at", "w.id", &mut args);
            sql + " ORDER BY w.offered_at, w.id"
        }
        (None, None, Some(role)) => {
            args.push(text(role));
            let mut sql = format!(
                "SELECT {columns} FROM work_item_roles r JOIN work_items w ON w.id = r.item
                 WHERE r.role = ?"
            );
            state(&mut sql, &mut args);
            after(&mut sql, "r.offered_at", "r.item", &mut args);
            sql + " ORDER BY r.offered_at, r.item"
        }
        (None, None, None) => match &f.state {
            Some(state) => {
                let mut sql = format!("SELECT {columns} FROM work_items w WHERE w.state = ?");
                args.push(text(state));
                after(&mut sql, "w.offered_at", "w.id", &mut args);
                sql + " ORDER BY w.offered_at, w.id"
            }
            None => {
                let mut sql = format!("SELECT {columns} FROM work_items w WHERE 1 = 1");
                after(&mut sql, "w.offered_at", "w.id", &mut args);
                sql + " ORDER BY w.offered_at, w.id"
            }
        },
    };
    if let Some(limit) = f.limit {
        sql.push_str(" LIMIT ?");
        args.push(SqlValue::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
    }
    (sql, args)
}

/// Counts the work items of each user, in the order given: one grouped query over the owner
/// index per chunk of users (SQLite bounds the parameters of a statement).
pub(super) fn queue_lengths(conn: &Connection, users: &[String]) -> Result<Vec<u64>, Error> {
    let mut counts = std::collections::HashMap::new();
    for chunk in users.chunks(500) {
        let (sql, args) = queue_lengths_query(chunk);
        let rows = query_all(conn, &sql, params_from_iter(args), |r| {
            Ok((col::<String>(r, 0)?, u64_col(r, 1)?))
        })?;
        counts.extend(rows);
    }
    Ok(users
        .iter()
        .map(|u| counts.get(u).copied().unwrap_or(0))
        .collect())
}

/// Builds the grouped count of the work items of `users` (at least one).
pub(super) fn queue_lengths_query(users: &[String]) -> (String, Vec<SqlValue>) {
    let marks = vec!["?"; users.len().max(1)].join(", ");
    let sql =
        format!("SELECT owner, count(*) FROM work_items WHERE owner IN ({marks}) GROUP BY owner");
    let args = users.iter().map(|u| SqlValue::Text(u.clone())).collect();
    (sql, args)
}

pub(super) fn work_item(
    conn: &Connection,
    id: WorkItemId,
) -> Result<Option<WorkItemRecord>, Error> {
    query_one(conn, &work_item_sql(), [id.to_string()], work_item_row)
}

pub(super) fn timers(conn: &Connection) -> Result<Vec<TimerRecord>, Error> {
    query_all(
        conn,
        "SELECT id, case_id, fires_at FROM timers ORDER BY fires_at, id",
        [],
        timer_row,
    )
}

pub(super) fn idempotency(
    conn: &Connection,
    key: &str,
) -> Result<Option<IdempotencyRecord>, Error> {
    query_one(
        conn,
        "SELECT key, response, at FROM idempotency WHERE key = ?1",
        [key],
        idempotency_row,
    )
}

/// Returns the quarantined cases, oldest first, or the one of `case`.
pub(super) fn quarantined(
    conn: &Connection,
    case: Option<CaseId>,
) -> Result<Vec<QuarantineRecord>, Error> {
    let decode = |r: &Row<'_>| {
        Ok(QuarantineRecord {
            case: CaseId(uuid_col(r, 0)?),
            reason: col(r, 1)?,
            at: time_col(r, 2)?,
        })
    };
    match case {
        // Two statements, not `?1 IS NULL OR case_id = ?1`, which no index serves.
        Some(case) => query_all(conn, QUARANTINE_OF_SQL, [case.to_string()], decode),
        None => query_all(conn, QUARANTINE_SQL, [], decode),
    }
}

pub(super) const QUARANTINE_OF_SQL: &str =
    "SELECT case_id, reason, at FROM quarantine WHERE case_id = ?1";
const QUARANTINE_SQL: &str = "SELECT case_id, reason, at FROM quarantine ORDER BY at, case_id";

/// Returns the stored version of a case, `None` when it does not exist.
pub(super) fn case_version(conn: &Connection, id: CaseId) -> Result<Option<u64>, Error> {
    query_one(conn, CASE_VERSION_SQL, [id.to_string()], |r| u64_col(r, 0))
}

/// Returns whether `sql` (a lookup by one key parameter) finds a row.
pub(super) fn exists(conn: &Connection, sql: &str, key: &str) -> Result<bool, Error> {
    Ok(query_one(conn, sql, [key], |_| Ok(()))?.is_some())
}

/// The registered nodes, by fencing token.
pub(super) const NODES_SQL: &str =
    "SELECT fence, name, started_at, expires_at FROM nodes ORDER BY fence";

fn node_row(r: &Row<'_>) -> Result<NodeRecord, Error> {
    Ok(NodeRecord {
        fence: u64_col(r, 0)?,
        name: col(r, 1)?,
        started_at: time_col(r, 2)?,
        expires_at: time_col(r, 3)?,
    })
}

/// Returns every registered node, by fencing token.
pub(super) fn nodes(conn: &Connection) -> Result<Vec<NodeRecord>, Error> {
    query_all(conn, NODES_SQL, [], node_row)
}

/// The expiry of the lease of the node holding a fencing token.
pub(super) const LEASE_SQL: &str = "SELECT expires_at FROM nodes WHERE fence = ?1";

/// The owner of one case's work in flight.
pub(super) const CASE_OWNER_SQL: &str = "SELECT owner FROM cases WHERE id = ?1";

/// Returns when the lease of the node holding `fence` expires; `None` when no node holds it.
pub(super) fn lease(conn: &Connection, fence: u64) -> Result<Option<Timestamp>, Error> {
    let Ok(fence) = i64::try_from(fence) else {
        return Ok(None);
    };
    query_one(conn, LEASE_SQL, params![fence], |r| time_col(r, 0))
}

/// Returns the stored owner of a case's work in flight (`None`: no owner, or no such case).
pub(super) fn case_owner(conn: &Connection, case: CaseId) -> Result<Option<u64>, Error> {
    Ok(
        query_one(conn, CASE_OWNER_SQL, params![case.to_string()], |r| {
            col::<Option<i64>>(r, 0)
        })?
        .flatten()
        .and_then(|n| u64::try_from(n).ok()),
    )
}

/// Claims the oldest running or suspended cases with work in flight that a dead node owns
/// (`?1` the claiming token, `?2` now, `?3` how many), through the partial index by owner.
pub(super) const CLAIM_DEAD_SQL: &str = "UPDATE cases SET owner = ?1 WHERE id IN (
       SELECT id FROM cases
       WHERE in_flight = 1 AND status IN ('running', 'suspended')
         AND owner IN (SELECT fence FROM nodes WHERE expires_at <= ?2)
       ORDER BY created_at, id LIMIT ?3)
     RETURNING id, created_at";

/// Claims the oldest running or suspended cases with work in flight that no node owns
/// (`?1` the claiming token, `?2` how many).
pub(super) const CLAIM_UNOWNED_SQL: &str = "UPDATE cases SET owner = ?1 WHERE id IN (
       SELECT id FROM cases
       WHERE in_flight = 1 AND status IN ('running', 'suspended') AND owner IS NULL
       ORDER BY created_at, id LIMIT ?2)
     RETURNING id, created_at";

/// Claims the timers due at `?2` that no live claim holds, until `?3`, for the node `?1`, at
/// most `?4` of them, earliest first, through the index by firing time.
pub(super) const CLAIM_TIMERS_SQL: &str =
    "UPDATE timers SET claimed_by = ?1, claimed_until = ?3 WHERE id IN (
       SELECT id FROM timers
       WHERE fires_at <= ?2 AND (claimed_until IS NULL OR claimed_until <= ?2)
       ORDER BY fires_at, id LIMIT ?4)
     RETURNING id, case_id, fires_at";

/// Decodes a claimed case: its id and creation time.
pub(super) fn claimed_case(r: &Row<'_>) -> Result<(Timestamp, CaseId), Error> {
    Ok((time_col(r, 1)?, CaseId(uuid_col(r, 0)?)))
}

/// Runs a claim of cases and returns what it claimed.
pub(super) fn claim_cases(
    conn: &Connection,
    sql: &str,
    args: impl Params,
) -> Result<Vec<(Timestamp, CaseId)>, Error> {
    query_all(conn, sql, args, claimed_case)
}

/// Runs the claim of due timers and returns them, earliest first.
pub(super) fn claim_timers(
    conn: &Connection,
    args: impl Params,
) -> Result<Vec<TimerRecord>, Error> {
    let mut timers = query_all(conn, CLAIM_TIMERS_SQL, args, timer_row)?;
    timers.sort_by_key(|t| (t.fires_at, t.id));
    Ok(timers)
}
