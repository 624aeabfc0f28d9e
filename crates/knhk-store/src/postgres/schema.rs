//! The PostgreSQL schema, versioned: the tables of each format and the migrations between them,
//! applied on open in the schema that the connection's `search_path` names, one process at a
//! time.

use deadpool_postgres::Client;

use crate::error::{Corruption, Error};

use super::pg;

/// Version of the PostgreSQL schema, kept in the one row of `knhk_format`. A schema written
/// with a higher version is refused; every lower version is migrated when opened. It counts
/// apart from the SQLite [`crate::FORMAT_VERSION`]: the two backends' tables differ (here every
/// case-scoped table leads its key with the case id).
pub const POSTGRES_FORMAT_VERSION: i64 = 3;

/// Format 1. Ids are hyphenated lowercase UUID text in the `C` collation, so that ordering
/// by id as text is ordering by UUID, and a prefix of an id is a range of its index whatever
/// the database's locale; times are milliseconds since the epoch; JSON columns hold
/// serde_json text, as the SQLite store keeps them (the rows read back as they were written).
///
/// Every case-scoped table (events, work items and their roles, timers, idempotency keys,
/// snapshots, quarantine) leads its primary key with `case_id`, so that a distributed
/// PostgreSQL can place all of a case's rows on one node by it (see ARCHITECTURE.md). Reads by
/// another key (a work item by its id, an idempotency key alone) have an index of their own.
const SCHEMA_V1: &str = r#"
CREATE TABLE knhk_format (
    only_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
    version BIGINT NOT NULL
);

CREATE TABLE workflows (
    id TEXT COLLATE "C" PRIMARY KEY,
    uri TEXT NOT NULL,
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    format TEXT NOT NULL,
    source TEXT NOT NULL,
    spec TEXT NOT NULL,
    registered_at BIGINT NOT NULL,
    tasks BIGINT NOT NULL,
    CONSTRAINT workflows_uri_version UNIQUE (uri, version)
);
CREATE INDEX workflows_by_name ON workflows (name, version, id);

CREATE TABLE cases (
    id TEXT COLLATE "C" PRIMARY KEY,
    workflow TEXT COLLATE "C" NOT NULL,
    status TEXT NOT NULL,
    data TEXT NOT NULL,
    marking TEXT NOT NULL,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    in_flight BOOLEAN NOT NULL,
    owner BIGINT
);
CREATE INDEX cases_by_created ON cases (created_at, id);
CREATE INDEX cases_by_owner ON cases (owner, created_at, id) WHERE in_flight;
CREATE INDEX cases_by_status ON cases (status, created_at, id);
CREATE INDEX cases_by_workflow ON cases (workflow, created_at, id);
CREATE INDEX cases_in_flight ON cases (status, created_at, id) WHERE in_flight;
CREATE INDEX cases_by_last_group ON cases ((substr(id, 25)));

CREATE TABLE events (
    case_id TEXT COLLATE "C" NOT NULL,
    seq BIGINT NOT NULL,
    time BIGINT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    PRIMARY KEY (case_id, seq)
);

CREATE TABLE work_items (
    case_id TEXT COLLATE "C" NOT NULL,
    id TEXT COLLATE "C" NOT NULL,
    task TEXT NOT NULL,
    net_instance BIGINT NOT NULL,
    instance BIGINT NOT NULL,
    roles TEXT NOT NULL,
    allocation TEXT NOT NULL,
    state TEXT NOT NULL,
    owner TEXT,
    input TEXT NOT NULL,
    offered_at BIGINT NOT NULL,
    PRIMARY KEY (case_id, id)
);
CREATE INDEX work_items_by_id ON work_items (id);
CREATE INDEX work_items_by_offered ON work_items (offered_at, id);
CREATE INDEX work_items_by_owner ON work_items (owner, offered_at, id);
CREATE INDEX work_items_by_state ON work_items (state, offered_at, id);
CREATE INDEX work_items_by_last_group ON work_items ((substr(id, 25)));

CREATE TABLE work_item_roles (
    case_id TEXT COLLATE "C" NOT NULL,
    item TEXT COLLATE "C" NOT NULL,
    role TEXT NOT NULL,
    offered_at BIGINT NOT NULL,
    PRIMARY KEY (case_id, item, role)
);
CREATE INDEX work_item_roles_by_role ON work_item_roles (role, offered_at, item);

