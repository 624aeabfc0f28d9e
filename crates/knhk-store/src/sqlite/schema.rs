//! The SQLite schema of format version 1 and the migrations to the current format, and opening
//! connections with the right settings.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::FORMAT_VERSION;
use crate::error::{Corruption, Error};

use super::{SqliteOptions, sqlite};

/// How long a connection waits for a lock held by another process before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Tables of format 1. Ids are hyphenated lowercase UUID text, so ordering by id as text is
/// the same as ordering by UUID; times are milliseconds since the epoch; JSON columns hold
/// serde_json text. `events.payload` is the whole `EventKind` (with its `type` tag); `kind`
/// repeats the tag so history queries can filter without parsing JSON.
const SCHEMA_V1: &str = "
CREATE TABLE workflows (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    format TEXT NOT NULL,
    source TEXT NOT NULL,
    spec TEXT NOT NULL,
    registered_at INTEGER NOT NULL
);
CREATE INDEX workflows_by_name ON workflows (name, version);

CREATE TABLE cases (
    id TEXT PRIMARY KEY NOT NULL,
    workflow TEXT NOT NULL,
    status TEXT NOT NULL,
    data TEXT NOT NULL,
    marking TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX cases_by_created ON cases (created_at, id);
CREATE INDEX cases_by_status ON cases (status, created_at, id);

CREATE TABLE events (
    case_id TEXT NOT NULL REFERENCES cases (id),
    seq INTEGER NOT NULL,
    time INTEGER NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    PRIMARY KEY (case_id, seq)
) WITHOUT ROWID;

CREATE TABLE work_items (
    id TEXT PRIMARY KEY NOT NULL,
    case_id TEXT NOT NULL,
    task TEXT NOT NULL,
    net_instance INTEGER NOT NULL,
    instance INTEGER NOT NULL,
    roles TEXT NOT NULL,
    allocation TEXT NOT NULL,
    state TEXT NOT NULL,
    owner TEXT,
    input TEXT NOT NULL,
    offered_at INTEGER NOT NULL
);
CREATE INDEX work_items_by_case ON work_items (case_id);
CREATE INDEX work_items_by_offered ON work_items (offered_at, id);

CREATE TABLE timers (
    id TEXT PRIMARY KEY NOT NULL,
    case_id TEXT NOT NULL,
    fires_at INTEGER NOT NULL
);
CREATE INDEX timers_by_fires_at ON timers (fires_at, id);

CREATE TABLE idempotency (
    key TEXT PRIMARY KEY NOT NULL,
    response TEXT NOT NULL,
    at INTEGER NOT NULL
);
";

/// Opens (creating if needed) the write connection: WAL, the chosen `synchronous` level,
/// foreign keys, and the schema of [`FORMAT_VERSION`] on a new file.
pub(super) fn open_writer(path: &Path, opts: &SqliteOptions) -> Result<Connection, Error> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            doing: "creating",
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let conn = Connection::open(path).map_err(sqlite("opening the store file"))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(sqlite("setting busy_timeout"))?;
    // Refuse a newer store before changing anything about the file.
    check_format(&conn)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(sqlite("switching to WAL"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::WalRefused { mode });
    }
    // FULL syncs the WAL on every commit, so an acknowledged step survives a power loss;
    // NORMAL (opt-in) only syncs at checkpoints and can lose the last acknowledged commits.
    let sync = if opts.synchronous_full {
        "FULL"
    } else {
        "NORMAL"
    };
    conn.pragma_update(None, "synchronous", sync)
        .map_err(sqlite("setting synchronous"))?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(sqlite("enabling foreign keys"))?;
    // The writer opens a savepoint per commit of a group, and SQLite copies each page a
    // savepoint changes to a sub-journal first: kept in memory, not spilled to a temporary
    // file past 64 KiB as by default (a group of commits passes that at once). The
    // sub-journal only serves rolling a savepoint back; durability is the WAL's.
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(sqlite("keeping temporary data in memory"))?;
    // Negative: a size in KiB rather than in pages.
    let cache = -i64::try_from(opts.writer_cache_kib).unwrap_or(i64::MAX);
    conn.pragma_update(None, "cache_size", cache)
        .map_err(sqlite("sizing the page cache"))?;
    ensure_schema(&conn)?;
    if let Some(pages) = opts.max_pages {
        // Set after the schema exists, so that a cap below a new file's size still opens it.
        // SQLite takes any positive i64; a larger cap is no cap.
        let pages = i64::try_from(pages).unwrap_or(i64::MAX);
        conn.pragma_update(None, "max_page_count", pages)
            .map_err(sqlite("capping the store size"))?;
    }
    Ok(conn)
}

