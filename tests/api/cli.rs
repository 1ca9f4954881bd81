//! The command line against a real database: `init`, `generate` (signed + registered), `verify`,
//! `verify-record`, `keys`.

use std::process::{Command, Output};

use hallmark::provenance::keyfile::PASSPHRASE_ENV;
use hallmark::provenance::pki::{PRIVATE_KEY_FILES, SIGNING_CERT_FILE, SIGNING_KEY_FILE};
use image::GenericImageView;
use sqlx::PgPool;

use crate::helpers::models_dir;

struct Cli {
    url: String,
    data_dir: tempfile::TempDir,
}

impl Cli {
    fn new(pool: &PgPool) -> Self {
        let options = pool.connect_options();
        let database = options.get_database().expect("test database name");
        Self {
            url: format!("postgres://postgres@127.0.0.1:5432/{database}"),
            data_dir: tempfile::tempdir().unwrap(),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, &[])
    }

    /// `run` with extra environment variables (the key passphrase is unset unless given here).
    fn run_with(&self, args: &[&str], envs: &[(&str, &str)]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_hallmark"))
            .args(args)
            .env("HALLMARK__DATABASE__URL", &self.url)
            .env("HALLMARK__STORAGE__DATA_DIR", self.data_dir.path())
            .env("HALLMARK__MODEL__DIR", models_dir())
            .env("HALLMARK__MODEL__DEVICE", "cpu")
            .env_remove(PASSPHRASE_ENV)
            .envs(envs.iter().copied())
            .output()
            .unwrap()
    }

    fn ok_with(&self, args: &[&str], envs: &[(&str, &str)]) -> String {
        let output = self.run_with(args, envs);
        assert!(
            output.status.success(),
            "hallmark {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        self.ok_with(args, &[])
    }

    fn keys_dir(&self) -> std::path::PathBuf {
        self.data_dir.path().join("keys")
    }
}

/// `hallmark enhance` writes the signed edit of its input and registers it; `hallmark verify`
/// reads the chain back. A bad region is refused without a record.
#[sqlx::test]
async fn enhance_writes_a_signed_registered_edit(pool: PgPool) {
    let cli = Cli::new(&pool);
    cli.ok(&["init"]);
    let dir = tempfile::tempdir().unwrap();
    let generated = dir.path().join("generated");
    cli.ok(&[
        "generate",
        "--count",
        "1",
        "--seed",
        "2",
        "--out",
        generated.to_str().unwrap(),
    ]);
    let input = std::fs::read_dir(&generated)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let out = dir.path().join("inpainted.png");
    let fast = [
        ("HALLMARK__ENHANCEMENT__STEPS", "5"),
        ("HALLMARK__ENHANCEMENT__STARTS", "2"),
    ];
    let args = [
        "enhance",
        input.to_str().unwrap(),
        "--op",
        "inpaint",
        "--rect",
        "4,4,10,8",
        "--seed",
        "9",
        "--out",
        out.to_str().unwrap(),
    ];
    let printed = cli.ok_with(&args, &fast);
    assert!(printed.contains("record "), "{printed}");
    let report: serde_json::Value =
        serde_json::from_str(&cli.ok(&["verify", "--json", out.to_str().unwrap()])).unwrap();
    let report = &report[0]["report"];
    assert_eq!(report["provenance"]["state"], "trusted", "{report}");
    assert_eq!(
        report["provenance"]["hallmark"]["operation"], "inpaint",
        "{report}"
    );
    assert_eq!(
        report["provenance"]["hallmark"]["parent_sha256"],
        hex::encode(hallmark::fingerprint::sha256(
            &std::fs::read(&input).unwrap()
        )),
    );
    assert_eq!(report["registry"]["match"], "file_sha256", "{report}");
    let refused = cli.run_with(
        &[
            "enhance",
            input.to_str().unwrap(),
            "--op",
            "inpaint",
            "--rect",
            "0,0,32,32",
        ],
        &fast,
    );
    assert!(!refused.status.success());
    let records: i64 = sqlx::query_scalar("SELECT count(*) FROM records")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(records, 2, "the generated image and its one edit");
}

#[sqlx::test]
async fn generate_writes_signed_registered_reproducible_images(pool: PgPool) {
    let cli = Cli::new(&pool);
    cli.ok(&["init"]);
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for out in [&a, &b] {
        let out = out.to_str().unwrap();
        cli.ok(&["generate", "--count", "3", "--seed", "5", "--out", out]);
    }
    let mut names: Vec<_> = std::fs::read_dir(&a)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names.len(), 3);
    for name in &names {
        let (first, second) = (
            image::open(a.join(name)).unwrap(),
            image::open(b.join(name)).unwrap(),
        );
        assert_eq!(first.dimensions(), (32, 32));
        assert_eq!(
            first.to_luma8(),
            second.to_luma8(),
            "same seed, same pixels: {name:?}"
        );
        // Each file carries its own signed manifest and record.
        assert_ne!(
            std::fs::read(a.join(name)).unwrap(),
            std::fs::read(b.join(name)).unwrap()
        );
    }
    let records: i64 = sqlx::query_scalar("SELECT count(*) FROM records")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(records, 6);

