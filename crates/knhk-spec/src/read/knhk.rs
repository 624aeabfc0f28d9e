//! Reads the knhk extension terms of a task: what performs its work (connector, roles or
//! trigger), its data mappings, runtime hints and multiple-instance extras.

use std::collections::BTreeMap;

use knhk_core::model::{
    Allocation, ConnectorBinding, HumanBinding, RuntimeHints, Task, TaskBinding, TimerAction,
    TriggerKind,
};

use crate::graph::Node;
use crate::read::cx::{Cx, Owner};
use crate::vocab::{KNHK, knhk};

/// Reads the knhk terms on `node` into `task`. Runtime hints already set (from legacy terms)
/// conflict with the knhk spelling of the same hint.
pub(crate) fn read_task_extension(cx: &mut Cx<'_>, node: &Node, owner: &Owner, task: &mut Task) {
    task.binding = read_binding(cx, node, owner);
    task.input_mapping = cx.cel(node, &knhk("inputMapping"), owner);
    task.output_mapping = cx.cel(node, &knhk("outputMapping"), owner);
    read_runtime(cx, node, owner, &mut task.runtime);

    let split = cx.cel(node, &knhk("splitExpression"), owner);
    let item = cx.literal(node, &knhk("itemVariable"), owner);
    let join = cx.literal(node, &knhk("joinVariable"), owner);
    match task.multiple_instance.as_mut() {
        Some(mi) => {
            mi.split = split;
            if let Some(item) = item {
                mi.item_variable = item;
            }
            mi.join_variable = join;
        }
        None => {
            if split.is_some() || item.is_some() || join.is_some() {
                cx.problem(
                    owner,
                    "knhk:splitExpression, knhk:itemVariable and knhk:joinVariable only apply to a multiple-instance task",
                );
            }
        }
    }
}

fn read_binding(cx: &mut Cx<'_>, node: &Node, owner: &Owner) -> TaskBinding {
    let connector = cx.literal(node, &knhk("connector"), owner);
    let roles = cx.literals(node, &knhk("role"), owner);
    let trigger = cx.literal(node, &knhk("trigger"), owner);
    let trigger_kind = cx.literal(node, &knhk("triggerKind"), owner);
    let settings = read_settings(cx, node, owner);
    let allocation = cx.choice(
        node,
        &knhk("allocation"),
        &[KNHK],
        &[
            ("RoleOffer", Allocation::RoleOffer),
            ("RoundRobin", Allocation::RoundRobin),
            ("ShortestQueue", Allocation::ShortestQueue),
        ],
        owner,
    );
    let four_eyes = cx.boolean(node, &knhk("fourEyes"), owner);
    let at_runtime = cx.boolean(node, &knhk("distributedAtRuntime"), owner);

    let kinds = [
        connector
            .is_some()
            .then_some("a connector (knhk:connector)"),
        (!roles.is_empty()).then_some("roles (knhk:role)"),
        trigger.is_some().then_some("a trigger (knhk:trigger)"),
    ];
    let given: Vec<&str> = kinds.iter().flatten().copied().collect();
    if given.len() > 1 {
        cx.problem(
            owner,
            format!(
                "a task is performed one way only, but this one has {}",
                given.join(" and ")
            ),
        );
        return TaskBinding::Empty;
    }
    if connector.is_none() && !settings.is_empty() {
        cx.problem(owner, "knhk:setting without knhk:connector");
    }
    if roles.is_empty() && at_runtime != Some(true) && (allocation.is_some() || four_eyes.is_some())
    {
        cx.problem(owner, "knhk:allocation and knhk:fourEyes need knhk:role");
    }
    if at_runtime == Some(true) && given.len() == 1 && roles.is_empty() {
        cx.problem(
            owner,
            "knhk:distributedAtRuntime is for a human task; this one has another binding",
        );
    }
    if at_runtime == Some(true) && given.is_empty() {
        // The administrators' queue: the roles given, else the configured one.
        return TaskBinding::Human(HumanBinding {
            roles: vec![cx.admin_role.clone()],
            allocation: allocation.unwrap_or(Allocation::RoleOffer),
            four_eyes: four_eyes.unwrap_or(false),
            distributed_at_runtime: true,
        });
    }
    if let Some(connector) = connector {
        return TaskBinding::Connector(ConnectorBinding {
            connector,
            settings,
        });
    }
    if !roles.is_empty() {
        return TaskBinding::Human(HumanBinding {
            roles,
            allocation: allocation.unwrap_or(Allocation::RoleOffer),
            four_eyes: four_eyes.unwrap_or(false),
            distributed_at_runtime: at_runtime.unwrap_or(false),
        });
    }
    let trigger_kind = match trigger_kind.as_deref() {
        None | Some("transient") => TriggerKind::Transient,
        Some("persistent") => TriggerKind::Persistent,
        Some(other) => {
            cx.problem(
                owner,
                format!("knhk:triggerKind is \"transient\" or \"persistent\", not {other:?}"),
            );
            TriggerKind::Transient
        }
    };
    if let Some(event) = trigger {
        return TaskBinding::Trigger {
            event,
            trigger_kind,
        };
    }
    if trigger_kind != TriggerKind::Transient {
        cx.problem(owner, "knhk:triggerKind without knhk:trigger");
    }
    TaskBinding::Empty
}

fn read_settings(cx: &mut Cx<'_>, node: &Node, owner: &Owner) -> BTreeMap<String, String> {
    let mut settings = BTreeMap::new();
    for setting in cx.nodes(node, &knhk("setting"), owner) {
        let key = cx.literal(&setting, &knhk("key"), owner);
        let value = cx.literal(&setting, &knhk("value"), owner);
        match (key, value) {
            (Some(key), Some(value)) => {
                if settings.insert(key.clone(), value).is_some() {
                    cx.problem(owner, format!("connector setting {key:?} is given twice"));
                }
            }
            _ => cx.problem(
                owner,
                "a knhk:setting needs one knhk:key and one knhk:value",
            ),
        }
    }
    settings
}

fn read_runtime(cx: &mut Cx<'_>, node: &Node, owner: &Owner, runtime: &mut RuntimeHints) {
    if let Some(n) = cx.number::<u32>(node, &knhk("maxAttempts"), owner) {
        if runtime.max_attempts.is_some() {
            cx.problem(owner, "has both yawl:maxRetries and knhk:maxAttempts");
        }
        runtime.max_attempts = Some(n);
    }
    if let Some(n) = cx.number::<u64>(node, &knhk("timeoutMs"), owner) {
        if runtime.timeout_ms.is_some() {
            cx.problem(owner, "has both yawl:timeout and knhk:timeoutMs");
        }
        runtime.timeout_ms = Some(n);
    }
    runtime.backoff_ms = cx.number::<u64>(node, &knhk("backoffMs"), owner);
    runtime.slo_class = cx.literal(node, &knhk("sloClass"), owner);
}

/// Reads `knhk:timerAction` on a timer node (default: expire).
pub(crate) fn read_timer_action(cx: &mut Cx<'_>, node: &Node, owner: &Owner) -> TimerAction {
    cx.choice(
        node,
        &knhk("timerAction"),
        &[KNHK],
        &[
            ("Expire", TimerAction::Expire),
            ("Delay", TimerAction::Delay),
        ],
        owner,
    )
    .unwrap_or(TimerAction::Expire)
}
