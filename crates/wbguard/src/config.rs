//! Configuration: a TOML file whose every key is optional, with command-line flags taking precedence.
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use wbg_guard::{GuardConfig, KeyConfig, RiskConfig};

/// The configuration file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// HTTP listen address.
    pub listen: String,
    /// Data directory of the embedded store.
    pub data: PathBuf,
    /// Key directory (default: outside the data directory, see `wbg_guard::default_key_dir`).
    pub keys: Option<PathBuf>,
    /// Policy directory holding one `.cedar` and one `.cedarschema` file (default: the built-in policy).
    pub policies: Option<PathBuf>,
    /// The IANA zone times are shown in (ISO 8601 with the zone's offset) and read in when given without an
    /// offset: reports, CSV, the CLI, `*_local` fields (default `Asia/Shanghai`).
    pub time_zone: String,
    /// Storage backend.
    pub store: StoreConfig,
    /// Event bus.
    pub bus: BusConfig,
    /// The risk engine: `[risk.score]` thresholds, `[risk.detectors.<name>]` settings, `[risk.rate_limit]`.
    pub risk: RiskConfig,
    /// Alert delivery by webhook.
    pub webhook: crate::webhook::WebhookConfig,
    /// How long personal fields are kept before their data keys are shredded.
    pub retention: wbg_guard::RetentionPolicy,
    /// `[privacy_numbers]`: the pool of virtual numbers couriers call through.
    pub privacy_numbers: wbg_guard::PrivacyNumbers,
    /// `[telephony_webhook]`: where privacy-number binding changes are POSTed for the telephony provider.
    pub telephony_webhook: crate::webhook::WebhookConfig,
    /// `[credentials]`: token lifetime (`token_days`), enrolment codes (`enrolment_hours`), and
    /// `[credentials.oidc]` to accept the carrier's identity provider's JWTs.
    pub credentials: wbg_guard::CredentialConfig,
    /// `[server]`: HTTP settings beyond the listen address.
    pub server: ServerConfig,
    /// `[tls]`: serve HTTPS with this certificate chain and key (PEM); plain HTTP when absent.
    pub tls: Option<TlsConfig>,
    /// `[witness]`: where every signed audit checkpoint is also published (a file, a URL).
    pub witness: crate::witness::WitnessConfig,
    /// `[accounts]`: dormancy (`dormant_days`) and the roster's limit (`roster_max_leavers_percent`).
    pub accounts: wbg_guard::LifecycleConfig,
    /// `[incidents]`: the widest window one breach incident covers (`max_window_days`).
    pub incidents: wbg_guard::IncidentConfig,
    /// `[masking]`: the digits of a phone masked views and labels show (`phone_keep_first`, `phone_keep_last`).
    pub masking: wbg_guard::MaskingConfig,
    /// `[console]`: sessions (`idle_minutes`, `max_hours`), `[console.sla_minutes]` per severity, `enabled`.
    pub console: crate::server::ConsoleConfig,
    /// `[tracking]`: the public lookup `/track` and the limits that keep scrapers out.
    pub tracking: wbg_guard::TrackingConfig,
}

/// `[store]`: `kind` selects the backend and the keys it takes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum StoreConfig {
    /// The embedded store (SQLite) in the data directory.
    Embedded(NoKeys),
    /// PostgreSQL, shared by every guard node.
    Postgres(PostgresConfig),
}

/// A kind that takes no further keys (any other key is refused, as a typo would be).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoKeys {}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig::Embedded(NoKeys {})
    }
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig::Local(NoKeys {})
    }
}

/// `[store] kind = "postgres"`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresConfig {
    /// Connection URL (default: `$DATABASE_URL`).
    pub url: Option<String>,
    /// Apply pending schema migrations at start-up (else `wbguard init` or `wbguard migrate` does, and a start
    /// refuses a database whose schema is behind).
    pub migrate: bool,
    /// Reads' grouped lookup statements this node keeps in flight (default 4); nodes sharing one PostgreSQL
    /// share it out (see [`wbg_store_pg::Lanes`]).
    pub lookups_in_flight: Option<u32>,
    /// Guarded reads' group commits this node keeps in flight (default 3; scan events commit in one more of
    /// their own); likewise shared out.
    pub commits_in_flight: Option<u32>,
}