    let file = a.join(&names[0]);
    let report: serde_json::Value =
        serde_json::from_str(&cli.ok(&["verify", "--json", file.to_str().unwrap()])).unwrap();
    let report = &report[0]["report"];
    assert_eq!(report["provenance"]["state"], "trusted", "{report}");
    assert!(
        report["provenance"]["hallmark"]["record_id"].is_string(),
        "{report}"
    );
    assert_eq!(report["verdict"], "hallmark_generated", "{report}");
    assert_eq!(report["registry"]["match"], "file_sha256", "{report}");
    // The signed manifest names the device the model ran on.
    assert_eq!(
        report["provenance"]["hallmark"]["device"], "cpu",
        "{report}"
    );
    // The validator's findings as crJSON, for the Conformance Program's rubrics.
    let crjson: serde_json::Value =
        serde_json::from_str(&cli.ok(&["verify", "--crjson", file.to_str().unwrap()])).unwrap();
    assert!(
        crjson.to_string().contains("signingCredential.trusted"),
        "{crjson:#}"
    );

    // A copy without the manifest, re-encoded as JPEG: still found in the registry.
    let copy = dir.path().join("copy.jpg");
    image::open(&file)
        .unwrap()
        .to_rgb8()
        .save_with_format(&copy, image::ImageFormat::Jpeg)
        .unwrap();
    let report: serde_json::Value =
        serde_json::from_str(&cli.ok(&["verify", "--json", copy.to_str().unwrap()])).unwrap();
    let report = &report[0]["report"];
    assert_eq!(report["provenance"]["state"], "no_manifest", "{report}");
    assert_eq!(report["registry"]["match"], "phash", "{report}");
    assert_eq!(report["verdict"], "hallmark_generated", "{report}");
    // A file that is not an image is refused with its code, and the command fails.
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "not an image").unwrap();
    let refused = cli.run(&["verify", "--no-detector", notes.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stdout).contains("unsupported_media_type"));
    // The detector alone.
    let detected: serde_json::Value =
        serde_json::from_str(&cli.ok(&["detect", "--json", file.to_str().unwrap()])).unwrap();
    let detection = &detected[0]["detection"];
    assert_eq!(detection["model"], "fashion-dcgan32-ema", "{detected}");
    assert!(detection["probability"].as_f64().is_some(), "{detected}");

    let all = cli.ok(&["verify-record", "--all"]);
    assert_eq!(all.matches("OK").count(), 6, "{all}");
    // An edited row is caught.
    sqlx::query("UPDATE records SET seed = seed + 1 WHERE id = (SELECT id FROM records LIMIT 1)")
        .execute(&pool)
        .await
        .unwrap();
    let tampered = cli.run(&["verify-record", "--all"]);
    assert!(!tampered.status.success());
    assert!(String::from_utf8_lossy(&tampered.stdout).contains("TAMPERED"));
}

