//! Signed checkpoints of the tree head: the C2SP `tlog-checkpoint` body in a C2SP
//! `signed-note` with an Ed25519 signature, so that standard transparency-log tools check them.
//!
//! A checkpoint body is `origin\nsize\nbase64(root)\n` and optional extension lines. A signed
//! note is the body, a blank line, and signature lines `— <key name> <base64(key hash ||
//! signature)>\n` (an em dash U+2014 and a space first); the signature is Ed25519 over the
//! body's bytes, the key hash the first four bytes of SHA-256(`name || "\n" || 0x01 || public
//! key`), big-endian. Keys are written as Go's `golang.org/x/mod/sumdb/note` writes them:
//! `<name>+<8 hex of key hash>+<base64(0x01 || public key)>` for verifiers and
//! `PRIVATE+KEY+<name>+<hash>+<base64(0x01 || seed)>` for signers, so `go`'s tools and ours
//! read each other's keys and notes.
//!
//! Why verification is sound: a note passes only if it is well formed as a whole (UTF-8, no
//! control character but newlines, under [`MAX_NOTE_LEN`], every signature line well formed,
//! at most [`MAX_SIGNATURES`] of them) and carries at least one signature line under our key's
//! name, every one of which names our key hash and verifies (Ed25519, strict: no malleable
//! signatures, no weak keys) over exactly the text before the blank line. Lines of other
//! signers (witnesses) are checked for form and otherwise ignored. Only then is the body
//! parsed as a checkpoint, strictly.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::merkle::Hash;

/// The longest signed note read, in bytes: a checkpoint is a few hundred.
pub const MAX_NOTE_LEN: usize = 64 * 1024;
/// The most signature lines a note may carry (as Go's note package allows).
pub const MAX_SIGNATURES: usize = 100;
/// The signature algorithm byte of Ed25519 keys in signed notes.
pub const ALG_ED25519: u8 = 0x01;

/// Why a note or key does not parse or verify.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// The note, the checkpoint or the key text is not in its format.
    #[error("{0}")]
    Malformed(String),
    /// The note is well formed but not signed by the key as it should be.
    #[error("{0}")]
    BadSignature(String),
}

fn malformed(message: impl Into<String>) -> NoteError {
    NoteError::Malformed(message.into())
}

/// A tree head as a checkpoint body says it: `origin`, `size`, `root`, and extension lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin line: names the log (and the key that signs it).
    pub origin: String,
    /// The number of leaves of the tree.
    pub size: u64,
    /// The tree's head: the RFC 6962 hash of its leaves.
    pub root: Hash,
    /// Lines after the root, each non-empty, without their newline.
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// Returns the checkpoint body: `origin\nsize\nbase64(root)\n` and the extension lines.
    pub fn body(&self) -> String {
        let mut body = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root)
        );
        for line in &self.extensions {
            body.push_str(line);
            body.push('\n');
        }
        body
    }

    /// Parses a checkpoint body, strictly: a non-empty origin line, the size in decimal
    /// without leading zeros, the root as the standard base64 of 32 bytes, then non-empty
    /// extension lines; every line ends with a newline.
    pub fn parse(body: &str) -> Result<Checkpoint, NoteError> {
        let lines = body
            .strip_suffix('\n')
            .ok_or_else(|| malformed("the checkpoint does not end with a newline"))?;
        let mut lines = lines.split('\n');
        let origin = lines.next().unwrap_or_default();
        if origin.is_empty() {
            return Err(malformed("the checkpoint's origin line is empty"));
        }
        let size = lines
            .next()
            .ok_or_else(|| malformed("the checkpoint has no size line"))?;
        let size = parse_size(size)?;
        let root = lines
            .next()
            .ok_or_else(|| malformed("the checkpoint has no root hash line"))?;
        let root = decode_root(root)?;
        let mut extensions = Vec::new();
        for (i, line) in lines.enumerate() {
            if line.is_empty() {
                return Err(malformed(format!(
                    "the checkpoint's line {} is empty",
                    i + 4
                )));
            }
            extensions.push(line.to_owned());
        }
        let checkpoint = Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
            extensions,
        };
        checkpoint.check()?;
        Ok(checkpoint)
    }

    /// Checks that the body would parse back to this checkpoint.
    fn check(&self) -> Result<(), NoteError> {
        if self.origin.is_empty() {
            return Err(malformed("the checkpoint's origin is empty"));
        }
        if let Some(c) = self.origin.chars().find(|c| c.is_control()) {
            return Err(malformed(format!(
                "the checkpoint's origin holds the control character {c:?}"
            )));
        }
        for line in &self.extensions {
            if line.is_empty() {
                return Err(malformed("a checkpoint extension line is empty"));
            }
            if let Some(c) = line.chars().find(|c| c.is_control()) {
                return Err(malformed(format!(
                    "the checkpoint extension line {line:?} holds the control character {c:?}"
                )));
            }
        }
        Ok(())
    }
}

