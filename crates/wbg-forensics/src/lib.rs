//! Leak forensics for Waybill Guard: when a leaked list turns up, which accounts could have produced it.
//!
//! 1. [`read_leak`] / [`parse_leak`] read the sample as leaks really look (CSV or JSON Lines, headers in
//!    English or Chinese or none, phones with `+86`, spaces, dashes or masks, full-width characters, partial
//!    addresses) within fixed bounds, and reduce every row to clues.
//! 2. [`match_records`] finds each row's waybills through the blind indexes alone — nothing is decrypted — and
//!    says how sure it is.
//! 3. The [`AccessIndex`] knows, from the audit log, who was shown which waybill and how much of it; [`rank`]
//!    scores every principal shown the leak by a likelihood model that can be explained in a sentence, and
//!    tries pairs for colluders. A planted canary in the leak, or an export file's keyed row order kept in it
//!    ([`order_match`]), marks its source outright.
#![deny(missing_docs)]

mod attribute;
mod error;
mod index;
mod intake;
mod matching;
mod watermark;

pub use attribute::{
    rank, Evidence, ExportOrigin, Marks, Pair, Ranking, Suspect, EVIDENCE, NOISE, TOP,
};
pub use error::ForensicsError;
pub use index::{
    Access, AccessIndex, Posting, Postings, Principal, SharedPostings, Shown, INDEX_FILE,
};
pub use intake::{
    name_clue, open_leak, parse_leak, phone_clue, read_leak, Format, Leak, LeakRecord, Limits,
    NameClue, PhoneClue, Role,
};
pub use matching::{
    match_records, Clue, Lookup, Matching, RecordMatch, StoreLookup, MAX_CANDIDATES, MAX_POSTINGS,
    MIN_CONFIDENCE,
};
pub use watermark::{longest_increasing, order_match, OrderMatch, CONCLUSIVE_LOG10, MIN_ROWS};
