//! The access-event stream on NATS JetStream. Guard nodes publish every assessed access ([`NatsSink`], an
//! [`EventSink`] for the risk engine) to `<prefix>.access.<partition>`, the partition a stable hash of the
//! account id, so that each account's events stay in order in one partition. A risk worker ([`Worker`]) owns
//! one partition through a durable consumer: it feeds each event to its engine, hands the verdicts to a
//! callback (suspensions go to every guard node) and acknowledges the event only afterwards, so a killed worker
//! loses nothing — its unacknowledged events are delivered again. On start it first replays its partition up
//! to the consumer's acknowledged floor with verdicts muted, so the engine's state is what it was before the
//! restart (the stream keeps `max_age_days`, longer than the engine's slowest score horizon).
//!
//! Events carry identifiers and routing metadata only (`AccessEvent`): no personal data is ever on the bus.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use async_nats::jetstream::context::ConsumerInfoErrorKind;
use async_nats::jetstream::{self, consumer::pull, consumer::AckPolicy, consumer::DeliverPolicy};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wbg_risk::{AccessEvent, Engine, EventSink, RiskVerdict};

/// What can go wrong on the bus. Messages name subjects and streams, never event contents.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// Connecting, publishing or consuming failed.
    #[error("nats: {0}")]
    Nats(String),
    /// A message on the stream is not an access event.
    #[error("a message on {0} is not an access event")]
    Malformed(String),
}

fn nats(e: impl std::fmt::Display) -> BusError {
    BusError::Nats(e.to_string())
}

/// `[bus]` for `kind = "nats"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NatsConfig {
    /// Server URL (default `$NATS_URL`, else `nats://127.0.0.1:4222`).
    pub url: String,
    /// Subject prefix and stream name stem: subjects `<prefix>.access.<n>`, stream `<PREFIX>_ACCESS`.
    pub prefix: String,
    /// Account partitions; each is consumed by one worker. Fixed for the life of a stream.
    pub partitions: u32,
    /// How long the stream keeps events (replay on restart reaches this far back).
    pub max_age_days: u32,
    /// Events a guard node buffers for publishing before it drops (and counts) new ones.
    pub queue: usize,
}

impl Default for NatsConfig {
    fn default() -> Self {
        NatsConfig {
            url: std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into()),
            prefix: "wbguard".into(),
            partitions: 8,
            max_age_days: 8,
            queue: 65_536,
        }
    }
}

impl NatsConfig {
    fn stream(&self) -> String {
        format!(
            "{}_ACCESS",
            self.prefix.to_ascii_uppercase().replace(['.', '-'], "_")
        )
    }

    /// The subject of `partition`.
    pub fn subject(&self, partition: u32) -> String {
        format!("{}.access.{partition}", self.prefix)
    }

    /// The partition an account's events go to: a stable hash (SHA-256) of its id, the same on every node and
    /// every build.
    pub fn partition_of(&self, account: &str) -> u32 {
        let h = Sha256::digest(account.as_bytes());
        u32::from_be_bytes([h[0], h[1], h[2], h[3]]) % self.partitions.max(1)
    }
}

async fn stream_of(
    cfg: &NatsConfig,
) -> Result<(jetstream::Context, jetstream::stream::Stream), BusError> {
    let client = async_nats::connect(&cfg.url).await.map_err(nats)?;
    let js = jetstream::new(client);
    let stream = js
        .get_or_create_stream(jetstream::stream::Config {
            name: cfg.stream(),
            subjects: vec![format!("{}.access.*", cfg.prefix)],
            max_age: Duration::from_secs(u64::from(cfg.max_age_days) * 86_400),
            ..Default::default()
        })
        .await
        .map_err(nats)?;
    Ok((js, stream))
}

fn runtime(name: &str) -> Result<tokio::runtime::Runtime, BusError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(name)
        .enable_all()
        .build()
        .map_err(nats)
}

/// A guard node's publishing end: hands events to a background task that publishes them with JetStream
/// acknowledgements, in order. Never blocks the guard: a full queue drops and counts.
pub struct NatsSink {
    tx: tokio::sync::mpsc::Sender<AccessEvent>,
    dropped: AtomicU64,
    published: Arc<AtomicU64>,
    _rt: tokio::runtime::Runtime,
}