fn parse_size(text: &str) -> Result<u64, NoteError> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    if !canonical {
        return Err(malformed(format!(
            "the checkpoint's size {text:?} is not a decimal number without leading zeros"
        )));
    }
    text.parse()
        .map_err(|_| malformed(format!("the checkpoint's size {text} is too large")))
}

fn decode_root(text: &str) -> Result<Hash, NoteError> {
    let bytes = STANDARD.decode(text).map_err(|e| {
        malformed(format!(
            "the checkpoint's root hash {text:?} is not base64: {e}"
        ))
    })?;
    Hash::try_from(bytes.as_slice()).map_err(|_| {
        malformed(format!(
            "the checkpoint's root hash is {} bytes, not 32",
            bytes.len()
        ))
    })
}

/// Returns the key hash of a signed-note Ed25519 key: the first four bytes, big-endian, of
/// SHA-256(`name || "\n" || 0x01 || public key`).
pub fn key_hash(name: &str, public_key: &[u8; 32]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ALG_ED25519]);
    h.update(public_key);
    let digest = h.finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// Checks a key name: non-empty, no whitespace, no `+`, no control character.
fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() {
        return Err(malformed("the key name is empty"));
    }
    if name.contains('+') || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(malformed(format!(
            "the key name {name:?} holds a space, a control character or a '+'"
        )));
    }
    Ok(())
}

/// Decodes `base64(0x01 || 32 bytes)`, the key part of both key texts.
fn decode_key(text: &str, what: &str) -> Result<[u8; 32], NoteError> {
    let bytes = STANDARD
        .decode(text)
        .map_err(|e| malformed(format!("the {what} is not base64: {e}")))?;
    match bytes.split_first() {
        Some((&ALG_ED25519, key)) => <[u8; 32]>::try_from(key).map_err(|_| {
            malformed(format!(
                "the {what} is {} bytes, not 32 after the algorithm byte",
                key.len()
            ))
        }),
        Some((alg, _)) => Err(malformed(format!(
            "the {what} is of algorithm {alg:#04x}, not Ed25519 ({ALG_ED25519:#04x})"
        ))),
        None => Err(malformed(format!("the {what} is empty"))),
    }
}

fn parse_hash(text: &str) -> Result<u32, NoteError> {
    if text.len() != 8 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(malformed(format!(
            "the key hash {text:?} is not 8 hexadecimal digits"
        )));
    }
    u32::from_str_radix(text, 16)
        .map_err(|_| malformed(format!("the key hash {text:?} is not hexadecimal")))
}

/// The signing key of a log: an Ed25519 key with the note key name it signs as.
#[derive(Clone)]
pub struct Signer {
    name: String,
    key: SigningKey,
    hash: u32,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("name", &self.name)
            .field("hash", &format_args!("{:08x}", self.hash))
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// Returns the signer of key name `name` with this Ed25519 seed (the private key).
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Signer, NoteError> {
        check_name(name)?;
        let key = SigningKey::from_bytes(&seed);
        let hash = key_hash(name, key.verifying_key().as_bytes());
        Ok(Signer {
            name: name.to_owned(),
            key,
            hash,
        })
    }

