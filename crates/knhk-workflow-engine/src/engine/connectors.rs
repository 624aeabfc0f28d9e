//! The connector instances as the engine shows them: their list with their pools, and their
//! probes, read from the registry the engine was given.

use std::time::Duration;

use knhk_connectors::{InstanceHealth, Registry};

use crate::error::Error;
use crate::view::{ConnectorHealth, ConnectorPool, ConnectorView, SubscriptionHealthView};

use super::WorkflowEngine;

impl WorkflowEngine {
    /// Returns the connector instances this engine calls, sorted by name.
    pub fn connectors(&self) -> Vec<ConnectorView> {
        connector_views(&self.inner.connectors)
    }

    /// Keeps the probes of the intake running on this engine, for
    /// [`WorkflowEngine::probe_subscriptions`].
    pub(crate) fn attach_intake(&self, health: crate::intake::IntakeHealth) {
        *super::lock(&self.inner.intake) = Some(health);
    }

    /// Probes the subscriptions of the intake running on this engine (none without one), each
    /// bounded by `timeout`: a round trip to its broker, with the backlog where the broker
    /// tells it.
    pub async fn probe_subscriptions(&self, timeout: Duration) -> Vec<SubscriptionHealthView> {
        let intake = super::lock(&self.inner.intake).clone();
        let Some(intake) = intake else {
            return Vec::new();
        };
        intake
            .probe(timeout)
            .await
            .into_iter()
            .map(|h| {
                let (pending, unacknowledged, error) = match h.result {
                    Ok(b) => (b.pending, b.unacknowledged, None),
                    Err(e) => (None, None, Some(e)),
                };
                SubscriptionHealthView {
                    name: h.name,
                    ok: error.is_none(),
                    latency_ms: u64::try_from(h.latency.as_millis()).unwrap_or(u64::MAX),
                    pending,
                    unacknowledged,
                    error,
                }
            })
            .collect()
    }

    /// Probes the connector instances (all of them, or the one named), each bounded by
    /// `timeout`, sorted by name. An unknown name is [`Error::UnknownConnector`].
    pub async fn probe_connectors(
        &self,
        name: Option<&str>,
        timeout: Duration,
    ) -> Result<Vec<ConnectorHealth>, Error> {
        probe_connectors(&self.inner.connectors, name, timeout).await
    }
}

/// Returns the instances of a registry as the engine shows them, sorted by name.
pub fn connector_views(registry: &Registry) -> Vec<ConnectorView> {
    registry
        .names()
        .into_iter()
        .filter_map(|name| registry.get(name))
        .map(|c| ConnectorView {
            name: c.name().to_owned(),
            kind: c.kind().to_owned(),
            pool: c.pool().map(|p| ConnectorPool {
                max_size: p.max_size,
                active: p.active,
                idle: p.idle,
                waiters: p.waiters,
            }),
        })
        .collect()
}

/// Probes the instances of a registry (all, or the one named), each bounded by `timeout`.
pub async fn probe_connectors(
    registry: &Registry,
    name: Option<&str>,
    timeout: Duration,
) -> Result<Vec<ConnectorHealth>, Error> {
    let found = match name {
        None => registry.health(timeout).await,
        Some(name) => match registry.probe(name, timeout).await {
            Some(health) => vec![health],
            None => {
                return Err(Error::UnknownConnector {
                    name: name.to_owned(),
                    known: registry.names().join(", "),
                });
            }
        },
    };
    Ok(found.into_iter().map(health_view).collect())
}

fn health_view(h: InstanceHealth) -> ConnectorHealth {
    let (ok, detail, error) = match h.result {
        Ok(probe) => (true, probe.detail, None),
        Err(e) => (false, None, Some(e.message().to_owned())),
    };
    ConnectorHealth {
        name: h.name,
        kind: h.kind,
        ok,
        latency_ms: u64::try_from(h.latency.as_millis()).unwrap_or(u64::MAX),
        detail,
        error,
    }
}
