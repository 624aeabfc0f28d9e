//! Opening a store that cannot be written: a file or folder without write permission, or a
//! read-only mount. Reads work; every write is refused with [`Error::ReadOnly`], naming the
//! file.
//!
//! A store closed cleanly is one self-contained file (the last connection to close folds the
//! WAL back into it and removes the -wal and -shm files). SQLite cannot open a WAL file
//! read-only without creating its -shm file next to it, unless told that nothing will change
//! it: such a file is opened `immutable=1`, which also makes SQLite take no lock and write
//! nothing.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::FORMAT_VERSION;
use crate::error::Error;

use super::sqlite;

/// Returns whether the store file or its folder says it is not to be written: no write
/// permission for anyone. Decided on the permission bits, not by trying to write, so that it
/// holds for every user (the superuser included, whom permissions do not stop).
pub(super) fn read_only_location(path: &Path) -> bool {
    let readonly = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.permissions().readonly())
            .unwrap_or(false)
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    path.is_file() && (readonly(path) || readonly(dir))
}

/// Returns whether opening for writing failed because the location cannot be written
/// (a read-only mount, missing permission), so that opening read-only may still work.
pub(super) fn refused_writing(e: &Error) -> bool {
    match e {
        Error::Sqlite {
            error: rusqlite::Error::SqliteFailure(f, _),
            ..
        } => matches!(
            f.code,
            rusqlite::ErrorCode::ReadOnly
                | rusqlite::ErrorCode::CannotOpen
                | rusqlite::ErrorCode::PermissionDenied
        ),
        Error::Io { source, .. } => matches!(
            source.kind(),
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
        ),
        _ => false,
    }
}

/// Opens a reader on a store that cannot be written, and checks that it can serve this
/// version of knhk as it is (it cannot be migrated).
pub(super) fn open_reader(path: &Path) -> Result<Connection, Error> {
    let wal = {
        let mut p = path.as_os_str().to_owned();
        p.push("-wal");
        std::path::PathBuf::from(p)
    };
    if wal.exists() {
        return Err(Error::ReadOnlyUnclean {
            path: path.to_path_buf(),
        });
    }
    let uri = format!("file:{}?immutable=1", uri_path(path));
    let conn = Connection::open_with_flags(
        uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite("opening the read-only store"))?;
    let found: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sqlite("reading the format version"))?;
    if found > FORMAT_VERSION {
        return Err(Error::UnsupportedFormat {
            found,
            supported: FORMAT_VERSION,
        });
    }
    if found < FORMAT_VERSION {
        return Err(Error::ReadOnlyFormat {
            path: path.to_path_buf(),
            found,
            supported: FORMAT_VERSION,
        });
    }
    Ok(conn)
}

/// Returns a path as the path part of a SQLite URI: the characters a URI gives a meaning
/// (`%`, `?`, `#`) escaped.
fn uri_path(path: &Path) -> String {
    let text = path.to_string_lossy();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '%' => out.push_str("%25"),
            '?' => out.push_str("%3f"),
            '#' => out.push_str("%23"),
            c => out.push(c),
        }
    }
    out
}
