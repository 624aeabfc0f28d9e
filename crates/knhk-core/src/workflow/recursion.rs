//! Recursion through sub-nets that never reaches an atomic task: composite task B's net starts
//! composite task C at once, whose net starts B again. Each start makes a new net instance and
//! nothing ever waits, so a case would only grow. YAWL's verifier refuses such a definition
//! ("plays a part in an infinite loop/recursion in which no work items may be created"), and so
//! does validation here, naming the tasks and nets of the cycle.
//!
//! A composite task counts as started at once when it consumes its net's input condition and
//! that token alone enables it (an AND join with other inputs waits; a delay timer holds it).
//! Recursion through atomic tasks, even empty ones, is left to the sub-net depth bound of
//! [`crate::ApplyOptions`] at run time.

use super::{INPUT, NetDef, violation};
use crate::error::Violation;
use crate::ids::ElementId;
use crate::index::{Idx, IxVec, NetIx};
use crate::model::{ControlType, TimerAction};

/// Adds a violation for every cycle of sub-nets that start each other without an atomic task.
pub(super) fn check(nets: &IxVec<NetIx, NetDef>, v: &mut Vec<Violation>) {
    // Per net, the composite tasks its input condition starts at once, with their sub-nets.
    let starts: Vec<Vec<(&ElementId, usize)>> = nets
        .iter()
        .map(|net| {
            net.tasks
                .iter()
                .filter_map(|t| {
                    let sub = t.subnet?;
                    let alone = t.join != ControlType::And || t.inputs.len() == 1;
                    let held = t.timer.is_some_and(|tm| tm.action == TimerAction::Delay);
                    (t.inputs.contains(&INPUT) && alone && !held)
                        .then_some((&t.id, sub.raw() as usize))
                })
                .collect()
        })
        .collect();
    let name = |n: usize| {
        nets.get(NetIx::new(n as u32))
            .map_or_else(String::new, |net| net.id.to_string())
    };
    // Depth-first, without recursion: 0 not seen, 1 on the current path, 2 done.
    let mut state = vec![0u8; starts.len()];
    let mut cycles: Vec<Vec<usize>> = Vec::new();
    for root in 0..starts.len() {
        if state.get(root) != Some(&0) {
            continue;
        }
        if let Some(s) = state.get_mut(root) {
            *s = 1;
        }
        // The path: each net with the next of its edges to follow, and the task that led on.
        let mut path: Vec<(usize, usize)> = vec![(root, 0)];
        let mut via: Vec<&ElementId> = Vec::new();
        while let Some((net, next)) = path.last_mut() {
            let net = *net;
            let Some(&(task, sub)) = starts.get(net).and_then(|edges| edges.get(*next)) else {
                if let Some(s) = state.get_mut(net) {
                    *s = 2;
                }
                path.pop();
                via.pop();
                continue;
            };
            *next += 1;
            match state.get(sub) {
                Some(0) => {
                    if let Some(s) = state.get_mut(sub) {
                        *s = 1;
                    }
                    path.push((sub, 0));
                    via.push(task);
                }
                Some(1) => {
                    let Some(from) = path.iter().position(|&(n, _)| n == sub) else {
                        continue;
                    };
                    let nets_of_cycle: Vec<usize> =
                        path.iter().skip(from).map(|&(n, _)| n).collect();
                    let mut key = nets_of_cycle.clone();
                    key.sort_unstable();
                    if cycles.contains(&key) {
                        continue;
                    }
                    cycles.push(key);
                    let tasks: Vec<&ElementId> =
                        via.iter().skip(from).copied().chain([task]).collect();
                    // Task i lies in net i of the cycle and starts net i + 1; the last starts
                    // the first again.
                    let mut said = String::new();
                    for (i, (&n, t)) in nets_of_cycle.iter().zip(&tasks).enumerate() {
                        let started = nets_of_cycle.get(i + 1).copied().unwrap_or(sub);
                        let again = if i + 1 == tasks.len() { " again" } else { "" };
                        said.push_str(&if i == 0 {
                            format!(
                                "composite task {t} of net {} starts net {}{again}",
                                name(n),
                                name(started)
                            )
                        } else {
                            format!(
                                ", whose composite task {t} starts net {}{again}",
                                name(started)
                            )
                        });
                    }
                    let first = tasks.first().map_or_else(String::new, |t| t.to_string());
                    violation(
                        v,
                        &first,
                        format!(
                            "{said} without any atomic task on the way: a recursion that never \
                             ends"
                        ),
                    );
                }
                _ => {}
            }
        }
    }
}
