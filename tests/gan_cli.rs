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

/// Ctrl-C (SIGINT) during `hallmark train` stops at a step boundary and leaves a loadable checkpoint.
#[test]
fn sigint_during_training_saves_a_checkpoint() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    for i in 0..8u32 {
        image::GrayImage::from_fn(16, 16, |x, y| {
            image::Luma([((x * 13 + y * 7 + i * 31) % 256) as u8])
        })
        .save(images.join(format!("{i}.png")))
        .unwrap();
    }
    let out = dir.path().join("tiny");
    let mut child = Command::new(env!("CARGO_BIN_EXE_hallmark"))
        .args([
            "train",
            "--model",
            "tiny",
            "--size",
            "16",
            "--latent-dim",
            "8",
        ])
        .args(["--g-width", "8", "--d-width", "8", "--batch-size", "4"])
        .args([
            "--steps",
            "100000000",
            "--checkpoint-every",
            "100000000",
            "--quiet",
        ])
        .args(["--device", "cpu", "--dataset"])
        .arg(&images)
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let started = stderr
        .by_ref()
        .map_while(Result::ok)
        .any(|line| line.starts_with("training "));
    assert!(started, "training started");
    std::thread::spawn(move || stderr.for_each(drop));
    // Let it take some steps, then interrupt.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "exit status {}", output.status);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.starts_with("saved"), "{stdout}");

    let card = hallmark::gan::ModelCard::load(&out.join("model.toml")).unwrap();
    assert!(
        card.training.steps >= 1 && card.training.steps < 100_000_000,
        "{}",
        card.training.steps
    );
    let models = dir.path();
    hallmark::gan::load_model(models, "tiny", tch::Device::Cpu).expect("the checkpoint loads");
}
