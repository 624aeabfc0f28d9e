//! Snapshots: a case's state at one sequence number, encoded so that a case can be loaded
//! without folding its whole history, and restored from it.
//!
//! A snapshot names nets, tasks and conditions by their ids, never by the indexes a
//! `Workflow` gives them, so a snapshot read by a binary that indexes the same workflow
//! otherwise still restores, and one that does not fit the workflow is refused rather than
//! misread. It holds what the history determines and nothing derived from the workflow: the
//! history stays the truth, and a snapshot that does not restore is only a reason to fold the
//! history in full. Its `format` number changes whenever the encoding does.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::*;
use crate::ids::NetId;

/// A case's state after its event `seq`, encoded ([`Case::snapshot`], [`Case::restore`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseSnapshot {
    /// The encoding of `state`: [`CaseSnapshot::FORMAT`] for the snapshots this build writes.
    pub format: u32,
    /// The sequence number of the last event folded into the state.
    pub seq: u64,
    /// The state, as JSON text.
    pub state: String,
}

impl CaseSnapshot {
    /// The encoding this build writes and reads.
    pub const FORMAT: u32 = 1;
}

/// Why a snapshot does not restore.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// Written by a build with another encoding (a newer or an older one).
    #[error("snapshot format {found} is not the format this build reads ({known})")]
    UnknownFormat { found: u32, known: u32 },
    /// The state is not the JSON of a snapshot.
    #[error("snapshot does not decode: {0}")]
    Decode(String),
    /// The state names a net, task or condition the workflow does not have.
    #[error("snapshot does not fit its workflow: {0}")]
    Misfit(String),
}

/// The encoded state: a [`Case`] without its id and sequence number.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    status: CaseStatus,
    data: Map<String, Value>,
    nets: Vec<NetState>,
    items: Vec<ItemState>,
    timers: Vec<TimerEntry>,
    four_eyes: Vec<String>,
    failures: Option<FailuresState>,
    /// Kept events of persistent triggers; left out when there are none, so that a snapshot
    /// of a case without any encodes as before the field existed (the format is unchanged).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    kept: Vec<(String, Value)>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NetState {
    net: NetId,
    /// The marked conditions, with their tokens.
    marking: Vec<(ElementId, u32)>,
    /// The tasks that are not idle.
    slots: Vec<(ElementId, SlotState)>,
    /// (net instance, composite task, instance number) for a sub-net instance.
    parent: Option<(u32, ElementId, u32)>,
    live: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case", deny_unknown_fields)]
