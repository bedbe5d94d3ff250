//! The access-event stream on NATS JetStream. Guard nodes publish every assessed access ([`NatsSink`], an
//! [`EventSink`] for the risk engine) to `<prefix>.access.<partition>`, the partition a stable hash of the
//! account id, so that each account's events stay in order in one partition; a message carries the partition's
//! events of a few milliseconds (a JSON array of up to [`EVENTS_PER_MESSAGE`]). A risk worker ([`Worker`]) owns
//! one partition through a durable consumer: it feeds each event to its engine, hands the verdicts to a
//! callback (suspensions go to every guard node) and acknowledges the event only afterwards, so a killed worker
//! loses nothing — its unacknowledged events are delivered again. It snapshots its engine's state into the
//! object store `<PREFIX>_RISK_STATE` every `snapshot_seconds`; on start it restores the latest snapshot and
//! replays the partition from there up to the consumer's acknowledged floor with verdicts muted, so the engine's
//! state is what it was before the restart (without a snapshot the replay starts at the stream's beginning: it
//! keeps `max_age_days`, longer than the engine's slowest score horizon). [`status`] tells where each partition
//! stands.
//!
//! Events carry identifiers and routing metadata only (`AccessEvent`): no personal data is ever on the bus.
#![deny(missing_docs)]

