//! The README's first command, `wbguard demo`, runs to its end: it once stopped at its last step (an incident
//! window wider than `[incidents] max_window_days`) with no test to notice.
#[test]
fn the_demo_runs_to_its_end() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wbguard"))
        .arg("demo")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}\n{stdout}");
    assert!(
        stdout.contains("leaks name their attacker at rank 1"),
        "{stdout}"
    );
    assert!(stdout.contains("Incident INC-"), "{stdout}");
}
