//! Test harness: the real `wbguard` binary, serving on an ephemeral port over its own data and key directories.

use reqwest::blocking::{Client, RequestBuilder, Response};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_wbguard");

/// A data directory, a key directory beside it (not inside), and a config file.
pub struct Dirs {
    pub root: tempfile::TempDir,
    pub data: PathBuf,
    pub keys: PathBuf,
    pub config: PathBuf,
    /// A second admin's token, made beside the first admin the CLI creates: no admin approves an enrolment
    /// they asked for, so [`Server::account`] has this one approve the accounts a test sets up.
    pub approver: std::sync::Mutex<Option<String>>,
    /// Whether `wbguard init` has made the store and keys (done before the first other command).
    initialised: std::sync::atomic::AtomicBool,
}

impl Dirs {
    /// `risk` is TOML placed after a `[risk]` header (empty for the default engine settings).
    pub fn new(risk: &str) -> Dirs {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        let keys = root.path().join("keys");
        let config = root.path().join("wbguard.toml");
        std::fs::write(
            &config,
            format!("listen = \"127.0.0.1:0\"\n[risk]\n{risk}\n"),
        )
        .unwrap();
        Dirs {
            root,
            data,
            keys,
            config,
            approver: std::sync::Mutex::new(None),
            initialised: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Runs `wbguard migrate` (the configured PostgreSQL schema brought up to date), checks it succeeded, and
    /// returns what it said.
    pub fn migrate(&self) -> std::process::Output {
        let out = self.cli(&["migrate"]);
        assert!(
            out.status.success(),
            "migrate: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Runs `wbguard ARGS` on these directories; the first command that opens a store (not `init` itself, nor
    /// `simulate`, which builds its own) is preceded by `wbguard init`, as an operator's first step is.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        if !matches!(args.first(), Some(&"init" | &"simulate" | &"demo"))
            && !self
                .initialised
                .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            let out = self.cli_in(&["init"], &self.data);
            assert!(
                out.status.success(),
                "init: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        self.cli_in(args, &self.data)
    }

    /// Runs `wbguard ARGS` with the data directory `data` (a further node's).
    pub fn cli_in(&self, args: &[&str], data: &Path) -> std::process::Output {
        Command::new(BIN)
            .args(args)
            .args([
                "--config",
                self.config.to_str().unwrap(),
                "--data",
                data.to_str().unwrap(),
                "--keys",
                self.keys.to_str().unwrap(),
            ])
            .env_remove("WBGUARD_MASTER_KEY")
            .env_remove("WBGUARD_AUDIT_KEY")
            .output()
            .unwrap()
    }

    /// `wbguard audit verify` passes and says the log is intact.
    pub fn assert_audit_intact(&self) {
        let out = self.cli(&["audit", "verify"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("audit log intact"), "{stdout}");
    }

    /// `wbguard accounts create …`; returns the token (the last line of stdout). The first admin created
    /// brings a second one (`<id>-2`), the approver of the enrolments [`Server::account`] starts.
    pub fn create_account(&self, id: &str, role: &str, outlet: Option<&str>) -> String {
        if role == "admin" && self.approver.lock().unwrap().is_none() {
            let second = self.cli_account(&format!("{id}-2"), role, outlet);
            *self.approver.lock().unwrap() = Some(second);
        }
        self.cli_account(id, role, outlet)
    }

    fn cli_account(&self, id: &str, role: &str, outlet: Option<&str>) -> String {
        let mut args = vec!["accounts", "create", "--id", id, "--role", role];
        if let Some(o) = outlet {
            args.extend(["--outlet", o]);
        }
        let out = self.cli(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .last()
            .unwrap()
            .trim()
            .to_owned()
    }
}

pub struct Server {
    pub child: Child,
    pub base: String,
    pub log: PathBuf,
    /// The second admin (see [`Dirs::approver`]).
    pub approver: Option<String>,
    client: Client,
}

impl Server {
    /// Starts `wbguard serve`; its stderr (the log) goes to `log`.
    pub fn start(dirs: &Dirs, log_level: &str) -> Server {
        Self::start_in(dirs, &dirs.data, log_level)
    }

    /// Starts node `n` of a PostgreSQL cluster: node 0 on `dirs.data`, the others each on a data directory of
    /// their own (one server per data directory), made by `wbguard init` beside the shared store.
    pub fn start_node(dirs: &Dirs, n: usize, log_level: &str) -> Server {
        if n == 0 {
            return Self::start(dirs, log_level);
        }
        let data = dirs.root.path().join(format!("data-node{n}"));
        let out = dirs.cli_in(&["init"], &data);
        assert!(
            out.status.success(),
            "init: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self::start_in(dirs, &data, log_level)
    }

    /// Starts `wbguard serve` on the data directory `data`.
    pub fn start_in(dirs: &Dirs, data: &Path, log_level: &str) -> Server {
        let log = dirs.root.path().join(format!(
            "server-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let mut child = Command::new(BIN)
            .args([
                "serve",
                "--config",
                dirs.config.to_str().unwrap(),
                "--data",
                data.to_str().unwrap(),
                "--keys",
                dirs.keys.to_str().unwrap(),
            ])
            .env("WBGUARD_LOG", log_level)
            .env_remove("WBGUARD_MASTER_KEY")
            .env_remove("WBGUARD_AUDIT_KEY")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        let client = Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Server {
            child,
            base,
            log,
            approver: dirs.approver.lock().unwrap().clone(),
            client,
        }
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> Response {
        self.auth(self.client.get(format!("{}{path}", self.base)), token)
            .send()
            .unwrap()
    }

    /// GET with a bearer token and extra headers.
    pub fn auth_get(&self, path: &str, token: &str, headers: &[(&str, &str)]) -> Response {
        let mut rb = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(token);
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        rb.send().unwrap()
    }

    pub fn delete(&self, path: &str, token: Option<&str>) -> Response {
        self.auth(self.client.delete(format!("{}{path}", self.base)), token)
            .send()
            .unwrap()
    }

    pub fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Response {
        self.auth(self.client.post(format!("{}{path}", self.base)), token)
            .json(body)
            .send()
            .unwrap()
    }

    pub fn post_text(&self, path: &str, token: &str, text: String) -> Response {
        self.client
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("content-type", "text/plain")
            .body(text)
            .send()
            .unwrap()
    }

    pub fn client_post_csv(&self, path: &str, token: &str, csv: String) -> Response {
        self.client
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("content-type", "text/csv")
            .body(csv)
            .send()
            .unwrap()
    }

    pub fn post_raw(&self, path: &str, token: Option<&str>, body: Vec<u8>) -> Response {
        self.auth(self.client.post(format!("{}{path}", self.base)), token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .unwrap()
    }

    /// Sends raw bytes on a new connection and returns what the server answers (up to 64 KiB or 5 s).
    pub fn raw_exchange(&self, request: &str) -> String {
        use std::io::{Read, Write};
        let addr = self.base.strip_prefix("http://").unwrap();
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        conn.write_all(request.as_bytes()).unwrap();
        let mut buf = vec![0u8; 65536];
        let mut got = 0;
        while got < buf.len() {
            match conn.read(&mut buf[got..]) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    got += n;
                    if String::from_utf8_lossy(&buf[..got]).contains("}}") {
                        break;
                    }
                }
            }
        }
        String::from_utf8_lossy(&buf[..got]).into_owned()
    }

    fn auth(&self, rb: RequestBuilder, token: Option<&str>) -> RequestBuilder {
        match token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    /// Creates an account over the API; returns its token. A role that sees personal data enrols: the second
    /// admin approves and the code is redeemed, as its owner would.
    pub fn account(
        &self,
        admin: &str,
        id: &str,
        role: &str,
        outlet: Option<&str>,
        merchant: Option<&str>,
    ) -> String {
        let r = self.post(
            "/v1/accounts",
            Some(admin),
            &json!({"id": id, "role": role, "outlet": outlet, "merchant": merchant}),
        );
        let status = r.status().as_u16();
        let body: Value = r.json().unwrap();
        match status {
            201 => body["token"].as_str().unwrap().to_owned(),
            202 => self.enrol(body["enrolment"]["id"].as_str().unwrap()),
            _ => panic!("creating {id}: {status} {body}"),
        }
    }

    /// Has the second admin approve enrolment `id`, redeems its code, and returns the token.
    pub fn enrol(&self, id: &str) -> String {
        let approver = self
            .approver
            .as_deref()
            .expect("an enrolment needs the second admin Dirs::create_account makes");
        let r = self.post(
            &format!("/v1/enrolments/{id}/approve"),
            Some(approver),
            &json!({}),
        );
        assert_eq!(r.status(), 200, "{}", r.text().unwrap());
        let code = r.json::<Value>().unwrap()["code"]
            .as_str()
            .unwrap()
            .to_owned();
        let r = self.post("/v1/enrol", None, &json!({"enrolment": id, "code": code}));
        assert_eq!(r.status(), 201, "{}", r.text().unwrap());
        r.json::<Value>().unwrap()["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A waybill body with the given recipient.
pub fn waybill(
    no: &str,
    merchant: &str,
    origin: &str,
    dest: &str,
    name: &str,
    phone: &str,
    detail: &str,
) -> Value {
    json!({
        "waybill_no": no, "merchant": merchant, "origin_outlet": origin, "destination_outlet": dest,
        "sender": {"name": "寄件人甲", "phone": "13911112222",
                   "address": {"province": "浙江省", "city": "杭州市", "district": "萧山区", "detail": "发货仓1号"}},
        "recipient": {"name": name, "phone": phone,
                      "address": {"province": "广东省", "city": "深圳市", "district": "南山区", "detail": detail}},
        "items": "测试商品"
    })
}

/// The lines of a streaming answer (a live alert stream) that `keep` takes, read on a thread of its own until the
/// stream ends or the receiver is dropped.
pub fn stream_lines(r: Response, keep: fn(&str) -> bool) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { return };
            if keep(&line) && tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

pub fn error_code(r: Response) -> (u16, String) {
    let status = r.status().as_u16();
    let v: Value = r.json().unwrap_or(Value::Null);
    (status, v["error"]["code"].as_str().unwrap_or("").to_owned())
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A PostgreSQL schema of the test's own in `DATABASE_URL`'s database, dropped afterwards.
pub struct Schema {
    pub base: String,
    pub name: String,
}

impl Schema {
    /// A new schema named `<stem>_<random>`, or `None` when `DATABASE_URL` is unset.
    pub fn create(stem: &str) -> Option<Schema> {
        let base = std::env::var("DATABASE_URL").ok()?;
        let s = Schema {
            name: format!("{stem}_{:016x}", rand::random::<u64>()),
            base,
        };
        s.admin(&format!("CREATE SCHEMA {}", s.name));
        Some(s)
    }

    /// The database URL with this schema as the search path.
    pub fn url(&self) -> String {
        let sep = if self.base.contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-c%20search_path%3D{}", self.base, self.name)
    }

    pub fn admin(&self, sql: &str) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let pool = sqlx::PgPool::connect(&self.base).await.unwrap();
            sqlx::raw_sql(sql).execute(&pool).await.unwrap();
        });
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        self.admin(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
    }
}

/// Accepts one HTTP POST on `l` (a webhook's), answers 200 and returns its body.
pub fn accept_post(l: &std::net::TcpListener) -> String {
    use std::io::{Read, Write};
    let (mut conn, _) = l.accept().unwrap();
    let mut r = BufReader::new(conn.try_clone().unwrap());
    let mut len = 0;
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).unwrap();
    write!(
        conn,
        "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    String::from_utf8(body).unwrap()
}

/// Every POST to `l`, collected by a thread that lives as long as the test process.
pub fn collect_posts(l: std::net::TcpListener) -> std::sync::Arc<std::sync::Mutex<Vec<String>>> {
    let posts = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = posts.clone();
    std::thread::spawn(move || loop {
        let body = accept_post(&l);
        keep.lock().unwrap().push(body);
    });
    posts
}

/// An identity provider's key set holding `key`'s public half (Ed25519) under key id `kid`.
pub fn ed25519_jwks(kid: &str, key: &ed25519_dalek::SigningKey) -> String {
    use base64::{engine::general_purpose::URL_SAFE_NO_PAD as B64, Engine};
    let x = B64.encode(key.verifying_key().to_bytes());
    json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig"}]})
        .to_string()
}

/// A JWT over `claims` signed with `key` (EdDSA) under key id `kid`, as the identity provider issues them.
pub fn jwt_kid(key: &ed25519_dalek::SigningKey, kid: &str, claims: &Value) -> String {
    use base64::{engine::general_purpose::URL_SAFE_NO_PAD as B64, Engine};
    use ed25519_dalek::Signer;
    let head = B64.encode(json!({"alg": "EdDSA", "typ": "JWT", "kid": kid}).to_string());
    let body = B64.encode(claims.to_string());
    let sig = key.sign(format!("{head}.{body}").as_bytes());
    format!("{head}.{body}.{}", B64.encode(sig.to_bytes()))
}

/// A PostgreSQL schema and a NATS stream prefix of this test's own, written into `dirs`' config as `[store]`
/// and `[bus]` (`partitions`, a snapshot every `snapshot_seconds`); `None`, saying so, when `DATABASE_URL` or
/// `NATS_URL` is unset (`.ci/run` sets both). Drop the schema to remove it.
pub fn pg_and_nats(
    dirs: &Dirs,
    stem: &str,
    partitions: u32,
    snapshot_seconds: u64,
) -> Option<(Schema, wbg_bus::NatsConfig)> {
    if std::env::var("NATS_URL").is_err() {
        eprintln!("NATS_URL is not set: {stem} is not tested here (.ci/run sets it)");
        return None;
    }
    let Some(schema) = Schema::create(&format!("wbg_{stem}")) else {
        eprintln!("DATABASE_URL is not set: {stem} is not tested here (.ci/run sets it)");
        return None;
    };
    let bus = wbg_bus::NatsConfig {
        prefix: format!("wbg{stem}{:08x}", rand::random::<u32>()),
        partitions,
        snapshot_seconds,
        ..wbg_bus::NatsConfig::default()
    };
    let mut config = std::fs::read_to_string(&dirs.config).unwrap();
    config.push_str(&format!(
        "[store]\nkind = \"postgres\"\nurl = \"{}\"\n[bus]\nkind = \"nats\"\nurl = \"{}\"\nprefix = \"{}\"\n\
         partitions = {partitions}\nsnapshot_seconds = {snapshot_seconds}\n",
        schema.url(),
        bus.url,
        bus.prefix
    ));
    std::fs::write(&dirs.config, &config).unwrap();
    Some((schema, bus))
}

/// A `wbguard risk-worker` process, its stderr in a log file; killed when dropped (a failing test leaves none
/// behind).
pub struct RiskWorker {
    pub child: Child,
    pub log: PathBuf,
}

impl RiskWorker {
    /// Starts a worker on `partition` with the config file `config` and `dirs`' data and keys, logging to
    /// `<name>.log` in `dirs`' root; `args` are further arguments (`--metrics-listen …`).
    pub fn start(
        dirs: &Dirs,
        config: &Path,
        partition: u32,
        name: &str,
        args: &[&str],
    ) -> RiskWorker {
        let log = dirs.root.path().join(format!("{name}.log"));
        let child = Command::new(BIN)
            .args(["risk-worker", "--partition", &partition.to_string()])
            .args(args)
            .args(["--config", path_str(config)])
            .args([
                "--data",
                path_str(&dirs.data),
                "--keys",
                path_str(&dirs.keys),
            ])
            .env("WBGUARD_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        RiskWorker { child, log }
    }

    /// What the worker has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for RiskWorker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
