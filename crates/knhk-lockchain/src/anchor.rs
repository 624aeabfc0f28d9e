//! Git anchoring of checkpoints: one commit per checkpoint, whose parent is the previous one.
//!
//! An [`Anchor`] is a git repository (bare when this module creates it) whose head branch is
//! the chain of anchored checkpoints: each commit holds one file, `checkpoint`, the signed note
//! of the checkpoint, with the message `checkpoint SIZE`, and the previous checkpoint's commit
//! as its only parent, so that `git log` shows the chain, newest first, and [`Anchor::chain`]
//! gives it oldest first (the verifier reads it). A copy of the repository elsewhere (a pushed
//! remote) makes the history of the tree heads hard to rewrite unnoticed.
//!
//! Why it never goes backwards: [`Anchor::append`] refuses a checkpoint smaller than the last
//! anchored one, a different one of the same size, and one the caller's consistency proof does
//! not prove an extension of the last (RFC 9162 §2.1.4.2, checked here against the head the last
//! anchored note says). The branch is moved only from the commit it was read at (gix refuses the
//! update otherwise), so two writers cannot fork it either.
//!
//! The calls block on files: the engine makes them from one task that owns the repository.
//! Pushing is the one thing gix does not do: [`Anchor::push`] runs the `git` binary, and says
//! so when it is missing.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use gix::bstr::ByteSlice;

use crate::merkle::{Hash, verify_consistency};

/// The file of a checkpoint commit that holds the signed note.
pub const CHECKPOINT_FILE: &str = "checkpoint";

/// The branch the chain is kept on when the repository's `HEAD` names none.
pub const DEFAULT_BRANCH: &str = "refs/heads/main";

/// Why a checkpoint was not anchored, or the repository could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    /// The git repository could not be opened, read or written.
    #[error("git anchor {dir}: {problem}")]
    Git { dir: PathBuf, problem: String },
    /// The checkpoint would make the anchor go backwards, or does not extend the last one.
    #[error("git anchor {dir}: checkpoint of size {size} refused: {problem}")]
    Refused {
        dir: PathBuf,
        size: u64,
        problem: String,
    },
    /// A commit of the chain is not a checkpoint commit (it names the commit).
    #[error("git anchor {dir}: commit {commit}: {problem}")]
    BadCommit {
        dir: PathBuf,
        commit: String,
        problem: String,
    },
    /// Pushing to the remote failed.
    #[error("git anchor {dir}: cannot push to {remote}: {problem}")]
    Push {
        dir: PathBuf,
        remote: String,
        problem: String,
    },
}

/// One anchored checkpoint: its commit and what it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anchored {
    /// The commit's id, hex.
    pub commit: String,
    /// The parent commit's id, hex (`None` for the first checkpoint).
    pub parent: Option<String>,
    /// The tree size the message `checkpoint SIZE` names.
    pub size: u64,
    /// The signed note of the `checkpoint` file, as committed.
    pub note: String,
    /// The commit time, in seconds since the Unix epoch.
    pub at: i64,
}

/// The first lines of a checkpoint body: its origin, tree size and root hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteHead {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

/// Reads the origin, size and root of a signed checkpoint note, without checking its
/// signature (the anchor compares tree heads; the verifier checks signatures).
pub fn note_head(note: &str) -> Result<NoteHead, String> {
    let mut lines = note.split('\n');
    let origin = lines
        .next()
        .filter(|l| !l.is_empty())
        .ok_or("the note has no origin line")?;
    let size = lines.next().ok_or("the note has no tree size line")?;
    let size: u64 = size
        .parse()
        .map_err(|_| format!("the tree size line {size:?} is not a number"))?;
    let root = lines.next().ok_or("the note has no root hash line")?;
    let bytes = STANDARD
        .decode(root)
        .map_err(|_| format!("the root hash line {root:?} is not base64"))?;
    let root: Hash = bytes
        .try_into()
        .map_err(|_| format!("the root hash line {root:?} is not 32 bytes"))?;
    Ok(NoteHead {
        origin: origin.to_owned(),
        size,
        root,
    })
}

