//! The `kafka` connector: each call produces one record (the task input as JSON) to a topic,
//! with `rskafka`, a pure-Rust client of the Kafka protocol (no TLS, no compression).
//!
//! The pooled object is an rskafka [`Client`]: its connections to the brokers (one per broker,
//! requests pipelined over it) and its view of the cluster, with the partition clients made from
//! it cached per topic and partition, since making one costs a metadata round trip to find the
//! partition's leader. A pool of several clients spreads concurrent calls over several
//! connections, so that one large record does not hold up the others behind it on one socket,
//! and gives Kafka instances the pool's acquire timeout, expiry and metrics.

mod errors;
mod settings;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use deadpool::managed::{Manager, Metrics, RecycleResult};
use rskafka::BackoffConfig;
use rskafka::chrono::DateTime;
use rskafka::client::partition::{Compression, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::Record;
use serde_json::{Value, json};

use crate::config::{ConfigError, InstanceConfig};
use crate::connector::{Binding, CallError, CallRequest, Connector, Probe};
use crate::pool::Pool;
use crate::settings::SettingsError;
use errors::{KafkaError, classify};
use settings::KafkaSettings;
pub(crate) use settings::partition_for;

/// The largest record produced unless `max_record_bytes` says otherwise: Kafka's own default
/// (`message.max.bytes`, `max.request.size`).
pub const DEFAULT_MAX_RECORD_BYTES: u64 = 1024 * 1024;

/// The record header that carries the call's idempotency key.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// Produces records to Kafka; see the crate documentation for its keys and settings.
#[derive(Debug)]
pub struct KafkaConnector {
    name: String,
    pool: Arc<Pool<KafkaManager>>,
    max_record_bytes: u64,
}

impl KafkaConnector {
    /// Creates an instance from its `[connectors.NAME]` table (`brokers`, `client_id`,
    /// `max_record_bytes`, `pool.*`). No connection is opened until a call or a probe needs one.
    pub fn from_config(config: &InstanceConfig) -> Result<KafkaConnector, ConfigError> {
        let mut keys = config.keys();
        let brokers = keys.required("brokers")?;
        let brokers = parse_brokers(&brokers).map_err(|why| keys.fault("brokers", why))?;
        let client_id = keys.string("client_id")?;
        let max_record_bytes = keys.number("max_record_bytes")?;
        if max_record_bytes == Some(0) {
            return Err(keys.fault("max_record_bytes", "must be at least 1"));
        }
        keys.finish()?;
        // rskafka retries a broker it cannot reach without end unless given a deadline; within
        // the acquire timeout, the call reports why the broker is unreachable instead of a
        // bare timeout, and the registry's own retries take over.
        let backoff = BackoffConfig {
            init_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
            base: 2.0,
            deadline: Some(config.pool.acquire_timeout / 2),
        };
        let manager = KafkaManager {
            brokers,
            client_id,
            backoff,
        };
        let pool =
            Pool::new(&config.name, manager, config.pool).map_err(|problem| ConfigError {
                instance: config.name.clone(),
                key: "pool".to_owned(),
                problem,
            })?;
        Ok(KafkaConnector {
            name: config.name.clone(),
            pool: Arc::new(pool),
            max_record_bytes: max_record_bytes.unwrap_or(DEFAULT_MAX_RECORD_BYTES),
        })
    }

    /// Returns the pool of clients, for its status.
    pub fn pool(&self) -> &Pool<KafkaManager> {
        &self.pool
    }
}

/// Reads the `brokers` and `client_id` of a `kafka` instance, as [`KafkaConnector::from_config`]
/// reads them, for the intake's Kafka source.
pub(crate) fn endpoint_of(
    config: &InstanceConfig,
) -> Result<(Vec<String>, Option<String>), ConfigError> {
    let mut keys = config.keys();
    let brokers = keys.required("brokers")?;
    let brokers = parse_brokers(&brokers).map_err(|why| keys.fault("brokers", why))?;
    Ok((brokers, keys.string("client_id")?))
}

/// Says what a client error was in a sentence, as the connector's errors do.
pub(crate) fn describe_error(e: rskafka::client::error::Error) -> String {
    KafkaError::from(e).to_string()
}

/// Splits `host:port,host:port`, checking each address.
fn parse_brokers(list: &str) -> Result<Vec<String>, String> {
    let mut brokers = Vec::new();
    for broker in list.split(',').map(str::trim) {
        let port = broker
            .rsplit_once(':')
            .filter(|(host, _)| !host.is_empty())
            .map(|(_, port)| port.parse::<u16>());
        match port {
            Some(Ok(_)) => brokers.push(broker.to_owned()),
            _ => return Err(format!("`{broker}` is not host:port")),
        }
    }
    Ok(brokers)
}

#[async_trait]
impl Connector for KafkaConnector {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &str {
        "kafka"
    }

    fn prepare(
        &self,
        settings: &BTreeMap<String, String>,
    ) -> Result<Arc<dyn Binding>, SettingsError> {
        Ok(Arc::new(KafkaBinding {
            instance: self.name.clone(),
            pool: Arc::clone(&self.pool),
            max_record_bytes: self.max_record_bytes,
            settings: KafkaSettings::parse(settings)?,
        }))
    }

    async fn probe(&self) -> Result<Probe, CallError> {
        let conn = self.pool.get().await?;
        let topics = conn
            .client
            .list_topics()
            .await
            .map_err(|e| classify(&self.name, &e.into()))?;
        Ok(Probe {
            detail: Some(format!("{} topics", topics.len())),
        })
    }

    async fn close(&self) {
        self.pool.close();
    }

    fn pool(&self) -> Option<crate::pool::PoolStatus> {
        Some(self.pool.status())
    }
}

/// Opens rskafka clients for the pool.
#[derive(Debug)]
pub struct KafkaManager {
    brokers: Vec<String>,
    client_id: Option<String>,
    backoff: BackoffConfig,
}

/// One pooled client, with what it learnt of the topics its calls named.
#[derive(Debug)]
pub struct KafkaConnection {
    client: Client,
    /// Partition clients by topic and partition: each knows its partition's leader.
    partitions: Mutex<HashMap<(String, i32), Arc<PartitionClient>>>,
    /// Partition counts by topic, for keyed records; kept for the connection's lifetime
    /// (`pool.max_lifetime_ms`) or until a produce to the topic fails.
    counts: Mutex<HashMap<String, i32>>,
}

impl Manager for KafkaManager {
    type Type = KafkaConnection;
    type Error = KafkaError;

    async fn create(&self) -> Result<KafkaConnection, KafkaError> {
        let mut builder =
            ClientBuilder::new(self.brokers.clone()).backoff_config(self.backoff.clone());
        if let Some(id) = &self.client_id {
            builder = builder.client_id(id.as_str());
        }
        let client = builder.build().await.map_err(KafkaError::from)?;
        Ok(KafkaConnection {
            client,
            partitions: Mutex::default(),
            counts: Mutex::default(),
        })
    }

    async fn recycle(&self, _: &mut KafkaConnection, _: &Metrics) -> RecycleResult<KafkaError> {
        // A client reconnects by itself to a broker whose connection broke, so a checkout
        // needs no round trip; a call that fails says why and forgets what it cached.
        Ok(())
    }
}

impl KafkaConnection {
    /// Returns the partition count of `topic`, from one metadata request per connection.
    async fn partition_count(&self, instance: &str, topic: &str) -> Result<i32, CallError> {
        if let Some(n) = lock(&self.counts).get(topic) {
            return Ok(*n);
        }
        let topics = self
            .client
            .list_topics()
            .await
            .map_err(|e| classify(instance, &e.into()))?;
        let count = topics
            .iter()
            .find(|t| t.name == topic)
            .map(|t| t.partitions.len())
            .ok_or_else(|| {
                CallError::Permanent(format!("kafka {instance}: unknown topic {topic}"))
            })?;
        let count = i32::try_from(count).unwrap_or(i32::MAX);
        if count == 0 {
            return Err(CallError::Retryable(format!(
                "kafka {instance}: topic {topic} has no partitions yet"
            )));
        }
        lock(&self.counts).insert(topic.to_owned(), count);
        Ok(count)
    }

    /// Returns the client of one partition, making it (and finding its leader) once.
    async fn partition(
        &self,
        instance: &str,
        topic: &str,
        partition: i32,
    ) -> Result<Arc<PartitionClient>, CallError> {
        let key = (topic.to_owned(), partition);
        if let Some(p) = lock(&self.partitions).get(&key) {
            return Ok(Arc::clone(p));
        }
        let made = self
            .client
            .partition_client(topic, partition, UnknownTopicHandling::Error)
            .await
            .map_err(|e| classify(instance, &e.into()))?;
        let made = Arc::new(made);
        lock(&self.partitions).insert(key, Arc::clone(&made));
        Ok(made)
    }

    /// Forgets what was cached of `topic`: after a failure, the next call asks again.
    fn forget(&self, topic: &str) {
        lock(&self.partitions).retain(|(t, _), _| t != topic);
        lock(&self.counts).remove(topic);
    }
}

/// Locks a cache; a poisoned one is still a consistent map (each update is one insert).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One task's settings with the instance's pool.
#[derive(Debug)]
struct KafkaBinding {
    instance: String,
    pool: Arc<Pool<KafkaManager>>,
    max_record_bytes: u64,
    settings: KafkaSettings,
}

#[async_trait]
impl Binding for KafkaBinding {
    async fn call(&self, req: CallRequest) -> Result<Value, CallError> {
        let settings = &self.settings;
        let topic = settings.topic.as_str();
        let key = match &settings.key {
            Some(expression) => expression.eval(&req.input)?,
            None => None,
        };
        let value = serde_json::to_vec(&req.input).map_err(|e| {
            CallError::Permanent(format!("the input does not serialize as JSON: {e}"))
        })?;
        let mut headers = BTreeMap::new();
        headers.insert(
            IDEMPOTENCY_KEY_HEADER.to_owned(),
            req.idempotency_key.as_bytes().to_vec(),
        );
        let record = Record {
            key,
            value: Some(value),
            headers,
            timestamp: now(),
        };
        let size = record.approximate_size() as u64;
        if size > self.max_record_bytes {
            return Err(CallError::Permanent(format!(
                "kafka {}: the record is {size} bytes, more than max_record_bytes ({})",
                self.instance, self.max_record_bytes
            )));
        }

        let conn = self.pool.get().await?;
        let partition = match settings.partition {
            Some(p) => p,
            None => {
                let count = conn.partition_count(&self.instance, topic).await?;
                // A record without a key goes by its idempotency key: every attempt of one
                // call lands on the same partition, where a consumer can drop the duplicates.
                let by = record
                    .key
                    .as_deref()
                    .unwrap_or(req.idempotency_key.as_bytes());
                partition_for(by, count)
            }
        };
        let client = match conn.partition(&self.instance, topic, partition).await {
            Ok(client) => client,
            Err(e) => {
                conn.forget(topic);
                return Err(e);
            }
        };
        let offsets = match client
            .produce(vec![record], Compression::NoCompression)
            .await
        {
            Ok(offsets) => offsets,
            Err(e) => {
                conn.forget(topic);
                return Err(classify(&self.instance, &e.into()));
            }
        };
        let offset = offsets.first().copied().ok_or_else(|| {
            CallError::Retryable(format!(
                "kafka {}: the broker acknowledged no offset",
                self.instance
            ))
        })?;
        Ok(json!({ "topic": topic, "partition": partition, "offset": offset }))
    }
}

/// The record's timestamp: now, in milliseconds since the epoch.
pub(crate) fn now() -> DateTime<rskafka::chrono::Utc> {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    DateTime::from_timestamp_millis(millis).unwrap_or_default()
}
