//! Who holds which role: the people work items are offered and allocated to.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Deserialize;

/// Maps roles to the users that hold them, and keeps the round-robin position of each role.
#[derive(Debug, Default, Clone)]
pub struct Directory {
    roles: Arc<BTreeMap<String, Vec<String>>>,
    next: Arc<BTreeMap<String, AtomicUsize>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DirectoryFile {
    roles: BTreeMap<String, Vec<String>>,
}

impl Directory {
    /// Creates a directory from role -> users.
    pub fn new(roles: BTreeMap<String, Vec<String>>) -> Directory {
        let next = roles
            .keys()
            .map(|r| (r.clone(), AtomicUsize::new(0)))
            .collect();
        Directory {
            roles: Arc::new(roles),
            next: Arc::new(next),
        }
    }

    /// Parses `{"roles": {"clerk": ["ann", "bob"]}}`.
    pub fn from_json(text: &str) -> Result<Directory, String> {
        let file: DirectoryFile =
            serde_json::from_str(text).map_err(|e| format!("directory: {e}"))?;
        Ok(Directory::new(file.roles))
    }

    /// Returns the users holding `role`, in directory order.
    pub fn users(&self, role: &str) -> &[String] {
        self.roles.get(role).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Returns the next user of the first of `roles` that has users, round robin.
    pub fn round_robin(&self, roles: &[String]) -> Option<String> {
        let role = roles.iter().find(|r| !self.users(r).is_empty())?;
        let users = self.users(role);
        let i = self.next.get(role)?.fetch_add(1, Ordering::Relaxed);
        users.get(i % users.len()).cloned()
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
