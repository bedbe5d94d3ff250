//! The identity provider's key set from `[credentials.oidc] jwks_url`: fetched before the server serves (a node
//! that cannot fetch it does not start, rather than refuse every JWT in silence), then again every
//! `jwks_refresh_seconds`, and a few seconds after a JWT names a key the set does not hold — which is how an
//! IdP's key rotation arrives. A failed fetch keeps the set in force, logs a warning and counts
//! `wbguard_oidc_jwks_fetch_failures_total`; `wbguard_oidc_jwks_age_seconds` says how old the set is.
use anyhow::{Context, Result};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wbg_guard::{Guard, JwksSource, OidcConfig};

/// The shortest time between two fetches that an unknown key id asks for: a stream of forged `kid`s costs the
/// identity provider one request in this long.
const SOONEST: Duration = Duration::from_secs(5);
/// A key set larger than this is not a key set.
const MAX_BYTES: u64 = 1 << 20;

/// Fetches the key set once (an error stops the start) and starts the thread that keeps it fresh; nothing when
/// the keys come from a file or no identity provider is configured.
pub fn start(guard: &Arc<Guard>, cfg: Option<&OidcConfig>) -> Result<()> {
    let Some(cfg) = cfg else { return Ok(()) };
    let JwksSource::Url(url) = cfg.source()? else {
        return Ok(());
    };
    let client = crate::webhook::client(
        reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none()),
        cfg.jwks_ca_file.as_deref(),
    )?;
    let url = url.to_owned();
    let fetch = move |guard: &Guard| -> Result<bool> {
        let res = client
            .get(&url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .context("cannot reach jwks_url")?
            .error_for_status()
            .context("jwks_url answered with an error")?;
        if res.content_length().is_some_and(|n| n > MAX_BYTES) {
            anyhow::bail!("jwks_url's answer is larger than {MAX_BYTES} bytes");
        }
        let mut body = String::new();
        std::io::Read::read_to_string(&mut std::io::Read::take(res, MAX_BYTES), &mut body)
            .context("cannot read jwks_url's answer")?;
        Ok(guard.set_oidc_keys(&body)?)
    };
    fetch(guard).context("[credentials.oidc] cannot fetch the identity provider's key set")?;
    tracing::info!("identity provider's key set fetched");
    let every = Duration::from_secs(cfg.jwks_refresh_seconds);
    let guard = guard.clone();
    std::thread::Builder::new()
        .name("wbguard-jwks".into())
        .spawn(move || {
            let (mut fetched, mut tried, mut wanted) = (Instant::now(), Instant::now(), false);
            loop {
                std::thread::sleep(Duration::from_millis(250));
                wanted |= guard.oidc_keys_stale();
                metrics::gauge!("wbguard_oidc_jwks_age_seconds")
                    .set(fetched.elapsed().as_secs_f64());
                let due = tried.elapsed() >= every || (wanted && tried.elapsed() >= SOONEST);
                if !due {
                    continue;
                }
                tried = Instant::now();
                wanted = false;
                match fetch(&guard) {
                    Ok(changed) => {
                        fetched = Instant::now();
                        if changed {
                            tracing::info!("the identity provider's key set changed");
                        }
                    }
                    Err(e) => {
                        metrics::counter!("wbguard_oidc_jwks_fetch_failures_total").increment(1);
                        tracing::warn!(error = %format!("{e:#}"), "cannot refresh the identity provider's key set; the one in force stays");
                    }
                }
            }
        })?;
    Ok(())
}