impl std::fmt::Debug for NatsSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSink")
            .field("published", &self.published.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl NatsSink {
    /// Connects and starts publishing.
    pub fn start(cfg: &NatsConfig) -> Result<NatsSink, BusError> {
        let rt = runtime("wbguard-bus")?;
        let (js, _) = rt.block_on(stream_of(cfg))?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<AccessEvent>(cfg.queue.max(1));
        let published = Arc::new(AtomicU64::new(0));
        let (count, cfg) = (published.clone(), cfg.clone());
        rt.spawn(async move {
            // Up to 256 publishes in flight, acknowledged in order.
            let mut pending = std::collections::VecDeque::new();
            while let Some(ev) = rx.recv().await {
                let subject = cfg.subject(cfg.partition_of(ev.account.id.as_str()));
                let body = match serde_json::to_vec(&ev) {
                    Ok(b) => b,
                    Err(_) => continue,
                };
                match js.publish(subject, body.into()).await {
                    Ok(ack) => pending.push_back(ack),
                    Err(e) => {
                        metrics::counter!("wbguard_bus_publish_failures_total").increment(1);
                        tracing::warn!(error = %e, "cannot publish an access event")
                    }
                }
                while pending.len() >= 256 || (rx.is_empty() && !pending.is_empty()) {
                    let Some(ack) = pending.pop_front() else {
                        break;
                    };
                    match ack.await {
                        Ok(_) => {
                            count.fetch_add(1, Ordering::Relaxed);
                            metrics::counter!("wbguard_bus_events_published_total").increment(1);
                        }
                        Err(e) => {
                            metrics::counter!("wbguard_bus_publish_failures_total").increment(1);
                            tracing::warn!(error = %e, "an access event was not acknowledged")
                        }
                    }
                }
            }
        });
        Ok(NatsSink {
            tx,
            dropped: AtomicU64::new(0),
            published,
            _rt: rt,
        })
    }

    /// Events the stream has acknowledged.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }
}

impl EventSink for NatsSink {
    fn publish(&self, ev: AccessEvent) {
        if self.tx.try_send(ev).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            metrics_dropped();
        }
    }

    fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

fn metrics_dropped() {
    metrics::counter!("wbguard_bus_events_dropped_total").increment(1);
    tracing::warn!("access-event queue full; event dropped");
}

/// What a worker did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerReport {
    /// Events replayed at start to rebuild the engine's state (verdicts muted).
    pub replayed: u64,
    /// Events processed and acknowledged.
    pub processed: u64,
}

/// A risk worker: one partition's events through one engine.
pub struct Worker {
    cfg: NatsConfig,
    partition: u32,
    engine: Engine,
    rt: tokio::runtime::Runtime,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("partition", &self.partition)
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// A worker for `partition` with a fresh `engine`.
    pub fn new(cfg: &NatsConfig, partition: u32, engine: Engine) -> Result<Worker, BusError> {
        Ok(Worker {
            cfg: cfg.clone(),
            partition,
            engine,
            rt: runtime("wbguard-risk-worker")?,
        })
    }

    /// The engine (its state is the partition's).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Replays the partition up to the durable consumer's acknowledged floor, then processes new events until
    /// `stop` is set (or, with `limit`, after that many), calling `verdict` for each before acknowledging it.
    /// `verdict` runs outside the worker's async runtime, so it may block (write to a store).
    pub fn run(
        &self,
        stop: &AtomicBool,
        limit: Option<u64>,
        verdict: &mut dyn FnMut(&AccessEvent, &RiskVerdict),
    ) -> Result<WorkerReport, BusError> {
        let subject = self.cfg.subject(self.partition);
        let mut report = WorkerReport::default();
        let consumer = self.rt.block_on(async {
            let (_, stream) = stream_of(&self.cfg).await?;
            let durable = format!("risk-{}", self.partition);
            let mut consumer = stream
                .get_or_create_consumer(
                    &durable,
                    pull::Config {
                        durable_name: Some(durable.clone()),
                        filter_subject: subject.clone(),
                        ack_policy: AckPolicy::Explicit,
                        deliver_policy: DeliverPolicy::All,
                        ack_wait: Duration::from_secs(30),
                        ..Default::default()
                    },
                )
                .await
                .map_err(nats)?;
            let floor = consumer
                .info()
                .await
                .map_err(nats)?
                .ack_floor
                .stream_sequence;
            if floor > 0 {
                report.replayed = self.replay(&stream, &subject, floor).await?;
            }
            tracing::info!(
                partition = self.partition,
                replayed = report.replayed,
                ack_floor = floor,
                "risk worker rebuilt its state; consuming"
            );
            Ok::<_, BusError>(consumer)
        })?;
        while !stop.load(Ordering::Relaxed) && limit.is_none_or(|l| report.processed < l) {
            let want = limit.map_or(500, |l| (l - report.processed).min(500)) as usize;
            let batch = self.rt.block_on(async {
                let mut msgs = consumer
                    .fetch()
                    .max_messages(want)
                    .expires(Duration::from_millis(200))
                    .messages()
                    .await
                    .map_err(nats)?;
                let mut out = Vec::new();
                while let Some(m) = msgs.next().await {
                    out.push(m.map_err(nats)?);
                }
                Ok::<_, BusError>(out)
            })?;
            for m in &batch {
                let ev: AccessEvent = serde_json::from_slice(&m.payload)
                    .map_err(|_| BusError::Malformed(subject.clone()))?;
                let v = self.engine.observe(&ev);
                verdict(&ev, &v);
                report.processed += 1;
                metrics::counter!("wbguard_risk_worker_events_total").increment(1);
            }
            // Every event of the batch was handled: acknowledge them, the last one waiting for the server's
            // confirmation (which follows the earlier ones on this connection), so that a worker stopped now has
            // its ack floor where it stopped.
            self.rt.block_on(async {
                if let Some((last, rest)) = batch.split_last() {
                    for m in rest {
                        m.ack().await.map_err(nats)?;
                    }
                    last.double_ack().await.map_err(nats)?;
                }
                Ok::<_, BusError>(())
            })?;
        }
        Ok(report)
    }

