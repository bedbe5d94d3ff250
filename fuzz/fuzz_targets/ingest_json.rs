//! The ingest body parser and validator: any bytes either parse and validate, or are refused — no panic — and
//! a validated waybill validates again unchanged.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(w) = serde_json::from_slice::<wbg_core::NewWaybill>(data) {
        if let Ok(v) = w.validated() {
            assert_eq!(v.clone().validated().as_ref(), Ok(&v));
        }
    }
});