/// A git repository holding the chain of anchored checkpoints, opened for appending.
#[derive(Debug)]
pub struct Anchor {
    dir: PathBuf,
    repo: gix::Repository,
    branch: gix::refs::FullName,
    /// The last anchored checkpoint, as read at opening and kept since.
    last: Option<Anchored>,
}

impl Anchor {
    /// Opens the repository at `dir`, or creates a bare one there when `dir` is missing or
    /// empty, and reads its last anchored checkpoint.
    pub fn open_or_init(dir: &Path) -> Result<Anchor, AnchorError> {
        let git = |problem: String| AnchorError::Git {
            dir: dir.to_path_buf(),
            problem,
        };
        let empty = match std::fs::read_dir(dir) {
            Ok(mut entries) => entries.next().is_none(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(e) => return Err(git(format!("cannot read the directory: {e}"))),
        };
        let repo = if empty {
            std::fs::create_dir_all(dir)
                .map_err(|e| git(format!("cannot create the directory: {e}")))?;
            gix::init_bare(dir).map_err(|e| git(format!("cannot create a repository: {e}")))?
        } else {
            gix::open(dir).map_err(|e| git(format!("not a git repository: {e}")))?
        };
        let default: gix::refs::FullName = DEFAULT_BRANCH
            .try_into()
            .map_err(|e| git(format!("branch {DEFAULT_BRANCH}: {e}")))?;
        // The branch HEAD names; but a repository whose HEAD names a branch with no commit yet
        // (a remote made by `git init --bare`, whose HEAD may say master) keeps the chain
        // pushed to it on the default branch.
        let branch = match repo.head_name() {
            Ok(Some(name)) => {
                let born = matches!(repo.try_find_reference(name.as_ref()), Ok(Some(_)));
                let default_born = matches!(repo.try_find_reference(default.as_ref()), Ok(Some(_)));
                if !born && default_born { default } else { name }
            }
            Ok(None) | Err(_) => default,
        };
        let mut anchor = Anchor {
            dir: dir.to_path_buf(),
            repo,
            branch,
            last: None,
        };
        anchor.last = anchor.read_head()?;
        Ok(anchor)
    }

    /// Returns the repository's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Returns the branch the chain is kept on (`refs/heads/...`).
    pub fn branch(&self) -> String {
        self.branch.as_bstr().to_str_lossy().into_owned()
    }

    /// Returns the last anchored checkpoint, if any, as last read or written.
    pub fn last(&self) -> Option<&Anchored> {
        self.last.as_ref()
    }

    /// Reads the last anchored checkpoint again, for another process may have anchored one
    /// since (the branch is only ever moved from the commit it was read at, so a stale view
    /// makes `append` fail, never fork the chain).
    pub fn refresh(&mut self) -> Result<Option<&Anchored>, AnchorError> {
        self.last = self.read_head()?;
        Ok(self.last.as_ref())
    }

    /// Anchors the signed checkpoint `note`: one commit holding it, whose parent is the last
    /// anchored checkpoint's commit. `consistency` proves the last anchored tree a prefix of
    /// this one (empty when there is no last one, or it is of size 0). A checkpoint equal to
    /// the last is anchored already (the last is returned); a smaller one, a different one of
    /// the same size, or one the proof does not hold for is refused.
    pub fn append(&mut self, note: &str, consistency: &[Hash]) -> Result<Anchored, AnchorError> {
        let head = note_head(note).map_err(|problem| AnchorError::Refused {
            dir: self.dir.clone(),
            size: 0,
            problem,
        })?;
        let refused = |problem: String| AnchorError::Refused {
            dir: self.dir.clone(),
            size: head.size,
            problem,
        };
        if let Some(last) = &self.last {
            if last.note == note {
                return Ok(last.clone());
            }
            let was = note_head(&last.note).map_err(|p| AnchorError::BadCommit {
                dir: self.dir.clone(),
                commit: last.commit.clone(),
                problem: p,
            })?;
            if head.size < was.size {
                return Err(refused(format!(
                    "the last anchored checkpoint is of size {}: an anchor never goes backwards",
                    was.size
                )));
            }
            if head.size == was.size {
                return Err(refused(format!(
                    "a different checkpoint of size {} is anchored (commit {})",
                    was.size, last.commit
                )));
            }
            if was.size > 0 {
                verify_consistency(was.size, head.size, &was.root, &head.root, consistency)
                    .map_err(|e| {
                        refused(format!(
                            "it is not consistent with the last anchored checkpoint, of size \
                             {}: {e}",
                            was.size
                        ))
                    })?;
            }
        }
        let anchored = self.commit(note, head.size)?;
        self.last = Some(anchored.clone());
        Ok(anchored)
    }

    /// Writes the commit of a checkpoint on top of the last one and moves the branch to it.
    fn commit(&self, note: &str, size: u64) -> Result<Anchored, AnchorError> {
        let git = |what: &str, e: gix::Error| AnchorError::Git {
            dir: self.dir.clone(),
            problem: format!("{what}: {e}"),
        };
        let blob = self
            .repo
            .write_blob(note.as_bytes())
            .map_err(|e| git("cannot write the note", e))?
            .detach();
        let tree = gix::objs::Tree {
            entries: vec![gix::objs::tree::Entry {
                mode: gix::objs::tree::EntryKind::Blob.into(),
                filename: CHECKPOINT_FILE.into(),
                oid: blob,
            }],
        };
        let tree = self
            .repo
            .write_object(&tree)
            .map_err(|e| git("cannot write the tree", e))?
            .detach();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        let signature = gix::actor::Signature {
            name: "knhk".into(),
            email: "knhk@localhost".into(),
            time: gix::date::Time {
                seconds: now,
                offset: 0,
            },
        };
        let mut buf = gix::date::parse::TimeBuf::default();
        let sig = signature.to_ref(&mut buf);
        let parent = self.last.as_ref().map(|l| l.commit.clone());
        let parents = match &parent {
            Some(hex) => vec![
                gix::ObjectId::from_hex(hex.as_bytes())
                    .map_err(|e| git("the last commit id", gix::Error::from_error(e)))?,
            ],
            None => Vec::new(),
        };
        let message = format!("checkpoint {size}\n");
        let id = self
            .repo
            .commit_as(sig, sig, self.branch.as_ref(), message, tree, parents)
            .map_err(|e| git("cannot commit the checkpoint", e))?;
        Ok(Anchored {
            commit: id.to_string(),
            parent,
            size,
            note: note.to_owned(),
            at: now,
        })
    }

    /// Reads the commit the branch points at, if any.
    fn read_head(&self) -> Result<Option<Anchored>, AnchorError> {
        let reference = self
            .repo
            .try_find_reference(self.branch.as_ref())
            .map_err(|e| AnchorError::Git {
                dir: self.dir.clone(),
                problem: format!("cannot read {}: {e}", self.branch()),
            })?;
        let Some(mut reference) = reference else {
            return Ok(None);
        };
        let id = reference.peel_to_id().map_err(|e| AnchorError::Git {
            dir: self.dir.clone(),
            problem: format!("cannot read {}: {e}", self.branch()),
        })?;
        self.read_commit(id.detach()).map(Some)
    }

    /// Reads one checkpoint commit.
    fn read_commit(&self, id: gix::ObjectId) -> Result<Anchored, AnchorError> {
        let bad = |problem: String| AnchorError::BadCommit {
            dir: self.dir.clone(),
            commit: id.to_string(),
            problem,
        };
        let commit = self
            .repo
            .find_commit(id)
            .map_err(|e| bad(format!("cannot read it: {e}")))?;
        let mut parents = commit.parent_ids().map(|p| p.to_string());
        let parent = parents.next();
        if parents.next().is_some() {
            return Err(bad(
                "it has more than one parent: a checkpoint has one".to_owned()
            ));
        }
        let message = commit
            .message_raw()
            .map_err(|e| bad(format!("cannot read its message: {e}")))?
            .to_str_lossy()
            .into_owned();
        let size = message
            .trim_end()
            .strip_prefix("checkpoint ")
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| bad(format!("its message {message:?} is not `checkpoint SIZE`")))?;
        let tree = commit
            .tree()
            .map_err(|e| bad(format!("cannot read its tree: {e}")))?;
        let entry = tree
            .find_entry(CHECKPOINT_FILE)
            .ok_or_else(|| bad(format!("it has no file `{CHECKPOINT_FILE}`")))?;
        let blob = entry
            .object()
            .map_err(|e| bad(format!("cannot read `{CHECKPOINT_FILE}`: {e}")))?;
        let note = std::str::from_utf8(&blob.data)
            .map_err(|_| bad(format!("`{CHECKPOINT_FILE}` is not UTF-8")))?
            .to_owned();
        let at = commit
            .time()
            .map_err(|e| bad(format!("cannot read its time: {e}")))?
            .seconds;
        Ok(Anchored {
            commit: id.to_string(),
            parent,
            size,
            note,
            at,
        })
    }

