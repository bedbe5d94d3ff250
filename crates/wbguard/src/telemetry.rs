//! Prometheus metrics: every metric described (`# HELP`, `# TYPE`) and present from the start, latencies as
//! histograms (they add up across nodes, where summaries do not), requests counted by route template and status,
//! and the gauges an operator alerts on (suspended accounts, audit size and checkpoint age, webhook queues).
//! `deploy/prometheus-alerts.yml` and `deploy/grafana-dashboard.json` are built on these names.
use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Histogram buckets, in seconds: a guarded read takes tens of microseconds in process, milliseconds over HTTP.
const SECONDS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0,
];

/// A counter: name, help, and the labels of the series started at zero (so a rate exists before the first event).
type CounterSpec = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

const COUNTERS: &[CounterSpec] = &[
    (
        "wbguard_http_requests_total",
        "HTTP requests answered, by route template, method and status class.",
        &[],
    ),
    (
        "wbguard_reads_total",
        "Guarded reads, by outcome (the view shown, or the refusal).",
        &[],
    ),
    (
        "wbguard_denials_total",
        "Refused operations, by error code.",
        &[],
    ),
    ("wbguard_alerts_total", "Alerts raised, by kind.", &[]),
    ("wbguard_events_total", "Scan events recorded.", &[]),
    ("wbguard_ingested_total", "Waybills ingested.", &[]),
    (
        "wbguard_label_prints_total",
        "Labels printed, by format.",
        &[],
    ),
    (
        "wbguard_label_reprints_total",
        "Labels printed again (copy 2 and later).",
        &[],
    ),
    (
        "wbguard_label_tokens_refused_total",
        "Label tokens refused, by why.",
        &[],
    ),
    ("wbguard_exports_total", "Bulk exports, by stage.", &[]),
    ("wbguard_incidents_total", "Breach incidents opened.", &[]),
    (
        "wbguard_breach_notification_lists_total",
        "Breach notification lists read.",
        &[],
    ),
    (
        "wbguard_calls_routed_total",
        "Calls routed through privacy numbers.",
        &[],
    ),
    (
        "wbguard_privacy_numbers_exhausted_total",
        "Times the privacy-number pool was found exhausted.",
        &[],
    ),
    (
        "wbguard_shredded_waybills_total",
        "Waybills whose field group was crypto-shredded, by group.",
        &[],
    ),
    (
        "wbguard_retention_carried_total",
        "Open parcels carried out of a day falling due into today's bucket (re-encrypted), so they hold nothing.",
        &[],
    ),
    (
        "wbguard_erased_waybills_total",
        "Waybills whose personal fields were erased on a person's request (crypto-shredded in a bucket of their own).",
        &[],
    ),
    (
        "wbguard_accounts_dormant_total",
        "Accounts suspended as dormant.",
        &[],
    ),
    (
        "wbguard_webhook_delivered_total",
        "Webhook messages delivered, by webhook.",
        &[("kind", "alert")],
    ),
    (
        "wbguard_webhook_failed_total",
        "Webhook messages given up after every retry, by webhook.",
        &[("kind", "alert")],
    ),
    (
        "wbguard_webhook_dropped_total",
        "Webhook messages dropped on a full queue, by webhook.",
        &[("kind", "alert")],
    ),
    (
        "wbguard_bus_events_published_total",
        "Access events published to the NATS bus.",
        &[],
    ),
    (
        "wbguard_bus_messages_published_total",
        "Messages published to the NATS bus (each carries the access events that queued up meanwhile).",
        &[],
    ),
    (
        "wbguard_bus_events_dropped_total",
        "Access events dropped before reaching the NATS bus.",
        &[],
    ),
    (
        "wbguard_bus_publish_failures_total",
        "Failed publishes to the NATS bus.",
        &[],
    ),
    (
        "wbguard_oidc_jwks_fetch_failures_total",
        "Failed fetches of the identity provider's key set (the set in force stays).",
        &[],
    ),
    (
        "wbguard_track_lookups_total",
        "Public tracking lookups answered, by whether the number named a parcel.",
        &[("found", "yes")],
    ),
    (
        "wbguard_track_refused_total",
        "Public tracking lookups refused, by why (rate, blocked).",
        &[("why", "rate")],
    ),
    (
        "wbguard_track_blocks_total",
        "Addresses blocked for enumerating the public lookup (each audited and alerted).",
        &[],
    ),
    (
        "wbguard_track_checks_total",
        "Last-four-digit checks on the public lookup, by result (shown, wrong, locked).",
        &[("result", "shown")],
    ),
    (
        "wbguard_alert_suppressions_total",
        "Suppressions applied (each backtested first and audited).",
        &[],
    ),
    (
        "wbguard_connections_refused_total",
        "Connections closed on accept, by why: the node's [server] max_connections were open, or the peer's max_connections_per_peer.",
        &[("why", "node")],
    ),
    (
        "wbguard_rights_requests_total",
        "Rights requests answered (who read a person's data).",
        &[("kind", "access")],
    ),
];