/// Opens a read-only connection to a store that [`open_writer`] has set up.
pub(super) fn open_reader(path: &Path) -> Result<Connection, Error> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite("opening a reader"))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(sqlite("setting busy_timeout on a reader"))?;
    Ok(conn)
}

/// Reads `PRAGMA user_version` and refuses a store written by a newer knhk.
fn check_format(conn: &Connection) -> Result<i64, Error> {
    let found: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sqlite("reading the format version"))?;
    if found > FORMAT_VERSION {
        return Err(Error::UnsupportedFormat {
            found,
            supported: FORMAT_VERSION,
        });
    }
    Ok(found)
}

/// Checks the format version, creating the schema on an empty file. Runs in one immediate
/// transaction so that two processes opening a new file at once do not both create it.
fn ensure_schema(conn: &Connection) -> Result<(), Error> {
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(sqlite("starting the schema transaction"))?;
    let result = create_if_empty(conn);
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    let ended = conn
        .execute_batch(end)
        .map_err(sqlite("ending the schema transaction"));
    result.and(ended)
}

/// Format 2 adds the named sequences (allocation turns).
const MIGRATE_V1_TO_V2: &str = "
CREATE TABLE sequences (
    name TEXT PRIMARY KEY NOT NULL,
    value INTEGER NOT NULL
) WITHOUT ROWID;
";

/// Format 3 makes a workflow's identity its specification URI: versions are numbered per URI
/// and unique per URI (two processes registering at once cannot take the same number).
///
/// Older rows get the URI their stored specification names (`spec.id`, the `yawl:uri` or the
/// file IRI it was read with; `urn:knhk:workflow:NAME` for a specification that does not say).
/// Their versions were numbered per display name, so they are numbered again per URI, in the
/// order they were registered: a workflow that always kept one name and one URI keeps its
/// numbers. Cases name workflows by id, so no case changes.
const MIGRATE_V2_TO_V3_WORKFLOW_URI: &str = "
ALTER TABLE workflows ADD COLUMN uri TEXT NOT NULL DEFAULT '';
UPDATE workflows SET uri = coalesce(
    CASE WHEN json_valid(spec) THEN json_extract(spec, '$.id') END,
    'urn:knhk:workflow:' || name
);
UPDATE workflows SET version = (
    SELECT count(*) FROM workflows AS earlier
    WHERE earlier.uri = workflows.uri
      AND (earlier.registered_at, earlier.id) <= (workflows.registered_at, workflows.id)
);
CREATE UNIQUE INDEX workflows_by_uri ON workflows (uri, version);
";

/// Format 4 adds the quarantine: cases set aside because they cannot be loaded.
const MIGRATE_V3_TO_V4_QUARANTINE: &str = "
CREATE TABLE quarantine (
    case_id TEXT PRIMARY KEY NOT NULL,
    reason TEXT NOT NULL,
    at INTEGER NOT NULL
) WITHOUT ROWID;
";

/// Format 5 gives the queries of one case, one user, one role and one workflow an index each,
/// so that they cost what they return, not what the store holds: a work item's roles are kept
/// in `work_item_roles` too (one row per role, with the offer time so that a role's items
/// come in offer order), filled here from the stored JSON lists; work items get an index by
/// owner (a user's queue) and cases one by workflow. The JSON column stays the record's roles;
/// the table is its index, written with it in every commit. Its key leads with the role and
/// the offer time, so that new items append to it rather than land at random places (item ids
/// are random): an item's rows are found again through its stored roles and offer time.
const MIGRATE_V4_TO_V5_INDEXES: &str = "
CREATE TABLE work_item_roles (
    role TEXT NOT NULL,
    offered_at INTEGER NOT NULL,
    item TEXT NOT NULL,
    PRIMARY KEY (role, offered_at, item)
) WITHOUT ROWID;
INSERT OR IGNORE INTO work_item_roles (role, offered_at, item)
    SELECT r.value, w.offered_at, w.id FROM work_items AS w, json_each(w.roles) AS r
    WHERE json_valid(w.roles) AND r.type = 'text';
