//! `wbguard config reference`: every configuration key with its default and its meaning. The defaults come from
//! the configuration types themselves (serialised); the meanings from [`MEANINGS`], which a test holds complete
//! (every key the defaults have, and every optional key, has one) and which the README's reference reproduces.
use crate::config::Config;
use anyhow::Result;

/// Keys that have no default (absent unless set), with a placeholder shown for their value.
const OPTIONAL: &[(&str, &str)] = &[
    ("keys", "\"<~/.config/wbguard/keys/<store id>>\""),
    ("policies", "\"<built-in policy>\""),
    ("store.url", "\"<$DATABASE_URL>\""),
    ("store.migrate", "false"),
    ("store.lookups_in_flight", "4"),
    ("store.commits_in_flight", "3"),
    ("bus.url", "\"<$NATS_URL or nats://127.0.0.1:4222>\""),
    ("bus.prefix", "\"wbguard\""),
    ("bus.partitions", "8"),
    ("bus.snapshots", "true"),
    ("bus.snapshot_seconds", "60"),
    ("tls.cert", "\"<unset: plain HTTP>\""),
    ("tls.key", "\"<unset>\""),
    ("witness.file", "\"<unset>\""),
    ("webhook.url", "\"<unset: no webhook>\""),
    ("webhook.secret", "\"<unset: unsigned>\""),
    ("webhook.ca_file", "\"<unset: the system's roots>\""),
    ("telephony_webhook.url", "\"<unset>\""),
    ("telephony_webhook.secret", "\"<unset>\""),
    ("telephony_webhook.ca_file", "\"<unset>\""),
    ("witness.post.url", "\"<unset>\""),
    ("witness.post.secret", "\"<unset>\""),
    ("witness.post.ca_file", "\"<unset>\""),
    ("credentials.oidc.jwks_file", "\"<unset: no OIDC>\""),
    ("credentials.oidc.jwks_url", "\"<unset>\""),
    ("credentials.oidc.jwks_refresh_seconds", "600"),
    (
        "credentials.oidc.jwks_ca_file",
        "\"<unset: the system's roots>\"",
    ),
    ("credentials.oidc.issuer", "\"<unset>\""),
    ("credentials.oidc.audience", "\"<unset>\""),
    ("credentials.oidc.account_claim", "\"sub\""),
    (
        "credentials.oidc.authorization_endpoint",
        "\"<unset: no sign-in at the IdP>\"",
    ),
    ("credentials.oidc.token_endpoint", "\"<unset>\""),
    ("credentials.oidc.redirect_uri", "\"<unset>\""),
    ("credentials.oidc.client_id", "\"<audience>\""),
    (
        "credentials.oidc.client_secret_file",
        "\"<unset: a public client>\"",
    ),
    ("retention.groups.contact", "<days_after_delivery>"),
    ("retention.groups.address", "<days_after_delivery>"),
    ("retention.groups.region", "<days_after_delivery>"),
    ("retention.groups.items", "<days_after_delivery>"),
    (
        "retention.minimum.contact",
        "{ days = <n>, rule = \"<the rule that requires it>\" }",
    ),
    ("retention.minimum.address", "<unset: no minimum>"),
    ("retention.minimum.region", "<unset: no minimum>"),
    ("retention.minimum.items", "<unset: no minimum>"),
    ("risk.utc_offset_hours", "8"),
    ("console.time_zone", "\"<time_zone>\""),
];