#[sqlx::test]
async fn keys_are_created_listed_and_revoked(pool: PgPool) {
    let cli = Cli::new(&pool);
    let key = cli.ok(&["keys", "create", "--role", "moderator", "--name", "alice"]);
    let key = key.trim();
    assert!(key.starts_with("hm_") && key.len() == 67, "{key}");
    let listed = cli.ok(&["keys", "list"]);
    assert!(listed.contains("alice") && listed.contains("moderator") && listed.contains("active"));
    assert!(!listed.contains(key), "the key itself is never listed");
    let stored: Vec<u8> = sqlx::query_scalar("SELECT key_hash FROM api_keys")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, hallmark::fingerprint::sha256(key.as_bytes()));

    cli.ok(&["keys", "revoke", &key[..11]]);
    assert!(cli.ok(&["keys", "list"]).contains("revoked"));
    assert!(
        !cli.run(&["keys", "revoke", &key[..11]]).status.success(),
        "already revoked"
    );
    assert!(!cli
        .run(&["keys", "create", "--role", "root", "--name", "x"])
        .status
        .success());
}

/// The blobs of committed records are on disk, not only in the page cache. They are written
/// without a sync and their bytes are committed with the records (the blob journal,
/// `src/store/blob_journal.rs`); a checkpoint then syncs the blob directory's file system
/// (`syncfs`) and only after that deletes their journal rows (traced with strace around
/// `hallmark generate`, which takes a checkpoint before it exits). A kill -9 cannot tell this
/// apart (the page cache survives a process); only a power cut could
/// (`tests/faults.rs` simulates one).
#[sqlx::test]
async fn generated_blobs_are_synced_before_their_journal_rows_go(pool: PgPool) {
    let cli = Cli::new(&pool);
    cli.ok(&["init"]);
    let work = tempfile::tempdir().unwrap();
    let trace = work.path().join("trace.txt");
    let status = Command::new("strace")
        .args([
            "-f",
            "-qq",
            "-s",
            "256",
            "-e",
            "trace=openat,syncfs,sendto,write,writev",
            "-o",
        ])
        .arg(&trace)
        .arg(env!("CARGO_BIN_EXE_hallmark"))
        .args(["generate", "--count", "2", "--seed", "3", "--out"])
        .arg(work.path().join("images"))
        // In clear, so that the trace shows the statements sent.
        .env(
            "HALLMARK__DATABASE__URL",
            format!("{}?sslmode=disable", cli.url),
        )
        .env("HALLMARK__STORAGE__DATA_DIR", cli.data_dir.path())
        .env("HALLMARK__MODEL__DIR", models_dir())
        .env("HALLMARK__MODEL__DEVICE", "cpu")
        .status()
        .expect("strace runs (scripts/setup.sh installs it)");
    assert!(status.success());
    // The trace's lines in order: where the blob directory's file system is synced (`syncfs(fd)`
    // resolved through the thread's last `openat(...) = fd`; threads interleave, so a call may
    // be split: `openat(..., "path", ... <unfinished ...>` then `<... openat resumed>) = fd`),
    // and where the journal rows are deleted (the statement sent to PostgreSQL).
    let blobs = cli.data_dir.path().join("blobs");
    let text = std::fs::read_to_string(&trace).unwrap();
    let mut open = std::collections::HashMap::new();
    let mut pending = std::collections::HashMap::new();
    let (mut synced_at, mut deleted_at) = (Vec::new(), Vec::new());
    let result = |rest: &str| rest.rsplit_once("= ").map(|(_, fd)| fd.trim().to_owned());
    for (at, line) in text.lines().enumerate() {
        let Some((tid, call)) = line.split_once(' ') else {
            continue;
        };
        let (tid, call) = (tid.to_owned(), call.trim_start());
        if let Some(rest) = call.strip_prefix("openat(") {
            let Some(path) = rest.split('"').nth(1) else {
                continue;
            };
            if rest.ends_with("<unfinished ...>") {
                pending.insert(tid, path.to_owned());
            } else if let Some(fd) = result(rest) {
                open.insert((tid, fd), path.to_owned());
            }
        } else if let Some(rest) = call.strip_prefix("<... openat resumed>") {
            if let (Some(path), Some(fd)) = (pending.remove(&tid), result(rest)) {
                open.insert((tid, fd), path);
            }
        } else if let Some(rest) = call.strip_prefix("syncfs(") {
            let fd = rest.split([')', ' ']).next().unwrap_or_default();
            if open.get(&(tid, fd.to_owned())).map(std::path::Path::new) == Some(&blobs) {
                synced_at.push(at);
            }
        } else if call.contains("DELETE FROM blob_journal") {
            deleted_at.push(at);
        }
    }
    assert!(!synced_at.is_empty(), "the blob store was synced:\n{text}");
    assert!(!deleted_at.is_empty(), "the journal rows were deleted");
    assert!(
        synced_at[0] < deleted_at[0],
        "the sync (line {}) comes before the journal rows go (line {})",
        synced_at[0],
        deleted_at[0]
    );
    let journaled: i64 = sqlx::query_scalar("SELECT count(*) FROM blob_journal")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(journaled, 0, "generate leaves nothing journaled");
    let hashes: Vec<(Vec<u8>, Vec<u8>)> =
        sqlx::query_as("SELECT file_sha256, manifest_sha256 FROM records")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(hashes.len(), 2);
    for hash in hashes.iter().flat_map(|(file, manifest)| [file, manifest]) {
        let hex = hex::encode(hash);
        let file = blobs.join(format!("sha256/{}/{}/{hex}", &hex[..2], &hex[2..4]));
        assert_eq!(
            hallmark::fingerprint::sha256(&std::fs::read(&file).unwrap()).to_vec(),
            *hash,
            "{} holds its bytes",
            file.display()
        );
    }
}

