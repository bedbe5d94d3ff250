//! The scenarios' integration tests as one test binary, one module per subject: each runs a simulated carrier
//! through the real guard on its own scratch store, so they run side by side rather than one file after another.
mod attacks;
mod benign;
mod forensics;
mod tracking;
