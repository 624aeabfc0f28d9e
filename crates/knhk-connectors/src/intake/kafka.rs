//! The Kafka source: every partition of a topic, read with rskafka's partition clients, from
//! offsets the subscription keeps itself in a file of the state directory.
//!
//! rskafka has no consumer groups, so nothing on the broker remembers where a subscription
//! is. The source does: [`Offsets`] keeps, per partition, the offsets delivered and not yet
//! settled, and the committed offset is the lowest of them (or the next to fetch). A
//! background task writes the committed offsets to `STATE_DIR/NAME.offsets` at most every
//! [`FLUSH_INTERVAL`], atomically, and the source writes them once more when it goes. After
//! a restart (or a crash) the source resumes from the file: what was settled after the last
//! write is delivered again, and the engine finds its idempotency key (at least once).
//!
//! Each partition has a task that fetches at most [`FETCH_MAX_BYTES`] at a time and hands
//! each record on once it holds one of the subscription's `prefetch` permits; a permit is
//! given back when the message is settled. So at most `prefetch` messages are delivered and
//! not settled, plus one fetch per partition waiting for permits. A message dropped without
//! being settled (the engine could not take it) is fetched again and delivered after
//! [`REDELIVERY_DELAY`], keeping its permit: Kafka itself never delivers anything again.
//!
//! The partitions are those the topic has when the source opens: partitions added later are
//! read after a restart (from `start_from`, having no committed offset).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rskafka::BackoffConfig;
use rskafka::client::error::{Error as KafkaError, ProtocolError};
use rskafka::client::partition::{Compression, OffsetAt, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::{Record, RecordAndOffset};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::offsets::{OffsetFile, Offsets};
use super::{Backlog, Prober, REASON_HEADER, Received, SUBSCRIPTION_HEADER, Settle, SourceError};
use crate::config::InstanceConfig;
use crate::intake::config::{SourceSpec, StartFrom, Subscription};

/// The headers that name a message, looked for in this order (letter case ignored); without
/// them a message is named `TOPIC/PARTITION/OFFSET`.
pub const KAFKA_ID_HEADERS: [&str; 2] = ["idempotency-key", "Message-Id"];
/// How often the committed offsets are written, at most.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(200);
/// How many bytes one fetch of a partition asks for, at most (the broker still returns a
/// first record larger than that whole).
pub const FETCH_MAX_BYTES: i32 = 1024 * 1024;
/// How long a message dropped without being settled waits before it is delivered again.
pub const REDELIVERY_DELAY: Duration = Duration::from_secs(1);
/// How long the broker may hold a fetch that finds nothing new.
const FETCH_MAX_WAIT_MS: i32 = 500;
/// The least time between two fetches of a partition that found nothing (a broker that does
/// not hold an empty fetch must not be asked in a loop).
const EMPTY_FETCH_PAUSE: Duration = Duration::from_millis(100);
/// How long a partition task waits after a fetch failed before it fetches again.
const RETRY_DELAY: Duration = Duration::from_secs(1);
/// How long the client retries a request to a broker it cannot reach before it says so.
const CLIENT_DEADLINE: Duration = Duration::from_secs(10);

/// A subscription's Kafka topic source.
pub struct KafkaSource {
    name: String,
    topic: String,
    shared: Arc<Shared>,
    partitions: Arc<BTreeMap<i32, Arc<PartitionClient>>>,
    received: mpsc::Receiver<Fetched>,
    redelivered: mpsc::UnboundedReceiver<Redeliver>,
    redeliver: mpsc::UnboundedSender<Redeliver>,
    dead_letter: Option<Arc<DeadLetterWith>>,
    prober: Arc<KafkaProber>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for KafkaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSource")
            .field("subscription", &self.name)
            .field("topic", &self.topic)
            .field("partitions", &self.partitions.len())
            .finish_non_exhaustive()
    }
}

impl Drop for KafkaSource {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        // The last settlements since the flusher's last write.
        if let Err(e) = self.shared.flush() {
            tracing::warn!(subscription = %self.name, error = %e, "kafka: writing the offsets failed");
        }
    }
}

