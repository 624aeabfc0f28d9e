//! Reads one YAWL XML task: join and split, cancellation set, what performs it (a sub-net, a
//! service, or people through resourcing) and its timer.

use knhk_core::model::{
    Allocation, ControlType, HumanBinding, Task, TaskBinding, TaskTimer, TimerAction, TimerTrigger,
};
use knhk_core::{ElementId, NetId};
use roxmltree::Node;

use crate::xml::Decomposition;
use crate::xml::cx::{Cx, Loc, text};
use crate::xml::multiple_instance;
use crate::xml::net::{Scope, flows};

const TASK_CHILDREN: &[&str] = &[
    "name",
    "documentation",
    "flowsInto",
    "join",
    "split",
    "removesTokens",
    "removesTokensFromFlow",
    "startingMappings",
    "completedMappings",
    "enablementMappings",
    "timer",
    "resourcing",
    "customForm",
    "configuration",
    "defaultConfiguration",
    "decomposesTo",
    "minimum",
    "maximum",
    "threshold",
    "creationMode",
    "miDataInput",
    "miDataOutput",
];

/// Reads the task `node` with id `id`.
pub(crate) fn read_task(cx: &mut Cx, scope: &Scope<'_>, node: Node<'_, '_>, id: &str) -> Task {
    let loc = cx.loc(id);
    cx.only_known(node, TASK_CHILDREN, &loc);
    let mut task = Task::empty(id);
    task.name = cx.child_text(node, "name", &loc);
    task.flows = flows(cx, scope, node, &loc);
    task.join = control_type(cx, node, "join", &loc);
    task.split = control_type(cx, node, "split", &loc);
    for removes in cx.children(node, "removesTokens").collect::<Vec<_>>() {
        let Some(target) = removes
            .attribute("id")
            .map(str::trim)
            .filter(|t| !t.is_empty())
        else {
            cx.problem(&loc, "a <removesTokens> has no id attribute");
            continue;
        };
        if let Some(target) =
            scope.resolve(cx, target, "the cancellation set (<removesTokens>)", &loc)
            && !task.cancellation_set.contains(&target)
        {
            task.cancellation_set.push(target);
        }
    }
    // The implicit condition of a flow between two tasks: knhk names it `<from>__<to>`.
    for removes in cx
        .children(node, "removesTokensFromFlow")
        .collect::<Vec<_>>()
    {
        cx.only_known(removes, &["flowSource", "flowDestination"], &loc);
        let end = |cx: &mut Cx, name: &str| {
            let id = cx
                .child(removes, name, &loc)
                .and_then(|n| n.attribute("id"))
                .map(str::trim)
                .filter(|i| !i.is_empty());
            if id.is_none() {
                cx.problem(
                    &loc,
                    format!("a <removesTokensFromFlow> has no <{name} id=\"...\">"),
                );
            }
            id.and_then(|id| {
                scope.resolve(
                    cx,
                    id,
                    "the cancellation set (<removesTokensFromFlow>)",
                    &loc,
                )
            })
        };
        let (Some(from), Some(to)) = (end(cx, "flowSource"), end(cx, "flowDestination")) else {
            continue;
        };
        let implicit = ElementId::new(format!("{from}__{to}"));
        if !task.cancellation_set.contains(&implicit) {
            task.cancellation_set.push(implicit);
        }
    }
    task.multiple_instance = multiple_instance::read(cx, node, &loc);

    let decomposes_to = cx
        .child(node, "decomposesTo", &loc)
        .and_then(|d| d.attribute("id"))
        .map(str::trim);
    match decomposes_to {
        None => {}
        Some(did) => match scope.decompositions.get(did) {
            Some(Decomposition::Net) => task.decomposition = Some(NetId::new(did)),
            // A YAWL custom service or codelet performs the task; knhk runs it as an empty task.
            Some(Decomposition::Gateway(g)) if g.automated => {}
            Some(Decomposition::Gateway(_)) => task.binding = human(cx, node, &loc),
            None => cx.problem(
                &loc,
                format!("<decomposesTo> refers to {did:?}, which is no decomposition of the specification"),
            ),
        },
    }
    if let Some(timer) = cx.child(node, "timer", &loc) {
        task.timer = self::timer(cx, timer, decomposes_to.is_none(), &loc);
    }
    task
}

/// Reads `<join code=".."/>` or `<split code=".."/>` (XOR when absent).
fn control_type(cx: &mut Cx, node: Node<'_, '_>, name: &str, loc: &Loc) -> ControlType {
    let Some(element) = cx.child(node, name, loc) else {
        return ControlType::Xor;
    };
    match element.attribute("code").map(str::trim) {
        Some("and") => ControlType::And,
        Some("xor") => ControlType::Xor,
        Some("or") => ControlType::Or,
        Some(other) => {
            cx.problem(
                loc,
                format!("<{name}> code must be and, or or xor, not {other:?}"),
            );
            ControlType::Xor
        }
        None => {
            cx.problem(loc, format!("<{name}> has no code attribute"));
            ControlType::Xor
        }
    }
}