use async_nats::jetstream::context::ConsumerInfoErrorKind;
use async_nats::jetstream::object_store::ObjectStore;
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
    /// Connecting, publishing or consuming failed (the client's error is the source).
    #[error("nats: {0}")]
    Nats(#[source] Source),
    /// A worker's engine snapshot could not be taken, written, read or put back.
    #[error("risk snapshot: {0}")]
    Snapshot(#[source] Source),
}

/// The error a [`BusError`] wraps, kept whole (the NATS client's errors are of many types).
pub type Source = Box<dyn std::error::Error + Send + Sync>;

fn nats(e: impl Into<Source>) -> BusError {
    BusError::Nats(e.into())
}

fn snapshot(e: impl Into<Source>) -> BusError {
    BusError::Snapshot(e.into())
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
    /// Workers keep snapshots of their engine's state in the object store `<PREFIX>_RISK_STATE` and restart
    /// from the latest, replaying only what came after it; without, a restart replays the whole stream.
    pub snapshots: bool,
    /// Seconds between a worker's snapshots while events come in (one is also taken when it stops cleanly).
    pub snapshot_seconds: u64,
}

impl Default for NatsConfig {
    fn default() -> Self {
        NatsConfig {
            url: std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into()),
            prefix: "wbguard".into(),
            partitions: 8,
            max_age_days: 8,
            queue: 65_536,
            snapshots: true,
            snapshot_seconds: 60,
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

    fn state_bucket(&self) -> String {
        format!(
            "{}_RISK_STATE",
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

/// At most this many events travel in one message (a message of them stays far below NATS's default 1 MiB
/// payload limit: an event is well under 1 KiB).
pub const EVENTS_PER_MESSAGE: usize = 256;

/// The longest the publisher waits, after an event, for more to send with it: an event reaches its worker this
/// much later at most (the node's own engine has assessed it at once). Under load the wait ends sooner, once
/// [`FILL`] events a partition are waiting.
pub const LINGER: std::time::Duration = std::time::Duration::from_millis(100);

/// Events a partition's message is worth sending with: once the queue holds this many per partition, the
/// publisher ends its [`LINGER`] and sends. The stream and the workers' acknowledgements cost per message, not
/// per event, so messages are sent by how many events fill them, not by the clock: every node sends one when it
/// has gathered a message's worth, so a second node gathering half the events sends half as often, and the
/// stream's messages a second stay the same under load however many nodes share the reads. (With a fixed 20 ms
/// linger each node sent a message per partition every 20 ms, so two nodes sent twice the messages, each half
/// as full: NATS spent 13–21 µs of CPU per read with two nodes against 10–14 with one, and 11–14 with two once
/// messages went by their fill; `scripts/bench pg1bus pg2`, 2026-12-06. At 5 ms, an earlier session's NATS
/// spent 7.8 µs per read against 4.2 at 20 ms.)
pub const FILL: usize = EVENTS_PER_MESSAGE / 2;

/// One message's events, oldest first: a JSON array, or one JSON object as nodes before batching published.
fn decode(payload: &[u8]) -> Result<Vec<AccessEvent>, serde_json::Error> {
    match payload.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => serde_json::from_slice(payload),
        _ => serde_json::from_slice(payload).map(|ev| vec![ev]),
    }
}

/// Splits what the publisher took from its queue into messages: per partition, in the order the events came,
/// at most [`EVENTS_PER_MESSAGE`] a message. An account's events are all in one partition, so they keep their
/// order on the stream.
fn messages(cfg: &NatsConfig, events: Vec<AccessEvent>) -> Vec<(u32, Vec<AccessEvent>)> {
    let mut by_partition: std::collections::BTreeMap<u32, Vec<AccessEvent>> = Default::default();
    for ev in events {
        by_partition
            .entry(cfg.partition_of(ev.account.id.as_str()))
            .or_default()
            .push(ev);
    }
    let mut out = Vec::new();
    for (partition, mut evs) in by_partition {
        while evs.len() > EVENTS_PER_MESSAGE {
            let rest = evs.split_off(EVENTS_PER_MESSAGE);
            out.push((partition, std::mem::replace(&mut evs, rest)));
        }
        out.push((partition, evs));
    }
    out
}

/// A guard node's publishing end: hands events to a background task that publishes them with JetStream
/// acknowledgements, in order. Never blocks the guard: a full queue drops and counts. What gathers from the
/// first event on goes out together, one message per partition, once [`FILL`] events a partition wait (or half
/// the queue, if that is fewer) or after [`LINGER`]: the stream, and each worker's acknowledgements, cost per
/// message, not per read.
pub struct NatsSink {
    tx: tokio::sync::mpsc::Sender<AccessEvent>,
    /// Told when `ready` events wait, so that the linger ends: the messages are worth sending (and the queue
    /// never fills while the publisher sleeps).
    filling: Arc<tokio::sync::Notify>,
    /// Free places in the queue at or below which `filling` is told: its size less `FILL` events a partition,
    /// or half its size, whichever leaves more.
    ready: usize,
    dropped: AtomicU64,
    published: Arc<AtomicU64>,
    /// The publisher's runtime and task, until the sink is dropped (see its `Drop`).
    publisher: Option<(tokio::runtime::Runtime, tokio::task::JoinHandle<()>)>,
}

/// How long a dropped sink waits for its publisher to send what is queued and have it acknowledged.
pub const FLUSH_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

impl Drop for NatsSink {
    /// Sends what waits in the queue and awaits its acknowledgements (up to [`FLUSH_WAIT`]) before the publisher's
    /// runtime goes: a graceful stop loses none of the last linger's events. That wait runs on a thread of its
    /// own, because a sink is dropped wherever its last holder goes — for a server, inside its own runtime after
    /// a graceful stop, where waiting on (or dropping) another runtime the ordinary way panics (it did, on every
    /// SIGTERM of a node with a bus).
    fn drop(&mut self) {
        // The queue closes: the publisher takes what waits, sends it, awaits the acks and ends.
        drop(std::mem::replace(
            &mut self.tx,
            tokio::sync::mpsc::channel(1).0,
        ));
        self.filling.notify_one();
        let Some(publisher) = self.publisher.take() else {
            return;
        };
        let slot = Arc::new(std::sync::Mutex::new(Some(publisher)));
        let theirs = slot.clone();
        let flushing = std::thread::Builder::new()
            .name("wbguard-bus-stop".into())
            .spawn(move || {
                if let Some((rt, task)) = theirs.lock().ok().and_then(|mut s| s.take()) {
                    // (The timer is made inside the runtime: it needs the runtime's clock.)
                    let _ = rt.block_on(async { tokio::time::timeout(FLUSH_WAIT, task).await });
                    rt.shutdown_background();
                }
            });
        if let Ok(t) = flushing {
            let _ = t.join();
        }
        // No thread could be started: the runtime goes without waiting.
        if let Some((rt, _)) = slot.lock().ok().and_then(|mut s| s.take()) {
            rt.shutdown_background();
        }
    }
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
        Self::start_with(cfg, LINGER)
    }

    fn start_with(cfg: &NatsConfig, linger: std::time::Duration) -> Result<NatsSink, BusError> {
        let rt = runtime("wbguard-bus")?;
        let (js, _) = rt.block_on(stream_of(cfg))?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<AccessEvent>(cfg.queue.max(1));
        let published = Arc::new(AtomicU64::new(0));
        let filling = Arc::new(tokio::sync::Notify::new());
        let size = cfg.queue.max(1);
        let worth = FILL.saturating_mul(cfg.partitions.max(1) as usize);
        let ready = size - worth.min(size / 2).max(1);
        let (count, cfg, told) = (published.clone(), cfg.clone(), filling.clone());
        let task = rt.spawn(async move {
            // Up to 256 messages in flight, acknowledged in order; each ack counts its message's events.
            let mut pending = std::collections::VecDeque::new();
            let mut taken = Vec::new();
            while rx.recv_many(&mut taken, 4 * EVENTS_PER_MESSAGE).await > 0 {
                // What else comes within the linger goes in the same messages. The task sleeps through the
                // linger rather than waiting on the queue: a waiting receiver is woken by every event (a
                // switch to this thread per guarded read, measured: 0.53 a read), a sleeping one once, or
                // when a message's worth of events a partition waits.
                tokio::select! {
                    () = tokio::time::sleep(linger) => {}
                    () = told.notified() => {}
                }
                let waiting = rx.len();
                if waiting > 0 {
                    rx.recv_many(&mut taken, waiting).await;
                }
                for (partition, events) in messages(&cfg, std::mem::take(&mut taken)) {
                    let body = match serde_json::to_vec(&events) {
                        Ok(b) => b,
                        Err(_) => continue,
                    };
                    match js.publish(cfg.subject(partition), body.into()).await {
                        Ok(ack) => pending.push_back((ack, events.len() as u64)),
                        Err(e) => {
                            metrics::counter!("wbguard_bus_publish_failures_total")
                                .increment(events.len() as u64);
                            tracing::warn!(error = %e, "cannot publish access events")
                        }
                    }
                }
                while pending.len() >= 256 || (rx.is_empty() && !pending.is_empty()) {
                    let Some((ack, n)) = pending.pop_front() else {
                        break;
                    };
                    match ack.await {
                        Ok(_) => {
                            count.fetch_add(n, Ordering::Relaxed);
                            metrics::counter!("wbguard_bus_events_published_total").increment(n);
                            metrics::counter!("wbguard_bus_messages_published_total").increment(1);
                        }
                        Err(e) => {
                            metrics::counter!("wbguard_bus_publish_failures_total").increment(n);
                            tracing::warn!(error = %e, "access events were not acknowledged")
                        }
                    }
                }
            }
        });
        Ok(NatsSink {
            tx,
            filling,
            ready,
            dropped: AtomicU64::new(0),
            published,
            publisher: Some((rt, task)),
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
        } else if self.tx.capacity() <= self.ready {
            self.filling.notify_one();
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
    /// The stream sequence of the snapshot the worker started from, if it found one it could use.
    pub restored: Option<u64>,
    /// Events replayed at start to rebuild the engine's state (verdicts muted): those after the snapshot.
    pub replayed: u64,
    /// Events processed (each acknowledged, or delivered again and then acknowledged without a second pass).
    pub processed: u64,
    /// Messages skipped as not access events (acknowledged, logged with their stream sequence).
    pub skipped: u64,
    /// The stream sequence of the latest snapshot it wrote.
    pub snapshot: Option<u64>,
}

/// A worker's first wait after its stream failed; each failure in a row doubles it up to [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_millis(100);
/// A worker's longest wait between tries while its stream keeps failing.
const RETRY_MAX: Duration = Duration::from_secs(5);
/// The stream sequences a worker remembers as handled but not confirmed acknowledged (the oldest forgotten
/// first): far more than the messages one failed acknowledgement leaves behind.
const UNCONFIRMED_MAX: usize = 100_000;
/// How long a worker waits for its snapshot at start before it replays instead.
const SNAPSHOT_LOAD_WAIT: Duration = Duration::from_secs(10);

/// Waits `retry` (unless `stop` is set meanwhile) and doubles it up to [`RETRY_MAX`]; false when stopped.
fn pause(stop: &AtomicBool, retry: &mut Duration) -> bool {
    let until = std::time::Instant::now() + *retry;
    while !stop.load(Ordering::Relaxed) && std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    *retry = (*retry * 2).min(RETRY_MAX);
    !stop.load(Ordering::Relaxed)
}

/// Marks a snapshot object's first line; the second is the stream sequence it covers, the rest the engine's.
const SNAPSHOT_MAGIC: &[u8] = b"wbguard-risk-snapshot-1\n";

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
    /// `stop` is set (or, with `limit`, once that many are processed: at the end of the message that reaches
    /// it), calling `verdict` for each before acknowledging its message.
    /// `verdict` runs outside the worker's async runtime, so it may block (write to a store).
    ///
    /// A failing bus never ends a worker: a start, a fetch or an acknowledgement that fails is logged and tried
    /// again (100 ms, doubling up to 5 s), and a message that is no access event is logged and skipped. It
    /// returns an error only when it is stopped before it could start.
    pub fn run(
        &self,
        stop: &AtomicBool,
        limit: Option<u64>,
        verdict: &mut dyn FnMut(&AccessEvent, &RiskVerdict),
    ) -> Result<WorkerReport, BusError> {
        let subject = self.cfg.subject(self.partition);
        let mut report = WorkerReport::default();
        // The engine as given: a start that fails halfway through its replay starts again from it.
        let initial = self.engine.snapshot().map_err(snapshot)?;
        // A bus that fails (at the start, a fetch cut short, an acknowledgement lost or unconfirmed) is waited
        // out, never a reason to leave the partition unwatched: the worker says so and tries again, ever more
        // slowly up to `RETRY_MAX`, until it is stopped. What it handled and could not get acknowledged is
        // delivered again; it is acknowledged then without going through the engine twice.
        let mut retry = RETRY_MIN;
        let (consumer, store, mut acked) = loop {
            match self.rt.block_on(self.start(&subject, &mut report)) {
                Ok(started) => break started,
                Err(e) => {
                    metrics::counter!("wbguard_risk_worker_bus_failures_total").increment(1);
                    tracing::warn!(partition = self.partition, error = %e, retry_ms = retry.as_millis() as u64,
                        "the risk worker cannot start on its partition; trying again");
                    if !pause(stop, &mut retry) {
                        return Err(e);
                    }
                    self.engine.restore(&initial).map_err(snapshot)?;
                    report = WorkerReport::default();
                }
            }
        };
        let mut snapshot_taken = (std::time::Instant::now(), acked);
        metrics::gauge!("wbguard_risk_worker_acked_sequence").set(acked as f64);
        retry = RETRY_MIN;
        let mut unconfirmed = std::collections::BTreeSet::new();
        while !stop.load(Ordering::Relaxed) && limit.is_none_or(|l| report.processed < l) {
            // A message carries one or more events, so with a limit the worker takes one message at a time
            // and stops at the first message boundary at or past it (a message fetched is handled and
            // acknowledged whole).
            let want = if limit.is_some() { 1 } else { 500 };
            let (batch, fetch_failed) = self.rt.block_on(async {
                let mut out = Vec::new();
                let mut msgs = match consumer
                    .fetch()
                    .max_messages(want)
                    .expires(Duration::from_millis(200))
                    .messages()
                    .await
                {
                    Ok(msgs) => msgs,
                    Err(e) => return (out, Some(nats(e))),
                };
                while let Some(m) = msgs.next().await {
                    match m {
                        Ok(m) => out.push(m),
                        // What came before the failure is handled as usual.
                        Err(e) => return (out, Some(nats(e))),
                    }
                }
                (out, None)
            });
            // The batch's stream sequences, read once: to skip what was handled already, and to forget what
            // the acknowledgements below confirm.
            let seqs: Vec<Option<u64>> = batch
                .iter()
                .map(|m| m.info().map(|i| i.stream_sequence).ok())
                .collect();
            for (m, &seq) in batch.iter().zip(&seqs) {
                if seq.is_some_and(|s| unconfirmed.contains(&s)) {
                    continue;
                }
                match decode(&m.payload) {
                    Ok(events) => {
                        for ev in &events {
                            let v = self.engine.observe(ev);
                            verdict(ev, &v);
                        }
                        report.processed += events.len() as u64;
                        metrics::counter!("wbguard_risk_worker_events_total")
                            .increment(events.len() as u64);
                    }
                    // Not an access event (nothing a guard node publishes): nothing the engine could assess.
                    // It is acknowledged with the rest rather than left to stop the partition for good.
                    Err(_) => {
                        tracing::error!(
                            partition = self.partition,
                            stream_sequence = seq,
                            "a message on the partition is not an access event; skipped"
                        );
                        report.skipped += 1;
                        metrics::counter!("wbguard_risk_worker_skipped_total").increment(1);
                    }
                }
                if let Some(s) = seq {
                    unconfirmed.insert(s);
                    if unconfirmed.len() > UNCONFIRMED_MAX {
                        unconfirmed.pop_first();
                    }
                }
            }
            // Every event of the batch was handled: acknowledge them, the last one waiting for the server's
            // confirmation (which follows the earlier ones on this connection), so that a worker stopped now has
            // its ack floor where it stopped.
            let ack_failed = self
                .rt
                .block_on(async {
                    if let Some((last, rest)) = batch.split_last() {
                        for m in rest {
                            m.ack().await.map_err(nats)?;
                        }
                        last.double_ack().await.map_err(nats)?;
                    }
                    Ok::<_, BusError>(())
                })
                .err();
            if ack_failed.is_none() {
                for s in seqs.iter().flatten() {
                    unconfirmed.remove(s);
                }
                if let Some(&Some(last)) = seqs.last() {
                    acked = last;
                    metrics::gauge!("wbguard_risk_worker_acked_sequence").set(acked as f64);
                }
            }
            match fetch_failed.or(ack_failed) {
                Some(e) => {
                    metrics::counter!("wbguard_risk_worker_bus_failures_total").increment(1);
                    tracing::warn!(partition = self.partition, error = %e, retry_ms = retry.as_millis() as u64,
                        "the partition's stream failed; trying again");
                    pause(stop, &mut retry);
                }
                None => retry = RETRY_MIN,
            }
            let due = snapshot_taken.0.elapsed().as_secs() >= self.cfg.snapshot_seconds;
            if let (Some(store), true) = (&store, due && acked > snapshot_taken.1) {
                self.snapshot_to(store, acked, &mut report);
                snapshot_taken = (std::time::Instant::now(), acked);
            }
        }
        // A clean stop leaves a snapshot where it stopped.
        if let (Some(store), true) = (&store, acked > snapshot_taken.1) {
            self.snapshot_to(store, acked, &mut report);
        }
        Ok(report)
    }

    /// Opens the partition's durable consumer and rebuilds the engine's state: the latest usable snapshot, then
    /// the events after it up to the consumer's acknowledged floor, verdicts muted. Returns the consumer, the
    /// snapshot store (with snapshots on) and the floor.
    async fn start(
        &self,
        subject: &str,
        report: &mut WorkerReport,
    ) -> Result<(jetstream::consumer::PullConsumer, Option<ObjectStore>, u64), BusError> {
        let (js, stream) = stream_of(&self.cfg).await?;
        let durable = format!("risk-{}", self.partition);
        let mut consumer = stream
            .get_or_create_consumer(
                &durable,
                pull::Config {
                    durable_name: Some(durable.clone()),
                    filter_subject: subject.to_owned(),
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
        let store = match self.cfg.snapshots {
            true => Some(self.state_store(&js).await?),
            false => None,
        };
        // A snapshot past the ack floor belongs to another consumer's history (one deleted and made
        // again), and one that cannot be read is no reason to leave the partition unwatched: either way the
        // replay starts from the beginning instead. (A restore parses the whole snapshot before it touches
        // the engine.)
        let mut from = 0;
        if let Some(store) = &store {
            let found = match tokio::time::timeout(SNAPSHOT_LOAD_WAIT, self.load_snapshot(store))
                .await
            {
                Ok(Ok(found)) => found,
                Ok(Err(BusError::Snapshot(e))) => {
                    tracing::warn!(partition = self.partition, error = %e, "risk snapshot unreadable; replaying instead");
                    None
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    tracing::warn!(
                        partition = self.partition,
                        wait_s = SNAPSHOT_LOAD_WAIT.as_secs(),
                        "risk snapshot not read in time; replaying instead"
                    );
                    None
                }
            };
            if let Some((seq, engine)) = found {
                if seq > floor {
                    tracing::warn!(
                        partition = self.partition,
                        snapshot = seq,
                        ack_floor = floor,
                        "risk snapshot is ahead of the consumer; replaying instead"
                    );
                } else if let Err(e) = self.engine.restore(&engine) {
                    tracing::warn!(partition = self.partition, error = %e, "risk snapshot refused; replaying instead");
                } else {
                    (from, report.restored) = (seq, Some(seq));
                }
            }
        }
        if floor > from {
            report.replayed = self.replay(&stream, subject, from, floor).await?;
        }
        tracing::info!(
            partition = self.partition,
            restored = report.restored.unwrap_or(0),
            replayed = report.replayed,
            ack_floor = floor,
            "risk worker rebuilt its state; consuming"
        );
        Ok((consumer, store, floor))
    }

    /// A snapshot only spares a restart some replay: one that cannot be written is logged, and the worker goes
    /// on watching its partition.
    fn snapshot_to(
        &self,
        store: &jetstream::object_store::ObjectStore,
        seq: u64,
        report: &mut WorkerReport,
    ) {
        match self.save_snapshot(store, seq) {
            Ok(()) => report.snapshot = Some(seq),
            Err(e) => {
                tracing::warn!(partition = self.partition, error = %e, "cannot write a risk snapshot")
            }
        }
    }

    async fn state_store(
        &self,
        js: &jetstream::Context,
    ) -> Result<jetstream::object_store::ObjectStore, BusError> {
        let bucket = self.cfg.state_bucket();
        match js.get_object_store(&bucket).await {
            Ok(store) => Ok(store),
            Err(_) => js
                .create_object_store(jetstream::object_store::Config {
                    bucket,
                    description: Some(
                        "risk workers' engine snapshots, one object a partition".into(),
                    ),
                    ..Default::default()
                })
                .await
                .map_err(nats),
        }
    }

    fn snapshot_name(&self) -> String {
        format!("partition-{}", self.partition)
    }

    /// The partition's latest snapshot: the stream sequence it covers and the engine's bytes.
    async fn load_snapshot(
        &self,
        store: &jetstream::object_store::ObjectStore,
    ) -> Result<Option<(u64, Vec<u8>)>, BusError> {
        use tokio::io::AsyncReadExt;
        let mut object = match store.get(self.snapshot_name()).await {
            Ok(o) => o,
            Err(e) if e.kind() == jetstream::object_store::GetErrorKind::NotFound => {
                return Ok(None)
            }
            Err(e) => return Err(nats(e)),
        };
        let mut bytes = Vec::new();
        object.read_to_end(&mut bytes).await.map_err(nats)?;
        let bad = || snapshot(format!("{} is not a risk snapshot", self.snapshot_name()));
        let rest = bytes.strip_prefix(SNAPSHOT_MAGIC).ok_or_else(bad)?;
        let nl = rest.iter().position(|b| *b == b'\n').ok_or_else(bad)?;
        let seq = std::str::from_utf8(&rest[..nl])
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(bad)?;
        Ok(Some((seq, rest[nl + 1..].to_vec())))
    }

    /// Writes the engine's state as of stream sequence `seq` (everything up to it acknowledged).
    fn save_snapshot(
        &self,
        store: &jetstream::object_store::ObjectStore,
        seq: u64,
    ) -> Result<(), BusError> {
        let engine = self.engine.snapshot().map_err(snapshot)?;
        let mut bytes = Vec::with_capacity(engine.len() + 40);
        bytes.extend_from_slice(SNAPSHOT_MAGIC);
        bytes.extend_from_slice(format!("{seq}\n").as_bytes());
        bytes.extend_from_slice(&engine);
        self.rt.block_on(async {
            store
                .put(self.snapshot_name().as_str(), &mut bytes.as_slice())
                .await
                .map_err(nats)
        })?;
        tracing::info!(
            partition = self.partition,
            seq,
            bytes = bytes.len(),
            "risk snapshot written"
        );
        Ok(())
    }

    /// Feeds the partition's events after stream sequence `from` up to `floor` to the engine, verdicts muted.
    async fn replay(
        &self,
        stream: &jetstream::stream::Stream,
        subject: &str,
        from: u64,
        floor: u64,
    ) -> Result<u64, BusError> {
        let replay = stream
            .create_consumer(pull::Config {
                filter_subject: subject.to_owned(),
                ack_policy: AckPolicy::None,
                deliver_policy: match from {
                    0 => DeliverPolicy::All,
                    s => DeliverPolicy::ByStartSequence {
                        start_sequence: s + 1,
                    },
                },
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
                // (A message that is not an access event was skipped when it was consumed: so here.)
                let events = decode(&m.payload).unwrap_or_default();
                for ev in &events {
                    self.engine.observe(ev);
                }
                replayed += events.len() as u64;
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
    /// Messages the stream holds for it (those younger than `max_age_days`); each carries one or more events.
    pub messages: u64,
    /// Whether a worker has ever consumed it (its durable consumer exists).
    pub consumer: bool,
    /// Messages not yet delivered to its worker.
    pub pending: u64,
    /// Messages delivered to its worker and not yet acknowledged.
    pub unacknowledged: u64,
    /// Messages delivered again (a worker died or was too slow before acknowledging them).
    pub redelivered: u64,
    /// The stream sequence up to which its worker has acknowledged everything.
    pub ack_floor: u64,
}

impl PartitionStatus {
    /// Every message the stream holds for the partition was handled and acknowledged by its worker.
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
                messages: counts.get(&cfg.subject(p)).copied().unwrap_or(0),
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

/// Deletes the configured stream, its consumers and the workers' snapshots (tests, and an operator retiring a
/// deployment).
pub fn delete_stream(cfg: &NatsConfig) -> Result<(), BusError> {
    runtime("wbguard-bus-admin")?.block_on(async {
        let client = async_nats::connect(&cfg.url).await.map_err(nats)?;
        let js = jetstream::new(client);
        js.delete_stream(cfg.stream()).await.map_err(nats)?;
        // The snapshots go with the stream they were taken of (there may be none).
        let _ = js.delete_object_store(cfg.state_bucket()).await;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wbg_core::{Account, AccountId, AccountStatus, Purpose, Role};

    fn event(account: &str, i: i64) -> AccessEvent {
        AccessEvent {
            account: Account {
                id: AccountId::parse(account).unwrap(),
                role: Role::Courier,
                outlet: None,
                merchant: None,
                status: AccountStatus::Active,
                status_reason: None,
                created_at: 0,
                status_since: 0,
            },
            waybill_no: format!("YT{i:013}"),
            waybill: None,
            purpose: Purpose::Delivery,
            policy_view: None,
            ticket: None,
            at: i,
            device: None,
            ip: None,
        }
    }

    #[test]
    fn events_are_split_per_partition_in_their_order_and_bounded_per_message() {
        let cfg = NatsConfig {
            partitions: 3,
            ..NatsConfig::default()
        };
        let accounts = ["C0001", "C0002", "C0003", "C0004", "C0005"];
        let events: Vec<AccessEvent> = (0..1_000)
            .map(|i| event(accounts[i as usize % accounts.len()], i))
            .collect();
        let msgs = messages(&cfg, events.clone());
        assert!(msgs
            .iter()
            .all(|(_, m)| !m.is_empty() && m.len() <= EVENTS_PER_MESSAGE));
        // Every event once, in its partition, and each partition's events in the order they came.
        assert_eq!(
            msgs.iter().map(|(_, m)| m.len()).sum::<usize>(),
            events.len()
        );
        for p in 0..cfg.partitions {
            let sent: Vec<&AccessEvent> = events
                .iter()
                .filter(|e| cfg.partition_of(e.account.id.as_str()) == p)
                .collect();
            let carried: Vec<&AccessEvent> = msgs
                .iter()
                .filter(|(q, _)| *q == p)
                .flat_map(|(_, m)| m.iter())
                .collect();
            assert_eq!(carried, sent, "partition {p}");
        }
    }

    #[test]
    fn a_message_is_an_array_of_events_or_one_event_as_before_batching() {
        let (a, b) = (event("C0001", 1), event("C0002", 2));
        let array = serde_json::to_vec(&[a.clone(), b.clone()]).unwrap();
        assert_eq!(decode(&array).unwrap(), vec![a.clone(), b]);
        let one = serde_json::to_vec(&a).unwrap();
        assert_eq!(decode(&one).unwrap(), vec![a]);
        assert!(decode(b"").is_err());
        assert!(decode(b"[1]").is_err());
        assert!(decode(b"{\"account\":1}").is_err());
    }

    /// A sink whose publisher lingers a minute, far longer than a test waits, once it has taken a first event
    /// from its queue (so it is in its linger), and when that event was published.
    fn lingering(cfg: &NatsConfig) -> (NatsSink, std::time::Instant) {
        let sink = NatsSink::start_with(cfg, std::time::Duration::from_secs(60)).unwrap();
        let started = std::time::Instant::now();
        sink.publish(event("C0000", 0));
        while sink.tx.capacity() < cfg.queue {
            assert!(
                started.elapsed().as_secs() < 20,
                "the first event was not taken"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        (sink, started)
    }

    /// Waits until `n` events are acknowledged, failing long before the minute's linger could have ended.
    fn published_within_the_linger(sink: &NatsSink, n: u64, started: std::time::Instant) {
        while sink.published() < n {
            assert!(
                started.elapsed().as_secs() < 20,
                "published {} of {n} while the linger lasted",
                sink.published()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_eq!(sink.dropped(), 0);
    }

    /// A stream of its own with two partitions and a queue of `queue` events, on the NATS at `NATS_URL`; none
    /// (and the test says so and passes) without it.
    fn two_partitions(queue: usize) -> Option<NatsConfig> {
        if std::env::var("NATS_URL").is_err() {
            eprintln!("NATS_URL is not set: the publisher is not tested here (.ci/run sets it)");
            return None;
        }
        Some(NatsConfig {
            prefix: format!("wbgtest{:08x}", rand::random::<u32>()),
            partitions: 2,
            queue,
            ..NatsConfig::default()
        })
    }

    #[test]
    fn a_queue_half_full_ends_the_linger() {
        let Some(cfg) = two_partitions(64) else {
            return;
        };
        let (sink, started) = lingering(&cfg);
        // Half the queue (32 of 64 places; a message's worth for two partitions would be 256), and then
        // nothing: only the queue's filling can end the linger. (Events sent after the publisher woke would
        // wait for the next linger, rightly.)
        for i in 1..=32 {
            sink.publish(event(&format!("C{:04}", i % 5), i));
        }
        published_within_the_linger(&sink, 33, started);
        drop(sink);
        delete_stream(&cfg).unwrap();
    }

    /// Messages go by how many events fill them: a message's worth a partition ends the linger, and fewer wait
    /// for it (a node gathering half the events sends half as often, so a second node adds no messages).
    #[test]
    fn a_message_s_worth_of_events_a_partition_ends_the_linger_and_fewer_wait() {
        let Some(cfg) = two_partitions(NatsConfig::default().queue) else {
            return;
        };
        let worth = FILL * 2;
        assert!(
            worth < cfg.queue / 2,
            "the queue's half full is not what ends it"
        );
        let (sink, started) = lingering(&cfg);
        // One short of a message's worth a partition: the publisher sleeps on.
        for i in 1..worth {
            sink.publish(event(&format!("C{:04}", i % 5), i as i64));
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
        assert_eq!(sink.published(), 0, "fewer than a message's worth waited");
        // The last of it: sent long before the linger's minute is up.
        sink.publish(event("C0001", worth as i64));
        published_within_the_linger(&sink, worth as u64 + 1, started);
        drop(sink);
        delete_stream(&cfg).unwrap();
    }

    #[test]
    fn a_bus_error_keeps_the_client_error_as_its_source() {
        // Nothing listens on port 1: the connection is refused at once.
        let cfg = NatsConfig {
            url: "nats://127.0.0.1:1".into(),
            ..NatsConfig::default()
        };
        let e = status(&cfg).expect_err("no server there");
        assert!(matches!(e, BusError::Nats(_)), "{e:?}");
        let source = std::error::Error::source(&e).expect("the client's error is kept");
        assert!(e.to_string().ends_with(&source.to_string()), "{e}");
        let e = snapshot("x is not a risk snapshot");
        assert_eq!(e.to_string(), "risk snapshot: x is not a risk snapshot");
    }
}
