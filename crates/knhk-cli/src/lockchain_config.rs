//! The `[lockchain]` table of the config file, and the engine's lockchain made from it: the
//! signing key (read from `key_env`, or `key_file`, or generated on first start in
//! `DATA_DIR/lockchain/key`), the origin, the checkpoint intervals and the git anchor.
//!
//! The key is the log's private key: a generated one is created with mode 0600 (the mode is
//! given when the file is created, never set after, so it is never readable by others even
//! for a moment), in a directory of mode 0700, and moved into place with a hard link, which
//! fails if another process made one first (that one is then read). It is never logged or
//! printed; its public half is (`WorkflowEngine::lockchain_public_key`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use knhk_lockchain::note::Signer;
use knhk_workflow_engine::{AnchorConfig, LockchainConfig};

/// The folder of the data directory with the key and the anchor repository.
pub(crate) const LOCKCHAIN_DIR: &str = "lockchain";
/// The generated key's file in [`LOCKCHAIN_DIR`].
pub(crate) const KEY_FILE: &str = "key";
/// The anchor repository's folder in [`LOCKCHAIN_DIR`], when `git_dir` is not set.
pub(crate) const ANCHOR_DIR: &str = "anchor.git";

/// The `[lockchain]` table as written; every key is optional.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct LockchainFile {
    /// `false`: no leaves, no checkpoints, no receipts (true by default).
    pub(crate) enabled: Option<bool>,
    /// A file holding the signer key text (`PRIVATE+KEY+...`).
    pub(crate) key_file: Option<PathBuf>,
    /// A variable holding the signer key text; it wins over `key_file`.
    pub(crate) key_env: Option<String>,
    /// The checkpoints' origin line (and the name of a generated key).
    pub(crate) origin: Option<String>,
    /// A checkpoint every this many leaves...
    pub(crate) checkpoint_events: Option<u64>,
    /// ...or every this many seconds, whichever comes first.
    pub(crate) checkpoint_secs: Option<u64>,
    /// The anchor repository; `""`: no anchor.
    pub(crate) git_dir: Option<PathBuf>,
    /// A remote every checkpoint is pushed to.
    pub(crate) git_remote: Option<String>,
    /// How old the last anchor may be, while the tree grew, before health says so.
    pub(crate) anchor_max_age_secs: Option<u64>,
    /// Set by a command that only reads the log (`knhk lockchain verify`), not by the file:
    /// when the data directory has no key yet, none is made (a new key would sign nothing the
    /// log holds), and the command runs with the lockchain off.
    pub(crate) read_only: bool,
}

/// The keys of the `[lockchain]` table.
const KEYS: [&str; 9] = [
    "enabled",
    "key_file",
    "key_env",
    "origin",
    "checkpoint_events",
    "checkpoint_secs",
    "git_dir",
    "git_remote",
    "anchor_max_age_secs",
];

impl LockchainFile {
    /// Reads the `[lockchain]` table; an unknown key or a value of the wrong type is an error
    /// naming `lockchain.KEY`.
    pub(crate) fn parse(table: toml::Value) -> anyhow::Result<LockchainFile> {
        let toml::Value::Table(table) = table else {
            anyhow::bail!("lockchain: must be a table [lockchain]");
        };
        let mut file = LockchainFile::default();
        for (key, value) in table {
            let text = || match &value {
                toml::Value::String(s) => Ok(s.clone()),
                other => Err(anyhow::anyhow!(
                    "lockchain.{key}: must be a string, not {}",
                    other.type_str()
                )),
            };
            let count = || match &value {
                toml::Value::Integer(n) if *n >= 0 => Ok(n.unsigned_abs()),
                other => Err(anyhow::anyhow!(
                    "lockchain.{key}: must be a whole number, 0 or more, not {other}"
                )),
            };
            match key.as_str() {
                "enabled" => match &value {
                    toml::Value::Boolean(b) => file.enabled = Some(*b),
                    other => anyhow::bail!("lockchain.enabled: must be true or false, not {other}"),
                },
                "key_file" => file.key_file = Some(PathBuf::from(text()?)),
                "key_env" => file.key_env = Some(text()?),
                "origin" => file.origin = Some(text()?),
                "checkpoint_events" => file.checkpoint_events = Some(count()?),
                "checkpoint_secs" => file.checkpoint_secs = Some(count()?),
                "git_dir" => file.git_dir = Some(PathBuf::from(text()?)),
                "git_remote" => file.git_remote = Some(text()?),
                "anchor_max_age_secs" => file.anchor_max_age_secs = Some(count()?),
                _ => anyhow::bail!(
                    "lockchain.{key}: unknown key (the keys are {})",
                    KEYS.join(", ")
                ),
            }
        }
        Ok(file)
    }
}