/// The binary allocates with jemalloc everywhere, libtorch included (build.rs links it ahead of
/// libc): glibc's dynamic linker, asked to report its bindings, binds libtorch's and the binary's
/// own `malloc` and `free` to libjemalloc, not to libc.
#[test]
fn the_binary_and_libtorch_allocate_with_jemalloc() {
    let output = Command::new(env!("CARGO_BIN_EXE_hallmark"))
        .arg("--version")
        .env("LD_DEBUG", "bindings")
        .output()
        .expect("run hallmark");
    assert!(output.status.success());
    let trace = String::from_utf8_lossy(&output.stderr);
    for (from, symbol) in [
        ("libtorch_cpu.so", "malloc"),
        ("libtorch_cpu.so", "free"),
        ("hallmark", "malloc"),
    ] {
        let bound_to: Vec<&str> = trace
            .lines()
            .filter(|line| {
                line.contains("binding file")
                    && line.contains(&format!("normal symbol `{symbol}'"))
                    && line
                        .split("binding file ")
                        .nth(1)
                        .and_then(|rest| rest.split(' ').next())
                        .is_some_and(|file| {
                            file.ends_with(from) || file.contains(&format!("/{from}"))
                        })
            })
            .filter_map(|line| line.split(" to ").nth(1)?.split(' ').next())
            .collect();
        assert!(
            !bound_to.is_empty() && bound_to.iter().all(|lib| lib.contains("libjemalloc")),
            "{from}'s `{symbol}` is bound to {bound_to:?}"
        );
    }
}

/// What OpenSSL says of a key file: the DER SubjectPublicKeyInfo it derives from the private key,
/// decrypting it with `passphrase` (an implementation other than ours reading our files).
fn openssl_public_key(key: &std::path::Path, passphrase: &str) -> Output {
    Command::new("openssl")
        .args([
            "pkey", "-pubout", "-outform", "DER", "-passin", "env:PASS", "-in",
        ])
        .arg(key)
        .env("PASS", passphrase)
        .output()
        .expect("openssl")
}

/// The DER SubjectPublicKeyInfo of a PEM certificate, by OpenSSL.
fn openssl_certificate_key(cert: &std::path::Path) -> Vec<u8> {
    let pem = Command::new("openssl")
        .args(["x509", "-noout", "-pubkey", "-in"])
        .arg(cert)
        .output()
        .expect("openssl");
    assert!(pem.status.success());
    let der = Command::new("openssl")
        .args(["pkey", "-pubin", "-outform", "DER"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child.stdin.take().unwrap().write_all(&pem.stdout)?;
            child.wait_with_output()
        })
        .expect("openssl");
    assert!(der.status.success());
    der.stdout
}

