//! `wbguard`'s integration tests as one test binary, one module per subject: each test drives the real
//! `wbguard` binary (`common`), so a binary per file only added a link each and ran the files one after another,
//! a long test leaving the second core idle — the scale-out test (`cluster`) spends most of its 50 s waiting on a
//! paced carrier, and now waits beside the others.
mod common;

mod attribute;
mod audit_verify_cli;
mod canaries_http;
mod cluster;
mod console_browser;
mod console_oidc_http;
mod crash;
mod credentials_http;
mod data_dir_cli;
mod demo_cli;
mod exports_incidents_http;
mod hardening_http;
mod holds_http;
mod http_api;
mod keys_cli;
mod labels_http;
mod lifecycle_http;
mod no_personal_data_in_logs;
mod oversight_http;
mod policies_http;
mod postgres;
mod postgres_stop;
mod privacy_numbers_http;
mod rights_http;
mod risk_worker;
mod simulate_cli;
mod tracking_http;