impl PostgresConfig {
    /// The read path's lanes, each within `1..=`[`wbg_store_pg::Lanes::MAX`].
    pub fn lanes(&self) -> Result<wbg_store_pg::Lanes> {
        let default = wbg_store_pg::Lanes::default();
        let max = wbg_store_pg::Lanes::MAX;
        let lookups = self.lookups_in_flight.unwrap_or(default.lookups);
        let commits = self.commits_in_flight.unwrap_or(default.commits);
        for (key, n) in [
            ("lookups_in_flight", lookups),
            ("commits_in_flight", commits),
        ] {
            if !(1..=max).contains(&n) {
                bail!("[store] {key} must be within 1..={max}");
            }
        }
        Ok(wbg_store_pg::Lanes { lookups, commits })
    }
}

/// `[bus]`: `kind` selects where the access events go.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum BusConfig {
    /// The node's own risk engine only.
    Local(NoKeys),
    /// NATS JetStream, partitioned by account, one risk worker per partition.
    Nats(NatsBusConfig),
}

/// `[bus] kind = "nats"`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NatsBusConfig {
    /// Server URL (default: `$NATS_URL`, else `nats://127.0.0.1:4222`).
    pub url: Option<String>,
    /// Subject prefix (and stream name stem).
    pub prefix: Option<String>,
    /// Account partitions, one risk worker each; fixed for the life of a stream.
    pub partitions: Option<u32>,
    /// Risk workers snapshot their engine's state (default true) and restart from the latest snapshot.
    pub snapshots: Option<bool>,
    /// Seconds between a worker's snapshots (default 60).
    pub snapshot_seconds: Option<u64>,
}

/// `[server]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Addresses or networks (`10.0.0.0/8`, `127.0.0.1`) of reverse proxies whose `X-Forwarded-For` names the
    /// client; from any other peer the header is ignored (the risk engine and the audit log see the peer).
    pub trusted_proxies: Vec<String>,
    /// Seconds a client may keep the server waiting for its request before the connection is closed: for a plain
    /// connection's first byte, an HTTPS connection's handshake, each request head (HTTP/1: on a new connection,
    /// or after the previous answer on a kept-alive one), and each stretch of a request body without a byte.
    pub client_timeout_seconds: u64,
    /// Seconds a connection may go without a byte either way before it is closed: an HTTP/2 connection that sends
    /// no request, a client that stopped reading its answer. Longer than any request takes to answer.
    pub idle_timeout_seconds: u64,
    /// Connections open at once; beyond, a new connection is closed as soon as it is accepted.
    pub max_connections: usize,
    /// Connections one peer (an IPv4 address, an IPv6 /64) may hold open at once; trusted proxies are exempt.
    pub max_connections_per_peer: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            trusted_proxies: Vec::new(),
            client_timeout_seconds: 30,
            idle_timeout_seconds: 300,
            max_connections: 10_000,
            max_connections_per_peer: 1_000,
        }
    }
}

impl ServerConfig {
    /// The client timeout, checked: 1 to 600 seconds.
    pub fn client_timeout(&self) -> Result<std::time::Duration> {
        match self.client_timeout_seconds {
            1..=600 => Ok(std::time::Duration::from_secs(self.client_timeout_seconds)),
            n => anyhow::bail!("[server] client_timeout_seconds must be 1 to 600, not {n}"),
        }
    }

    /// What a connection may cost the server, checked: the client timeout, an idle timeout of 1 to 3600 seconds
    /// and no shorter than the client timeout, 1 to 1,000,000 connections in all and per peer.
    pub fn limits(&self) -> Result<crate::server::listen::Limits> {
        let client_timeout = self.client_timeout()?;
        let idle = self.idle_timeout_seconds;
        if !(self.client_timeout_seconds..=3600).contains(&idle) {
            anyhow::bail!(
                "[server] idle_timeout_seconds must be from client_timeout_seconds ({}) to 3600, not {idle}",
                self.client_timeout_seconds
            );
        }
        // A count of connections: 1 to 1,000,000.
        let count = |key: &str, n: usize| match n {
            1..=1_000_000 => Ok(n),
            n => Err(anyhow::anyhow!(
                "[server] {key} must be 1 to 1000000, not {n}"
            )),
        };
        let max_connections = count("max_connections", self.max_connections)?;
        let per_peer = count("max_connections_per_peer", self.max_connections_per_peer)?;
        Ok(crate::server::listen::Limits {
            client_timeout,
            idle_timeout: std::time::Duration::from_secs(idle),
            max_connections,
            // A peer can hold no more than the node has.
            per_peer: per_peer.min(max_connections),
        })
    }

