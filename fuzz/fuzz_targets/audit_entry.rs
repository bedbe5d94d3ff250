//! Audit entries read back from a store that may have been tampered with: decode or refuse, and what decodes
//! re-encodes to bytes that decode to the same entry.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(e) = wbg_audit::AuditEntry::decode(data) {
        assert_eq!(wbg_audit::AuditEntry::decode(&e.encode()).ok(), Some(e));
    }
});