/// Returns the engine's lockchain from the `[lockchain]` table, with the data directory's
/// defaults; `None` when it is disabled. Reads or makes the key.
pub(crate) fn engine_config(
    file: &LockchainFile,
    data_dir: &Path,
) -> anyhow::Result<Option<LockchainConfig>> {
    if file.enabled == Some(false) {
        return Ok(None);
    }
    let origin = file
        .origin
        .clone()
        .unwrap_or_else(|| LockchainConfig::DEFAULT_ORIGIN.to_owned());
    if origin.trim().is_empty() || origin.contains('\n') {
        anyhow::bail!("lockchain.origin: must be one line of text, not empty");
    }
    let Some(signer) = signer(file, data_dir, &origin)? else {
        return Ok(None);
    };
    let mut config = LockchainConfig::new(signer);
    config.origin = origin;
    if let Some(n) = file.checkpoint_events {
        config.checkpoint_events = n;
    }
    if let Some(secs) = file.checkpoint_secs {
        if secs == 0 {
            anyhow::bail!("lockchain.checkpoint_secs: must be at least 1");
        }
        config.checkpoint_interval = Duration::from_secs(secs);
    }
    let git_dir = match &file.git_dir {
        Some(dir) if dir.as_os_str().is_empty() => None,
        Some(dir) => Some(dir.clone()),
        None => Some(data_dir.join(LOCKCHAIN_DIR).join(ANCHOR_DIR)),
    };
    match git_dir {
        Some(dir) => {
            let mut anchor = AnchorConfig::new(dir);
            anchor.remote = file.git_remote.clone().filter(|r| !r.trim().is_empty());
            if let Some(secs) = file.anchor_max_age_secs {
                anchor.max_age = Duration::from_secs(secs);
            }
            config.anchor = Some(anchor);
        }
        None if file.git_remote.is_some() => {
            anyhow::bail!("lockchain.git_remote: there is no anchor to push (git_dir is \"\")");
        }
        None => {}
    }
    Ok(Some(config))
}

/// Returns the signing key: from `key_env`, else `key_file`, else the data directory's,
/// generated when missing (`None`: missing, and the command only reads the log).
fn signer(file: &LockchainFile, data_dir: &Path, origin: &str) -> anyhow::Result<Option<Signer>> {
    if let Some(var) = &file.key_env {
        let text = std::env::var(var)
            .map_err(|_| anyhow::anyhow!("lockchain.key_env: the variable {var} is not set"))?;
        return Signer::from_key_text(text.trim_end())
            .map(Some)
            .map_err(|e| anyhow::anyhow!("lockchain.key_env: the key in {var}: {e}"));
    }
    if let Some(path) = &file.key_file {
        return read_key(path)
            .with_context(|| format!("lockchain.key_file: {}", path.display()))?
            .map(Some)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "lockchain.key_file: {}: no such file (leave key_file unset to have a key \
                     generated in {})",
                    path.display(),
                    data_dir.join(LOCKCHAIN_DIR).join(KEY_FILE).display()
                )
            });
    }
    let path = data_dir.join(LOCKCHAIN_DIR).join(KEY_FILE);
    let context = || format!("lockchain key {}", path.display());
    if let Some(signer) = read_key(&path).with_context(context)? {
        return Ok(Some(signer));
    }
    if file.read_only {
        return Ok(None);
    }
    let signer = Signer::generate(origin).map_err(|e| anyhow::anyhow!("{e}"))?;
    match write_key(&path, &signer).with_context(context)? {
        true => Ok(Some(signer)),
        // Another process made it first: its key is the log's.
        false => read_key(&path)
            .with_context(context)?
            .map(Some)
            .ok_or_else(|| anyhow::anyhow!("{}: made and gone again", context())),
    }
}

/// Reads a key file; `None` when there is none.
fn read_key(path: &Path) -> anyhow::Result<Option<Signer>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).context("cannot read it"),
    };
    Signer::from_key_text(text.trim_end())
        .map(Some)
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Writes a new key file with mode 0600; `false` when one exists already.
fn write_key(path: &Path, signer: &Signer) -> anyhow::Result<bool> {
    let dir = path.parent().unwrap_or(Path::new("."));
    create_private_dir(dir)?;
    let tmp = dir.join(format!(".key.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&tmp).and_then(|mut f| {
        use std::io::Write as _;
        f.write_all(signer.to_key_text().as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write {}", tmp.display()));
    }
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e).context("cannot create it"),
    }
}

