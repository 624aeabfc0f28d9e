//! Writes a [`Specification`] as Turtle in the YAWL 4 vocabulary plus knhk terms, with
//! relative IRIs (`<#id>`) and a `yawl:id` on every net and element, so that reading the
//! output back gives the same specification. The output depends only on the specification.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use knhk_core::Specification;
use knhk_core::model::{
    Allocation, Condition, ControlType, CreationMode, Flow, Net, Syntax, Task, TaskBinding,
    TaskTimer, TimerAction, TimerTrigger, TriggerKind,
};
use oxrdf::{LiteralRef, NamedNodeRef};

/// Gives every node a fragment of its own, close to its id where the id allows.
#[derive(Debug, Default)]
struct Namer {
    used: HashSet<String>,
}

impl Namer {
    fn name(&mut self, wanted: &str) -> String {
        let safe = !wanted.is_empty()
            && wanted.len() <= 64
            && wanted
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
            && !wanted.ends_with('.');
        let base = if safe { wanted } else { "element" };
        let mut candidate = base.to_owned();
        let mut n = 2u64;
        while self.used.contains(&candidate) {
            candidate = format!("{base}-{n}");
            n += 1;
        }
        self.used.insert(candidate.clone());
        format!("<#{candidate}>")
    }
}

fn literal(text: &str) -> String {
    LiteralRef::new_simple_literal(text).to_string()
}

/// Writes `spec` as Turtle.
pub fn write_turtle(spec: &Specification) -> String {
    let mut namer = Namer::default();
    let spec_iri = namer.name("specification");
    let mut net_iris: HashMap<&str, String> = HashMap::new();
    let mut element_iris: HashMap<&str, String> = HashMap::new();
    for net in &spec.nets {
        let iri = namer.name(net.id.as_str());
        net_iris.entry(net.id.as_str()).or_insert(iri);
        for condition in conditions(net) {
            let iri = namer.name(condition.id.as_str());
            element_iris.entry(condition.id.as_str()).or_insert(iri);
        }
        for task in &net.tasks {
            let iri = namer.name(task.id.as_str());
            element_iris.entry(task.id.as_str()).or_insert(iri);
        }
    }
    let mut w = Writer {
        out: String::new(),
        elements: element_iris,
        nets: net_iris,
        namer,
    };

    w.out
        .push_str("@prefix yawl: <http://www.yawlfoundation.org/yawlschema#> .\n");
    w.out.push_str("@prefix knhk: <https://knhk.dev/ns#> .\n\n");
    let _ = write!(w.out, "{spec_iri} a yawl:Specification");
    let uri = match oxiri::Iri::parse(spec.id.as_str()) {
        Ok(_) => NamedNodeRef::new_unchecked(&spec.id).to_string(),
        Err(_) => literal(&spec.id),
    };
    w.prop("yawl:uri", &uri);
    w.opt_literal("yawl:name", spec.name.as_deref());
    w.opt_literal("yawl:version", spec.version.as_deref());
    w.opt_literal("yawl:documentation", spec.documentation.as_deref());
    for net in &spec.nets {
        let iri = w.net_iri(net.id.as_str());
        w.prop("yawl:hasDecomposition", &iri);
    }
    w.out.push_str(" .\n");

    for net in &spec.nets {
        let initial = (net.id == spec.root_net).then_some(&spec.initial_data);
        w.net(net, initial);
    }
    w.out
}

fn conditions(net: &Net) -> impl Iterator<Item = &Condition> {
    [&net.input_condition, &net.output_condition]
        .into_iter()
        .chain(&net.conditions)
}

#[derive(Debug)]
struct Writer<'s> {
    out: String,
    elements: HashMap<&'s str, String>,
    nets: HashMap<&'s str, String>,
    namer: Namer,
}

impl<'s> Writer<'s> {
    fn prop(&mut self, predicate: &str, object: &str) {
        let _ = write!(self.out, " ;\n    {predicate} {object}");
    }

    fn opt_literal(&mut self, predicate: &str, value: Option<&str>) {
        if let Some(value) = value {
            self.prop(predicate, &literal(value));
        }
    }

    fn element_iri(&mut self, id: &'s str) -> String {
        if let Some(iri) = self.elements.get(id) {
            return iri.clone();
        }
        // A reference to no element: give it a node with that id, so the reader reports it.
        let iri = self.namer.name(id);
        self.elements.insert(id, iri.clone());
        iri
    }

    fn net_iri(&mut self, id: &'s str) -> String {
        if let Some(iri) = self.nets.get(id) {
            return iri.clone();
        }
        let iri = self.namer.name(id);
        self.nets.insert(id, iri.clone());
        iri
    }