    /// The trusted proxies, parsed; a single address is a network of one.
    pub fn trusted_proxies(&self) -> Result<Vec<ipnet::IpNet>> {
        self.trusted_proxies
            .iter()
            .map(|p| {
                p.parse::<ipnet::IpNet>()
                    .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        anyhow::anyhow!(
                            "[server] trusted_proxies: {p:?} is not an address or a network"
                        )
                    })
            })
            .collect()
    }
}

/// `[tls]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, PEM, leaf first.
    pub cert: PathBuf,
    /// The private key, PEM (PKCS#8, PKCS#1 or SEC1); keep it readable by the server's user alone.
    pub key: PathBuf,
}

impl TlsConfig {
    /// The rustls server configuration (ring; TLS 1.2 and 1.3; HTTP/1.1 and HTTP/2).
    pub async fn load(&self) -> Result<axum_server::tls_rustls::RustlsConfig> {
        // One process-wide provider; a second install (tests, a restart in process) is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        axum_server::tls_rustls::RustlsConfig::from_pem_file(&self.cert, &self.key)
            .await
            .with_context(|| {
                format!(
                    "[tls] cannot load the certificate {} and key {}",
                    self.cert.display(),
                    self.key.display()
                )
            })
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            data: PathBuf::from("./wbguard-data"),
            keys: None,
            policies: None,
            store: StoreConfig::default(),
            bus: BusConfig::default(),
            risk: RiskConfig::default(),
            webhook: Default::default(),
            retention: Default::default(),
            privacy_numbers: Default::default(),
            telephony_webhook: Default::default(),
            credentials: Default::default(),
            accounts: Default::default(),
            incidents: Default::default(),
            masking: Default::default(),
            console: Default::default(),
            tracking: Default::default(),
            time_zone: wbg_core::when::DEFAULT_ZONE.to_owned(),
            witness: Default::default(),
            server: Default::default(),
            tls: None,
        }
    }
}

/// Flags every subcommand shares.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Common {
    /// Configuration file (TOML).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory (overrides the config file).
    #[arg(long, global = true, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Key directory (overrides the config file; must lie outside the data directory).
    #[arg(long, global = true, value_name = "DIR")]
    pub keys: Option<PathBuf>,
    /// Policy directory (overrides the config file).
    #[arg(long, global = true, value_name = "DIR")]
    pub policies: Option<PathBuf>,
}

impl Config {
    /// Reads the config file named by `--config`, if any, then applies the flags.
    pub fn load(common: &Common) -> Result<Config> {
        let mut cfg = match &common.config {
            Some(path) => Self::from_file(path)?,
            None => Config::default(),
        };
        if let Some(d) = &common.data {
            cfg.data = d.clone();
        }
        if let Some(k) = &common.keys {
            cfg.keys = Some(k.clone());
        }
        if let Some(p) = &common.policies {
            cfg.policies = Some(p.clone());
        }
        cfg.risk
            .check()
            .map_err(|e| anyhow::anyhow!("[risk] {e}"))?;
        if let StoreConfig::Postgres(pg) = &cfg.store {
            pg.lanes()?;
        }
        wbg_core::when::set_zone(&cfg.time_zone)?;
        Ok(cfg)
    }

    fn from_file(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        toml::from_str(&text)
            .with_context(|| format!("{} is not a valid configuration", path.display()))
    }

    /// The guard configuration.
    pub fn guard(&self, create_keys: bool) -> Result<GuardConfig> {
        Ok(GuardConfig {
            data: self.data.clone(),
            keys: KeyConfig::Dir(self.keys.clone().unwrap_or_default()),
            policies: self.policies.clone(),
            risk: self.risk.clone(),
            create_keys,
        })
    }
}

impl Config {
    /// Whether the store is PostgreSQL.
    pub fn postgres(&self) -> bool {
        matches!(self.store, StoreConfig::Postgres(_))
    }

    /// The NATS settings, when `[bus] kind = "nats"`.
    pub fn nats(&self) -> Option<wbg_bus::NatsConfig> {
        let BusConfig::Nats(bus) = &self.bus else {
            return None;
        };
        let mut n = wbg_bus::NatsConfig::default();
        if let Some(u) = &bus.url {
            n.url = u.clone();
        }
        if let Some(p) = &bus.prefix {
            n.prefix = p.clone();
        }
        if let Some(p) = bus.partitions {
            n.partitions = p.max(1);
        }
        if let Some(s) = bus.snapshots {
            n.snapshots = s;
        }
        if let Some(s) = bus.snapshot_seconds {
            n.snapshot_seconds = s.max(1);
        }
        Some(n)
    }

