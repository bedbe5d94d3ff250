//! Phone normalisation and masking on arbitrary text: no panic, normalised output is digits only and stable,
//! and the masked form hides at least four digits.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|s: &str| {
    if let Ok(p) = wbg_core::normalize_phone(s) {
        assert!(p.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(wbg_core::normalize_phone(&p).as_deref(), Ok(p.as_str()));
        let m = wbg_vault::mask_phone(&p);
        assert!(m.chars().filter(|c| *c == '*').count() >= 4);
    }
    let n = wbg_vault::normalize_name(s);
    assert_eq!(wbg_vault::normalize_name(&n), n);
});
