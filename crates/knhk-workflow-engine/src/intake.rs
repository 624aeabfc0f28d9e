//! The intake service: each subscription's messages start cases or are delivered to waiting
//! trigger tasks, each step committed with the message's id (deduplication) before the
//! message is acknowledged.
//!
//! A message's id is stored as the idempotency key `intake:SUBSCRIPTION:ID` in the commit of
//! the step it caused (the store's idempotency table, on every backend), so a redelivered
//! message finds its key and is acknowledged without a second case or a second firing, also
//! when the consumer died between the commit and the acknowledgement.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use knhk_connectors::InstanceConfig;
use knhk_connectors::intake::{self, Action, Backlog, Prober, Received, Source, Subscription};
use knhk_core::expr::CompiledExpr;
use knhk_core::model::Expression;
use knhk_core::{CaseId, Input};
use serde_json::{Map, Value};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::engine::WorkflowEngine;
use crate::error::{Error, ErrorCode};

/// Why the subscriptions cannot run: an expression that does not compile, a source that
/// does not open. Names the subscription and the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntakeError {
    #[error("subscriptions[{index}].{key}: {problem}")]
    Config {
        index: usize,
        key: &'static str,
        problem: String,
    },
    #[error(transparent)]
    Source(#[from] intake::SourceError),
}

/// What a subscription's message does, with its expressions compiled.
#[derive(Debug)]
enum Prepared {
    Start {
        workflow: String,
        mapping: Option<CompiledExpr>,
    },
    Deliver {
        event: String,
        correlation: CompiledExpr,
    },
}

/// One subscription, checked and compiled.
#[derive(Debug)]
pub struct Route {
    subscription: Subscription,
    action: Prepared,
}

impl Route {
    /// Compiles the subscription's CEL expressions (`mapping`, `correlation`) over `message`.
    pub fn new(subscription: Subscription) -> Result<Route, IntakeError> {
        let compile = |key: &'static str, source: &str| {
            CompiledExpr::compile(&Expression::cel(source)).map_err(|e| IntakeError::Config {
                index: subscription.index,
                key,
                problem: e.to_string(),
            })
        };
        let action = match &subscription.action {
            Action::Start { workflow, mapping } => Prepared::Start {
                workflow: workflow.clone(),
                mapping: mapping
                    .as_deref()
                    .map(|m| compile("mapping", m))
                    .transpose()?,
            },
            Action::Deliver { event, correlation } => Prepared::Deliver {
                event: event.clone(),
                correlation: compile("correlation", correlation)?,
            },
        };
        Ok(Route {
            subscription,
            action,
        })
    }

    /// Returns the subscription.
    pub fn subscription(&self) -> &Subscription {
        &self.subscription
    }
}

/// What became of one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The message's step was committed: a case started, or an event delivered to it.
    Committed(CaseId),
    /// The message's id was stored already: a redelivery, acknowledged with nothing done.
    Duplicate,
    /// Malformed or unroutable: it goes to the dead letter with this reason.
    Refused(String),
    /// The engine could not take it now (stopping, store unavailable): it is left
    /// unacknowledged, for the broker to deliver again.
    Later(String),
}

/// Runs the subscriptions of the config: one task per subscription, each with at most
/// `prefetch` messages in flight.
#[derive(Debug)]
pub struct Intake {
    engine: WorkflowEngine,
    routes: Vec<Arc<Route>>,
    instances: Vec<InstanceConfig>,
    health: IntakeHealth,
    /// Where sources keep what must outlive the process (Kafka's committed offsets).
    state_dir: Option<PathBuf>,
}

/// Probes the running subscriptions (a cheap `Clone` handle, [`Intake::health`]).
#[derive(Clone, Debug, Default)]
pub struct IntakeHealth {
    /// Each subscription's name, and its prober once its source is open.
    probers: Arc<Mutex<Vec<Probed>>>,
}

/// A subscription's name, and its prober once its source is open.
type Probed = (String, Option<Arc<dyn Prober>>);

/// What a probe of one subscription found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionHealth {
    pub name: String,
    /// The backlog the broker told, or why the probe failed (not started, timed out, the
    /// broker's error).
    pub result: Result<Backlog, String>,
    pub latency: Duration,
}

impl IntakeHealth {
    /// Probes every subscription, each within `timeout`.
    pub async fn probe(&self, timeout: Duration) -> Vec<SubscriptionHealth> {
        let probers = self
            .probers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut out = Vec::with_capacity(probers.len());
        for (name, prober) in probers {
            let began = Instant::now();
            let result = match prober {
                None => Err("the subscription is not running".to_owned()),
                Some(p) => match tokio::time::timeout(timeout, p.backlog()).await {
                    Ok(Ok(b)) => Ok(b),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
                },
            };
            out.push(SubscriptionHealth {
                name,
                result,
                latency: began.elapsed(),
            });
        }
        out
    }

