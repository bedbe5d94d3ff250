//! A guard that cannot start says which step failed and keeps the error that made it fail, down to the file
//! system's, so an operator's log (and any caller that downcasts) sees the cause rather than its text alone.
use wbg_guard::{Guard, GuardConfig, GuardError, KeyConfig};
use wbg_vault::MasterKey;

#[test]
fn a_guard_that_cannot_start_keeps_the_error_that_stopped_it() {
    let root = tempfile::tempdir().unwrap();
    let opened = Guard::open(GuardConfig {
        keys: KeyConfig::Given {
            master: MasterKey::generate(),
            signer: None,
        },
        policies: Some(root.path().join("no-such-policies")),
        ..GuardConfig::embedded(root.path().join("data"))
    });
    let Err(err) = opened else {
        panic!("a guard opened over a policy directory that does not exist");
    };
    assert!(
        matches!(&err, GuardError::Setup { what, .. } if what == "policy"),
        "{err:?}"
    );
    assert_eq!((err.code(), err.http_status()), ("config", 500));
    let chain: Vec<&dyn std::error::Error> =
        std::iter::successors(Some(&err as &dyn std::error::Error), |e| e.source()).collect();
    assert!(
        chain
            .iter()
            .any(|e| e.downcast_ref::<wbg_policy::PolicyError>().is_some()),
        "{err:?}"
    );
    let io = chain
        .iter()
        .find_map(|e| e.downcast_ref::<std::io::Error>())
        .unwrap_or_else(|| panic!("no file system error under {err:?}"));
    assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
}
