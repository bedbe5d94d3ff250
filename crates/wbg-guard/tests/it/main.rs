//! `wbg-guard`'s integration tests as one test binary, one module per subject, with the helpers in `common` (a
//! look for bytes in a store's files, a risk hook that lets a set number of accesses through): one link instead of
//! one per file, and the files' tests run side by side.
mod common;

mod batch_ingest;
mod canaries;
mod exports_and_incidents;
mod holds;
mod key_rotation;
mod labels;
mod lifecycle;
mod privacy_numbers;
mod retention;
mod risk_inline;
mod setup_errors;
mod thresholds;