CREATE INDEX work_items_by_owner ON work_items (owner, offered_at, id);
CREATE INDEX cases_by_workflow ON cases (workflow, created_at, id);
";

/// Format 6 marks the cases with work in flight (a connector call, an allocation), so that
/// recovery reads those and leaves the cases that merely wait in the store. Older rows are
/// marked, as recovery took up every running case before.
const MIGRATE_V5_TO_V6_IN_FLIGHT: &str = "
ALTER TABLE cases ADD COLUMN in_flight INTEGER NOT NULL DEFAULT 1;
CREATE INDEX cases_in_flight ON cases (status, created_at, id) WHERE in_flight = 1;
";

/// Format 7 keeps the latest snapshot of each case's state (its encoding `format`, the `seq`
/// of the last event it includes), written in the commit of a step, so that loading a case
/// reads the snapshot and the events after it. Older cases have none: they load by their
/// history until their next snapshot is written.
const MIGRATE_V6_TO_V7_SNAPSHOTS: &str = "
CREATE TABLE snapshots (
    case_id TEXT PRIMARY KEY NOT NULL REFERENCES cases (id),
    seq INTEGER NOT NULL,
    format INTEGER NOT NULL,
    state TEXT NOT NULL
) WITHOUT ROWID;
";

/// Format 8 lets a case or work item be named by the start of its last group (the 12 hex
/// digits after the last `-`), as tables show time-ordered ids, whose first digits are their
/// creation time: an index on that group of each id, so that the lookup is a range of it.
const MIGRATE_V7_TO_V8_LAST_GROUPS: &str = "
CREATE INDEX cases_by_last_group ON cases (substr(id, 25));
CREATE INDEX work_items_by_last_group ON work_items (substr(id, 25));
";

/// Format 9 lists the work items in one state (offered, allocated, started) in offer order,
/// a page at a time, from an index rather than by reading every item.
const MIGRATE_V8_TO_V9_ITEM_STATES: &str = "
CREATE INDEX work_items_by_state ON work_items (state, offered_at, id);
";