    /// The PostgreSQL store's URL: `[store] url`, else `$DATABASE_URL`.
    pub fn postgres_url(&self) -> Result<String> {
        match &self.store {
            StoreConfig::Postgres(PostgresConfig { url: Some(u), .. }) => Ok(u.clone()),
            _ => std::env::var("DATABASE_URL")
                .context("[store] kind = \"postgres\" needs [store] url or $DATABASE_URL"),
        }
    }

    /// Opens the configured store. Only `create` (`wbguard init`) makes a new one (and applies PostgreSQL
    /// migrations, as `[store] migrate = true` does); otherwise an embedded data directory without a store is
    /// refused, so a mistyped `--data` is an error rather than a new empty store.
    pub fn open_store(&self, create: bool) -> Result<std::sync::Arc<dyn wbg_store::Store>> {
        Ok(match &self.store {
            StoreConfig::Postgres(pg) => std::sync::Arc::new(
                wbg_store_pg::PgStore::connect_with(
                    &self.postgres_url()?,
                    create || pg.migrate,
                    pg.lanes()?,
                )
                .context("cannot open the PostgreSQL store")?,
            ),
            StoreConfig::Embedded(_) => {
                if !create && !self.data.join(wbg_store_sqlite::DB_FILE).exists() {
                    bail!(
                        "{} holds no Waybill Guard store (check --data; `wbguard init` creates one)",
                        self.data.display()
                    );
                }
                std::sync::Arc::new(
                    wbg_store_sqlite::SqliteStore::open(&self.data)
                        .context("cannot open the embedded store")?,
                )
            }
        })
    }

    /// The store in words, for messages (never a URL: it may hold a password).
    pub fn describe_store(&self) -> String {
        if self.postgres() {
            format!(
                "the PostgreSQL store (data directory {})",
                self.data.display()
            )
        } else {
            format!("the embedded store in {}", self.data.display())
        }
    }

    /// Takes the data directory's exclusive lock for this process's life: one server per data directory, and no
    /// key rotation or retention run beside a server that holds the old key or its own view of the keys. The
    /// lock is released by the kernel when the process ends, however it ends.
    pub fn lock_data_dir(&self, what: &str) -> Result<std::fs::File> {
        if !self.data.is_dir() {
            bail!(
                "{} is not a data directory (check --data; `wbguard init` creates one)",
                self.data.display()
            );
        }
        let path = self.data.join(LOCK_FILE);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => bail!(
                "another wbguard process (a server, a key rotation or a retention run) is using {}; \
                 `{what}` needs it alone",
                self.data.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
    }
}

/// The lock file in a data directory (see [`Config::lock_data_dir`]).
pub const LOCK_FILE: &str = "wbguard.lock";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_example_is_a_valid_configuration() {
        let readme = include_str!("../../../README.md");
        let start = readme.find("```toml\n").expect("a TOML block") + 8;
        let end = start + readme[start..].find("```").expect("closed");
        let c: Config = toml::from_str(&readme[start..end]).unwrap();
        assert_eq!(c.risk.score.burst.mask, 25.0);
        assert_eq!(c.webhook.retries, 5);
    }

    #[test]
    fn every_key_is_optional_and_unknown_keys_are_refused() {
        let c: Config = toml::from_str("").unwrap();
        assert_eq!(c.listen, "127.0.0.1:8080");
        let c: Config = toml::from_str(
            "listen = \"0.0.0.0:9\"\n[store]\nkind = \"embedded\"\n[risk.rate_limit]\nburst = 5\n\
             [risk.detectors.cadence]\nenabled = false\n",
        )
        .unwrap();
        assert_eq!(c.risk.rate_limit.burst, 5);
        assert!(!c.risk.detectors.cadence.enabled);
        assert!(toml::from_str::<Config>("[risk.detectors.cadense]\nenabled = false").is_err());
        assert!(toml::from_str::<Config>("lisen = 1").is_err());
        let pg: Config =
            toml::from_str("[store]\nkind = \"postgres\"\nurl = \"postgres://x\"").unwrap();
        assert!(pg.guard(false).is_ok() && pg.postgres());
        assert_eq!(pg.postgres_url().unwrap(), "postgres://x");
        // A kind this build does not have, or a key its kind does not take, is refused at parse.
        assert!(toml::from_str::<Config>("[store]\nkind = \"mysql\"").is_err());
        assert!(toml::from_str::<Config>("[store]\nkind = \"embedded\"\nurl = \"x\"").is_err());
        assert!(toml::from_str::<Config>("[store]\nkind = \"postgres\"\nurls = \"x\"").is_err());
        assert!(toml::from_str::<Config>("[bus]\nkind = \"local\"\npartitions = 2").is_err());
        let nats: Config = toml::from_str("[bus]\nkind = \"nats\"\npartitions = 4").unwrap();
        assert_eq!(nats.nats().unwrap().partitions, 4);
        assert!(Config::default().nats().is_none() && !Config::default().postgres());
    }