/// What the source and its settle handles share: the offsets and their file.
#[derive(Debug)]
struct Shared {
    offsets: Mutex<Offsets>,
    file: OffsetFile,
    /// The offsets last written.
    saved: Mutex<BTreeMap<i32, i64>>,
}

impl Shared {
    fn offsets(&self) -> MutexGuard<'_, Offsets> {
        lock(&self.offsets)
    }

    /// Writes the committed offsets when they moved since the last write.
    fn flush(&self) -> std::io::Result<()> {
        let mut saved = lock(&self.saved);
        let now = self.offsets().all_committed();
        if now != *saved {
            self.file.save(&now)?;
            *saved = now;
        }
        Ok(())
    }
}

/// Locks a mutex; a poisoned one still holds consistent data (each update is one call).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A record handed on by a partition task, with the permit it holds.
struct Fetched {
    partition: i32,
    record: RecordAndOffset,
    permit: OwnedSemaphorePermit,
}

/// A message dropped without being settled, to fetch and deliver again.
struct Redeliver {
    partition: i32,
    offset: i64,
    permit: OwnedSemaphorePermit,
    not_before: Instant,
}

/// Says a client error in a sentence.
fn describe(e: KafkaError) -> String {
    crate::kafka::describe_error(e)
}

impl KafkaSource {
    /// Connects to the instance's brokers, finds the topic's partitions and where to read
    /// each (the offsets file in `state_dir`, else `start_from`), writes that position, and
    /// starts a fetching task per partition.
    pub(crate) async fn open(
        subscription: &Subscription,
        instance: &InstanceConfig,
        state_dir: &Path,
    ) -> Result<KafkaSource, SourceError> {
        let name = subscription.name.as_str();
        let SourceSpec::KafkaTopic { topic, start_from } = &subscription.source else {
            return Err(SourceError::Unsupported {
                subscription: name.to_owned(),
                problem: format!("Kafka cannot read {}", subscription.source.describe()),
            });
        };
        let fault = |what: &str, e: String| SourceError::broker(name, what, e);
        let (brokers, client_id) = crate::kafka::endpoint_of(instance)
            .map_err(|e| fault("the connector", e.to_string()))?;
        let mut builder = ClientBuilder::new(brokers).backoff_config(BackoffConfig {
            init_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
            base: 2.0,
            deadline: Some(CLIENT_DEADLINE),
        });
        if let Some(id) = client_id {
            builder = builder.client_id(id.as_str());
        }
        let client = builder
            .build()
            .await
            .map_err(|e| fault("connecting to Kafka", describe(e)))?;
        let topics = client
            .list_topics()
            .await
            .map_err(|e| fault("listing the topics", describe(e)))?;
        let find = |wanted: &str| {
            topics
                .iter()
                .find(|t| t.name == wanted && !t.partitions.is_empty())
                .map(|t| t.partitions.clone())
        };
        let Some(numbers) = find(topic) else {
            return Err(fault(
                &format!("topic {topic}"),
                "it does not exist, or has no partitions".to_owned(),
            ));
        };
        let dead_letter = match &subscription.dead_letter {
            None => None,
            Some(dl) => {
                let count = find(dl).map(|p| p.len()).ok_or_else(|| {
                    fault(
                        &format!("dead letter topic {dl}"),
                        "it does not exist, or has no partitions".to_owned(),
                    )
                })?;
                Some(DeadLetter {
                    topic: dl.clone(),
                    count: i32::try_from(count).unwrap_or(i32::MAX),
                    clients: Mutex::default(),
                })
            }
        };

        let file = OffsetFile::new(state_dir, name, topic);
        let saved = file.load().map_err(|e| fault("the offsets file", e))?;
        let mut partitions = BTreeMap::new();
        let mut start = BTreeMap::new();
        for p in numbers {
            let pc = client
                .partition_client(topic.as_str(), p, UnknownTopicHandling::Error)
                .await
                .map_err(|e| fault(&format!("partition {p}"), describe(e)))?;
            let offset = match saved.get(&p) {
                Some(o) => *o,
                None => {
                    let at = match start_from {
                        StartFrom::Earliest => OffsetAt::Earliest,
                        StartFrom::Latest => OffsetAt::Latest,
                    };
                    pc.get_offset(at)
                        .await
                        .map_err(|e| fault(&format!("the offsets of partition {p}"), describe(e)))?
                }
            };
            start.insert(p, offset);
            partitions.insert(p, Arc::new(pc));
        }
        let shared = Arc::new(Shared {
            offsets: Mutex::new(Offsets::new(&start)),
            file,
            saved: Mutex::new(saved),
        });
        // The start of a partition first read is written now: `latest` means the end when
        // the subscription first opened, not at each restart.
        shared.flush().map_err(|e| {
            fault(
                &format!("writing {}", shared.file.path().display()),
                e.to_string(),
            )
        })?;

        let partitions = Arc::new(partitions);
        let prefetch = subscription.prefetch.max(1) as usize;
        let permits = Arc::new(Semaphore::new(prefetch));
        let (tx, received) = mpsc::channel(prefetch);
        let mut tasks = Vec::with_capacity(partitions.len() + 1);
        for (p, pc) in partitions.iter() {
            tasks.push(tokio::spawn(fetch(
                name.to_owned(),
                *p,
                Arc::clone(pc),
                Arc::clone(&shared),
                Arc::clone(&permits),
                tx.clone(),
            )));
        }
        tasks.push(tokio::spawn(flusher(name.to_owned(), Arc::clone(&shared))));
        let (redeliver, redelivered) = mpsc::unbounded_channel();
        let client = Arc::new(client);
        Ok(KafkaSource {
            name: name.to_owned(),
            topic: topic.clone(),
            prober: Arc::new(KafkaProber {
                name: name.to_owned(),
                partitions: Arc::clone(&partitions),
                shared: Arc::clone(&shared),
            }),
            dead_letter: dead_letter.map(|target| {
                Arc::new(DeadLetterWith {
                    client: Arc::clone(&client),
                    target,
                })
            }),
            shared,
            partitions,
            received,
            redelivered,
            redeliver,
            tasks,
        })
    }

