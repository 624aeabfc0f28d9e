//! The `[[subscriptions]]` of the config file, parsed and checked once at start-up: which
//! connector instance a subscription reads, from where, how many messages it holds at once,
//! where refused messages go, and what a message does (start a case, or deliver an event).

use serde_json::{Map, Value};

use crate::config::InstanceConfig;

/// How many messages a subscription holds unacknowledged when `prefetch` is not given.
pub const DEFAULT_PREFETCH: u32 = 64;
/// The largest `prefetch` accepted: a flood must not exhaust memory.
pub const MAX_PREFETCH: u32 = 10_000;

/// Why a `[[subscriptions]]` entry is refused, naming it by position and key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("subscriptions[{index}].{key}: {problem}")]
pub struct SubscriptionError {
    pub index: usize,
    pub key: String,
    pub problem: String,
}

/// One subscription, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Subscription {
    /// Its position in the file, for messages.
    pub index: usize,
    /// Its name: the `name` key, else `CONNECTOR/SOURCE`. Received message ids are recorded
    /// under it, so it must stay the same across restarts for deduplication to hold.
    pub name: String,
    /// The connector instance it reads through.
    pub connector: String,
    pub source: SourceSpec,
    /// How many received messages may be unacknowledged at once.
    pub prefetch: u32,
    /// Where malformed or unroutable messages go (a subject, queue or topic of the same
    /// connector); `None` drops them with a warning.
    pub dead_letter: Option<String>,
    pub action: Action,
}

/// Where a subscription's messages come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceSpec {
    /// A core NATS subject, shared among the members of `queue_group` when given.
    NatsSubject {
        subject: String,
        queue_group: Option<String>,
    },
    /// A durable pull consumer of a JetStream stream, with explicit acknowledgement.
    JetStream { stream: String, consumer: String },
    /// An AMQP 0-9-1 queue.
    AmqpQueue { queue: String },
    /// An MQTT topic (filter).
    Topic { topic: String },
    /// Every partition of a Kafka topic, from the committed offsets, else from `start_from`.
    KafkaTopic {
        topic: String,
        start_from: StartFrom,
    },
}

/// Where a Kafka subscription starts reading a partition that has no committed offset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StartFrom {
    /// The earliest record the broker still keeps: nothing already in the topic is missed.
    #[default]
    Earliest,
    /// The end of the partition when the subscription first opens: only what comes after.
    Latest,
}

impl SourceSpec {
    /// Returns the subject, queue or topic read, for names and messages.
    pub fn describe(&self) -> String {
        match self {
            SourceSpec::NatsSubject { subject, .. } => subject.clone(),
            SourceSpec::JetStream { stream, consumer } => format!("{stream}/{consumer}"),
            SourceSpec::AmqpQueue { queue } => queue.clone(),
            SourceSpec::Topic { topic } | SourceSpec::KafkaTopic { topic, .. } => topic.clone(),
        }
    }
}

/// What a message does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Starts a case of `workflow` (its URI or name). `mapping`, a CEL expression over
    /// `message`, gives the case's input data; the message body when absent.
    Start {
        workflow: String,
        mapping: Option<String>,
    },
    /// Delivers trigger event `event` to the case whose id `correlation` (a CEL expression
    /// over `message`) gives.
    Deliver { event: String, correlation: String },
}

/// Parses the `subscriptions` value of the config (an array of tables), checking each
/// against the connector instances declared (`instances`).
pub fn parse_subscriptions(
    value: &Value,
    instances: &[InstanceConfig],
) -> Result<Vec<Subscription>, SubscriptionError> {
    let Value::Array(entries) = value else {
        return Err(SubscriptionError {
            index: 0,
            key: "".to_owned(),
            problem: "`subscriptions` must be an array of tables ([[subscriptions]])".to_owned(),
        });
    };
    let mut out: Vec<Subscription> = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let sub = parse_one(index, entry, instances)?;
        if out.iter().any(|s| s.name == sub.name) {
            return Err(SubscriptionError {
                index,
                key: "name".to_owned(),
                problem: format!(
                    "another subscription is named {:?}; give each a distinct `name`",
                    sub.name
                ),
            });
        }
        out.push(sub);
    }
    Ok(out)
}

/// Takes the keys of one table, refusing what it does not know.
struct Table<'a> {
    index: usize,
    map: &'a Map<String, Value>,
    taken: Vec<&'static str>,
}

impl Table<'_> {
    fn fault(&self, key: &str, problem: impl Into<String>) -> SubscriptionError {
        SubscriptionError {
            index: self.index,
            key: key.to_owned(),
            problem: problem.into(),
        }
    }

    fn string(&mut self, key: &'static str) -> Result<Option<String>, SubscriptionError> {
        self.taken.push(key);
        match self.map.get(key) {
            None => Ok(None),
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
            Some(Value::String(_)) => Err(self.fault(key, "empty")),
            Some(_) => Err(self.fault(key, "must be a string")),
        }
    }

    fn required(&mut self, key: &'static str) -> Result<String, SubscriptionError> {
        self.string(key)?.ok_or_else(|| self.fault(key, "missing"))
    }

    fn refuse(&self, key: &'static str, why: &str) -> Result<(), SubscriptionError> {
        if self.map.contains_key(key) {
            return Err(self.fault(key, why.to_owned()));
        }
        Ok(())
    }

    fn finish(self) -> Result<(), SubscriptionError> {
        match self.map.keys().find(|k| !self.taken.contains(&k.as_str())) {
            None => Ok(()),
            Some(k) => {
                Err(self.fault(k, format!("unknown key (known: {})", self.taken.join(", "))))
            }
        }
    }
}

