//! The leak intake on arbitrary bytes: no panic, bounded by its limits, and every record it returns has
//! something to match on.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = wbg_forensics::Limits {
        max_bytes: 1 << 16,
        max_records: 256,
        max_row_bytes: 4096,
    };
    if let Ok(leak) = wbg_forensics::parse_leak(data, &limits) {
        assert!(leak.rows >= 1 && leak.rows <= limits.max_records);
        assert!(leak.records.len() <= leak.rows);
        assert!(leak.records.iter().all(|r| r.usable()));
    }
    if let Ok(s) = std::str::from_utf8(data) {
        if let Some(wbg_forensics::PhoneClue::Masked(forms)) = wbg_forensics::phone_clue(s) {
            assert!(!forms.is_empty());
            for m in &forms {
                assert!(m.chars().filter(|c| *c == '*').count() >= 4);
            }
        }
    }
});
