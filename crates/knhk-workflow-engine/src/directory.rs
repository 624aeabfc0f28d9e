//! Who holds which role: the people work items are offered and allocated to.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

/// Maps roles to the users that hold them.
#[derive(Debug, Default, Clone)]
pub struct Directory {
    roles: Arc<BTreeMap<String, Vec<String>>>,
}

/// Why a directory does not load.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// The directory file exists but cannot be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The text is not a directory: not JSON, not `{"roles": {role: [user...]}}`, or a field
    /// the format does not have; the JSON error gives the line and column.
    #[error("{}: {source}", origin(path.as_deref()))]
    Parse {
        /// The file read, if the text came from one.
        path: Option<PathBuf>,
        #[source]
        source: serde_json::Error,
    },
}

/// Names where a directory text came from, for messages.
fn origin(path: Option<&Path>) -> String {
    path.map_or_else(|| "directory".to_owned(), |p| p.display().to_string())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DirectoryFile {
    roles: BTreeMap<String, Vec<String>>,
}

impl Directory {
    /// Creates a directory from role -> users.
    pub fn new(roles: BTreeMap<String, Vec<String>>) -> Directory {
        Directory {
            roles: Arc::new(roles),
        }
    }

    /// Parses `{"roles": {"clerk": ["ann", "bob"]}}`.
    pub fn from_json(text: &str) -> Result<Directory, DirectoryError> {
        Directory::parse(text, None)
    }

    fn parse(text: &str, path: Option<&Path>) -> Result<Directory, DirectoryError> {
        let file: DirectoryFile =
            serde_json::from_str(text).map_err(|source| DirectoryError::Parse {
                path: path.map(Path::to_path_buf),
                source,
            })?;
        Ok(Directory::new(file.roles))
    }

    /// Reads the directory file at `path`; a missing file is an empty directory, since
    /// a program without human tasks needs none.
    pub fn load(path: &Path) -> Result<Directory, DirectoryError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Directory::parse(&text, Some(path)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Directory::default()),
            Err(source) => Err(DirectoryError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Returns whether the directory names no role at all (no `directory.json`).
    pub fn is_empty(&self) -> bool {
        self.roles.is_empty()
    }

    /// Returns the users holding `role`, in directory order.
    pub fn users(&self, role: &str) -> &[String] {
        self.roles.get(role).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Returns the role whose members share a round-robin turn: the first of `roles` that
    /// has members.
    pub fn round_robin_role<'a>(&self, roles: &'a [String]) -> Option<&'a str> {
        roles
            .iter()
            .find(|r| !self.users(r).is_empty())
            .map(String::as_str)
    }

    /// Returns the member of `role` whose turn `turn` (counted from 1) is.
    pub fn member_for_turn(&self, role: &str, turn: u64) -> Option<String> {
        let users = self.users(role);
        let n = u64::try_from(users.len()).ok().filter(|&n| n > 0)?;
        let i = usize::try_from(turn.saturating_sub(1) % n).ok()?;
        users.get(i).cloned()
    }

    /// Returns every user holding one of `roles`, without duplicates, in directory order.
    pub fn candidates(&self, roles: &[String]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in roles {
            for u in self.users(r) {
                if !out.contains(u) {
                    out.push(u.clone());
                }
            }
        }
        out
    }
}
