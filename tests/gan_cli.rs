//! `hallmark generate` with a bad model name (the signed, registered path is tested in tests/api/cli.rs).

use std::process::Command;

#[test]
fn unknown_model_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_hallmark"))
        .args(["generate", "--model", "no-such-model", "--out"])
        .arg(dir.path())
        .env(
            "HALLMARK__MODEL__DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/models"),
        )
        .output()
        .unwrap();
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("no-such-model") && stderr.contains("fashion-dcgan32"),
        "{stderr}"
    );
}