/// Format 10 lets several engine nodes share the store: the registry of nodes (`fence`, the
/// fencing token, given once and never again, as `AUTOINCREMENT` never reuses a rowid; the
/// lease's expiry), the owner of each case's work in flight (the token of the node that set
/// it going or claimed it; `NULL` on older rows: no node owns them, and a node starting up
/// claims them), indexed among the cases with work in flight so that a sweep finds a dead
/// node's cases, and the claim of a due timer by one node until a time.
const MIGRATE_V9_TO_V10_NODES: &str = "
CREATE TABLE nodes (
    fence INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
ALTER TABLE cases ADD COLUMN owner INTEGER;
CREATE INDEX cases_by_owner ON cases (owner, created_at, id) WHERE in_flight = 1;
ALTER TABLE timers ADD COLUMN claimed_by INTEGER;
ALTER TABLE timers ADD COLUMN claimed_until INTEGER;
";

/// Format 11 keeps the lockchain: each event's leaf index (`NULL` for the events stored
/// before, and for those committed without a leaf), the tree in tiles of 256 hashes (`hashes`
/// the 32-byte hashes end to end; `leaves`, at level 0, each entry's event as its case's
/// UUID and its seq, 24 bytes; `NULL` above), the tree's size in one head row, and the signed
/// checkpoints by the size they sign. The tree of a migrated store starts empty: the events
/// stored before have no leaf.
const MIGRATE_V10_TO_V11_LOCKCHAIN: &str = "
ALTER TABLE events ADD COLUMN leaf INTEGER;
CREATE TABLE lockchain_head (
    only_row INTEGER PRIMARY KEY NOT NULL CHECK (only_row = 0),
    size INTEGER NOT NULL
);
INSERT INTO lockchain_head (only_row, size) VALUES (0, 0);
CREATE TABLE lockchain_tiles (
    level INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hashes BLOB NOT NULL,
    leaves BLOB,
    PRIMARY KEY (level, idx)
);
CREATE TABLE lockchain_checkpoints (
    size INTEGER PRIMARY KEY NOT NULL,
    root BLOB NOT NULL,
    note TEXT NOT NULL,
    at INTEGER NOT NULL
);
";

/// Format 12 keeps the tree's tiles as the segments appended to them: a row is the entries
/// that one transaction added to one tile, keyed by its place in the tree, `at = (7 - level) <<
/// 56 | node` (the index at its level of its first entry, `256 idx + start`), so that a commit
/// writes its own leaves rather than rewriting its tile's earlier entries; a tile is its rows
/// in key order. A level-0 row names its entries' events as runs of consecutive events of one
/// case (`runs`: case UUID, first seq, count; 28 bytes, about one a commit), where format 11
/// gave 24 bytes to each (`leaves`, kept for the rows migrated). A tile filled in many
/// segments is put back in one row. The size is where the
/// last level-0 segment ends, so the head row goes: an append changes no row but its own. The
/// tiles of format 11, whole or not, become the first segment of each.
const MIGRATE_V11_TO_V12_SEGMENTS: &str = "
CREATE TABLE lockchain_segments (
    at INTEGER PRIMARY KEY NOT NULL,
    hashes BLOB NOT NULL,
    leaves BLOB,
    runs BLOB
);
INSERT INTO lockchain_segments (at, hashes, leaves)
    SELECT ((7 - level) << 56) | (idx << 8), hashes, leaves FROM lockchain_tiles;
DROP TABLE lockchain_tiles;
ALTER TABLE lockchain_segments RENAME TO lockchain_tiles;
DROP TABLE lockchain_head;
";

/// The steps from each older format to the next, in order: `(from, what it does, sql)`.
/// A new format adds its own step here, separately named.
const MIGRATIONS: [(i64, &str, &str); 11] = [
    (
        1,
        "migrating the store from format 1 to 2 (named sequences)",
        MIGRATE_V1_TO_V2,
    ),
    (
        2,
        "migrating the store from format 2 to 3 (workflow URIs)",
        MIGRATE_V2_TO_V3_WORKFLOW_URI,
    ),
    (
        3,
        "migrating the store from format 3 to 4 (quarantine)",
        MIGRATE_V3_TO_V4_QUARANTINE,
    ),
    (
        4,
        "migrating the store from format 4 to 5 (indexes of roles, owners and workflows)",
        MIGRATE_V4_TO_V5_INDEXES,
    ),
    (
        5,
        "migrating the store from format 5 to 6 (cases with work in flight)",
        MIGRATE_V5_TO_V6_IN_FLIGHT,
    ),
    (
        6,
        "migrating the store from format 6 to 7 (snapshots of cases)",
        MIGRATE_V6_TO_V7_SNAPSHOTS,
    ),
    (
        7,
        "migrating the store from format 7 to 8 (ids by their last group)",
        MIGRATE_V7_TO_V8_LAST_GROUPS,
    ),
    (
        8,
        "migrating the store from format 8 to 9 (work items by state)",
        MIGRATE_V8_TO_V9_ITEM_STATES,
    ),
    (
        9,
        "migrating the store from format 9 to 10 (engine nodes, leases and claims)",
        MIGRATE_V9_TO_V10_NODES,
    ),
    (
        10,
        "migrating the store from format 10 to 11 (the lockchain)",
        MIGRATE_V10_TO_V11_LOCKCHAIN,
    ),
    (
        11,
        "migrating the store from format 11 to 12 (lockchain tiles in segments)",
        MIGRATE_V11_TO_V12_SEGMENTS,
    ),
];

fn create_if_empty(conn: &Connection) -> Result<(), Error> {
    let found = check_format(conn)?;
    if found == FORMAT_VERSION {
        return Ok(());
    }
    if found == 0 {
        // Version 0 must be a file nobody has written tables into: create format 1's tables,
        // then run every migration.
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
                [],
                |r| r.get(0),
            )
            .map_err(sqlite("inspecting the store file"))?;
        if tables > 0 {
            return Err(Error::Corrupt(Corruption::Unversioned { tables }));
        }
        conn.execute_batch(SCHEMA_V1)
            .map_err(sqlite("creating the schema"))?;
    }
    // An older format (or format 1 just created): migrate it forward, one version at a time.
    for (from, doing, sql) in MIGRATIONS {
        if from >= found.max(1) {
            conn.execute_batch(sql).map_err(sqlite(doing))?;
        }
    }
    conn.pragma_update(None, "user_version", FORMAT_VERSION)
        .map_err(sqlite("setting the format version"))
}