    /// Writes a net; `initial` is the case's initial data when it is the root net.
    fn net(&mut self, net: &'s Net, initial: Option<&serde_json::Map<String, serde_json::Value>>) {
        let iri = self.net_iri(net.id.as_str());
        let _ = write!(self.out, "\n{iri} a yawl:Net");
        self.prop("yawl:id", &literal(net.id.as_str()));
        self.opt_literal("yawl:name", net.name.as_deref());
        if let Some(initial) = initial {
            self.prop("yawl:isRootNet", "true");
            for (name, value) in initial {
                let (ty, text) = crate::variables::written(value);
                let node = format!(
                    "[ yawl:name {} ; yawl:type {} ; yawl:initialValue {} ]",
                    literal(name),
                    literal(ty),
                    literal(&text)
                );
                self.prop("yawl:hasLocalVariable", &node);
            }
        }
        let input = self.element_iri(net.input_condition.id.as_str());
        self.prop("yawl:hasInputCondition", &input);
        let output = self.element_iri(net.output_condition.id.as_str());
        self.prop("yawl:hasOutputCondition", &output);
        for condition in &net.conditions {
            let iri = self.element_iri(condition.id.as_str());
            self.prop("yawl:hasCondition", &iri);
        }
        for task in &net.tasks {
            let iri = self.element_iri(task.id.as_str());
            self.prop("yawl:hasTask", &iri);
        }
        self.out.push_str(" .\n");

        self.condition(&net.input_condition, "yawl:InputCondition");
        for condition in &net.conditions {
            self.condition(condition, "yawl:Condition");
        }
        for task in &net.tasks {
            self.task(net, task);
        }
        self.condition(&net.output_condition, "yawl:OutputCondition");
    }

    fn condition(&mut self, condition: &'s Condition, class: &str) {
        let iri = self.element_iri(condition.id.as_str());
        let _ = write!(self.out, "\n{iri} a {class}");
        self.prop("yawl:id", &literal(condition.id.as_str()));
        self.opt_literal("yawl:name", condition.name.as_deref());
        for flow in &condition.flows {
            self.flow(flow);
        }
        self.out.push_str(" .\n");
    }

    fn flow(&mut self, flow: &'s Flow) {
        let to = self.element_iri(flow.to.as_str());
        let mut node = format!("[ a yawl:FlowsInto ; yawl:nextElementRef {to}");
        match &flow.predicate {
            Some(p) if p.syntax == Syntax::Xpath => {
                let _ = write!(
                    node,
                    " ;\n        yawl:hasPredicate [ a yawl:Predicate ; yawl:query {} ]",
                    literal(&p.source)
                );
            }
            Some(p) => {
                let _ = write!(node, " ;\n        knhk:predicate {}", literal(&p.source));
            }
            None => {}
        }
        if let Some(ordering) = flow.ordering {
            let _ = write!(node, " ;\n        yawl:ordering {ordering}");
        }
        if flow.is_default {
            node.push_str(" ;\n        yawl:isDefaultFlow true");
        }
        if flow.on_failure {
            node.push_str(" ;\n        knhk:onFailure true");
        }
        node.push_str(" ]");
        self.prop("yawl:flowsInto", &node);
    }

    fn task(&mut self, net: &'s Net, task: &'s Task) {
        let iri = self.element_iri(task.id.as_str());
        let class = if task.multiple_instance.is_some() {
            "yawl:MultipleInstanceTask"
        } else {
            "yawl:Task"
        };
        let _ = write!(self.out, "\n{iri} a {class}");
        self.prop("yawl:id", &literal(task.id.as_str()));
        self.opt_literal("yawl:name", task.name.as_deref());
        self.prop("yawl:hasJoin", control_type(task.join));
        self.prop("yawl:hasSplit", control_type(task.split));
        for flow in &task.flows {
            self.flow(flow);
        }
        for cancelled in &task.cancellation_set {
            if let Some((from, to)) = implicit_condition(net, cancelled.as_str()) {
                let node = format!(
                    "[ yawl:flowSource {} ; yawl:flowDestination {} ]",
                    self.element_iri(from),
                    self.element_iri(to)
                );
                self.prop("yawl:hasRemovesTokensFromFlow", &node);
                continue;
            }
            let iri = self.element_iri(cancelled.as_str());
            self.prop("yawl:hasRemovesTokens", &iri);
        }
        if let Some(mi) = &task.multiple_instance {
            self.prop("yawl:minimum", &mi.minimum.to_string());
            if let Some(maximum) = mi.maximum {
                self.prop("yawl:maximum", &maximum.to_string());
            }
            if let Some(threshold) = mi.threshold {
                self.prop("yawl:threshold", &threshold.to_string());
            }
            self.prop(
                "yawl:hasCreationMode",
                match mi.creation {
                    CreationMode::Static => "yawl:CreationModeStatic",
                    CreationMode::Dynamic => "yawl:CreationModeDynamic",
                },
            );
            if let Some(split) = &mi.split {
                self.prop("knhk:splitExpression", &literal(&split.source));
            }
            if mi.item_variable != "item" {
                self.prop("knhk:itemVariable", &literal(&mi.item_variable));
            }
            self.opt_literal("knhk:joinVariable", mi.join_variable.as_deref());
        }
        if let Some(net) = &task.decomposition {
            let iri = self.net_iri(net.as_str());
            self.prop("yawl:hasDecomposesTo", &iri);
        }
        if let Some(timer) = &task.timer {
            self.prop("yawl:hasTimer", &timer_node(timer));
        }
        self.binding(&task.binding);
        if let Some(mapping) = &task.input_mapping {
            self.prop("knhk:inputMapping", &literal(&mapping.source));
        }
        if let Some(mapping) = &task.output_mapping {
            self.prop("knhk:outputMapping", &literal(&mapping.source));
        }
        let runtime = &task.runtime;
        if let Some(n) = runtime.max_attempts {
            self.prop("knhk:maxAttempts", &n.to_string());
        }
        if let Some(n) = runtime.backoff_ms {
            self.prop("knhk:backoffMs", &n.to_string());
        }
        if let Some(n) = runtime.timeout_ms {
            self.prop("knhk:timeoutMs", &n.to_string());
        }
        self.opt_literal("knhk:sloClass", runtime.slo_class.as_deref());
        self.out.push_str(" .\n");
    }