    /// Returns a signer with a new random key (from the operating system's random source).
    pub fn generate(name: &str) -> Result<Signer, NoteError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)
            .map_err(|e| malformed(format!("no randomness for a new key: {e}")))?;
        Signer::from_seed(name, seed)
    }

    /// Reads a signer key text, `PRIVATE+KEY+<name>+<hash>+<base64(0x01 || seed)>` (one
    /// trailing newline allowed): the format Go's `note.GenerateKey` writes. The key hash must
    /// be that of the public key the seed gives.
    pub fn from_key_text(text: &str) -> Result<Signer, NoteError> {
        let text = text.strip_suffix('\n').unwrap_or(text);
        let rest = text
            .strip_prefix("PRIVATE+KEY+")
            .ok_or_else(|| malformed("the signer key does not start with PRIVATE+KEY+"))?;
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(hash), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(malformed(
                "the signer key is not PRIVATE+KEY+<name>+<hash>+<key>",
            ));
        };
        check_name(name)?;
        let hash = parse_hash(hash)?;
        let seed = decode_key(key, "signer key")?;
        let signer = Signer::from_seed(name, seed)?;
        if signer.hash != hash {
            return Err(malformed(format!(
                "the signer key's hash {hash:08x} is not its public key's, {:08x}",
                signer.hash
            )));
        }
        Ok(signer)
    }

    /// Returns the signer key text, `PRIVATE+KEY+<name>+<hash>+<base64(0x01 || seed)>`,
    /// without a newline: what the key file holds. It is the private key: keep it secret.
    pub fn to_key_text(&self) -> String {
        let mut key = Vec::with_capacity(33);
        key.push(ALG_ED25519);
        key.extend_from_slice(&self.key.to_bytes());
        format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            self.hash,
            STANDARD.encode(&key)
        )
    }

    /// Returns the key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Returns the private key's seed, to store it.
    pub fn seed(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// Returns the key hash that the signature lines carry.
    pub fn key_hash(&self) -> u32 {
        self.hash
    }

    /// Returns the Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// Returns the verifier key in the signed-note text form `name+hash+base64(0x01 || key)`.
    pub fn verifier_key(&self) -> String {
        self.verifier().to_string()
    }

    /// Returns the verifier of this key.
    pub fn verifier(&self) -> Verifier {
        Verifier {
            name: self.name.clone(),
            hash: self.hash,
            key: self.key.verifying_key(),
        }
    }

    /// Returns the signed note of `text` (which must end with a newline and hold no control
    /// character but newlines): the text, a blank line and this key's signature line.
    pub fn sign_note(&self, text: &str) -> Result<String, NoteError> {
        if !text.ends_with('\n') {
            return Err(malformed("a note's text must end with a newline"));
        }
        check_text(text)?;
        if text.len() + 200 > MAX_NOTE_LEN {
            return Err(malformed(format!(
                "the note's text is {} bytes, too long for a note of at most {MAX_NOTE_LEN}",
                text.len()
            )));
        }
        let signature = self.key.sign(text.as_bytes());
        let mut blob = Vec::with_capacity(68);
        blob.extend_from_slice(&self.hash.to_be_bytes());
        blob.extend_from_slice(&signature.to_bytes());
        Ok(format!(
            "{text}\n\u{2014} {} {}\n",
            self.name,
            STANDARD.encode(&blob)
        ))
    }

    /// Returns the signed note of `checkpoint`: its body, a blank line and the signature line.
    pub fn sign(&self, checkpoint: &Checkpoint) -> Result<String, NoteError> {
        checkpoint.check()?;
        self.sign_note(&checkpoint.body())
    }
}

/// Refuses control characters other than newlines (a signed note may hold none).
fn check_text(text: &str) -> Result<(), NoteError> {
    match text.char_indices().find(|&(_, c)| c < ' ' && c != '\n') {
        Some((at, c)) => Err(malformed(format!(
            "the note holds the control character {c:?} at byte {at}"
        ))),
        None => Ok(()),
    }
}

/// Checks signed notes against one verifier key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verifier {
    name: String,
    hash: u32,
    key: VerifyingKey,
}

impl std::fmt::Display for Verifier {
    /// Writes the verifier key text, `name+hash+base64(0x01 || key)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut key = Vec::with_capacity(33);
        key.push(ALG_ED25519);
        key.extend_from_slice(self.key.as_bytes());
        write!(
            f,
            "{}+{:08x}+{}",
            self.name,
            self.hash,
            STANDARD.encode(&key)
        )
    }
}

