//! Whether the last processes that used a store closed it: each process that opens the store
//! for writing puts a marker file `FILE-open-PID` next to it and removes it when it closes the
//! store. A marker whose process is gone was left by a process that did not close the store
//! (killed, crashed, lost power), and the next one to open it runs a quick check.

use std::path::{Path, PathBuf};

use crate::error::Error;

/// This process's marker; removed when dropped (the store closed cleanly).
#[derive(Debug)]
pub(super) struct Marker {
    path: PathBuf,
}

impl Drop for Marker {
    fn drop(&mut self) {
        // A marker that stays only costs the next process a quick check.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Markers left by processes that are gone, to be removed once the store was checked.
#[derive(Debug, Default)]
pub(super) struct Stale {
    others: Vec<PathBuf>,
    /// A marker of this process's id was there already: an earlier process with the same id
    /// (ids are reused) did not close the store. It is this process's marker now.
    own: bool,
}

impl Stale {
    /// Returns whether some process did not close the store.
    pub(super) fn found(&self) -> bool {
        self.own || !self.others.is_empty()
    }

    /// Forgets the markers: the store has been checked since.
    pub(super) fn clear(self) {
        for path in self.others {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Finds the markers of processes that are gone, then puts this process's marker.
pub(super) fn take(db: &Path) -> Result<(Marker, Stale), Error> {
    let dir = match db.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let prefix = format!(
        "{}-open-",
        db.file_name().unwrap_or_default().to_string_lossy()
    );
    let own = std::process::id();
    let mut stale = Stale::default();
    let entries = std::fs::read_dir(&dir).map_err(|source| Error::Io {
        doing: "listing",
        path: dir.clone(),
        source,
    })?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(&prefix)
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == own {
            stale.own = true;
        } else if !alive(pid) {
            stale.others.push(entry.path());
        }
    }
    let path = dir.join(format!("{prefix}{own}"));
    std::fs::write(&path, b"").map_err(|source| Error::Io {
        doing: "writing",
        path: path.clone(),
        source,
    })?;
    Ok((Marker { path }, stale))
}

/// Returns whether a process is running. Where `/proc` does not tell, every process counts as
/// running, so that no store is checked for nothing.
fn alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        true
    }
}