    /// Makes the message of a fetched record.
    fn message(
        &self,
        partition: i32,
        record: RecordAndOffset,
        permit: OwnedSemaphorePermit,
    ) -> Received {
        let RecordAndOffset { record, offset } = record;
        let Record {
            key,
            value,
            headers: raw,
            ..
        } = record;
        let headers: BTreeMap<String, String> = raw
            .iter()
            .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
            .collect();
        let id = KAFKA_ID_HEADERS
            .iter()
            .find_map(|wanted| {
                headers
                    .iter()
                    .find(|(k, v)| k.eq_ignore_ascii_case(wanted) && !v.is_empty())
                    .map(|(_, v)| v.clone())
            })
            .unwrap_or_else(|| format!("{}/{partition}/{offset}", self.topic));
        let settle = KafkaSettle {
            name: self.name.clone(),
            shared: Arc::clone(&self.shared),
            partition,
            offset,
            key,
            headers: raw,
            dead_letter: self.dead_letter.clone(),
            unsettled: Mutex::new(Some((permit, self.redeliver.clone()))),
        };
        Received::new(
            Some(id),
            self.topic.clone(),
            headers,
            value.unwrap_or_default(),
            Box::new(settle),
        )
    }

    /// Fetches the record of a message dropped without being settled, once its delay is
    /// over. `None` when it cannot be had now (it is queued again) or is gone (settled).
    async fn refetch(&self, r: Redeliver) -> Option<Received> {
        tokio::time::sleep_until(r.not_before).await;
        let pc = self.partitions.get(&r.partition)?;
        match pc.fetch_records(r.offset, 1..FETCH_MAX_BYTES, 0).await {
            Ok((records, _)) => match records.into_iter().find(|x| x.offset == r.offset) {
                Some(record) => Some(self.message(r.partition, record, r.permit)),
                None => {
                    tracing::warn!(subscription = %self.name, partition = r.partition, offset = r.offset,
                        "kafka: a message to deliver again is no longer in the topic; skipped");
                    self.shared.offsets().settled(r.partition, r.offset);
                    None
                }
            },
            Err(e) => {
                tracing::warn!(subscription = %self.name, partition = r.partition, offset = r.offset,
                    error = %describe(e), "kafka: fetching a message to deliver again failed");
                let again = Redeliver {
                    not_before: Instant::now() + REDELIVERY_DELAY,
                    ..r
                };
                // The receiver is ours: the send fails only while the source is dropped.
                let _ = self.redeliver.send(again);
                None
            }
        }
    }
}