impl Verifier {
    /// Parses a verifier key (`name+hash+base64(0x01 || key)`; one trailing newline
    /// allowed). The hash must be that of the name and key.
    pub fn parse(vkey: &str) -> Result<Verifier, NoteError> {
        let vkey = vkey.strip_suffix('\n').unwrap_or(vkey);
        let mut parts = vkey.splitn(3, '+');
        let (Some(name), Some(hash), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(malformed(format!(
                "the verifier key {vkey:?} is not <name>+<hash>+<key>"
            )));
        };
        check_name(name)?;
        let hash = parse_hash(hash)?;
        let key = decode_key(key, "verifier key")?;
        let expected = key_hash(name, &key);
        if hash != expected {
            return Err(malformed(format!(
                "the verifier key's hash {hash:08x} is not that of its name and key, {expected:08x}"
            )));
        }
        let key = VerifyingKey::from_bytes(&key)
            .map_err(|_| malformed("the verifier key is not an Ed25519 public key"))?;
        Ok(Verifier {
            name: name.to_owned(),
            hash,
            key,
        })
    }

    /// Returns the key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Returns the key hash that the signature lines carry.
    pub fn key_hash(&self) -> u32 {
        self.hash
    }

    /// Returns the Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// Checks that `note` is a well-formed signed note carrying a valid signature by this key
    /// and returns its text (the part before the blank line, with its final newline).
    pub fn open<'n>(&self, note: &'n str) -> Result<&'n str, NoteError> {
        if note.len() > MAX_NOTE_LEN {
            return Err(malformed(format!(
                "the note is {} bytes, more than the limit of {MAX_NOTE_LEN}",
                note.len()
            )));
        }
        check_text(note)?;
        let split = note.rfind("\n\n").ok_or_else(|| {
            malformed("the note has no blank line between its text and its signatures")
        })?;
        let (text, signatures) = (&note[..split + 1], &note[split + 2..]);
        let signatures = signatures
            .strip_suffix('\n')
            .ok_or_else(|| malformed("the note's signature lines do not end with a newline"))?;
        if signatures.split('\n').count() > MAX_SIGNATURES {
            return Err(malformed(format!(
                "the note has more than {MAX_SIGNATURES} signature lines"
            )));
        }
        let mut ours = 0;
        for (i, line) in signatures.split('\n').enumerate() {
            let (name, hash, signature) = parse_signature_line(line, i + 1)?;
            if name != self.name {
                // Another signer's line (a witness): well formed, and not ours to check.
                continue;
            }
            if hash != self.hash {
                return Err(NoteError::BadSignature(format!(
                    "the signature by {name} names key hash {hash:08x}, the key's is {:08x}",
                    self.hash
                )));
            }
            let signature = Signature::from_slice(&signature).map_err(|_| {
                malformed(format!(
                    "the signature by {name} is {} bytes, not 64",
                    signature.len()
                ))
            })?;
            self.key
                .verify_strict(text.as_bytes(), &signature)
                .map_err(|_| {
                    NoteError::BadSignature(format!(
                        "the signature by {}+{:08x} does not verify: the note was changed or \
                         signed by another key",
                        self.name, self.hash
                    ))
                })?;
            ours += 1;
        }
        if ours == 0 {
            return Err(NoteError::BadSignature(format!(
                "the note carries no signature by key {}+{:08x}",
                self.name, self.hash
            )));
        }
        Ok(text)
    }

    /// Checks that `note` carries a valid signature by this key and returns the checkpoint
    /// its body says.
    pub fn verify(&self, note: &str) -> Result<Checkpoint, NoteError> {
        Checkpoint::parse(self.open(note)?)
    }
}

/// Splits a signature line `— <name> <base64(hash || signature)>` into the name, the key hash
/// and the signature bytes.
fn parse_signature_line(line: &str, number: usize) -> Result<(&str, u32, Vec<u8>), NoteError> {
    let rest = line.strip_prefix("\u{2014} ").ok_or_else(|| {
        malformed(format!(
            "signature line {number} does not start with an em dash and a space"
        ))
    })?;
    let (name, blob) = rest.split_once(' ').ok_or_else(|| {
        malformed(format!(
            "signature line {number} is not \"— <name> <signature>\""
        ))
    })?;
    check_name(name).map_err(|e| malformed(format!("signature line {number}: {e}")))?;
    let blob = STANDARD.decode(blob).map_err(|e| {
        malformed(format!(
            "signature line {number}: the signature is not base64: {e}"
        ))
    })?;
    if blob.len() < 5 {
        return Err(malformed(format!(
            "signature line {number}: the signature is {} bytes, too short",
            blob.len()
        )));
    }
    let hash = u32::from_be_bytes([blob[0], blob[1], blob[2], blob[3]]);
    Ok((name, hash, blob[4..].to_vec()))
}