const GAUGES: &[(&str, &str)] = &[
    ("wbguard_build_info", "Always 1; the labels name the build."),
    ("wbguard_connections_open", "Client connections open now."),
    (
        "wbguard_accounts_suspended",
        "Accounts suspended now (by the risk engine, an admin, dormancy, the roster).",
    ),
    ("wbguard_audit_entries", "Entries in the audit log."),
    (
        "wbguard_audit_checkpoint_age_seconds",
        "Seconds since the newest signed checkpoint was signed here.",
    ),
    (
        "wbguard_audit_unsigned_entries",
        "Entries not yet covered by a signed checkpoint.",
    ),
    (
        "wbguard_witness_published_size",
        "Size of the newest checkpoint published to the witness.",
    ),
    (
        "wbguard_webhook_queue",
        "Messages waiting in a webhook's queue, by webhook.",
    ),
    (
        "wbguard_privacy_numbers_in_service",
        "Privacy numbers in the pool (not retired).",
    ),
    (
        "wbguard_privacy_numbers_free",
        "Privacy numbers that could be bound now (unbound, or rested after their delivery).",
    ),
    (
        "wbguard_privacy_numbers_waiting",
        "Waybills out for delivery waiting for a free privacy number.",
    ),
    (
        "wbguard_oidc_jwks_age_seconds",
        "Seconds since the identity provider's key set was last fetched (jwks_url only).",
    ),
    (
        "wbguard_policy_version",
        "The stored policy version in force (0: the configured or built-in policy).",
    ),
    (
        "wbguard_retention_groups",
        "Field groups of days of personal data not yet shredded, by state: due (the next run shreds them) or held.",
    ),
    (
        "wbguard_individuals_held",
        "Distinct people (phones) whose contact data the store still holds; duties switch on at 1 M and 10 M.",
    ),
    (
        "wbguard_retention_shredded_groups",
        "Field groups of days of personal data whose keys are destroyed.",
    ),
];

/// A risk worker's own counters (`wbguard risk-worker --metrics-listen`), besides the alerts it raises.
const WORKER_COUNTERS: &[CounterSpec] = &[
    (
        "wbguard_risk_worker_events_total",
        "Access events the risk worker put through its engine (replayed ones not counted).",
        &[],
    ),
    (
        "wbguard_risk_worker_skipped_total",
        "Messages on the worker's partition that were no access events, skipped and acknowledged.",
        &[],
    ),
    (
        "wbguard_risk_worker_bus_failures_total",
        "Starts, fetches and acknowledgements that failed on the bus and were tried again.",
        &[],
    ),
];

/// The worker's gauges.
const WORKER_GAUGES: &[(&str, &str)] = &[(
    "wbguard_risk_worker_acked_sequence",
    "The stream sequence up to which the worker's partition is acknowledged.",
)];

/// Installs the recorder with `counters` described and started at zero, and `gauges` described.
fn recorder<'a>(
    counters: impl IntoIterator<Item = &'a CounterSpec>,
    gauges: impl IntoIterator<Item = &'a (&'static str, &'static str)>,
) -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets(SECONDS)?
        .install_recorder()?;
    for (name, help, labels) in counters {
        describe_counter!(*name, *help);
        let labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        metrics::counter!(*name, &labels).increment(0);
    }
    for (name, help) in gauges {
        describe_gauge!(*name, *help);
    }
    metrics::gauge!("wbguard_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    Ok(handle)
}

/// A risk worker's recorder: its own counters and gauge, and the alerts it raises (`wbguard_alerts_total`, as
/// on a node: the suspensions a worker decides are counted only here).
pub fn install_worker() -> anyhow::Result<PrometheusHandle> {
    let alerts = COUNTERS
        .iter()
        .filter(|(name, _, _)| *name == "wbguard_alerts_total");
    let build = GAUGES
        .iter()
        .filter(|(name, _)| *name == "wbguard_build_info");
    recorder(
        WORKER_COUNTERS.iter().chain(alerts),
        WORKER_GAUGES.iter().chain(build),
    )
}

/// Installs the recorder (histograms, descriptions, zeroed counters) and returns the handle `/metrics` renders.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = recorder(COUNTERS, GAUGES)?;
    describe_histogram!(
        "wbguard_read_seconds",
        Unit::Seconds,
        "Time a guarded read took inside the guard."
    );
    describe_histogram!(
        "wbguard_http_request_seconds",
        Unit::Seconds,
        "Time to answer an HTTP request, by route template."
    );
    for g in [
        "wbguard_accounts_suspended",
        "wbguard_audit_entries",
        "wbguard_audit_checkpoint_age_seconds",
        "wbguard_audit_unsigned_entries",
    ] {
        metrics::gauge!(g).set(0.0);
    }
    metrics::histogram!("wbguard_read_seconds").record(0.0);
    Ok(handle)
}