    fn opened(&self, index: usize, prober: Arc<dyn Prober>) {
        let mut probers = self.probers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = probers.get_mut(index) {
            slot.1 = Some(prober);
        }
    }
}

impl Intake {
    /// Checks and compiles `subscriptions` (parsed by
    /// [`knhk_connectors::intake::parse_subscriptions`] against `instances`).
    pub fn new(
        engine: WorkflowEngine,
        subscriptions: Vec<Subscription>,
        instances: Vec<InstanceConfig>,
    ) -> Result<Intake, IntakeError> {
        let routes: Vec<Arc<Route>> = subscriptions
            .into_iter()
            .map(|s| Route::new(s).map(Arc::new))
            .collect::<Result<_, _>>()?;
        let health = IntakeHealth::default();
        engine.attach_intake(health.clone());
        *health
            .probers
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = routes
            .iter()
            .map(|r| (r.subscription.name.clone(), None))
            .collect();
        Ok(Intake {
            engine,
            routes,
            instances,
            health,
            state_dir: None,
        })
    }

    /// Gives the sources a state directory: a Kafka subscription keeps its committed offsets
    /// there (`knhk serve` gives `DATA_DIR/intake`). Without one, a Kafka subscription does
    /// not open.
    pub fn with_state_dir(mut self, dir: impl Into<PathBuf>) -> Intake {
        self.state_dir = Some(dir.into());
        self
    }

    /// Returns the handle that probes the subscriptions (each with its backlog) while the
    /// intake runs.
    pub fn health(&self) -> IntakeHealth {
        self.health.clone()
    }

    /// Opens every subscription's source, then consumes them until `shutdown` fires; the
    /// messages in flight finish their step and are settled before it returns.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), IntakeError> {
        let mut sources = Vec::with_capacity(self.routes.len());
        for route in &self.routes {
            let sub = &route.subscription;
            let instance = self
                .instances
                .iter()
                .find(|i| i.name == sub.connector)
                .ok_or_else(|| IntakeError::Config {
                    index: sub.index,
                    key: "connector",
                    problem: format!("no connector instance named {:?}", sub.connector),
                })?;
            let source = intake::open_in(sub, instance, self.state_dir.as_deref()).await?;
            self.health.opened(sources.len(), source.prober());
            sources.push(source);
        }
        let mut tasks = JoinSet::new();
        for (route, source) in self.routes.iter().zip(sources) {
            tasks.spawn(consume(
                self.engine.clone(),
                Arc::clone(route),
                source,
                shutdown.clone(),
            ));
        }
        while tasks.join_next().await.is_some() {}
        Ok(())
    }
}

/// Consumes one source until `shutdown` fires or the source closes: each message is
/// processed in a task of its own, at most `prefetch` at once, and settled after its commit.
pub async fn consume(
    engine: WorkflowEngine,
    route: Arc<Route>,
    mut source: Box<dyn Source>,
    shutdown: CancellationToken,
) {
    let name = route.subscription.name.clone();
    let permits = Arc::new(Semaphore::new(route.subscription.prefetch as usize));
    let mut in_flight = JoinSet::new();
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = Arc::clone(&permits).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let next = tokio::select! {
            _ = shutdown.cancelled() => break,
            next = source.next() => next,
        };
        let message = match next {
            Ok(Some(m)) => m,
            Ok(None) => break,
            Err(e) => {
                warn!(subscription = %name, error = %e, "receiving failed; the subscription stops");
                break;
            }
        };
        // Reap the finished ones, so that the set holds only what is in flight.
        while in_flight.try_join_next().is_some() {}
        let engine = engine.clone();
        let route = Arc::clone(&route);
        in_flight.spawn(async move {
            let outcome = process(&engine, &route, &message).await;
            settle(&route, message, &outcome).await;
            drop(permit);
        });
    }
    while in_flight.join_next().await.is_some() {}
}

/// Settles a message after its outcome: acknowledged once committed or found a duplicate,
/// sent to the dead letter when refused, left for redelivery otherwise.
pub async fn settle(route: &Route, message: Received, outcome: &Outcome) {
    let name = &route.subscription.name;
    let result = match outcome {
        Outcome::Committed(_) | Outcome::Duplicate => message.ack().await,
        Outcome::Refused(reason) => {
            warn!(subscription = %name, id = ?message.id, reason, "message refused; dead letter");
            message.dead_letter(reason).await
        }
        Outcome::Later(why) => {
            warn!(subscription = %name, id = ?message.id, why, "message left for redelivery");
            message.abandon();
            Ok(())
        }
    };
    if let Err(e) = result {
        // The step is committed: a redelivery will be found a duplicate.
        warn!(subscription = %name, error = %e, "settling a message failed");
    }
}

