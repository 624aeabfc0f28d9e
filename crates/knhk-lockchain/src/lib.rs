//! The lockchain: a case history that cannot be changed unnoticed.
//!
//! Every history event has canonical bytes ([`canonical`]); their RFC 6962 leaf hashes are the
//! leaves of one append-only Merkle tree per store, kept in tiles of 256 hashes ([`tiles`]) that
//! the store writes in the same transaction as the events. Signed checkpoints of the tree head
//! ([`note`], the C2SP `tlog-checkpoint` and `signed-note` formats) are anchored in a git
//! repository ([`anchor`]). A receipt ([`receipt`]) proves one event's place in a signed tree;
//! a consistency proof ([`consistency`]) proves one signed tree a prefix of another;
//! [`verify`] checks a whole log offline, from the stored events themselves.
//!
//! The crate is pure: no async runtime, no network, no database. The store appends leaves with
//! [`tiles::Tail`], the engine signs and anchors, the CLI verifies. Only [`anchor`] touches
//! files (a git repository, blocking), and runs `git` to push.

pub mod anchor;
pub mod canonical;
pub mod consistency;
pub mod merkle;
pub mod note;
pub mod receipt;
pub mod tiles;
pub mod verify;

pub use merkle::{Hash, NodeSource, ProofError};
pub use tiles::{Appended, LeafRef, Segment, Tail, Tile, TileId, TileSet};