/// Each key's meaning; a key ending in `.` covers every key under it (the per-role tables).
const MEANINGS: &[(&str, &str)] = &[
    ("listen", "HTTP listen address; port 0 picks a free port"),
    ("data", "data directory: the embedded store, the lock, the forensics index (`wbguard init` creates it)"),
    ("keys", "key directory (master key, audit signing key); never inside the data directory"),
    ("policies", "directory with one .cedar and one .cedarschema file"),
    ("time_zone", "IANA zone times are shown in (ISO 8601 with its offset) and read in when given without one"),
    ("store.kind", "\"embedded\" (SQLite in the data directory) or \"postgres\""),
    ("store.url", "postgres: connection URL"),
    ("store.migrate", "postgres: apply pending migrations at start-up"),
    (
        "store.lookups_in_flight",
        "postgres: reads' grouped lookups this node keeps running at once (1-6); nodes sharing one PostgreSQL share them out",
    ),
    (
        "store.commits_in_flight",
        "postgres: reads' group commits this node keeps running at once (1-6; scan events commit in one more of their own); shared out likewise",
    ),
    ("bus.kind", "\"local\" (the node's own engine) or \"nats\" (JetStream, risk workers)"),
    ("bus.url", "nats: server URL"),
    ("bus.prefix", "nats: subject prefix and stream name stem"),
    ("bus.partitions", "nats: account partitions, one risk worker each; fixed for a stream's life"),
    ("bus.snapshots", "nats: workers snapshot their engine state and restart from it"),
    ("bus.snapshot_seconds", "nats: seconds between a worker's snapshots"),
    ("server.trusted_proxies", "addresses or networks whose X-Forwarded-For names the client"),
    (
        "server.client_timeout_seconds",
        "seconds a client may keep the server waiting (first byte, TLS handshake, each request head, each stretch of a body) before it is cut off; 1-600",
    ),
    (
        "server.idle_timeout_seconds",
        "seconds a connection may go without a byte either way (an idle HTTP/2 connection, a client not reading its answer) before it is closed; client_timeout_seconds-3600",
    ),
    (
        "server.max_connections",
        "connections open at once; beyond, new ones are closed on accept; 1-1000000",
    ),
    (
        "server.max_connections_per_peer",
        "connections one peer (an IPv4 address, an IPv6 /64) may hold open at once; trusted proxies exempt; 1-1000000 (no more than max_connections)",
    ),
    ("tls.cert", "serve HTTPS: certificate chain, PEM, leaf first"),
    ("tls.key", "serve HTTPS: private key, PEM"),
    ("witness.file", "append every signed checkpoint here (JSON Lines), for `audit verify --checkpoint`"),
    ("witness.post.", "POST every signed checkpoint to a witness: as [webhook]"),
    ("webhook.url", "alerts are POSTed here (http or https)"),
    ("webhook.secret", "HMAC-SHA256 key signing every POST (Wbguard-Signature); at least 16 bytes"),
    ("webhook.ca_file", "PEM of further CAs to trust for an https URL"),
    ("webhook.retries", "attempts after the first before a message is given up"),
    ("webhook.backoff_ms", "wait before the first retry; doubled each time, up to a minute"),
    ("webhook.timeout_seconds", "time allowed per attempt"),
    ("webhook.queue", "messages waiting before new ones are dropped (and counted)"),
    ("telephony_webhook.", "privacy-number binding changes for the telephony provider: as [webhook]"),
    ("retention.enabled", "run retention (crypto-shredding) hourly in the server"),
    ("retention.days_after_delivery", "days personal fields are kept after signing or return"),
    ("retention.undelivered_days", "days after creation an open parcel is carried past its day; one older goes with its day"),
    ("retention.groups.", "days after delivery for one field group (contact, address, region, items)"),
    ("retention.minimum.", "a period a rule requires a group kept (days after delivery); longer than the group's days, it wins"),
    ("privacy_numbers.enabled", "bind virtual numbers couriers call through"),
    ("privacy_numbers.numbers", "the pool: numbers and inclusive ranges (\"17100000000..17100000999\")"),
    ("privacy_numbers.grace_minutes", "minutes after signing a courier can still call"),
    ("privacy_numbers.decoys", "numbers the carrier owns outside the pool, shown to couriers as canaries' virtual numbers"),
    ("privacy_numbers.quarantine_hours", "hours a released number rests before it is bound again"),
    ("credentials.token_days", "days an API token works (1-3650)"),
    ("credentials.enrolment_hours", "hours an enrolment request, then its code, stays usable (1-720)"),
    ("credentials.oidc.jwks_file", "accept the identity provider's JWTs: its JWKS, as a file read at start"),
    ("credentials.oidc.jwks_url", "or its JWKS endpoint (https; http only to loopback), fetched at start and refreshed"),
    ("credentials.oidc.jwks_refresh_seconds", "seconds between fetches of jwks_url (60-86400); sooner for an unknown kid"),
    ("credentials.oidc.jwks_ca_file", "PEM of further CAs to trust for jwks_url"),
    ("credentials.oidc.issuer", "the iss every JWT must carry"),
    ("credentials.oidc.audience", "the aud every JWT must carry"),
    ("credentials.oidc.account_claim", "the claim naming the account id"),
    ("credentials.oidc.authorization_endpoint", "the console signs in at the IdP (code flow with PKCE) when this, token_endpoint and redirect_uri are set"),
    ("credentials.oidc.token_endpoint", "where the sign-in's code is exchanged for an ID token (https; http only to loopback)"),
    ("credentials.oidc.redirect_uri", "this service's .../console/oidc/callback, as registered at the IdP"),
    ("credentials.oidc.client_id", "this service's client id at the IdP"),
    ("credentials.oidc.client_secret_file", "a file holding the client secret, for a confidential client"),
    ("accounts.dormant_days", "days idle before the upkeep suspends an account as dormant (0: never)"),
    ("accounts.roster_max_leavers_percent", "most leavers one roster may make without force, in percent"),
    ("masking.phone_keep_first", "leading digits of a phone masked views and labels show (0-3)"),
    ("masking.phone_keep_last", "trailing digits they show (0-4; at most 5 in all: 6 of 11 hidden)"),
    ("incidents.max_window_days", "widest window one breach incident covers, in days (1-3650); a wider one is refused"),
    ("incidents.report_hours", "hours after an incident opens by which the regulator's report is due, when its grade calls for one (1-168)"),
    ("incidents.larger_people", "people exposed from which an incident is graded larger (较大)"),
    ("incidents.major_people", "people exposed from which it is graded major (重大)"),
    ("incidents.especially_major_people", "people exposed from which it is graded especially major (特别重大)"),
    ("incidents.report_from_grade", "the lowest grade reported to the provincial cyberspace administration"),
    ("incidents.contact.carrier", "the carrier's name as people know it, in the owed reports"),
    ("incidents.contact.carrier_en", "the carrier's name in the English reports"),
    ("incidents.contact.phone", "the hotline the reports give people"),
    ("incidents.contact.officer", "who answers for personal-information protection, in the reports"),
    ("console.enabled", "serve the analysts' console at /console"),
    ("tracking.enabled", "serve the public lookup /track (status and scans only, no personal data)"),
    ("tracking.per_address_per_minute", "public lookups a minute from one address (429 past it)"),
    ("tracking.per_prefix_per_minute", "public lookups a minute from one /24 or /48 network"),
    ("tracking.distinct_per_hour", "distinct numbers one address may look up in an hour before it is blocked"),
    ("tracking.misses_per_hour", "lookups of numbers that do not exist, in an hour, before an address is blocked"),
    ("tracking.near_misses_per_hour", "lookups of numbers within 20 of one asked before, in an hour, before a block"),
    ("tracking.block_minutes", "how long an address caught enumerating stays blocked (audited, alerted)"),
    ("tracking.last4_tries_per_hour", "wrong last-four-digit checks one number takes in an hour, from anywhere, before it locks"),
    ("tracking.last4_tries_total", "wrong last-four-digit checks one number takes in all before its check locks for good (on every node)"),
    ("tracking.prefix_misses_per_hour", "lookups naming no parcel from one /24 or /48 in an hour before the whole network is blocked"),
    ("tracking.prefix_near_misses_per_hour", "lookups from one network of numbers within 20 of one it asked before, in an hour, before a block"),
    ("tracking.prefix_distinct_per_hour", "distinct numbers one network may look up in an hour before it is blocked"),
    ("tracking.distributed_misses_per_minute", "lookups naming no parcel in a minute, from everyone, that may raise the distributed-enumeration alert"),
    ("tracking.distributed_miss_percent", "... once they are also this share (1-100) of the minute's lookups: a botnet, one guess per network"),
    ("console.idle_minutes", "minutes without a request after which a console session lapses (1-1440)"),
    ("console.max_hours", "hours after which a console session lapses whatever its activity (1-168)"),
    ("console.sla_minutes.critical", "minutes a critical alert may stay untriaged before the queue shows it overdue"),
    ("console.sla_minutes.info", "the same for info alerts"),
    ("console.sla_minutes.warning", "the same for warning alerts"),
    ("console.time_zone", "IANA time zone the console shows times in, if not time_zone"),
    ("accounts.recertify_grace_days", "days into a quarter by which every account must be attested (0: off)"),
    ("risk.utc_offset_hours", "the carrier's local time offset from UTC (shifts and days are local)"),
    ("risk.rate_limit.reads_per_minute", "sustained personal-data reads per minute per account"),
    ("risk.rate_limit.burst", "reads allowed in a burst above the sustained rate"),
    ("risk.score.burst_half_life_minutes", "half-life of the fast score"),
    ("risk.score.drift_half_life_hours", "half-life of the slow score"),
    ("risk.score.burst.alert", "fast score that raises an alert"),
    ("risk.score.burst.mask", "fast score that caps views at masked"),
    ("risk.score.burst.suspend", "fast score that suspends the account"),
    ("risk.score.drift.alert", "slow score that raises an alert"),
    ("risk.score.drift.mask", "slow score that caps views at masked"),
    ("risk.score.drift.suspend", "slow score that suspends the account"),
    ("risk.detectors.cadence.window", "intervals between reads judged together"),
    ("risk.detectors.cadence.max_mean_seconds", "largest mean interval that can count as scripted"),
    ("risk.detectors.cadence.max_variation", "largest coefficient of variation that counts as machine-regular"),
    ("risk.detectors.cadence.exempt_roles", "roles whose work is machine-driven anyway"),
    ("risk.detectors.device.warm_reads", "reads before a new device is news"),
    ("risk.detectors.device.new_device_points", "points for a device the account has not used before"),
    ("risk.detectors.device.concurrent_minutes", "minutes within which two devices in use count as concurrent"),
    ("risk.detectors.device.concurrent_points", "points for switching between devices within that time"),
    ("risk.detectors.distinct_records.free_per_day.", "distinct full records a day without points, by role"),
    ("risk.detectors.distinct_records.free_per_week.", "distinct full records in 7 days without points, by role"),
    ("risk.detectors.distinct_records.free_share_of_workflow", "share of the account's own workflow reads also free"),
    ("risk.detectors.dormant.silent_days", "days of silence that make an account dormant"),
    ("risk.detectors.enumeration.max_step", "largest difference between waybill numbers that counts as a step"),
    ("risk.detectors.enumeration.memory", "recent numbers compared with"),
    ("risk.detectors.enumeration.min_run", "steps in a row before points are given"),
    ("risk.detectors.off_shift.max_share", "share of active days below which an hour is off-shift"),
    ("risk.detectors.off_shift.min_days", "active days learned before it judges"),
    ("risk.detectors.off_shift.min_gap_minutes", "at most one signal per this many minutes"),
    ("risk.detectors.off_shift.shift_from_workflow", "roles whose hours are learned from plain workflow only"),
    ("risk.detectors.out_of_scope.denied_points", "points for a read the policy refused"),
    ("risk.detectors.out_of_scope.unknown_points", "points for a waybill number that does not exist"),
    ("risk.detectors.out_of_scope.free_per_hour", "refusals an hour that pass without points"),
    ("risk.detectors.post_delivery.roles", "roles it watches"),
    ("risk.detectors.post_delivery.quiet_minutes", "minutes after signing that are the hand-over itself"),
    ("risk.detectors.post_delivery.grace_minutes", "the grace period after signing"),
    ("risk.detectors.post_delivery.points_in_grace", "points for a later full read within the grace period"),
    ("risk.detectors.post_delivery.points_after_grace", "points for a read after the grace period"),
    ("risk.detectors.post_delivery.habit_roles", "roles whose habit of late reads is judged"),
    ("risk.detectors.post_delivery.habit_min_reads", "late reads (decayed over a week) before the habit is judged"),
    ("risk.detectors.post_delivery.habit_share", "share of late reads in delivery work that makes a habit"),
    ("risk.detectors.post_delivery.habit_points", "points for every late read while the habit holds"),
    ("risk.detectors.region.window", "reads remembered outside workflow and the own outlet"),
    ("risk.detectors.region.share", "share on one destination outlet that counts as concentrated"),
    ("risk.detectors.reprint.min_per_hour", "labels an hour before the reprint ratio is judged"),
    ("risk.detectors.reprint.ratio", "share of reprints in an hour that counts as a storm"),
    ("risk.detectors.reprint.outside_workflow_points", "points for a label of a parcel past pickup"),
    ("risk.detectors.shared_device.max_accounts", "accounts one device may serve in a day"),
    ("risk.detectors.velocity.floor_per_hour.", "reads per hour always allowed, by role"),
    ("risk.detectors.velocity.max_per_5_minutes.", "reads in five minutes beyond which no person reads them, by role"),
    ("risk.detectors.velocity.multiple", "how far above its baselines an account may go"),
    ("risk.detectors.velocity.warm_hours", "active hours before the account's own baseline counts"),
    ("risk.detectors.velocity.burst_points", "points per read beyond the five-minute limit"),
];