fn parse_one(
    index: usize,
    entry: &Value,
    instances: &[InstanceConfig],
) -> Result<Subscription, SubscriptionError> {
    let Value::Object(map) = entry else {
        return Err(SubscriptionError {
            index,
            key: "".to_owned(),
            problem: "must be a table".to_owned(),
        });
    };
    let mut t = Table {
        index,
        map,
        taken: Vec::new(),
    };
    let connector = t.required("connector")?;
    let instance = instances
        .iter()
        .find(|i| i.name == connector)
        .ok_or_else(|| {
            t.fault(
                "connector",
                format!("no connector instance named {connector:?}"),
            )
        })?;
    let kind = instance.kind.as_str();
    if kind != "kafka" {
        t.refuse(
            "start_from",
            "is for kafka; other brokers keep the subscription's position themselves",
        )?;
    }
    let source = match kind {
        "nats" => {
            t.refuse("queue", "is for amqp; NATS reads a `subject` or a `stream`")?;
            t.refuse(
                "topic",
                "is for kafka and mqtt; NATS reads a `subject` or a `stream`",
            )?;
            let subject = t.string("subject")?;
            let queue_group = t.string("queue_group")?;
            let stream = t.string("stream")?;
            let consumer = t.string("consumer")?;
            match (subject, stream, consumer) {
                (Some(subject), None, None) => SourceSpec::NatsSubject {
                    subject,
                    queue_group,
                },
                (None, Some(stream), Some(consumer)) => {
                    if queue_group.is_some() {
                        return Err(t.fault(
                            "queue_group",
                            "is for a core subject; a JetStream durable consumer is shared as it is",
                        ));
                    }
                    SourceSpec::JetStream { stream, consumer }
                }
                (None, Some(_), None) => return Err(t.fault("consumer", "missing (with `stream`)")),
                (None, None, Some(_)) => return Err(t.fault("stream", "missing (with `consumer`)")),
                (Some(_), _, _) => {
                    return Err(t.fault(
                        "subject",
                        "a subscription reads a `subject` or a `stream` with its `consumer`, not both",
                    ));
                }
                (None, None, None) => {
                    return Err(t.fault(
                        "subject",
                        "missing (or `stream` and `consumer` for JetStream)",
                    ));
                }
            }
        }
        "amqp" => SourceSpec::AmqpQueue {
            queue: t.required("queue")?,
        },
        "kafka" => {
            let topic = t.required("topic")?;
            let start_from = match t.string("start_from")?.as_deref() {
                None | Some("earliest") => StartFrom::Earliest,
                Some("latest") => StartFrom::Latest,
                Some(other) => {
                    return Err(t.fault(
                        "start_from",
                        format!("must be \"earliest\" or \"latest\", not {other:?}"),
                    ));
                }
            };
            SourceSpec::KafkaTopic { topic, start_from }
        }
        "mqtt" => SourceSpec::Topic {
            topic: t.required("topic")?,
        },
        other => {
            return Err(t.fault(
                "connector",
                format!(
                    "instance {connector:?} is of kind {other}; a subscription reads nats, amqp, kafka or mqtt"
                ),
            ));
        }
    };
    t.taken.push("prefetch");
    let prefetch = match map.get("prefetch") {
        None => DEFAULT_PREFETCH,
        Some(v) => match v.as_u64() {
            Some(n) if (1..=u64::from(MAX_PREFETCH)).contains(&n) => n as u32,
            _ => {
                return Err(t.fault(
                    "prefetch",
                    format!("must be a whole number from 1 to {MAX_PREFETCH}"),
                ));
            }
        },
    };
    let dead_letter = t.string("dead_letter")?;
    let start = t.string("start")?;
    let mapping = t.string("mapping")?;
    let deliver = t.string("deliver")?;
    let correlation = t.string("correlation")?;
    let action = match (start, deliver) {
        (Some(workflow), None) => {
            if correlation.is_some() {
                return Err(t.fault("correlation", "is for `deliver`; `start` makes a new case"));
            }
            Action::Start { workflow, mapping }
        }
        (None, Some(event)) => {
            if mapping.is_some() {
                return Err(t.fault(
                    "mapping",
                    "is for `start`; the event's data is the message body",
                ));
            }
            let correlation = correlation.ok_or_else(|| {
                t.fault(
                    "correlation",
                    "missing: `deliver` needs the case the event is for",
                )
            })?;
            Action::Deliver { event, correlation }
        }
        (Some(_), Some(_)) => {
            return Err(t.fault(
                "deliver",
                "a subscription has `start` or `deliver`, not both",
            ));
        }
        (None, None) => return Err(t.fault("start", "missing (or `deliver`)")),
    };
    let name = t
        .string("name")?
        .unwrap_or_else(|| format!("{connector}/{}", source.describe()));
    t.finish()?;
    Ok(Subscription {
        index,
        name,
        connector,
        source,
        prefetch,
        dead_letter,
        action,
    })
}
