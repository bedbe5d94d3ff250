//! C2SP signed notes, verifier keys and checkpoints from untrusted text: parse or refuse, never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wbg_audit::note::{NoteSigner, NoteVerifier};

fuzz_target!(|s: &str| {
    let _ = NoteVerifier::from_text(s);
    let _ = NoteSigner::from_private_text(s);
    if let Ok(cp) = wbg_audit::Checkpoint::parse(s) {
        assert_eq!(wbg_audit::Checkpoint::parse(&cp.to_text()).ok(), Some(cp));
    }
    let v = NoteVerifier::from_text("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW").unwrap();
    let _ = v.open(s);
});