/// The meaning of `key`: its own entry, a covering prefix entry, or the rule every detector shares.
fn meaning(key: &str) -> Option<&'static str> {
    if let Some((_, m)) = MEANINGS.iter().find(|(k, _)| *k == key) {
        return Some(m);
    }
    if let Some((_, m)) = MEANINGS
        .iter()
        .find(|(k, _)| k.ends_with('.') && key.starts_with(k))
    {
        return Some(m);
    }
    let detector = key.strip_prefix("risk.detectors.")?;
    match detector.split_once('.')?.1 {
        "enabled" => Some("run this detector"),
        "points" => Some("score points per signal of this detector"),
        _ => None,
    }
}

/// The default configuration as dotted keys and TOML values, in file order.
fn defaults() -> Result<Vec<(String, String)>> {
    let value = toml::Value::try_from(Config::default())?;
    let mut out = Vec::new();
    flatten("", &value, &mut out);
    Ok(out)
}

fn flatten(prefix: &str, v: &toml::Value, out: &mut Vec<(String, String)>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        other => out.push((prefix.to_owned(), other.to_string())),
    }
}

/// The reference as text: one line per key, `key = default  # meaning`, grouped by table.
pub fn render() -> Result<String> {
    let mut rows = defaults()?;
    rows.extend(OPTIONAL.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let mut text = String::new();
    for (key, value) in rows {
        let meaning = meaning(&key).unwrap_or("(undocumented)");
        text.push_str(&format!("{key} = {value}  # {meaning}\n"));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_shown_for_optional_keys_are_the_types_own() {
        // (These keys are optional in the file, so the serialised defaults do not show them: the table does, and
        // must not drift from the types.)
        let shown = |key: &str| {
            OPTIONAL
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.to_string())
                .unwrap_or_default()
        };
        let lanes = wbg_store_pg::Lanes::default();
        assert_eq!(shown("store.lookups_in_flight"), lanes.lookups.to_string());
        assert_eq!(shown("store.commits_in_flight"), lanes.commits.to_string());
        let bus = wbg_bus::NatsConfig::default();
        assert_eq!(shown("bus.prefix"), format!("{:?}", bus.prefix));
        assert_eq!(shown("bus.partitions"), bus.partitions.to_string());
        assert_eq!(shown("bus.snapshots"), bus.snapshots.to_string());
        assert_eq!(
            shown("bus.snapshot_seconds"),
            bus.snapshot_seconds.to_string()
        );
    }

    #[test]
    fn every_key_has_a_meaning_and_every_optional_key_is_real() {
        let text = render().unwrap();
        assert!(!text.contains("(undocumented)"), "{text}");
        // Each optional key, set, is accepted by the configuration (a typo in the table would be refused).
        for (key, _) in OPTIONAL {
            let (table, leaf) = key.rsplit_once('.').unwrap_or(("", key));
            let value = match *key {
                "bus.partitions"
                | "bus.snapshot_seconds"
                | "store.lookups_in_flight"
                | "store.commits_in_flight"
                | "risk.utc_offset_hours"
                | "credentials.oidc.jwks_refresh_seconds" => "1".to_owned(),
                k if k.starts_with("retention.groups.") => "1".to_owned(),
                k if k.starts_with("retention.minimum.") => "{ days = 1, rule = \"r\" }".to_owned(),
                "bus.snapshots" | "store.migrate" => "true".to_owned(),
                _ => "\"x\"".to_owned(),
            };
            let mut doc = String::new();
            if table == "store" {
                doc.push_str("[store]\nkind = \"postgres\"\n");
            } else if table == "bus" {
                doc.push_str("[bus]\nkind = \"nats\"\n");
            } else if table == "credentials.oidc" {
                doc.push_str(
                    "[credentials.oidc]\njwks_file = \"j\"\nissuer = \"i\"\naudience = \"a\"\n",
                );
            } else if table == "tls" {
                doc.push_str("[tls]\ncert = \"c\"\nkey = \"k\"\n");
            } else if !table.is_empty() {
                doc.push_str(&format!("[{table}]\n"));
            }
            if !doc.contains(&format!("\n{leaf} =")) {
                doc.push_str(&format!("{leaf} = {value}\n"));
            }
            toml::from_str::<Config>(&doc).unwrap_or_else(|e| panic!("{key}: {e}\n{doc}"));
        }
    }

    #[test]
    fn the_readme_reference_is_the_commands_output() {
        let readme = include_str!("../../../README.md");
        let start = readme
            .find("<!-- config-reference -->\n```toml\n")
            .expect("the README has the reference")
            + "<!-- config-reference -->\n```toml\n".len();
        let end = start + readme[start..].find("```").expect("closed");
        assert_eq!(
            &readme[start..end],
            render().unwrap(),
            "README's configuration reference is stale: paste `wbguard config reference`"
        );
    }
}
