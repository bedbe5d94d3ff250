//! Webhook delivery of alerts: a JSON POST per alert from a thread of its own, retried with exponential backoff.
//! The guard only hands the alert over (a bounded queue); a slow or dead receiver never holds up a read, and an
//! overflowing queue drops alerts (they stay in the store and in `GET /v1/alerts`) and counts them.
use serde::Deserialize;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::time::Duration;
use wbg_core::Alert;
use wbg_guard::AlertSink;

/// `[webhook]` in the configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// Where alerts are POSTed (`http://` only in this build); no webhook when absent.
    pub url: Option<String>,
    /// Attempts after the first before an alert is given up.
    pub retries: u32,
    /// Wait before the first retry, in milliseconds; doubled after each failure, up to a minute.
    pub backoff_ms: u64,
    /// Time allowed per attempt, in seconds.
    pub timeout_seconds: u64,
    /// Alerts waiting for delivery before new ones are dropped.
    pub queue: usize,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            url: None,
            retries: 5,
            backoff_ms: 500,
            timeout_seconds: 5,
            queue: 1024,
        }
    }
}

/// The sending end the guard holds.
#[derive(Debug)]
pub struct Webhook {
    tx: SyncSender<Alert>,
}

impl Webhook {
    /// Starts the delivery thread; `None` when no URL is configured.
    pub fn start(cfg: &WebhookConfig) -> anyhow::Result<Option<Webhook>> {
        let Some(url) = cfg.url.clone() else {
            return Ok(None);
        };
        // The HTTP client is built without TLS (no TLS stack in this build yet); refuse https rather than fail on
        // every delivery.
        if !url.starts_with("http://") {
            anyhow::bail!(
                "[webhook] url must start with http:// (https webhooks need a TLS-enabled build; put a local \
                 TLS-terminating relay in front meanwhile)"
            );
        }
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(cfg.timeout_seconds.max(1)))
            .build()?;
        let (tx, rx) = sync_channel(cfg.queue.max(1));
        let cfg = cfg.clone();
        std::thread::Builder::new()
            .name("wbguard-webhook".into())
            .spawn(move || deliver(&client, &url, &cfg, rx))?;
        Ok(Some(Webhook { tx }))
    }
}

impl AlertSink for Webhook {
    fn alert(&self, alert: &Alert) {
        match self.tx.try_send(alert.clone()) {
            Ok(()) => {}
            Err(TrySendError::Full(a) | TrySendError::Disconnected(a)) => {
                tracing::warn!(
                    alert = a.id,
                    "webhook queue full; alert kept in the store only"
                );
                metrics::counter!("wbguard_webhook_dropped_total").increment(1);
            }
        }
    }
}

fn deliver(
    client: &reqwest::blocking::Client,
    url: &str,
    cfg: &WebhookConfig,
    rx: Receiver<Alert>,
) {
    for alert in rx {
        let mut wait = Duration::from_millis(cfg.backoff_ms);
        let mut attempt = 0;
        loop {
            let outcome = client.post(url).json(&alert).send();
            match outcome {
                Ok(r) if r.status().is_success() => {
                    metrics::counter!("wbguard_webhook_delivered_total").increment(1);
                    break;
                }
                Ok(r) => {
                    tracing::warn!(alert = alert.id, status = %r.status(), attempt, "webhook refused the alert")
                }
                Err(e) => {
                    tracing::warn!(alert = alert.id, error = %e.without_url(), attempt, "webhook unreachable")
                }
            }
            if attempt >= cfg.retries {
                tracing::error!(
                    alert = alert.id,
                    "webhook delivery given up; the alert stays in the store"
                );
                metrics::counter!("wbguard_webhook_failed_total").increment(1);
                break;
            }
            attempt += 1;
            std::thread::sleep(wait);
            wait = (wait * 2).min(Duration::from_secs(60));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    /// A receiver that answers 500 to the first `fail` requests and 200 after; returns the bodies it accepted.
    fn receiver(fail: usize, want: usize) -> (String, std::thread::JoinHandle<Vec<String>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        let h = std::thread::spawn(move || {
            let mut accepted = Vec::new();
            let mut seen = 0;
            for conn in l.incoming() {
                let mut conn = conn.unwrap();
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
                seen += 1;
                let status = if seen <= fail {
                    "500 Internal Server Error"
                } else {
                    "200 OK"
                };
                write!(
                    conn,
                    "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                )
                .unwrap();
                if seen > fail {
                    accepted.push(String::from_utf8(body).unwrap());
                    if accepted.len() == want {
                        return accepted;
                    }
                }
            }
            accepted
        });
        (url, h)
    }

    fn alert(id: i64) -> Alert {
        Alert {
            id,
            at: 1,
            account: "S001".into(),
            kind: "risk_suspend".into(),
            severity: "critical".into(),
            detail: "{}".into(),
        }
    }

    #[test]
    fn retries_with_backoff_until_accepted() {
        let (url, h) = receiver(2, 2);
        let hook = Webhook::start(&WebhookConfig {
            url: Some(url),
            backoff_ms: 10,
            ..WebhookConfig::default()
        })
        .unwrap()
        .unwrap();
        hook.alert(&alert(7));
        hook.alert(&alert(8));
        let got = h.join().unwrap();
        let first: serde_json::Value = serde_json::from_str(&got[0]).unwrap();
        assert_eq!(first["id"], 7);
        assert_eq!(first["kind"], "risk_suspend");
        let second: serde_json::Value = serde_json::from_str(&got[1]).unwrap();
        assert_eq!(second["id"], 8, "in order, after the first was retried");
    }

    #[test]
    fn a_dead_receiver_never_blocks_the_caller() {
        // Nothing listens here; every attempt fails and the queue of one fills at once.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        drop(l);
        let hook = Webhook::start(&WebhookConfig {
            url: Some(url),
            backoff_ms: 60_000,
            queue: 1,
            ..WebhookConfig::default()
        })
        .unwrap()
        .unwrap();
        let t = std::time::Instant::now();
        for i in 0..1_000 {
            hook.alert(&alert(i));
        }
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    }

    #[test]
    fn a_url_must_be_http() {
        let e = Webhook::start(&WebhookConfig {
            url: Some("ftp://x".into()),
            ..WebhookConfig::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("http://"));
        let e = Webhook::start(&WebhookConfig {
            url: Some("https://alerts.example".into()),
            ..WebhookConfig::default()
        })
        .unwrap_err();
        assert!(
            e.to_string().contains("TLS"),
            "refused at start, not at every delivery"
        );
    }
}