/// Middleware: every request counted by route template (never the path a client sent), method and status
/// class, and timed.
pub async fn requests(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let started = std::time::Instant::now();
    let res = next.run(req).await;
    let status = format!("{}xx", res.status().as_u16() / 100);
    metrics::histogram!("wbguard_http_request_seconds", "route" => route.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("wbguard_http_requests_total", "route" => route, "method" => method, "status" => status)
        .increment(1);
    res
}

/// When upkeep next counts the privacy-number pool. The count reads every number with its waybill: microseconds
/// for a small pool, a quarter of a second for a million (measured on the embedded store), which every second was
/// an eighth of a 2-core machine's CPU. So it is refreshed at every tick while it is cheap, and otherwise no sooner
/// than keeps it to a twentieth of the time: after a count that took `d`, not for `19 × d`.
#[derive(Debug, Default)]
struct PoolCount {
    next: Option<std::time::Instant>,
}

impl PoolCount {
    /// Whether the pool is to be counted now.
    fn due(&self, now: std::time::Instant) -> bool {
        self.next.is_none_or(|next| now >= next)
    }

    /// A count ran from `started` to `ended`.
    fn counted(&mut self, started: std::time::Instant, ended: std::time::Instant) {
        let took = ended.saturating_duration_since(started);
        self.next = Some(started + took * 20);
    }
}

/// The gauges the server's upkeep refreshes each tick, and what they carry from one tick to the next.
#[derive(Debug)]
pub struct Gauges {
    /// The size of the newest signed checkpoint, and since when it is that.
    signed: (u64, std::time::Instant),
    pool: PoolCount,
}

impl Default for Gauges {
    fn default() -> Self {
        Gauges {
            signed: (0, std::time::Instant::now()),
            pool: PoolCount::default(),
        }
    }
}

impl Gauges {
    /// Refreshes the audit log's size, how much of it no signature covers yet (the newest checkpoint signs
    /// `signed_size` entries), how old the newest checkpoint is, the privacy-number pool (when it is on; as often
    /// as [`PoolCount`] lets), and (when `count_accounts`) how many accounts are suspended.
    pub fn refresh(&mut self, guard: &wbg_guard::Guard, signed_size: u64, count_accounts: bool) {
        if self.signed.0 != signed_size {
            self.signed = (signed_size, std::time::Instant::now());
        }
        if let Ok(size) = guard.store().audit_size() {
            metrics::gauge!("wbguard_audit_entries").set(size as f64);
            metrics::gauge!("wbguard_audit_unsigned_entries")
                .set(size.saturating_sub(signed_size) as f64);
        }
        metrics::gauge!("wbguard_audit_checkpoint_age_seconds")
            .set(self.signed.1.elapsed().as_secs_f64());
        let now = std::time::Instant::now();
        if guard.privacy_numbers_enabled() && self.pool.due(now) {
            if let Ok(Some(state)) = guard.privacy_number_pool() {
                metrics::gauge!("wbguard_privacy_numbers_in_service").set(state.in_service as f64);
                metrics::gauge!("wbguard_privacy_numbers_free").set(state.free as f64);
                metrics::gauge!("wbguard_privacy_numbers_waiting").set(state.waiting as f64);
            }
            self.pool.counted(now, std::time::Instant::now());
        }
        if count_accounts {
            if let Ok(accounts) = guard.store().accounts() {
                let suspended = accounts
                    .iter()
                    .filter(|a| a.status == wbg_core::AccountStatus::Suspended)
                    .count();
                metrics::gauge!("wbguard_accounts_suspended").set(suspended as f64);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::PoolCount;
    use std::time::{Duration, Instant};

    #[test]
    fn a_cheap_pool_count_runs_every_tick_and_a_dear_one_a_twentieth_of_the_time() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut pool = PoolCount::default();
        assert!(pool.due(t0), "the first tick counts");
        // A small pool: a millisecond's count, due again at the next tick (a second on).
        pool.counted(t0, t0 + ms(1));
        assert!(!pool.due(t0 + ms(10)));
        assert!(pool.due(t0 + ms(1_000)));
        // A pool of a million: a quarter of a second's count, not again for five seconds.
        let t1 = t0 + ms(1_000);
        pool.counted(t1, t1 + ms(250));
        assert!(!pool.due(t1 + ms(4_000)));
        assert!(!pool.due(t1 + ms(4_999)));
        assert!(pool.due(t1 + ms(5_000)));
        // Cheap again (the pool was cut down): every tick again.
        let t2 = t1 + ms(5_000);
        pool.counted(t2, t2 + ms(2));
        assert!(pool.due(t2 + ms(1_000)));
    }
}