CREATE TABLE timers (
    case_id TEXT COLLATE "C" NOT NULL,
    id TEXT COLLATE "C" NOT NULL,
    fires_at BIGINT NOT NULL,
    claimed_by BIGINT,
    claimed_until BIGINT,
    PRIMARY KEY (case_id, id)
);
CREATE INDEX timers_by_fires_at ON timers (fires_at, id);

CREATE TABLE nodes (
    fence BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE idempotency (
    case_id TEXT COLLATE "C" NOT NULL,
    key TEXT NOT NULL,
    response TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (case_id, key)
);
CREATE UNIQUE INDEX idempotency_by_key ON idempotency (key);

CREATE TABLE snapshots (
    case_id TEXT COLLATE "C" PRIMARY KEY,
    seq BIGINT NOT NULL,
    format BIGINT NOT NULL,
    state TEXT NOT NULL
);

CREATE TABLE quarantine (
    case_id TEXT COLLATE "C" PRIMARY KEY,
    reason TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX quarantine_by_at ON quarantine (at, case_id);

CREATE TABLE sequences (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);

INSERT INTO knhk_format (version) VALUES (1);
"#;

/// Format 2 keeps the lockchain, one tree per schema shared by every process on it: each
/// event's leaf index (`NULL` for the events stored before, and for those committed without a
/// leaf), the tree in tiles of 256 hashes (`hashes` the 32-byte hashes end to end; `leaves`,
/// at level 0, each entry's event as its case's UUID and its seq, 24 bytes; `NULL` above),
/// the tree's size in one head row, which every append locks first, and the signed
/// checkpoints by the size they sign. The tree of a migrated schema starts empty.
const MIGRATE_V1_TO_V2_LOCKCHAIN: &str = "
ALTER TABLE events ADD COLUMN leaf BIGINT;
CREATE TABLE lockchain_head (
    only_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
    size BIGINT NOT NULL
);
INSERT INTO lockchain_head (size) VALUES (0);
CREATE TABLE lockchain_tiles (
    level SMALLINT NOT NULL,
    idx BIGINT NOT NULL,
    hashes BYTEA NOT NULL,
    leaves BYTEA,
    PRIMARY KEY (level, idx)
);
CREATE TABLE lockchain_checkpoints (
    size BIGINT PRIMARY KEY,
    root BYTEA NOT NULL,
    note TEXT NOT NULL,
    at BIGINT NOT NULL
);
UPDATE knhk_format SET version = 2;
";

/// Format 3 keeps the tree's tiles as the segments appended to them (as SQLite's format 12
/// does): a row is the entries `start..` of tile `(level, idx)` that one transaction added, so
/// that a commit writes its own leaves rather than rewriting its tile's earlier entries. A
/// level-0 row names its entries' events as runs of consecutive events of one case (`runs`:
/// case UUID, first seq, count; 28 bytes, about one a commit), where format 2 gave 24 bytes to
/// each (`leaves`, kept for the rows migrated). The tiles of format 2 become the first segment
/// of each.
const MIGRATE_V2_TO_V3_SEGMENTS: &str = "
ALTER TABLE lockchain_tiles ADD COLUMN start INTEGER NOT NULL DEFAULT 0;
ALTER TABLE lockchain_tiles ALTER COLUMN start DROP DEFAULT;
ALTER TABLE lockchain_tiles DROP CONSTRAINT lockchain_tiles_pkey;
ALTER TABLE lockchain_tiles ADD PRIMARY KEY (level, idx, start);
ALTER TABLE lockchain_tiles ADD COLUMN runs BYTEA;
UPDATE knhk_format SET version = 3;
";

/// The steps from each older format to the next, in order: `(from, what it does, sql)`. A
/// new format adds its own step here, separately named, and bumps
/// [`POSTGRES_FORMAT_VERSION`]; each step ends by setting `knhk_format.version`.
const MIGRATIONS: [(i64, &str, &str); 2] = [
    (
        1,
        "migrating the schema from format 1 to 2 (the lockchain)",
        MIGRATE_V1_TO_V2_LOCKCHAIN,
    ),
    (
        2,
        "migrating the schema from format 2 to 3 (lockchain tiles in segments)",
        MIGRATE_V2_TO_V3_SEGMENTS,
    ),
];

/// Returns the schema the connection's `search_path` names first: the current schema, or the
/// first entry of the path when that schema does not exist yet (`"$user"` is the session
/// user), so that it can be created; and whether it exists.
async fn target_schema(client: &Client) -> Result<(String, bool), Error> {
    let row = client
        .query_one(
            "SELECT current_schema(), current_setting('search_path'), session_user::text",
            &[],
        )
        .await
        .map_err(pg("reading the search_path"))?;
    let read = pg("reading the search_path");
    let current: Option<String> = row.try_get(0).map_err(&read)?;
    if let Some(schema) = current {
        return Ok((schema, true));
    }
    let path: String = row.try_get(1).map_err(&read)?;
    let user: String = row.try_get(2).map_err(&read)?;
    let first = path.split(',').next().unwrap_or("").trim();
    let name = match first {
        "\"$user\"" | "$user" => user,
        quoted if quoted.len() >= 2 && quoted.starts_with('"') && quoted.ends_with('"') => {
            quoted[1..quoted.len() - 1].replace("\"\"", "\"")
        }
        plain => plain.to_owned(),
    };
    if name.is_empty() {
        return Err(Error::Address(
            "the connection's search_path names no schema to keep the store in".to_owned(),
        ));
    }
    Ok((name, false))
}

/// Quotes an identifier for SQL (`"a""b"`).
pub(super) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Creates the schema the search_path names if it is missing, and its tables if it has none,
/// or migrates them forward; refuses a schema of a newer format. Runs in one transaction
/// holding an advisory lock named after the schema, so that two processes opening the same
/// schema at once do not both create or migrate it (the second waits, then finds it done).
/// Returns the schema's name.
pub(super) async fn ensure(client: &mut Client) -> Result<String, Error> {
    let (schema, exists) = target_schema(client).await?;
    let tx = client
        .transaction()
        .await
        .map_err(pg("starting the schema transaction"))?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('knhk-store-schema:' || $1::text))",
        &[&schema],
    )
    .await
    .map_err(pg("waiting for the schema lock"))?;
    // Only a missing schema is created: `CREATE SCHEMA IF NOT EXISTS` needs the right to
    // create schemas even when it exists, which a role given a schema may not have.
    if !exists {
        tx.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {}",
            quote_ident(&schema)
        ))
        .await
        .map_err(pg("creating the schema"))?;
    }
    let found = format_version(&tx, &schema).await?;
    match found {
        Some(found) if found > POSTGRES_FORMAT_VERSION => {
            return Err(Error::UnsupportedFormat {
                found,
                supported: POSTGRES_FORMAT_VERSION,
            });
        }
        Some(found) => {
            for (from, doing, sql) in MIGRATIONS {
                if from >= found {
                    tx.batch_execute(sql).await.map_err(pg(doing))?;
                }
            }
        }
        None => {
            let tables: i64 = tx
                .query_one(
                    "SELECT count(*) FROM pg_tables WHERE schemaname = $1",
                    &[&schema],
                )
                .await
                .map_err(pg("inspecting the schema"))?
                .try_get(0)
                .map_err(pg("inspecting the schema"))?;
            if tables > 0 {
                return Err(Error::Corrupt(Corruption::UnversionedSchema {
                    schema,
                    tables,
                }));
            }
            // The tables go into the current schema, which now exists.
            tx.batch_execute(&format!(
                "SET LOCAL search_path TO {}; {SCHEMA_V1}",
                quote_ident(&schema)
            ))
            .await
            .map_err(pg("creating the tables"))?;
            for (_, doing, sql) in MIGRATIONS {
                tx.batch_execute(sql).await.map_err(pg(doing))?;
            }
        }
    }
    tx.commit()
        .await
        .map_err(pg("ending the schema transaction"))?;
    Ok(schema)
}

/// Reads the format version of the schema, `None` when it has no `knhk_format` table.
async fn format_version(
    tx: &deadpool_postgres::Transaction<'_>,
    schema: &str,
) -> Result<Option<i64>, Error> {
    let exists: bool = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = $1 AND tablename = 'knhk_format')",
            &[&schema],
        )
        .await
        .map_err(pg("inspecting the schema"))?
        .try_get(0)
        .map_err(pg("inspecting the schema"))?;
    if !exists {
        return Ok(None);
    }
    let row = tx
        .query_opt(
            &format!("SELECT version FROM {}.knhk_format", quote_ident(schema)),
            &[],
        )
        .await
        .map_err(pg("reading the format version"))?;
    let version = match row {
        Some(r) => r
            .try_get::<_, i64>(0)
            .map_err(pg("reading the format version"))?,
        None => 0,
    };
    Ok(Some(version))
}