#[async_trait::async_trait]
impl super::Source for KafkaSource {
    async fn next(&mut self) -> Result<Option<Received>, SourceError> {
        loop {
            tokio::select! {
                biased;
                Some(r) = self.redelivered.recv() => {
                    if let Some(m) = self.refetch(r).await {
                        return Ok(Some(m));
                    }
                }
                fetched = self.received.recv() => {
                    let Some(f) = fetched else { return Ok(None) };
                    return Ok(Some(self.message(f.partition, f.record, f.permit)));
                }
            }
        }
    }

    fn prober(&self) -> Arc<dyn Prober> {
        Arc::clone(&self.prober) as Arc<dyn Prober>
    }
}

/// Fetches one partition from its next offset, handing each record on once it holds a
/// permit, until the source goes.
async fn fetch(
    name: String,
    partition: i32,
    pc: Arc<PartitionClient>,
    shared: Arc<Shared>,
    permits: Arc<Semaphore>,
    tx: mpsc::Sender<Fetched>,
) {
    loop {
        let next = shared.offsets().next(partition);
        let began = Instant::now();
        match pc
            .fetch_records(next, 1..FETCH_MAX_BYTES, FETCH_MAX_WAIT_MS)
            .await
        {
            Ok((mut records, _)) => {
                records.sort_by_key(|r| r.offset);
                let mut handed = false;
                for record in records {
                    let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
                        return;
                    };
                    if !shared.offsets().delivered(partition, record.offset) {
                        continue;
                    }
                    handed = true;
                    let fetched = Fetched {
                        partition,
                        record,
                        permit,
                    };
                    if tx.send(fetched).await.is_err() {
                        return;
                    }
                }
                if !handed {
                    tokio::time::sleep_until(began + EMPTY_FETCH_PAUSE).await;
                }
            }
            Err(KafkaError::ServerError {
                protocol_error: ProtocolError::OffsetOutOfRange,
                ..
            }) => match pc.get_offset(OffsetAt::Earliest).await {
                Ok(earliest) => {
                    tracing::warn!(subscription = %name, partition, from = next, to = earliest,
                        "kafka: the offset is out of the partition's range; reading from its earliest");
                    shared.offsets().reset(partition, earliest);
                }
                Err(e) => {
                    tracing::warn!(subscription = %name, partition, error = %describe(e),
                        "kafka: asking for the earliest offset failed");
                    tokio::time::sleep(RETRY_DELAY).await;
                }
            },
            Err(e) => {
                tracing::warn!(subscription = %name, partition, error = %describe(e),
                    "kafka: fetching failed; fetching again");
                tokio::time::sleep(RETRY_DELAY).await;
            }
        }
    }
}

/// Writes the committed offsets every [`FLUSH_INTERVAL`] when they moved.
async fn flusher(name: String, shared: Arc<Shared>) {
    loop {
        tokio::time::sleep(FLUSH_INTERVAL).await;
        let s = Arc::clone(&shared);
        match tokio::task::spawn_blocking(move || s.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(subscription = %name, error = %e, "kafka: writing the offsets failed");
            }
            Err(e) => {
                tracing::warn!(subscription = %name, error = %e, "kafka: the offsets writer failed");
            }
        }
    }
}

/// Probes a Kafka source: each partition's high watermark, against where the source is.
#[derive(Debug)]
struct KafkaProber {
    name: String,
    partitions: Arc<BTreeMap<i32, Arc<PartitionClient>>>,
    shared: Arc<Shared>,
}