    #[test]
    fn a_nodes_statements_in_flight_default_and_are_refused_out_of_range_at_load() {
        let pg = |extra: &str| -> Config {
            toml::from_str(&format!("[store]\nkind = \"postgres\"\n{extra}")).unwrap()
        };
        let lanes = |c: &Config| match &c.store {
            StoreConfig::Postgres(p) => p.lanes(),
            StoreConfig::Embedded(_) => unreachable!("a postgres store"),
        };
        assert_eq!(lanes(&pg("")).unwrap(), wbg_store_pg::Lanes::default());
        let two = lanes(&pg("lookups_in_flight = 2\ncommits_in_flight = 2")).unwrap();
        assert_eq!((two.lookups, two.commits), (2, 2));
        let dir = tempfile::tempdir().unwrap();
        for (extra, key) in [
            ("lookups_in_flight = 0", "lookups_in_flight"),
            ("commits_in_flight = 7", "commits_in_flight"),
        ] {
            let path = dir.path().join("c.toml");
            std::fs::write(&path, format!("[store]\nkind = \"postgres\"\n{extra}\n")).unwrap();
            let common = Common {
                config: Some(path),
                ..Common::default()
            };
            let e = Config::load(&common).unwrap_err().to_string();
            assert_eq!(e, format!("[store] {key} must be within 1..=6"));
        }
        // An embedded store takes neither.
        assert!(
            toml::from_str::<Config>("[store]\nkind = \"embedded\"\ncommits_in_flight = 2")
                .is_err()
        );
    }

    #[test]
    fn connection_limits_default_and_are_refused_out_of_range() {
        let server = |extra: &str| -> Result<crate::server::listen::Limits> {
            toml::from_str::<Config>(&format!("[server]\n{extra}"))
                .unwrap()
                .server
                .limits()
        };
        let d = server("").unwrap();
        assert_eq!(
            (
                d.client_timeout.as_secs(),
                d.idle_timeout.as_secs(),
                d.max_connections
            ),
            (30, 300, 10_000)
        );
        assert_eq!(d.per_peer, 1_000);
        let set = server(
            "client_timeout_seconds = 5\nidle_timeout_seconds = 5\nmax_connections = 1\n\
             max_connections_per_peer = 1",
        )
        .unwrap();
        assert_eq!(
            (
                set.idle_timeout.as_secs(),
                set.max_connections,
                set.per_peer
            ),
            (5, 1, 1)
        );
        // A peer can hold no more than the node has.
        assert_eq!(server("max_connections = 10").unwrap().per_peer, 10);
        for (extra, key) in [
            ("idle_timeout_seconds = 29", "idle_timeout_seconds"),
            ("idle_timeout_seconds = 3601", "idle_timeout_seconds"),
            ("max_connections = 0", "max_connections"),
            ("max_connections = 1000001", "max_connections"),
            ("max_connections_per_peer = 0", "max_connections_per_peer"),
            (
                "max_connections_per_peer = 1000001",
                "max_connections_per_peer",
            ),
            ("client_timeout_seconds = 0", "client_timeout_seconds"),
        ] {
            let e = server(extra).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("[server] {key} must be")),
                "{extra}: {e}"
            );
        }
    }

    #[test]
    fn the_deployment_example_is_a_complete_valid_configuration() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../deploy/wbguard-postgres-nats.toml");
        let c = Config::from_file(&path).unwrap();
        assert!(c.postgres() && c.nats().is_some() && c.tls.is_some());
        assert_eq!(c.server.trusted_proxies().unwrap().len(), 1);
        assert!(c.witness.file.is_some() && c.webhook.secret.is_some());
        c.risk.check().unwrap();
    }

    #[test]
    fn inverted_thresholds_are_refused_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[risk.score.burst]\nalert = 60.0\nmask = 25.0\nsuspend = 50.0\n",
        )
        .unwrap();
        let common = Common {
            config: Some(path),
            ..Common::default()
        };
        let e = Config::load(&common).unwrap_err().to_string();
        assert!(e.contains("alert <= mask <= suspend"), "{e}");
    }
}