    /// Returns every anchored checkpoint, oldest first, following each commit's parent from
    /// the branch's head.
    pub fn chain(&self) -> Result<Vec<Anchored>, AnchorError> {
        let mut out = Vec::new();
        let mut next = self.read_head()?;
        while let Some(anchored) = next {
            next = match &anchored.parent {
                None => None,
                Some(hex) => {
                    let id = gix::ObjectId::from_hex(hex.as_bytes()).map_err(|e| {
                        AnchorError::BadCommit {
                            dir: self.dir.clone(),
                            commit: anchored.commit.clone(),
                            problem: format!("its parent id {hex}: {e}"),
                        }
                    })?;
                    Some(self.read_commit(id)?)
                }
            };
            out.push(anchored);
        }
        out.reverse();
        Ok(out)
    }

    /// Pushes the branch to `remote` (a remote's name or URL) with the `git` binary, which
    /// must be installed: gix does not push. Never forced, so a remote whose chain is not a
    /// prefix of this one refuses it.
    pub fn push(&self, remote: &str) -> Result<(), AnchorError> {
        let failed = |problem: String| AnchorError::Push {
            dir: self.dir.clone(),
            remote: remote.to_owned(),
            problem,
        };
        let branch = self.branch();
        let output = std::process::Command::new("git")
            .arg("--git-dir")
            .arg(self.repo.git_dir())
            .args(["push", "--quiet", remote])
            .arg(format!("{branch}:{branch}"))
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    failed(
                        "the `git` program is not installed (gix, which writes the anchor, does \
                         not push; install git or leave lockchain.git_remote unset)"
                            .to_owned(),
                    )
                } else {
                    failed(format!("cannot run `git push`: {e}"))
                }
            })?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(failed(format!(
                "`git push` failed ({}): {}",
                output.status,
                stderr.trim()
            )));
        }
        Ok(())
    }
}