    /// Feeds the partition's events up to stream sequence `floor` to the engine, verdicts muted.
    async fn replay(
        &self,
        stream: &jetstream::stream::Stream,
        subject: &str,
        floor: u64,
    ) -> Result<u64, BusError> {
        let replay = stream
            .create_consumer(pull::Config {
                filter_subject: subject.to_owned(),
                ack_policy: AckPolicy::None,
                deliver_policy: DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .map_err(nats)?;
        let mut replayed = 0;
        loop {
            let mut batch = replay
                .fetch()
                .max_messages(1_000)
                .expires(Duration::from_millis(500))
                .messages()
                .await
                .map_err(nats)?;
            let mut got = 0;
            while let Some(m) = batch.next().await {
                let m = m.map_err(nats)?;
                got += 1;
                let seq = m.info().map_err(nats)?.stream_sequence;
                if seq > floor {
                    return Ok(replayed);
                }
                let ev: AccessEvent = serde_json::from_slice(&m.payload)
                    .map_err(|_| BusError::Malformed(subject.to_owned()))?;
                self.engine.observe(&ev);
                replayed += 1;
                if seq == floor {
                    return Ok(replayed);
                }
            }
            if got == 0 {
                return Ok(replayed);
            }
        }
    }
}

/// Where one partition stands: what the stream holds and how far its worker's durable consumer has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PartitionStatus {
    /// The partition.
    pub partition: u32,
    /// Events the stream holds for it (those younger than `max_age_days`).
    pub events: u64,
    /// Whether a worker has ever consumed it (its durable consumer exists).
    pub consumer: bool,
    /// Events not yet delivered to its worker.
    pub pending: u64,
    /// Events delivered to its worker and not yet acknowledged.
    pub unacknowledged: u64,
    /// Events delivered again (a worker died or was too slow before acknowledging them).
    pub redelivered: u64,
    /// The stream sequence up to which its worker has acknowledged everything.
    pub ack_floor: u64,
}

impl PartitionStatus {
    /// Every event the stream holds for the partition was handled and acknowledged by its worker.
    pub fn drained(&self) -> bool {
        self.consumer && self.pending == 0 && self.unacknowledged == 0
    }
}

/// Each partition's [`PartitionStatus`] (`wbguard bus status`, and tests counting events end to end).
pub fn status(cfg: &NatsConfig) -> Result<Vec<PartitionStatus>, BusError> {
    runtime("wbguard-bus-admin")?.block_on(async {
        let (_, stream) = stream_of(cfg).await?;
        let mut counts = std::collections::HashMap::new();
        let mut subjects = stream
            .info_with_subjects(format!("{}.access.*", cfg.prefix))
            .await
            .map_err(nats)?;
        while let Some(item) = subjects.next().await {
            let (subject, n) = item.map_err(nats)?;
            counts.insert(subject, n as u64);
        }
        let mut out = Vec::new();
        for p in 0..cfg.partitions {
            let info = match stream.consumer_info(format!("risk-{p}")).await {
                Ok(i) => Some(i),
                Err(e) if e.kind() == ConsumerInfoErrorKind::NotFound => None,
                Err(e) => return Err(nats(e)),
            };
            out.push(PartitionStatus {
                partition: p,
                events: counts.get(&cfg.subject(p)).copied().unwrap_or(0),
                consumer: info.is_some(),
                pending: info.as_ref().map_or(0, |i| i.num_pending),
                unacknowledged: info.as_ref().map_or(0, |i| i.num_ack_pending as u64),
                redelivered: info.as_ref().map_or(0, |i| i.num_redelivered as u64),
                ack_floor: info.as_ref().map_or(0, |i| i.ack_floor.stream_sequence),
            });
        }
        Ok(out)
    })
}

/// Deletes the configured stream and its consumers (tests, and an operator retiring a deployment).
pub fn delete_stream(cfg: &NatsConfig) -> Result<(), BusError> {
    runtime("wbguard-bus-admin")?.block_on(async {
        let client = async_nats::connect(&cfg.url).await.map_err(nats)?;
        jetstream::new(client)
            .delete_stream(cfg.stream())
            .await
            .map_err(nats)?;
        Ok(())
    })
}