#[sqlx::test]
async fn keys_at_rest_are_encrypted_with_the_passphrase_and_openssl_reads_them(pool: PgPool) {
    const PASSPHRASE: &str = "a passphrase the operator keeps";
    let cli = Cli::new(&pool);
    let with = [(PASSPHRASE_ENV, PASSPHRASE)];
    cli.ok_with(&["init"], &with);
    let keys = cli.keys_dir();
    for file in PRIVATE_KEY_FILES {
        let pem = std::fs::read_to_string(keys.join(file)).unwrap();
        assert!(
            pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"),
            "{file}: {pem}"
        );
        // OpenSSL decrypts it with the passphrase, and only with it.
        assert!(
            openssl_public_key(&keys.join(file), PASSPHRASE)
                .status
                .success(),
            "{file}"
        );
        assert!(!openssl_public_key(&keys.join(file), "another passphrase")
            .status
            .success());
    }
    let signing = openssl_public_key(&keys.join(SIGNING_KEY_FILE), PASSPHRASE);
    assert_eq!(
        signing.stdout,
        openssl_certificate_key(&keys.join(SIGNING_CERT_FILE)),
        "the encrypted key is the certificate's"
    );

    // The service signs with it given the passphrase, from the environment or from a file...
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    cli.ok_with(
        &[
            "generate",
            "--count",
            "1",
            "--seed",
            "3",
            "--out",
            out.to_str().unwrap(),
        ],
        &with,
    );
    let secret = dir.path().join("passphrase");
    std::fs::write(&secret, format!("{PASSPHRASE}\n")).unwrap();
    let from_file = [(
        "HALLMARK__PROVENANCE__KEY_PASSPHRASE_FILE",
        secret.to_str().unwrap(),
    )];
    cli.ok_with(
        &[
            "generate",
            "--count",
            "1",
            "--seed",
            "4",
            "--out",
            out.to_str().unwrap(),
        ],
        &from_file,
    );
    let image = std::fs::read_dir(&out)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let report: serde_json::Value = serde_json::from_str(&cli.ok(&[
        "verify",
        "--json",
        "--no-detector",
        image.to_str().unwrap(),
    ]))
    .unwrap();
    assert_eq!(
        report[0]["report"]["provenance"]["state"], "trusted",
        "{report}"
    );
    // ...and refuses to start without it, or with a wrong one, saying what is missing.
    let without = cli.run(&["generate", "--count", "1", "--out", out.to_str().unwrap()]);
    assert!(!without.status.success());
    let stderr = String::from_utf8_lossy(&without.stderr);
    assert!(stderr.contains(PASSPHRASE_ENV), "{stderr}");
    let wrong = cli.run_with(
        &["generate", "--count", "1", "--out", out.to_str().unwrap()],
        &[(PASSPHRASE_ENV, "not the passphrase at all")],
    );
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("cannot decrypt"));
}

#[sqlx::test]
async fn init_encrypt_key_encrypts_the_keys_an_earlier_init_left_in_plaintext(pool: PgPool) {
    const PASSPHRASE: &str = "a passphrase the operator keeps";
    let cli = Cli::new(&pool);
    let first = cli.ok(&["init"]);
    assert!(first.contains("is not encrypted"), "{first}");
    let keys = cli.keys_dir();
    let signing_key =
        |passphrase: &str| openssl_public_key(&keys.join(SIGNING_KEY_FILE), passphrase).stdout;
    let before = signing_key("");
    assert!(
        !before.is_empty(),
        "plaintext: OpenSSL reads it without a passphrase"
    );
    // Asking for encryption without a passphrase is refused and changes nothing.
    let refused = cli.run(&["init", "--encrypt-key"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains(PASSPHRASE_ENV));
    let with = [(PASSPHRASE_ENV, PASSPHRASE)];
    let second = cli.ok_with(&["init", "--encrypt-key"], &with);
    assert_eq!(
        second.matches("provenance: encrypted").count(),
        PRIVATE_KEY_FILES.len(),
        "{second}"
    );
    assert!(!second.contains("is not encrypted"), "{second}");
    for file in PRIVATE_KEY_FILES {
        let pem = std::fs::read_to_string(keys.join(file)).unwrap();
        assert!(
            pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"),
            "{file}"
        );
    }
    assert_eq!(
        signing_key(PASSPHRASE),
        before,
        "the same key, now encrypted"
    );
    // A third run has nothing left to encrypt.
    let third = cli.ok_with(&["init", "--encrypt-key"], &with);
    assert!(!third.contains("provenance: encrypted"), "{third}");
}