/// Reads the chain of checkpoints anchored in the repository at `dir`, oldest first, without
/// creating anything: what the verifier checks.
pub fn chain(dir: &Path) -> Result<Vec<Anchored>, AnchorError> {
    if !dir.is_dir() {
        return Err(AnchorError::Git {
            dir: dir.to_path_buf(),
            problem: "no such directory".to_owned(),
        });
    }
    Anchor::open_or_init(dir)?.chain()
}

/// Checks that a file can be created in the repository at `dir` (the anchor can commit): it
/// creates one in the object directory and removes it.
pub fn check_writable(dir: &Path) -> Result<(), AnchorError> {
    let objects = [dir.join("objects"), dir.join(".git").join("objects")]
        .into_iter()
        .find(|p| p.is_dir())
        .ok_or_else(|| AnchorError::Git {
            dir: dir.to_path_buf(),
            problem: "no object directory: not a git repository".to_owned(),
        })?;
    let probe = objects.join(format!(".knhk-probe-{}", std::process::id()));
    let result = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&probe)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"probe"));
    let removed = std::fs::remove_file(&probe);
    result.and(removed).map_err(|e| AnchorError::Git {
        dir: dir.to_path_buf(),
        problem: format!("not writable: {e}"),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::merkle::{NodeSource, ProofError, consistency_proof, leaf_hash, root_of};

    /// The leaves of a test tree, as a node source.
    struct Leaves(Vec<Hash>);

    impl NodeSource for Leaves {
        fn node(&self, height: u8, index: u64) -> Result<Hash, ProofError> {
            let from = usize::try_from(index << height).unwrap();
            let to = usize::try_from((index + 1) << height).unwrap();
            self.0
                .get(from..to)
                .map(root_of)
                .ok_or(ProofError::Missing { height, index })
        }
    }

    fn leaves(n: u64) -> Leaves {
        Leaves((0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect())
    }

    /// A note as the anchor reads it: the checkpoint body and a signature line it does not check.
    fn note(size: u64, root: &Hash) -> String {
        format!(
            "test.example/log\n{size}\n{}\n\n\u{2014} test.example/log AAAA\n",
            STANDARD.encode(root)
        )
    }

    fn note_of(tree: &Leaves, size: u64) -> String {
        note(size, &root_of(&tree.0[..usize::try_from(size).unwrap()]))
    }

    fn git(dir: &Path, args: &[&str]) -> String {
        let out = std::process::Command::new("git")
            .arg("--git-dir")
            .arg(dir)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn each_checkpoint_is_a_commit_whose_parent_is_the_previous_one() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("anchor");
        let tree = leaves(40);
        let mut anchor = Anchor::open_or_init(&dir).unwrap();
        assert_eq!(anchor.last(), None);
        let first = anchor.append(&note_of(&tree, 3), &[]).unwrap();
        assert_eq!((first.size, first.parent.as_deref()), (3, None));
        let mut previous = first.clone();
        for size in [8, 21, 40] {
            let proof = consistency_proof(&tree, previous.size, size).unwrap();
            let next = anchor.append(&note_of(&tree, size), &proof).unwrap();
            assert_eq!(next.parent.as_deref(), Some(previous.commit.as_str()));
            assert_eq!(next.size, size);
            previous = next;
        }
        // The same checkpoint again is anchored already: no new commit.
        let again = anchor.append(&note_of(&tree, 40), &[]).unwrap();
        assert_eq!(again, previous);

        // Read back, by this module and by git itself.
        let chain = Anchor::open_or_init(&dir).unwrap().chain().unwrap();
        assert_eq!(
            chain.iter().map(|a| a.size).collect::<Vec<_>>(),
            [3, 8, 21, 40]
        );
        assert_eq!(chain[0], first);
        assert_eq!(chain[3].note, note_of(&tree, 40));
        assert_eq!(super::chain(&dir).unwrap(), chain);
        let log = git(&dir, &["log", "--format=%H %P %s"]);
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines.len(), 4, "{log}");
        assert_eq!(
            lines[0],
            format!("{} {} checkpoint 40", chain[3].commit, chain[2].commit)
        );
        assert_eq!(lines[3], format!("{}  checkpoint 3", chain[0].commit));
        let shown = git(&dir, &["show", &format!("{}:checkpoint", chain[1].commit)]);
        assert_eq!(shown, note_of(&tree, 8));
    }

    #[test]
    fn a_smaller_a_different_or_an_inconsistent_checkpoint_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let tree = leaves(20);
        let mut anchor = Anchor::open_or_init(tmp.path()).unwrap();
        anchor.append(&note_of(&tree, 4), &[]).unwrap();
        let proof = consistency_proof(&tree, 4, 10).unwrap();
        let last = anchor.append(&note_of(&tree, 10), &proof).unwrap();

        let e = anchor.append(&note_of(&tree, 7), &[]).unwrap_err();
        assert!(
            e.to_string()
                .contains("checkpoint of size 7 refused: the last anchored checkpoint is of size 10: an anchor never goes backwards"),
            "{e}"
        );
        let e = anchor
            .append(&note(10, &leaf_hash(b"another tree")), &[])
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("a different checkpoint of size 10 is anchored"),
            "{e}"
        );
        // A tree of 15 leaves that does not start with the anchored 10: its own proof does
        // not lead from the anchored head.
        let forked = Leaves(
            (0..15u64)
                .map(|i| leaf_hash(&(i + u64::from(i == 2)).to_be_bytes()))
                .collect(),
        );
        let proof = consistency_proof(&forked, 10, 15).unwrap();
        let e = anchor.append(&note_of(&forked, 15), &proof).unwrap_err();
        assert!(
            e.to_string().contains(
                "checkpoint of size 15 refused: it is not consistent with the last anchored \
                 checkpoint, of size 10"
            ),
            "{e}"
        );
        // No proof at all is no proof either.
        assert!(anchor.append(&note_of(&tree, 15), &[]).is_err());
        // Nothing refused was committed.
        assert_eq!(anchor.last(), Some(&last));
        assert_eq!(anchor.chain().unwrap().len(), 2);
    }

    #[test]
    fn the_chain_is_pushed_to_a_remote_and_the_repository_is_probed_writable() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("anchor");
        let remote = tmp.path().join("remote.git");
        let init = std::process::Command::new("git")
            .args(["init", "--bare", "--quiet"])
            .arg(&remote)
            .status()
            .unwrap();
        assert!(init.success());
        let tree = leaves(9);
        let mut anchor = Anchor::open_or_init(&dir).unwrap();
        anchor.append(&note_of(&tree, 2), &[]).unwrap();
        let proof = consistency_proof(&tree, 2, 9).unwrap();
        let last = anchor.append(&note_of(&tree, 9), &proof).unwrap();
        let remote_text = remote.display().to_string();
        anchor.push(&remote_text).unwrap();
        let pushed = git(&remote, &["rev-parse", &anchor.branch()]);
        assert_eq!(pushed.trim(), last.commit);
        assert_eq!(
            super::chain(&remote)
                .unwrap()
                .iter()
                .map(|a| a.size)
                .collect::<Vec<_>>(),
            [2, 9]
        );

        let e = anchor
            .push(&tmp.path().join("nowhere").display().to_string())
            .unwrap_err();
        assert!(e.to_string().contains("cannot push to"), "{e}");

        check_writable(&dir).unwrap();
        let e = check_writable(tmp.path()).unwrap_err();
        assert!(e.to_string().contains("not a git repository"), "{e}");
    }

    #[test]
    fn a_commit_that_is_no_checkpoint_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let mut anchor = Anchor::open_or_init(tmp.path()).unwrap();
        anchor.append(&note(1, &leaf_hash(b"x")), &[]).unwrap();
        // Someone commits something else on the branch with git itself.
        let empty_tree = git(
            tmp.path(),
            &["hash-object", "-t", "tree", "-w", "/dev/null"],
        );
        let last = anchor.last().unwrap().commit.clone();
        let out = std::process::Command::new("git")
            .arg("--git-dir")
            .arg(tmp.path())
            .args(["-c", "user.name=x", "-c", "user.email=x@x"])
            .args(["commit-tree", empty_tree.trim(), "-p", &last, "-m", "oops"])
            .output()
            .unwrap();
        let commit = String::from_utf8(out.stdout).unwrap();
        git(tmp.path(), &["update-ref", &anchor.branch(), commit.trim()]);
        let e = chain(tmp.path()).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "git anchor {}: commit {}: its message \"oops\\n\" is not `checkpoint SIZE`",
                tmp.path().display(),
                commit.trim()
            )
        );
    }
}