#[async_trait::async_trait]
impl Prober for KafkaProber {
    /// `pending` is what the partitions hold past what was delivered (high watermark minus
    /// the next offset to fetch, summed), `unacknowledged` what was delivered and not
    /// settled; together, the lag behind the committed offsets.
    async fn backlog(&self) -> Result<Backlog, SourceError> {
        let mut pending = 0u64;
        for (p, pc) in self.partitions.iter() {
            let high = pc.get_offset(OffsetAt::Latest).await.map_err(|e| {
                SourceError::broker(
                    &self.name,
                    &format!("the offsets of partition {p}"),
                    describe(e),
                )
            })?;
            let next = self.shared.offsets().next(*p);
            pending += u64::try_from(high - next).unwrap_or(0);
        }
        let unacknowledged = self.shared.offsets().outstanding() as u64;
        Ok(Backlog {
            pending: Some(pending),
            unacknowledged: Some(unacknowledged),
        })
    }
}

/// The dead letter topic of a source, and its partition clients, made when first needed.
#[derive(Debug)]
struct DeadLetter {
    topic: String,
    count: i32,
    clients: Mutex<HashMap<i32, Arc<PartitionClient>>>,
}

/// The dead letter with the client that produces to it.
struct DeadLetterWith {
    client: Arc<Client>,
    target: DeadLetter,
}

impl std::fmt::Debug for DeadLetterWith {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetter")
            .field("topic", &self.target.topic)
            .finish_non_exhaustive()
    }
}

impl DeadLetterWith {
    async fn partition(&self, p: i32) -> Result<Arc<PartitionClient>, KafkaError> {
        if let Some(c) = lock(&self.target.clients).get(&p) {
            return Ok(Arc::clone(c));
        }
        let made = Arc::new(
            self.client
                .partition_client(self.target.topic.as_str(), p, UnknownTopicHandling::Error)
                .await?,
        );
        lock(&self.target.clients).insert(p, Arc::clone(&made));
        Ok(made)
    }
}

/// Settles one Kafka message: marks its offset settled and gives its permit back; dropped
/// unsettled, it queues the message to be delivered again.
struct KafkaSettle {
    name: String,
    shared: Arc<Shared>,
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    headers: BTreeMap<String, Vec<u8>>,
    dead_letter: Option<Arc<DeadLetterWith>>,
    unsettled: Mutex<Option<(OwnedSemaphorePermit, mpsc::UnboundedSender<Redeliver>)>>,
}

impl Drop for KafkaSettle {
    fn drop(&mut self) {
        if let Some((permit, again)) = lock(&self.unsettled).take() {
            // Fails only once the source is gone: the offset stays outstanding, and the
            // message is delivered again after a restart.
            let _ = again.send(Redeliver {
                partition: self.partition,
                offset: self.offset,
                permit,
                not_before: Instant::now() + REDELIVERY_DELAY,
            });
        }
    }
}

#[async_trait::async_trait]
impl Settle for KafkaSettle {
    async fn ack(&self) -> Result<(), SourceError> {
        let unsettled = lock(&self.unsettled).take();
        if unsettled.is_some() {
            self.shared.offsets().settled(self.partition, self.offset);
        }
        // The permit goes back with `unsettled`.
        Ok(())
    }

    async fn dead_letter(
        &self,
        reason: &str,
        // The record's own headers, as bytes, are copied instead.
        _headers: &BTreeMap<String, String>,
        payload: &[u8],
    ) -> Result<(), SourceError> {
        let Some(dl) = &self.dead_letter else {
            tracing::warn!(subscription = %self.name, reason, "message refused; no dead letter");
            return Ok(());
        };
        let mut out = self.headers.clone();
        out.insert(REASON_HEADER.to_owned(), reason.as_bytes().to_vec());
        out.insert(
            SUBSCRIPTION_HEADER.to_owned(),
            self.name.as_bytes().to_vec(),
        );
        let target = match &self.key {
            Some(key) => crate::kafka::partition_for(key, dl.target.count),
            None => self.partition % dl.target.count.max(1),
        };
        let fail = |e: KafkaError| {
            SourceError::broker(
                &self.name,
                &format!("producing to the dead letter {}", dl.target.topic),
                describe(e),
            )
        };
        let pc = dl.partition(target).await.map_err(fail)?;
        let record = Record {
            key: self.key.clone(),
            value: Some(payload.to_vec()),
            headers: out,
            timestamp: crate::kafka::now(),
        };
        pc.produce(vec![record], Compression::NoCompression)
            .await
            .map_err(fail)?;
        Ok(())
    }
}