/// Returns the idempotency key a message of `subscription` is recorded under.
pub fn message_key(subscription: &str, id: &str) -> String {
    format!("intake:{subscription}:{id}")
}

/// Decides and commits what one message does, without settling it.
pub async fn process(engine: &WorkflowEngine, route: &Route, message: &Received) -> Outcome {
    let body: Value = match serde_json::from_slice(&message.payload) {
        Ok(v) => v,
        Err(e) => return Outcome::Refused(format!("the body is not JSON: {e}")),
    };
    let key = message
        .id
        .as_deref()
        .map(|id| message_key(&route.subscription.name, id));
    if let Some(key) = &key {
        match engine.has_key(key).await {
            Ok(true) => return Outcome::Duplicate,
            Ok(false) => {}
            Err(e) => return Outcome::Later(e.to_string()),
        }
    }
    let vars = message_object(&body, message);
    let result = match &route.action {
        Prepared::Start { workflow, mapping } => {
            let data = match mapping {
                Some(m) => match m.eval_value(&Map::new(), &[("message", &vars)]) {
                    Ok(v) => v,
                    Err(e) => return Outcome::Refused(format!("the mapping failed: {e}")),
                },
                None => body,
            };
            if !data.is_object() {
                return Outcome::Refused(
                    "the case data (the body, or what the mapping gives) is not a JSON object"
                        .to_owned(),
                );
            }
            let workflow = match engine.resolve_workflow(workflow).await {
                Ok(w) => w.id,
                Err(e) => return outcome_of(e),
            };
            match &key {
                Some(key) => {
                    engine
                        .create_case_keyed(workflow, data, true, key, "intake")
                        .await
                }
                None => engine.create_case(workflow, data, true).await,
            }
        }
        Prepared::Deliver { event, correlation } => {
            let case = match correlation.eval_value(&Map::new(), &[("message", &vars)]) {
                Ok(Value::String(s)) => match s.parse::<CaseId>() {
                    Ok(id) => id,
                    Err(_) => {
                        return Outcome::Refused(format!(
                            "the correlation gave {s:?}, which is not a case id"
                        ));
                    }
                },
                Ok(other) => {
                    return Outcome::Refused(format!(
                        "the correlation gave {other}, not a case id (a string)"
                    ));
                }
                Err(e) => return Outcome::Refused(format!("the correlation failed: {e}")),
            };
            let input = Input::TriggerReceived {
                event: event.clone(),
                data: body,
            };
            match &key {
                Some(key) => engine.apply_keyed(case, input, key).await,
                None => engine.apply(case, input).await,
            }
        }
    };
    match result {
        Ok(view) => {
            debug!(subscription = %route.subscription.name, case = %view.id, "message committed");
            Outcome::Committed(view.id)
        }
        Err(e) => outcome_of(e),
    }
}

/// Sorts an engine error: a stored key is a duplicate, what the sender got wrong is refused,
/// the rest may succeed later.
fn outcome_of(e: Error) -> Outcome {
    match e.code() {
        ErrorCode::AlreadyExists => Outcome::Duplicate,
        ErrorCode::InvalidArgument | ErrorCode::NotFound | ErrorCode::FailedPrecondition => {
            Outcome::Refused(e.to_string())
        }
        ErrorCode::PermissionDenied
        | ErrorCode::Aborted
        | ErrorCode::Unavailable
        | ErrorCode::Internal => Outcome::Later(e.to_string()),
    }
}

/// Returns the `message` the expressions see: the body's fields (a body that is no object
/// is under `body`), plus `message_id`, `subject` (and `topic`, the same) and `headers`.
fn message_object(body: &Value, message: &Received) -> Value {
    let mut m = match body {
        Value::Object(o) => o.clone(),
        other => {
            let mut m = Map::new();
            m.insert("body".to_owned(), other.clone());
            m
        }
    };
    m.insert(
        "message_id".to_owned(),
        message.id.clone().map_or(Value::Null, Value::String),
    );
    m.insert("subject".to_owned(), Value::String(message.address.clone()));
    m.insert("topic".to_owned(), Value::String(message.address.clone()));
    m.insert(
        "headers".to_owned(),
        Value::Object(
            message
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        ),
    );
    Value::Object(m)
}
