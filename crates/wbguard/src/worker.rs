//! `wbguard risk-worker`: one partition of the NATS access-event stream through the risk engine, its alerts and
//! suspensions written to the shared store (and its webhook), the thresholds changed over the API taken in every
//! five seconds. SIGTERM or Ctrl-C stops it cleanly (a last snapshot of the engine where it stopped); with
//! `--metrics-listen` it serves its own Prometheus metrics, because what a worker decides — its alerts and
//! suspensions — is counted in the worker's process, not on any node.
use crate::config::Config;
use crate::{open_guard, shutdown_signal, telemetry, webhook};
use anyhow::{bail, Context, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wbg_guard::RequestMeta;

/// Sets its flag when dropped, on a return or an unwind alike.
struct Finished<'a>(&'a AtomicBool);

impl Drop for Finished<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Runs the worker for `partition` until it is stopped by a signal.
pub fn run(cfg: &Config, partition: u32, metrics_listen: Option<&str>) -> Result<()> {
    let nats = cfg
        .nats()
        .context("a risk worker needs [bus] kind = \"nats\"")?;
    if partition >= nats.partitions {
        bail!(
            "--partition must be below [bus] partitions ({})",
            nats.partitions
        );
    }
    let mut guard = open_guard(cfg)?;
    // The worker's alerts go where the nodes' go: the store and the webhook.
    if let Some(hook) = webhook::Webhook::<wbg_core::Alert>::start(&cfg.webhook)? {
        guard = guard.with_alert_sink(Arc::new(hook));
    }
    let worker = wbg_bus::Worker::new(&nats, partition, wbg_risk::Engine::new(cfg.risk.clone()))?;

    // The signal watch and the metrics endpoint run on a small runtime of their own beside the worker's loop.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("wbguard-worker-ops")
        .enable_all()
        .build()?;
    let stop = Arc::new(AtomicBool::new(false));
    {
        let signal = {
            let _rt = rt.enter();
            shutdown_signal()?
        };
        let stop = stop.clone();
        rt.spawn(async move {
            signal.await;
            tracing::info!("stopping: the partition is left where it is acknowledged");
            stop.store(true, Ordering::Relaxed);
        });
    }
    if let Some(addr) = metrics_listen {
        let handle = telemetry::install_worker().context("cannot install the metrics recorder")?;
        let listener = rt
            .block_on(tokio::net::TcpListener::bind(addr))
            .with_context(|| format!("cannot listen on {addr}"))?;
        eprintln!("metrics on http://{}/metrics", listener.local_addr()?);
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let text = handle.render();
                async move { text }
            }),
        );
        rt.spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "the metrics endpoint stopped");
            }
        });
    }
    eprintln!(
        "risk worker for partition {partition} of {}",
        nats.partitions
    );

    let meta = RequestMeta::default();
    // Thresholds changed over the API (kept in the store) are put in force in the worker's own engine, at start
    // and every five seconds while it runs.
    let engine = worker.engine();
    let adopt = || -> Result<()> {
        if let Some(score) = guard.stored_score()? {
            if engine.set_score(score)? {
                tracing::info!("risk thresholds changed over the API are in force in this worker");
            }
        }
        Ok(())
    };
    adopt()?;
    let done = AtomicBool::new(false);
    let report = std::thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(250));
                if let Err(e) = adopt() {
                    tracing::error!(error = %e, "cannot take in the stored risk thresholds");
                }
                for _ in 0..19 {
                    if done.load(Ordering::Relaxed) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(250));
                }
            }
        });
        // However the run ends — returned, or a panic in a verdict — the threshold thread is told to stop, so a
        // panic ends the process (for its supervisor to restart) instead of leaving it waiting on that thread
        // with its partition unwatched: it did, after a webhook counter overflowed in a debug build.
        let _done = Finished(&done);
        worker.run(&stop, None, &mut |ev, verdict| {
            if let Some(a) = &verdict.alert {
                guard.record_alert(ev.account.id.as_str(), a.clone(), ev.at);
            }
            if verdict.action == wbg_risk::RiskAction::Suspend {
                // (An account reinstated since the engine suspended it is told by the engine itself.)
                let id = ev.account.id.as_str();
                match guard.suspend_for_risk(&ev.account.id, ev.at, "risk engine", &meta) {
                    Ok(true) => tracing::warn!(account = id, "risk worker suspended an account"),
                    Ok(false) => {}
                    Err(e) => tracing::error!(error = %e, account = id, "cannot suspend"),
                }
            }
        })
    })?;
    let snapshot = report
        .snapshot
        .map_or_else(|| "none".to_string(), |s| s.to_string());
    eprintln!(
        "stopped: replayed {}, processed {}, skipped {}; last snapshot at stream sequence {snapshot}",
        report.replayed, report.processed, report.skipped
    );
    Ok(())
}