/// Reads the resourcing of a manual task: the roles its work item is offered to, and how it is
/// allocated. What would narrow or redirect the offer in ways knhk cannot follow is refused.
/// An offer the definition leaves to an administrator (no resourcing, as in Beta files, an
/// offer initiated by the user with no role, or a system offer to no one) goes to the
/// administrators' queue.
fn human(cx: &mut Cx, node: Node<'_, '_>, loc: &Loc) -> TaskBinding {
    let Some(resourcing) = cx.child(node, "resourcing", loc) else {
        return at_runtime(cx, loc, "it has no <resourcing>");
    };
    cx.only_known(
        resourcing,
        &["offer", "allocate", "start", "secondary", "privileges"],
        loc,
    );
    let mut roles: Vec<String> = Vec::new();
    let offer = cx.child(resourcing, "offer", loc);
    // YAWL's default initiator is the user: an administrator distributes the work item.
    let by_system = offer
        .and_then(|o| o.attribute("initiator"))
        .is_some_and(|i| i.trim() == "system");
    if let Some(offer) = offer {
        cx.only_known(offer, &["distributionSet", "familiarParticipant"], loc);
        if cx.children(offer, "familiarParticipant").next().is_some() {
            cx.problem(
                loc,
                "offers its work item to whoever did another task (<familiarParticipant>), which knhk does not support",
            );
        }
        if let Some(set) = cx.child(offer, "distributionSet", loc) {
            cx.only_known(set, &["initialSet", "filters", "constraints"], loc);
            for narrowing in ["filters", "constraints"] {
                if cx
                    .children(set, narrowing)
                    .any(|n| n.children().any(|c| c.is_element()))
                {
                    cx.problem(
                        loc,
                        format!("narrows who is offered its work item (<{narrowing}>), which knhk does not support"),
                    );
                }
            }
            if let Some(initial) = cx.child(set, "initialSet", loc) {
                cx.only_known(initial, &["participant", "role", "param"], loc);
                if cx.children(initial, "participant").next().is_some() {
                    cx.problem(
                        loc,
                        "offers its work item to single participants (<participant>); knhk offers work items to roles only",
                    );
                }
                if cx.children(initial, "param").next().is_some() {
                    cx.problem(
                        loc,
                        "offers its work item to whoever a net variable names (<param>), which knhk does not support",
                    );
                }
                for role in cx.children(initial, "role") {
                    let role = text(role).trim().to_owned();
                    if !role.is_empty() && !roles.contains(&role) {
                        roles.push(role);
                    }
                }
            }
        }
    }
    if roles.is_empty() {
        if by_system {
            // YAWL's resource service passes a work item whose system offer reaches no one to
            // the administrators' unoffered queue; the allocator is then never consulted.
            return at_runtime(
                cx,
                loc,
                "its offer is made by the system (<offer initiator=\"system\">) to no one, so an administrator distributes it",
            );
        }
        let why = if offer.is_some() {
            "its offer is made by the user (<offer initiator=\"user\">) and names no role"
        } else {
            "its <resourcing> has no <offer>"
        };
        let mut binding = at_runtime(cx, loc, why);
        if let TaskBinding::Human(h) = &mut binding {
            h.allocation = allocation(cx, resourcing, loc);
        }
        return binding;
    }
    TaskBinding::Human(HumanBinding {
        roles,
        allocation: allocation(cx, resourcing, loc),
        four_eyes: false,
        distributed_at_runtime: false,
    })
}

/// A manual task whose work item an administrator distributes at run time: it is offered to
/// the administrators' queue, and noted.
fn at_runtime(cx: &mut Cx, loc: &Loc, why: &str) -> TaskBinding {
    let role = cx.admin_role.clone();
    cx.note(
        loc,
        format!(
            "is a manual task distributed at run time ({why}): its work items go to the administrators' queue, role {role:?}"
        ),
    );
    TaskBinding::Human(HumanBinding {
        roles: vec![role],
        allocation: Allocation::RoleOffer,
        four_eyes: false,
        distributed_at_runtime: true,
    })
}