enum SlotState {
    Enabled {
        item: Option<WorkItemId>,
        timer: Option<TimerId>,
        held: bool,
    },
    Busy {
        started_seq: u64,
        /// Whether the task keeps its instances as a list (multiple instances), even of one.
        many: bool,
        instances: Vec<InstanceEntry>,
        timer: Option<TimerId>,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct InstanceEntry {
    item: Value,
    run: RunState,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case", deny_unknown_fields)]
enum RunState {
    /// What performs a running instance, once known: a work item, or a sub-net instance.
    Running {
        item_id: Option<WorkItemId>,
        net_instance: Option<u32>,
    },
    Completed {
        output: Value,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemState {
    id: WorkItemId,
    task: TaskRef,
    instance: u32,
    state: String,
    owner: Option<String>,
    /// The connector and idempotency key of a call; `None` for work offered to people.
    call: Option<(String, String)>,
    input: Value,
    since: Timestamp,
    offered_to: Option<Vec<String>>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TimerEntry {
    id: TimerId,
    task: TaskRef,
    fires_at: Timestamp,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FailuresState {
    incidents: Vec<IncidentState>,
    attempts: Vec<(TaskRef, u32)>,
    failure: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct IncidentState {
    task: TaskRef,
    reason: String,
    since: Timestamp,
    attempt: u32,
    started: bool,
    instances: Vec<Value>,
}

impl Case {
    /// Returns the case's state as a snapshot at its last event; `Error::Misfit` when the case
    /// does not fit `workflow`.
    pub fn snapshot(&self, workflow: &Workflow) -> Result<CaseSnapshot, Error> {
        let mut nets = Vec::with_capacity(self.nets.len());
        for net in self.nets.iter() {
            let def = workflow.net(net.net)?;
            let mut marking = Vec::new();
            for (p, &n) in net.marking.iter_enumerated() {
                if n > 0 {
                    marking.push((def.place_def(p)?.id.clone(), n));
                }
            }
            let mut slots = Vec::new();
            for (t, slot) in net.slots.iter_enumerated() {
                let state = match slot {
                    Slot::Idle => continue,
                    Slot::Enabled { item, timer, held } => SlotState::Enabled {
                        item: *item,
                        timer: *timer,
                        held: *held,
                    },
                    Slot::Busy(a) => SlotState::Busy {
                        started_seq: a.started_seq,
                        many: matches!(a.instances, Instances::Many(_)),
                        instances: a.instances.iter().map(instance_entry).collect(),
                        timer: a.timer,
                    },
                };
                slots.push((def.task_def(t)?.id.clone(), state));
            }
            let parent = match net.parent {
                None => None,
                Some((ni, t, i)) => {
                    let task = self.net_def(workflow, ni)?.task_def(t)?.id.clone();
                    Some((ni.raw(), task, i))
                }
            };
            nets.push(NetState {
                net: def.id.clone(),
                marking,
                slots,
                parent,
                live: net.live,
            });
        }
        let state = State {
            status: self.status,
            data: self.data.clone(),
            nets,
            items: self
                .items
                .iter()
                .map(|(id, w)| item_state(*id, w))
                .collect(),
            timers: self
                .timers
                .iter()
                .map(|(id, t)| TimerEntry {
                    id: *id,
                    task: t.task.clone(),
                    fires_at: t.fires_at,
                })
                .collect(),
            four_eyes: self.four_eyes.clone(),
            kept: self.kept.clone(),
            failures: self.failures.as_deref().map(|f| FailuresState {
                incidents: f
                    .incidents
                    .iter()
                    .map(|i| IncidentState {
                        task: i.task.clone(),
                        reason: i.reason.clone(),
                        since: i.since,
                        attempt: i.attempt,
                        started: i.started,
                        instances: i.instances.clone(),
                    })
                    .collect(),
                attempts: f.attempts.clone(),
                failure: f.failure.clone(),
            }),
        };
        // Plain data (maps with string keys): serializing it cannot fail, but an error is
        // still an error, not a panic.
        let state = serde_json::to_string(&state).map_err(|e| Error::Replay {
            seq: self.seq,
            why: format!("snapshot does not encode: {e}"),
        })?;
        Ok(CaseSnapshot {
            format: CaseSnapshot::FORMAT,
            seq: self.seq,
            state,
        })
    }

    /// Rebuilds case `id` of `workflow` from a snapshot: the case as it stood after event
    /// `snapshot.seq`, to which [`Case::fold`] adds the events after it. A snapshot of
    /// another format, one that does not decode or one that names what `workflow` does not
    /// have is refused, saying why.
    pub fn restore(
        workflow: &Workflow,
        id: CaseId,
        snapshot: &CaseSnapshot,
    ) -> Result<Case, SnapshotError> {
        if snapshot.format != CaseSnapshot::FORMAT {
            return Err(SnapshotError::UnknownFormat {
                found: snapshot.format,
                known: CaseSnapshot::FORMAT,
            });
        }
        let state: State = serde_json::from_str(&snapshot.state)
            .map_err(|e| SnapshotError::Decode(e.to_string()))?;
        let misfit = SnapshotError::Misfit;
        let mut case = Case::empty(id);
        case.seq = snapshot.seq;
        case.status = state.status;
        case.data = state.data;
        for net in &state.nets {
            let (ix, def) = workflow
                .nets
                .iter_enumerated()
                .find(|(_, d)| d.id == net.net)
                .ok_or_else(|| misfit(format!("no net {}", net.net)))?;
            case.new_net(workflow, ix, None);
            let inst = case
                .nets
                .last_mut()
                .ok_or_else(|| misfit("no net instance".to_owned()))?;
            inst.live = net.live;
            for (place, n) in &net.marking {
                let p = def
                    .place(place)
                    .ok_or_else(|| misfit(format!("no condition {place} in net {}", def.id)))?;
                if let Some(m) = inst.marking.get_mut(p) {
                    *m = *n;
                }
            }
            for (task, slot) in &net.slots {
                let t = def
                    .task(task)
                    .ok_or_else(|| misfit(format!("no task {task} in net {}", def.id)))?;
                let slot = match slot {
                    SlotState::Enabled { item, timer, held } => Slot::Enabled {
                        item: *item,
                        timer: *timer,
                        held: *held,
                    },
                    SlotState::Busy {
                        started_seq,
                        many,
                        instances,
                        timer,
                    } => {
                        let mut list: Vec<Instance> = instances.iter().map(instance_of).collect();
                        let instances = match (many, list.len()) {
                            (false, 1) => Instances::One(list.remove(0)),
                            (false, n) => {
                                return Err(misfit(format!("task {task} has {n} instances")));
                            }
                            (true, _) => Instances::Many(list),
                        };
                        Slot::Busy(Activation {
                            started_seq: *started_seq,
                            instances,
                            timer: *timer,
                        })
                    }
                };
                if let Some(s) = inst.slots.get_mut(t) {
                    *s = slot;
                }
            }
        }
        // Parents and sub-net units point at other net instances: resolved once all exist.
        let count = case.nets.len();
        let in_range = |ni: u32| (ni as usize) < count;
        for (i, net) in state.nets.iter().enumerate() {
            let Some((ni, task, n)) = &net.parent else {
                continue;
            };
            if !in_range(*ni) {
                return Err(misfit(format!("no net instance {ni}")));
            }
            let pix = InstIx::new(*ni);
            let t = case
                .net_def(workflow, pix)
                .ok()
                .and_then(|d| d.task(task))
                .ok_or_else(|| misfit(format!("no task {task} in net instance {ni}")))?;
            if let Some(inst) = case.nets.get_mut(InstIx::new(i as u32)) {
                inst.parent = Some((pix, t, *n));
            }
        }
        for inst in case.nets.iter() {
            for slot in inst.slots.iter() {
                let Slot::Busy(a) = slot else { continue };
                for i in a.instances.iter() {
                    if let InstanceState::Running(Some(Unit::Net(ni))) = i.state
                        && !in_range(ni.raw())
                    {
                        return Err(misfit(format!("no net instance {ni}")));
                    }
                }
            }
        }
        for item in state.items {
            if case.locate(workflow, &item.task).is_none() {
                return Err(misfit(format!(
                    "no task {} for a work item",
                    item.task.task
                )));
            }
            let state = match item.state.as_str() {
                "offered" => WorkItemState::Offered,
                "allocated" => WorkItemState::Allocated,
                "started" => WorkItemState::Started,
                "calling" => WorkItemState::Calling,
                other => return Err(misfit(format!("no work item state {other:?}"))),
            };
            let kind = match item.call {
                None => WorkItemKind::Human,
                Some((connector, idempotency_key)) => WorkItemKind::Call {
                    connector,
                    idempotency_key,
                },
            };
            case.items.insert(
                item.id,
                WorkItem {
                    task: item.task,
                    instance: item.instance,
                    state,
                    owner: item.owner,
                    kind,
                    input: item.input,
                    since: item.since,
                    offered_to: item.offered_to,
                },
            );
        }
        for timer in state.timers {
            if case.locate(workflow, &timer.task).is_none() {
                return Err(misfit(format!("no task {} for a timer", timer.task.task)));
            }
            case.timers.insert(
                timer.id,
                TimerState {
                    task: timer.task,
                    fires_at: timer.fires_at,
                },
            );
        }
        case.four_eyes = state.four_eyes;
        case.kept = state.kept;
        case.failures = state.failures.map(|f| {
            Box::new(Failures {
                incidents: f
                    .incidents
                    .into_iter()
                    .map(|i| Incident {
                        task: i.task,
                        reason: i.reason,
                        since: i.since,
                        attempt: i.attempt,
                        started: i.started,
                        instances: i.instances,
                    })
                    .collect(),
                attempts: f.attempts,
                failure: f.failure,
            })
        });
        Ok(case)
    }
}

fn instance_entry(i: &Instance) -> InstanceEntry {
    let running = |item_id, net_instance| RunState::Running {
        item_id,
        net_instance,
    };
    let run = match &i.state {
        InstanceState::Completed(out) => RunState::Completed {
            output: out.clone(),
        },
        InstanceState::Running(None) => running(None, None),
        InstanceState::Running(Some(Unit::Item(w))) => running(Some(*w), None),
        InstanceState::Running(Some(Unit::Net(ni))) => running(None, Some(ni.raw())),
    };
    InstanceEntry {
        item: i.item.clone(),
        run,
    }
}

fn instance_of(e: &InstanceEntry) -> Instance {
    let state = match &e.run {
        RunState::Completed { output } => InstanceState::Completed(output.clone()),
        RunState::Running {
            item_id: Some(w), ..
        } => InstanceState::Running(Some(Unit::Item(*w))),
        RunState::Running {
            item_id: None,
            net_instance: Some(ni),
        } => InstanceState::Running(Some(Unit::Net(InstIx::new(*ni)))),
        RunState::Running {
            item_id: None,
            net_instance: None,
        } => InstanceState::Running(None),
    };
    Instance {
        item: e.item.clone(),
        state,
    }
}

fn item_state(id: WorkItemId, w: &WorkItem) -> ItemState {
    ItemState {
        id,
        task: w.task.clone(),
        instance: w.instance,
        state: match w.state {
            WorkItemState::Offered => "offered",
            WorkItemState::Allocated => "allocated",
            WorkItemState::Started => "started",
            WorkItemState::Calling => "calling",
        }
        .to_owned(),
        owner: w.owner.clone(),
        call: match &w.kind {
            WorkItemKind::Human => None,
            WorkItemKind::Call {
                connector,
                idempotency_key,
            } => Some((connector.clone(), idempotency_key.clone())),
        },
        input: w.input.clone(),
        since: w.since,
        offered_to: w.offered_to.clone(),
    }
}
