//! The README's five-minute tour, run as written: its shell blocks, in order, by bash against a
//! real `hallmark serve` (a database and data directory of its own, `hallmark init` first, as
//! `make run` does). Only what the test must decide is added: the binary under test first on
//! `PATH` after the tour's own set-up lines, the server's address in `URL`, `curl` failing on an
//! HTTP error, and `set -euo pipefail`. Then what the tour promises is checked in its output: a
//! signed PNG with its record id, the verdict `hallmark_generated`, the stripped JPEG found by the
//! public look-up with its credentials recovered, the public record, a log proof.

#[allow(dead_code)]
#[path = "support/serve.rs"]
mod serve;

use std::path::Path;
use std::process::Stdio;

/// The `sh` blocks of the README's "A five-minute tour" section, in order.
fn tour_blocks(readme: &str) -> Vec<String> {
    let start = readme
        .find("## A five-minute tour")
        .expect("README.md has a \"A five-minute tour\" section");
    let section = &readme[start..];
    let end = section[3..].find("\n## ").map_or(section.len(), |i| i + 3);
    let section = &section[..end];
    let mut blocks = Vec::new();
    let mut rest = section;
    while let Some(open) = rest.find("```sh\n") {
        let body = &rest[open + "```sh\n".len()..];
        let close = body.find("```").expect("a closed code block");
        blocks.push(body[..close].to_owned());
        rest = &body[close + 3..];
    }
    blocks
}

#[test]
fn the_readme_tour_is_found_in_the_readme() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let blocks = tour_blocks(&readme);
    assert!(blocks.len() >= 6, "{blocks:?}");
    assert!(
        blocks[0].contains("URL="),
        "the first block sets the tour up"
    );
    let all = blocks.concat();
    for needed in [
        "keys create",
        "/v1/generations",
        "/v1/verify",
        "/v1/lookup",
        "hallmark resolve",
        "/v1/records/",
        "hallmark log proof",
        "hallmark log verify",
    ] {
        assert!(all.contains(needed), "the tour no longer shows {needed}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_tour_runs_as_written() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let blocks = tour_blocks(&readme);
    let db = serve::TestDb::new();
    let data_dir = tempfile::tempdir().unwrap();
    let mut env = serve::Env::new(&db.url, data_dir.path());
    env.set("HALLMARK__TRANSPARENCY_LOG__CHECKPOINT_INTERVAL_MS", "100");
    env.ok(&["init"]);
    let server = env.serve().await;
    let port = server.address.rsplit(':').next().unwrap().to_owned();
    let bin_dir = env.binary.parent().unwrap().to_path_buf();
    let work = tempfile::tempdir().unwrap();

    // The environment every `hallmark` command of the tour gets: the same as the server's.
    let template = env.command(&[]);
    let mut bash = std::process::Command::new("bash");
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("HALLMARK_") {
            bash.env_remove(name);
        }
    }
    for (name, value) in template.get_envs() {
        match value {
            Some(value) => bash.env(name, value),
            None => bash.env_remove(name),
        };
    }
    bash.env("HALLMARK__SERVER__PORT", &port);
    let binary_name = env
        .binary
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_string();
    let mut script =
        String::from("set -euo pipefail\ncurl() { command curl --fail-with-body \"$@\"; }\n");
    script.push_str(&format!("cd {}\n", shell_quote(&root.to_string_lossy())));
    script.push_str(&blocks[0]);
    // After the tour's own set-up: this build's binary and this server, and the tour's files in
    // a scratch directory.
    script.push_str(&format!(
        "\nhallmark() {{ {} \"$@\"; }}\nURL={}\ncd {}\n",
        shell_quote(&bin_dir.join(&binary_name).to_string_lossy()),
        server.address,
        shell_quote(&work.path().to_string_lossy()),
    ));
    for (i, block) in blocks.iter().enumerate().skip(1) {
        script.push_str(&format!("echo '=== tour block {i}'\n{block}"));
    }
    script.push_str("echo \"=== record $ID\"\n");
    let out = bash
        .arg("-c")
        .arg(&script)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the tour failed: {}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}{}",
        out.status,
        env.log_tail()
    );
    let id = stdout
        .lines()
        .find_map(|l| l.strip_prefix("=== record "))
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(id.len(), 36, "a record id: {id:?}");
    let signed = std::fs::read(work.path().join("signed.png")).unwrap();
    assert!(signed.starts_with(b"\x89PNG"), "a PNG");
    let section = |i: usize| -> String {
        let marker = format!("=== tour block {i}\n");
        let from = stdout.find(&marker).map_or(0, |p| p + marker.len());
        let to = stdout[from..]
            .find("=== ")
            .map_or(stdout.len(), |p| from + p);
        stdout[from..to].to_owned()
    };
    // 3: both checks give our verdict.
    assert!(
        section(3).matches("hallmark_generated").count() >= 2,
        "{}",
        section(3)
    );
    // 4: the stripped copy found by the look-up, its credentials recovered, and by resolve.
    let found = section(4);
    assert!(
        found.contains(&id) && found.contains("match: "),
        "the stripped copy leads to {id}, by look-up and by resolve: {found}"
    );
    // 5: the public record; 6: its proof and the log's audit.
    assert!(section(5).contains(&id), "{}", section(5));
    assert!(
        section(6).contains("c2sp.org/tlog-proof@v1"),
        "{}",
        section(6)
    );
    drop(server);
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
