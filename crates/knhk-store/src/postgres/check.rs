//! Checking a PostgreSQL store. PostgreSQL has no `integrity_check`: its own pages are the
//! server's business (page checksums, `amcheck`, its WAL). What knhk checks is its own
//! rules over the rows: each case's history is gapless and ends at the version its row says,
//! and no case-scoped row outlives its case.

use deadpool_postgres::Client;

use crate::error::Error;

use super::pg;

/// Finds the cases whose row does not name the last event of their history or whose history
/// has a gap, and (when `thorough`) the rows of work items, timers and snapshots whose case
/// is not stored. Reads every case: a check, not a keyed read.
pub(super) async fn integrity(client: &Client, thorough: bool) -> Result<Vec<String>, Error> {
    let rows = client
        .query(
            "SELECT c.id, c.version, coalesce(e.n, 0), coalesce(e.m, 0)
             FROM cases c
             LEFT JOIN (SELECT case_id, count(*) AS n, max(seq) AS m FROM events GROUP BY case_id) e
               ON e.case_id = c.id
             WHERE c.version IS DISTINCT FROM coalesce(e.m, 0)
                OR coalesce(e.n, 0) IS DISTINCT FROM coalesce(e.m, 0)
             ORDER BY c.id",
            &[],
        )
        .await
        .map_err(pg("checking the histories"))?;
    let mut problems = Vec::new();
    for row in rows {
        let id: String = row.try_get(0).map_err(pg("checking the histories"))?;
        let version: i64 = row.try_get(1).map_err(pg("checking the histories"))?;
        let count: i64 = row.try_get(2).map_err(pg("checking the histories"))?;
        let last: i64 = row.try_get(3).map_err(pg("checking the histories"))?;
        if count != last {
            problems.push(format!(
                "case {id}: its history holds {count} events numbered up to {last} (a gap)"
            ));
        }
        if version != last {
            problems.push(format!(
                "case {id}: its row says version {version}, but its history ends at event {last}"
            ));
        }
    }
    if thorough {
        for table in ["events", "work_items", "timers", "snapshots"] {
            let orphans: i64 = client
                .query_one(
                    &format!(
                        "SELECT count(*) FROM {table} t
                         WHERE NOT EXISTS (SELECT 1 FROM cases c WHERE c.id = t.case_id)"
                    ),
                    &[],
                )
                .await
                .map_err(pg("checking for rows without a case"))?
                .try_get(0)
                .map_err(pg("checking for rows without a case"))?;
            if orphans > 0 {
                problems.push(format!(
                    "{orphans} rows of {table} belong to no stored case"
                ));
            }
        }
    }
    Ok(problems)
}