fn allocation(cx: &mut Cx, resourcing: Node<'_, '_>, loc: &Loc) -> Allocation {
    let Some(allocate) = cx.child(resourcing, "allocate", loc) else {
        return Allocation::RoleOffer;
    };
    if allocate.attribute("initiator").map(str::trim) != Some("system") {
        return Allocation::RoleOffer;
    }
    let allocator = cx
        .child(allocate, "allocator", loc)
        .and_then(|a| cx.child_text(a, "name", loc));
    match allocator.as_deref() {
        Some("ShortestQueue") => Allocation::ShortestQueue,
        Some(name) if name.starts_with("RoundRobin") => Allocation::RoundRobin,
        other => {
            cx.problem(
                loc,
                format!(
                    "is allocated by the system with the allocator {:?}, which knhk does not have (it has ShortestQueue and RoundRobin)",
                    other.unwrap_or("")
                ),
            );
            Allocation::RoleOffer
        }
    }
}

/// Reads a task's timer. On a task without decomposition (YAWL's empty task) the timer is how
/// long the task takes, which knhk runs as a delay before the task starts; on any other task it
/// bounds how long the work may take (the work item expires).
fn timer(cx: &mut Cx, node: Node<'_, '_>, empty_task: bool, loc: &Loc) -> Option<TaskTimer> {
    cx.only_known(
        node,
        &[
            "trigger",
            "duration",
            "durationparams",
            "expiry",
            "netparam",
            "workdays",
        ],
        loc,
    );
    let trigger = match cx.child_text(node, "trigger", loc).as_deref() {
        None | Some("OnEnabled") => TimerTrigger::OnEnabled,
        Some("OnExecuting") => TimerTrigger::OnStarted,
        Some(other) => {
            cx.problem(
                loc,
                format!("the timer's <trigger> must be OnEnabled or OnExecuting, not {other:?}"),
            );
            TimerTrigger::OnEnabled
        }
    };
    if cx
        .child_text(node, "workdays", loc)
        .is_some_and(|w| w == "true")
    {
        cx.problem(
            loc,
            "the timer counts working days only (<workdays>true</workdays>), which knhk does not support",
        );
    }
    let duration = cx.child_text(node, "duration", loc);
    let params = cx.child(node, "durationparams", loc);
    let expiry = cx.children(node, "expiry").next().is_some();
    let netparam = cx.child_text(node, "netparam", loc);
    let duration_ms = match (duration, params, expiry, netparam) {
        (Some(text), None, false, None) => {
            let ms = crate::duration::iso8601_ms(&text);
            if ms.is_none() {
                cx.problem(
                    loc,
                    format!("the timer's <duration> {text:?} is not a duration like \"PT1H30M\""),
                );
            }
            ms
        }
        (None, Some(params), false, None) => duration_params(cx, params, loc),
        (None, None, true, None) => {
            cx.problem(
                loc,
                "the timer expires at a fixed time (<expiry>), which knhk does not support: its timers run for a duration",
            );
            None
        }
        (None, None, false, Some(variable)) => {
            cx.problem(
                loc,
                format!("the timer takes its duration from the net variable {variable:?} (<netparam>), which knhk does not support"),
            );
            None
        }
        (None, None, false, None) => {
            cx.problem(
                loc,
                "the timer has no <duration>, <durationparams>, <expiry> or <netparam>",
            );
            None
        }
        _ => {
            cx.problem(
                loc,
                "the timer has more than one of <duration>, <durationparams>, <expiry> and <netparam>",
            );
            None
        }
    };
    let action = if empty_task {
        if trigger == TimerTrigger::OnStarted {
            cx.problem(
                loc,
                "a timer on a task without decomposition must be OnEnabled: knhk runs it as a delay before the task starts, and cannot hold an empty task running",
            );
        }
        TimerAction::Delay
    } else {
        TimerAction::Expire
    };
    Some(TaskTimer {
        trigger,
        duration_ms: duration_ms?,
        action,
    })
}

fn duration_params(cx: &mut Cx, params: Node<'_, '_>, loc: &Loc) -> Option<u64> {
    cx.only_known(params, &["ticks", "interval"], loc);
    let ticks = cx.number::<u64>(params, "ticks", loc);
    let interval = cx.child_text(params, "interval", loc);
    let unit = match interval.as_deref() {
        Some("MSEC") => Some(1),
        Some("SEC") => Some(1_000),
        Some("MIN") => Some(60_000),
        Some("HOUR") => Some(3_600_000),
        Some("DAY") => Some(86_400_000),
        Some("WEEK") => Some(604_800_000),
        Some(other) => {
            cx.problem(
                loc,
                format!("the timer's <interval> must be one of MSEC, SEC, MIN, HOUR, DAY, WEEK (months and years have no fixed length), not {other:?}"),
            );
            None
        }
        None => {
            cx.problem(loc, "the timer's <durationparams> has no <interval>");
            None
        }
    };
    if ticks.is_none() && cx.children(params, "ticks").next().is_none() {
        cx.problem(loc, "the timer's <durationparams> has no <ticks>");
    }
    let ms = ticks?.checked_mul(unit?);
    if ms.is_none() {
        cx.problem(loc, "the timer's duration is too long");
    }
    ms
}
