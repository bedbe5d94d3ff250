//! The audit log's witness: every signed checkpoint is also published outside the store — appended to a file
//! (JSON Lines, on another disk or host) and/or POSTed to a URL (a webhook, signed like the others) — so cutting
//! entries off the end of the log together with the checkpoints that cover them is caught: `wbguard audit verify
//! --checkpoint FILE|URL` checks the local log against the latest published checkpoint.
use crate::webhook::{Message, Webhook, WebhookConfig};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// `[witness]` in the configuration file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WitnessConfig {
    /// A file every newly signed checkpoint is appended to, one JSON object a line (`size`, `note`).
    pub file: Option<PathBuf>,
    /// `[witness.post]`: a URL every newly signed checkpoint is POSTed to (`{"size", "note"}`).
    pub post: WebhookConfig,
}

/// One published checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Published {
    /// The tree size it covers.
    pub size: u64,
    /// The signed note (C2SP signed-note form).
    pub note: String,
}

impl Message for Published {
    const KIND: &'static str = "witness";
    fn label(&self) -> String {
        format!("checkpoint of size {}", self.size)
    }
}

/// Where checkpoints are published.
#[derive(Debug)]
pub struct Witness {
    file: Option<Mutex<std::fs::File>>,
    post: Option<Webhook<Published>>,
    /// The largest size published by this process; a checkpoint is published once.
    last: AtomicU64,
}

impl Witness {
    /// From `[witness]`; `None` when neither a file nor a URL is configured.
    pub fn start(cfg: &WitnessConfig) -> Result<Option<Witness>> {
        let last = match &cfg.file {
            Some(path) => last_size(path),
            None => 0,
        };
        let file = match &cfg.file {
            Some(path) => Some(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("cannot open the witness file {}", path.display()))?,
            )),
            None => None,
        };
        let post = Webhook::start(&cfg.post)?;
        if file.is_none() && post.is_none() {
            return Ok(None);
        }
        Ok(Some(Witness {
            file,
            post,
            last: AtomicU64::new(last),
        }))
    }

    /// Publishes a checkpoint unless one of this size or larger was published already. A file that cannot be
    /// written is an error (the caller logs it and tries again with the next checkpoint); the POST is queued.
    pub fn publish(&self, size: u64, note: &str) -> Result<()> {
        if size == 0 || self.last.fetch_max(size, Ordering::SeqCst) >= size {
            return Ok(());
        }
        let p = Published {
            size,
            note: note.to_owned(),
        };
        if let Some(file) = &self.file {
            let mut line = serde_json::to_vec(&p)?;
            line.push(b'\n');
            let mut f = file
                .lock()
                .map_err(|_| anyhow::anyhow!("the witness file's lock is poisoned"))?;
            let written = f.write_all(&line).and_then(|()| f.sync_data());
            if let Err(e) = written {
                // Let the next checkpoint try again.
                self.last.store(0, Ordering::SeqCst);
                return Err(e).context("cannot append to the witness file");
            }
        }
        if let Some(post) = &self.post {
            post.send(p);
        }
        metrics::gauge!("wbguard_witness_published_size").set(size as f64);
        Ok(())
    }
}

/// The largest size in the last lines of a witness file (0 when it is absent or unreadable), so a process that
/// starts after another does not append the same checkpoint again.
fn last_size(path: &std::path::Path) -> u64 {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return 0;
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut tail = Vec::new();
    if f.seek(SeekFrom::Start(len.saturating_sub(16 * 1024)))
        .is_err()
        || f.read_to_end(&mut tail).is_err()
    {
        return 0;
    }
    String::from_utf8_lossy(&tail)
        .lines()
        .filter_map(|l| serde_json::from_str::<Published>(l).ok())
        .map(|p| p.size)
        .max()
        .unwrap_or(0)
}

/// The latest checkpoint published at `source`: a witness file (the last of its JSON lines), a file holding one
/// signed note, or an `http(s)://` URL answering with either (a guard node's `/v1/audit/checkpoint`, say).
pub fn latest(source: &str) -> Result<String> {
    let text = if source.starts_with("http://") || source.starts_with("https://") {
        let r = crate::webhook::client(
            reqwest::blocking::Client::builder().timeout(std::time::Duration::from_secs(30)),
            None,
        )?
        .get(source)
        .send()
        .context("cannot fetch the published checkpoint")?;
        if !r.status().is_success() {
            bail!("the published checkpoint's URL answered {}", r.status());
        }
        r.text()?
    } else {
        std::fs::read_to_string(source).with_context(|| format!("cannot read {source}"))?
    };
    let trimmed = text.trim_start();
    if !trimmed.starts_with('{') {
        // One signed note as it is.
        return Ok(text);
    }
    let mut best: Option<Published> = None;
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let p: Published = serde_json::from_str(line)
            .with_context(|| format!("line {} of {source} is not a published checkpoint", n + 1))?;
        if best.as_ref().is_none_or(|b| p.size >= b.size) {
            best = Some(p);
        }
    }
    best.map(|p| p.note)
        .with_context(|| format!("{source} holds no published checkpoint"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_is_appended_once_and_the_largest_is_the_latest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("witness.jsonl");
        let w = Witness::start(&WitnessConfig {
            file: Some(path.clone()),
            ..WitnessConfig::default()
        })
        .unwrap()
        .unwrap();
        w.publish(3, "n3").unwrap();
        w.publish(3, "n3 again").unwrap();
        w.publish(7, "n7").unwrap();
        w.publish(5, "n5 late").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert_eq!(latest(path.to_str().unwrap()).unwrap(), "n7");
        // A later process does not publish what an earlier one did.
        let again = Witness::start(&WitnessConfig {
            file: Some(path.clone()),
            ..WitnessConfig::default()
        })
        .unwrap()
        .unwrap();
        again.publish(7, "n7").unwrap();
        again.publish(8, "n8").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 3);
        assert!(Witness::start(&WitnessConfig::default()).unwrap().is_none());
        std::fs::write(&path, "{\"size\": 1}\n").unwrap();
        assert!(latest(path.to_str().unwrap()).is_err());
    }
}
