//! OR-split/OR-join blocks for the OR-join property: nested blocks drawn by proptest, built
//! into tasks, and the check that each merge fired once, after every chosen branch and no other.

use std::collections::BTreeSet;

use knhk_core::model::ControlType::Or;
use knhk_core::model::*;
use knhk_core::*;
use proptest::collection::vec;
use proptest::prelude::*;

use super::{Check, LOOP_GUARD, flow, human_binding};

#[derive(Clone, Debug)]
pub(super) enum Elem {
    /// A task; a looping one runs again while the loop counter allows.
    Task {
        human: bool,
        looping: bool,
    },
    Block(Block),
}

#[derive(Clone, Debug)]
pub(super) struct Block {
    branches: Vec<Vec<Elem>>,
    guards: Vec<u8>,
    default: u8,
    default_guard: Option<u8>,
}

const OR_GUARDS: [&str; 8] = ["b0", "b1", "b2", "b3", "!b0", "b1 && b2", "false", "true"];

fn elem(depth: u32) -> BoxedStrategy<Elem> {
    let task = (any::<bool>(), prop::bool::weighted(0.2))
        .prop_map(|(human, looping)| Elem::Task { human, looping });
    if depth == 0 {
        task.boxed()
    } else {
        prop_oneof![3 => task, 1 => block(depth - 1).prop_map(Elem::Block)].boxed()
    }
}

pub(super) fn block(depth: u32) -> BoxedStrategy<Block> {
    (
        vec(vec(elem(depth), 0..=2), 2..=4),
        vec(0u8..8, 4),
        0u8..4,
        prop::option::of(0u8..8),
    )
        .prop_map(|(branches, guards, default, default_guard)| Block {
            branches,
            guards,
            default,
            default_guard,
        })
        .boxed()
}

/// Builds OR blocks into tasks and remembers, per block, its split, merge and what each
/// branch holds.
#[derive(Default)]
pub(super) struct OrNet {
    pub(super) tasks: Vec<Task>,
    next: usize,
    blocks: Vec<BlockInfo>,
}

struct BlockInfo {
    split: String,
    merge: String,
    /// (condition the split marks for the branch, every task inside the branch).
    branches: Vec<(String, BTreeSet<String>)>,
}

impl OrNet {
    fn id(&mut self, p: &str) -> String {
        self.next += 1;
        format!("{p}{}", self.next)
    }

    /// Builds a sequence ending in `next` and returns its entry and the tasks in it.
    fn seq(&mut self, elems: &[Elem], next: &str) -> (String, BTreeSet<String>) {
        let mut entry = next.to_string();
        let first = self.tasks.len();
        for e in elems.iter().rev() {
            entry = match e {
                Elem::Task { human, looping } => {
                    let id = self.id("t");
                    let mut t = Task {
                        flows: vec![flow(&entry)],
                        ..Task::empty(id.as_str())
                    };
                    if *looping {
                        t.flows = vec![
                            Flow {
                                predicate: Some(Expression::cel(LOOP_GUARD)),
                                ..flow(&id)
                            },
                            Flow {
                                is_default: true,
                                ..flow(&entry)
                            },
                        ];
                        t.output_mapping = Some(Expression::cel("{'loops': loops + 1}"));
                    }
                    if *human {
                        t.binding = human_binding(false);
                    }
                    self.tasks.push(t);
                    id
                }
                Elem::Block(b) => self.block(b, &entry),
            };
        }
        let inside = self.tasks[first..]
            .iter()
            .map(|t| t.id.to_string())
            .collect();
        (entry, inside)
    }

    pub(super) fn block(&mut self, b: &Block, next: &str) -> String {
        let split = self.id("s");
        let merge = self.id("m");
        self.tasks.push(Task {
            join: Or,
            flows: vec![flow(next)],
            ..Task::empty(merge.as_str())
        });
        let mut flows = Vec::new();
        let mut branches = Vec::new();
        let mut direct = false;
        let d = b.default as usize % b.branches.len();
        for (k, elems) in b.branches.iter().enumerate() {
            // Two empty branches would be two flows from the split to the merge.
            let (entry, inside) = if elems.is_empty() && direct {
                let filler = Elem::Task {
                    human: false,
                    looping: false,
                };
                self.seq(&[filler], &merge)
            } else {
                direct |= elems.is_empty();
                self.seq(elems, &merge)
            };
            let guard = |g: u8| Expression::cel(OR_GUARDS[g as usize % OR_GUARDS.len()]);
            flows.push(if k == d {
                Flow {
                    is_default: true,
                    predicate: b.default_guard.map(guard),
                    ..flow(&entry)
                }
            } else {
                Flow {
                    predicate: Some(guard(b.guards[k % b.guards.len()])),
                    ..flow(&entry)
                }
            });
            branches.push((format!("{split}__{entry}"), inside));
        }
        self.tasks.push(Task {
            split: Or,
            flows,
            ..Task::empty(split.as_str())
        });
        self.blocks.push(BlockInfo {
            split: split.clone(),
            merge,
            branches,
        });
        split
    }

    pub(super) fn check(&self, events: &[Event]) -> Check {
        let completions = |id: &str| -> Vec<(usize, &Vec<ElementId>)> {
            events
                .iter()
                .enumerate()
                .filter_map(|(i, e)| match &e.kind {
                    EventKind::TaskCompleted { task, produced } if task.task.as_str() == id => {
                        Some((i, produced))
                    }
                    _ => None,
                })
                .collect()
        };
        for blk in &self.blocks {
            let splits = completions(&blk.split);
            let merges = completions(&blk.merge);
            prop_assert!(splits.len() <= 1);
            prop_assert_eq!(
                merges.len(),
                splits.len(),
                "{} fired {} times",
                blk.merge,
                merges.len()
            );
            let Some((_, produced)) = splits.first() else {
                continue;
            };
            let merged_at = merges.first().map_or(0, |m| m.0);
            for (cond, inside) in &blk.branches {
                let chosen = produced.iter().any(|c| c.as_str() == cond);
                let entry = cond
                    .strip_prefix(&format!("{}__", blk.split))
                    .unwrap_or_default();
                if chosen && entry != blk.merge {
                    let runs = completions(entry).len();
                    prop_assert!(runs >= 1, "chosen branch {} did not run", entry);
                }
                for t in inside {
                    let done = completions(t);
                    if !chosen {
                        prop_assert!(done.is_empty(), "{} ran in a branch not chosen", t);
                    }
                    for (at, _) in done {
                        prop_assert!(at < merged_at, "{} merged before {} finished", blk.merge, t);
                    }
                }
            }
        }
        Ok(())
    }
}