    fn binding(&mut self, binding: &TaskBinding) {
        match binding {
            TaskBinding::Empty => {}
            TaskBinding::Human(human) => {
                for role in &human.roles {
                    self.prop("knhk:role", &literal(role));
                }
                if !human.roles.is_empty() {
                    self.prop(
                        "knhk:allocation",
                        match human.allocation {
                            Allocation::RoleOffer => "knhk:RoleOffer",
                            Allocation::RoundRobin => "knhk:RoundRobin",
                            Allocation::ShortestQueue => "knhk:ShortestQueue",
                        },
                    );
                    if human.four_eyes {
                        self.prop("knhk:fourEyes", "true");
                    }
                    if human.distributed_at_runtime {
                        self.prop("knhk:distributedAtRuntime", "true");
                    }
                }
            }
            TaskBinding::Connector(connector) => {
                self.prop("knhk:connector", &literal(&connector.connector));
                for (key, value) in &connector.settings {
                    let node = format!(
                        "[ knhk:key {} ; knhk:value {} ]",
                        literal(key),
                        literal(value)
                    );
                    self.prop("knhk:setting", &node);
                }
            }
            TaskBinding::Trigger {
                event,
                trigger_kind,
            } => {
                self.prop("knhk:trigger", &literal(event));
                if *trigger_kind == TriggerKind::Persistent {
                    self.prop("knhk:triggerKind", &literal("persistent"));
                }
            }
        }
    }
}

/// Returns the two tasks of the flow whose implicit condition is named `id` (`<from>__<to>`),
/// when `id` is no element of `net` and names such a flow.
fn implicit_condition<'n>(net: &'n Net, id: &str) -> Option<(&'n str, &'n str)> {
    if conditions(net).any(|c| c.id.as_str() == id) || net.tasks.iter().any(|t| t.id.as_str() == id)
    {
        return None;
    }
    net.tasks.iter().find_map(|from| {
        let rest = id.strip_prefix(from.id.as_str())?.strip_prefix("__")?;
        let to = net.tasks.iter().find(|t| t.id.as_str() == rest)?;
        from.flows
            .iter()
            .any(|f| f.to == to.id)
            .then(|| (from.id.as_str(), to.id.as_str()))
    })
}

fn control_type(control: ControlType) -> &'static str {
    match control {
        ControlType::And => "yawl:ControlTypeAnd",
        ControlType::Xor => "yawl:ControlTypeXor",
        ControlType::Or => "yawl:ControlTypeOr",
    }
}

fn timer_node(timer: &TaskTimer) -> String {
    let trigger = match timer.trigger {
        TimerTrigger::OnEnabled => "yawl:TimerTriggerOnEnabled",
        TimerTrigger::OnStarted => "yawl:TimerTriggerOnExecuting",
    };
    let (ticks, interval) = [
        (604_800_000, "yawl:TimerIntervalWeek"),
        (86_400_000, "yawl:TimerIntervalDay"),
        (3_600_000, "yawl:TimerIntervalHour"),
        (60_000, "yawl:TimerIntervalMin"),
        (1_000, "yawl:TimerIntervalSec"),
    ]
    .into_iter()
    .find(|(unit, _)| timer.duration_ms != 0 && timer.duration_ms.is_multiple_of(*unit))
    .map_or(
        (timer.duration_ms, "yawl:TimerIntervalMsec"),
        |(unit, name)| (timer.duration_ms / unit, name),
    );
    let action = match timer.action {
        TimerAction::Expire => "knhk:Expire",
        TimerAction::Delay => "knhk:Delay",
    };
    format!(
        "[ a yawl:Timer ; yawl:hasTrigger {trigger} ;\n        yawl:hasDurationParams [ a yawl:TimerDuration ; yawl:ticks {ticks} ; yawl:hasInterval {interval} ] ;\n        knhk:timerAction {action} ]"
    )
}
