//! Snapshots against replay: a case restored from a snapshot taken after any prefix of a
//! random history, with the rest of the history folded, is the case the whole history
//! replays to.

use knhk_core::*;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use super::driver::{self, Driver};
use super::generator::{Generated, random_workflow};

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("KNHK_PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(300),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Random nets under random inputs: a snapshot at every prefix of the history, restored
    /// and caught up with the events after it, equals the replay of the whole history.
    #[test]
    fn a_snapshot_at_any_prefix_restores_to_the_replay(
        generated in random_workflow(),
        acts in vec((0u8..100, any::<u16>(), any::<u16>()), 1..=40),
    ) {
        let Generated { spec, data } = generated;
        let wf = Workflow::new(spec);
        prop_assume!(wf.is_ok(), "refused: {:?}", wf.err());
        let wf = wf.map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut d = Driver::start(&wf, data)?;
        for (kind, a, b) in acts {
            if driver::ended(d.case()) {
                break;
            }
            let (input, refused) = d.choose(kind, a as usize, b as usize);
            d.apply(input, refused, 1 + i64::from(a % 500))?;
        }
        let id = d.case().id();
        let events = d.events().to_vec();
        let whole = Case::replay(&wf, id, &events).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&whole, d.case());
        for k in 1..=events.len() {
            let (before, after) = events.split_at(k);
            let prefix = Case::replay(&wf, id, before).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let snapshot = prefix.snapshot(&wf).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(snapshot.seq, k as u64);
            let mut restored = Case::restore(&wf, id, &snapshot)
                .map_err(|e| TestCaseError::fail(format!("at {k}: {e}")))?;
            prop_assert_eq!(&restored, &prefix, "restored at {}", k);
            restored.fold(&wf, after).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&restored, &whole, "snapshot at {} then the rest", k);
        }
    }
}