/// Creates a directory (and its parents) whose last part only its owner may enter.
fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn file(text: &str) -> LockchainFile {
        LockchainFile::parse(text.parse::<toml::Table>().unwrap().into()).unwrap()
    }

    #[test]
    fn a_command_that_only_reads_the_log_makes_no_key_but_uses_the_one_there_is() {
        let tmp = tempfile::tempdir().unwrap();
        let reading = LockchainFile {
            read_only: true,
            ..LockchainFile::default()
        };
        assert!(engine_config(&reading, tmp.path()).unwrap().is_none());
        assert!(!tmp.path().join("lockchain").exists(), "no key made");
        let made = engine_config(&LockchainFile::default(), tmp.path())
            .unwrap()
            .unwrap();
        let read = engine_config(&reading, tmp.path()).unwrap().unwrap();
        assert_eq!(read.signer.verifier_key(), made.signer.verifier_key());
    }

    #[cfg(unix)]
    #[test]
    fn a_key_is_generated_once_with_mode_0600_and_read_again() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let config = engine_config(&LockchainFile::default(), tmp.path())
            .unwrap()
            .unwrap();
        let key = tmp.path().join("lockchain/key");
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        let dir_mode = std::fs::metadata(tmp.path().join("lockchain"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700, "{dir_mode:o}");
        assert!(
            std::fs::read_to_string(&key)
                .unwrap()
                .starts_with("PRIVATE+KEY+knhk.local/lockchain+")
        );
        assert_eq!(config.origin, LockchainConfig::DEFAULT_ORIGIN);
        assert_eq!(
            config.anchor.as_ref().map(|a| a.git_dir.clone()),
            Some(tmp.path().join("lockchain/anchor.git"))
        );
        // The next start reads the same key; nothing is left behind.
        let again = engine_config(&LockchainFile::default(), tmp.path())
            .unwrap()
            .unwrap();
        assert_eq!(again.signer.verifier_key(), config.signer.verifier_key());
        let names: Vec<_> = std::fs::read_dir(tmp.path().join("lockchain"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["key"]);
    }

    #[test]
    fn a_key_from_a_file_and_the_table_read_into_the_config() {
        let tmp = tempfile::tempdir().unwrap();
        let signer = Signer::generate("example.com/log").unwrap();
        let key_file = tmp.path().join("my.key");
        std::fs::write(&key_file, format!("{}\n", signer.to_key_text())).unwrap();
        let f = file(&format!(
            "key_file = {:?}\norigin = \"example.com/log\"\ncheckpoint_events = 5\n\
             checkpoint_secs = 2\ngit_dir = \"/srv/anchor\"\ngit_remote = \"origin\"\n\
             anchor_max_age_secs = 60\n",
            key_file.display().to_string()
        ));
        let config = engine_config(&f, tmp.path()).unwrap().unwrap();
        assert_eq!(config.signer.verifier_key(), signer.verifier_key());
        assert_eq!(config.origin, "example.com/log");
        assert_eq!(config.checkpoint_events, 5);
        assert_eq!(config.checkpoint_interval, Duration::from_secs(2));
        let anchor = config.anchor.unwrap();
        assert_eq!(anchor.git_dir, PathBuf::from("/srv/anchor"));
        assert_eq!(anchor.remote.as_deref(), Some("origin"));
        assert_eq!(anchor.max_age, Duration::from_secs(60));
        assert!(!tmp.path().join("lockchain").exists(), "no key generated");

        let f = file("key_file = \"/nowhere\"\ngit_dir = \"\"\nenabled = true\n");
        assert!(engine_config(&f, tmp.path()).is_err());
        std::fs::write(&key_file, signer.to_key_text()).unwrap();
        let f = file(&format!(
            "key_file = {:?}\ngit_dir = \"\"\n",
            key_file.display().to_string()
        ));
        assert_eq!(engine_config(&f, tmp.path()).unwrap().unwrap().anchor, None);

        assert_eq!(
            engine_config(&file("enabled = false\n"), tmp.path())
                .unwrap()
                .map(|c| c.origin),
            None
        );
    }

    #[test]
    fn bad_keys_and_values_are_refused_naming_the_key() {
        let tmp = tempfile::tempdir().unwrap();
        let e = LockchainFile::parse("colour = 1".parse::<toml::Table>().unwrap().into())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("lockchain.colour: unknown key (the keys are enabled, "),
            "{e}"
        );
        let e = LockchainFile::parse(
            "checkpoint_events = \"many\""
                .parse::<toml::Table>()
                .unwrap()
                .into(),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "lockchain.checkpoint_events: must be a whole number, 0 or more, not \"many\""
        );

        let missing = tmp.path().join("nokey");
        let f = file(&format!("key_file = {:?}\n", missing.display().to_string()));
        let e = format!("{:#}", engine_config(&f, tmp.path()).unwrap_err());
        assert!(
            e.starts_with(&format!(
                "lockchain.key_file: {}: no such file",
                missing.display()
            )),
            "{e}"
        );
        std::fs::write(&missing, "PRIVATE+KEY+x+00000000+AAAA\n").unwrap();
        let e = format!("{:#}", engine_config(&f, tmp.path()).unwrap_err());
        assert!(
            e.starts_with(&format!("lockchain.key_file: {}: ", missing.display())),
            "{e}"
        );
        let f = file("key_env = \"KNHK_TEST_NO_SUCH_VARIABLE_91c2\"\n");
        let e = engine_config(&f, tmp.path()).unwrap_err().to_string();
        assert_eq!(
            e,
            "lockchain.key_env: the variable KNHK_TEST_NO_SUCH_VARIABLE_91c2 is not set"
        );
        let e = engine_config(&file("checkpoint_secs = 0\n"), tmp.path())
            .unwrap_err()
            .to_string();
        assert_eq!(e, "lockchain.checkpoint_secs: must be at least 1");
    }
}
