//! `hallmark generate` end to end with the shipped model.

use std::path::Path;
use std::process::Command;

fn generate(out: &Path, seed: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hallmark"))
        .args(["generate", "--model", "fashion-dcgan32", "--count", "3"])
        .args(["--seed", seed, "--device", "cpu", "--out"])
        .arg(out)
        .env(
            "HALLMARK__MODEL__DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/models"),
        )
        .output()
        .unwrap()
}

#[test]
fn generate_writes_reproducible_pngs() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for out in [&a, &b] {
        let run = generate(out, "5");
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
    }
    let mut names: Vec<_> = std::fs::read_dir(&a)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names.len(), 3);
    for name in &names {
        let image = image::open(a.join(name)).unwrap();
        assert_eq!((image.width(), image.height()), (32, 32));
        assert_eq!(
            std::fs::read(a.join(name)).unwrap(),
            std::fs::read(b.join(name)).unwrap()
        );
    }
}

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
