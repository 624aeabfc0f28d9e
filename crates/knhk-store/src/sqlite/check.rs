//! Checking a store file: SQLite's own integrity check, and the cheap checks of histories
//! that run on opening a store whose last user did not close it.

use rusqlite::Connection;

use crate::error::Error;

use super::sqlite;

/// Runs `PRAGMA integrity_check` (or `quick_check`) and returns the problems it names. A
/// check that cannot even run (the file is not a database any more) is itself the problem.
pub(super) fn integrity(conn: &Connection, thorough: bool) -> Result<Vec<String>, Error> {
    let pragma = if thorough {
        "PRAGMA integrity_check"
    } else {
        "PRAGMA quick_check"
    };
    let found = conn.prepare(pragma).and_then(|mut st| {
        st.query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()
    });
    Ok(match found {
        Ok(lines) if lines.len() == 1 && lines.first().is_some_and(|l| l == "ok") => Vec::new(),
        Ok(lines) => lines,
        Err(e) => vec![format!(
            "the integrity check cannot run: {}",
            Error::Sqlite {
                doing: "reading the file",
                error: e
            }
        )],
    })
}

/// Finds, with one query, the cases whose row does not name the last event of their history
/// or whose history has a gap: what a commit cut off half-way would leave (which SQLite's
/// transactions rule out) or damage from outside would.
pub(super) fn histories(conn: &Connection) -> Result<Vec<String>, Error> {
    let mut st = conn
        .prepare(
            "SELECT c.id, c.version, coalesce(e.n, 0), coalesce(e.m, 0)
             FROM cases c
             LEFT JOIN (SELECT case_id, count(*) AS n, max(seq) AS m FROM events GROUP BY case_id) e
               ON e.case_id = c.id
             WHERE c.version IS NOT coalesce(e.m, 0) OR coalesce(e.n, 0) IS NOT coalesce(e.m, 0)
             ORDER BY c.id",
        )
        .map_err(sqlite("checking the histories"))?;
    let rows = st
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, rusqlite::types::Value>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })
        .map_err(sqlite("checking the histories"))?;
    let mut problems = Vec::new();
    for row in rows {
        let (id, version, count, last) = row.map_err(sqlite("checking the histories"))?;
        if count != last {
            problems.push(format!(
                "case {id}: its history holds {count} events numbered up to {last} (a gap)"
            ));
        }
        if version != rusqlite::types::Value::Integer(last) {
            problems.push(format!(
                "case {id}: its row says version {}, but its history ends at event {last}",
                describe(&version)
            ));
        }
    }
    Ok(problems)
}

fn describe(v: &rusqlite::types::Value) -> String {
    use rusqlite::types::Value;
    match v {
        Value::Null => "null".to_owned(),
        Value::Integer(n) => n.to_string(),
        Value::Real(x) => x.to_string(),
        Value::Text(t) => format!("{t:?}"),
        Value::Blob(b) => format!("a blob of {} bytes", b.len()),
    }
}
