//! The commit rules shared by every backend: optimistic concurrency and a gapless history.

use knhk_core::Timestamp;

use crate::error::Error;
use crate::record::Commit;

/// Checks a commit's fencing ([`crate::Fencing`]): `lease` is when the lease of the node
/// holding `fencing.node` expires (`None`: no node holds that token), `owner` the stored
/// owner of the case. Called before anything of the commit is written.
pub(crate) fn check_fencing(
    c: &Commit,
    lease: Option<Timestamp>,
    owner: Option<u64>,
) -> Result<(), Error> {
    let Some(f) = c.fencing else {
        return Ok(());
    };
    if lease.is_none_or(|expires_at| expires_at <= c.case.updated_at) {
        return Err(Error::LeaseExpired { fence: f.node });
    }
    if let Some(fence) = f.owned_by
        && owner != Some(fence)
    {
        return Err(Error::Fenced {
            case: c.case.id,
            fence,
            owner,
        });
    }
    Ok(())
}

/// Checks a commit against the stored version of its case (`None`: no such case), after
/// its lockchain leaves (none, or one per event).
pub(crate) fn check(c: &Commit, stored: Option<u64>) -> Result<(), Error> {
    crate::lockchain::check_leaves(c)?;
    if stored != c.expected_version {
        return Err(Error::Conflict {
            case: c.case.id,
            expected: c.expected_version,
            actual: stored,
        });
    }
    let base = c.expected_version.unwrap_or(0);
    let mut next = base;
    for e in &c.events {
        next = next.checked_add(1).ok_or(Error::Gap {
            case: c.case.id,
            expected_seq: u64::MAX,
            got: e.seq,
        })?;
        if e.seq != next {
            return Err(Error::Gap {
                case: c.case.id,
                expected_seq: next,
                got: e.seq,
            });
        }
    }
    // The snapshot's version names the last event it includes; anything else would make the
    // next commit's concurrency check compare against a seq that is not in the history.
    if c.case.version != next {
        return Err(Error::Gap {
            case: c.case.id,
            expected_seq: next,
            got: c.case.version,
        });
    }
    // A snapshot is of a state the history reaches, never of one ahead of it.
    if let Some(snapshot) = &c.snapshot
        && (snapshot.seq == 0 || snapshot.seq > next)
    {
        return Err(Error::Gap {
            case: c.case.id,
            expected_seq: next,
            got: snapshot.seq,
        });
    }
    Ok(())
}
