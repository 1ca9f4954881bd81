//! Content Credentials end to end: sign, read back, tamper, foreign files, an independent reader.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hallmark::config::Settings;
use hallmark::provenance::pki::{init_pki, CA_CERT_FILE, SIGNING_CERT_FILE, SIGNING_KEY_FILE};
use hallmark::provenance::{
    ImageClaim, ImageFormat, ProvenanceReport, ProvenanceSigner, ProvenanceVerifier,
    ValidationState, TRAINED_ALGORITHMIC_MEDIA,
};
use uuid::Uuid;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures/c2pa");

struct Pki {
    _dir: tempfile::TempDir,
    settings: Settings,
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::load(None).unwrap();
    settings.storage.data_dir = dir.path().to_owned();
    init_pki(&settings.storage.keys_dir(), 30).unwrap();
    Pki {
        _dir: dir,
        settings,
    }
}

fn image(format: ImageFormat, side: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(side, side, |x, y| {
        image::Rgb([(x * 7) as u8, (y * 5) as u8, ((x + y) * 3) as u8])
    });
    let mut out = Cursor::new(Vec::new());
    let fmt = match format {
        ImageFormat::Png => image::ImageFormat::Png,
        ImageFormat::Jpeg => image::ImageFormat::Jpeg,
        ImageFormat::Webp => image::ImageFormat::WebP,
    };
    img.write_to(&mut out, fmt).unwrap();
    out.into_inner()
}

fn claim(format: ImageFormat) -> ImageClaim {
    ImageClaim {
        record_id: Uuid::new_v4(),
        model: "fashion-dcgan32".into(),
        model_version: "3".into(),
        seed: -1234567890123,
        phash: 0xdead_beef_0123_4567,
        title: format!("hallmark test image.{format}"),
        format,
    }
}

fn assert_state(report: &ProvenanceReport, state: ValidationState, what: &str) {
    assert_eq!(report.state, state, "{what}: {report:#?}");
}

#[test]
fn signed_png_jpeg_and_webp_read_back_trusted_with_our_claims() {
    let pki = pki();
    let signer = ProvenanceSigner::from_settings(&pki.settings).unwrap();
    let verifier = ProvenanceVerifier::from_settings(&pki.settings).unwrap();
    for format in [ImageFormat::Png, ImageFormat::Jpeg, ImageFormat::Webp] {
        let claim = claim(format);
        let signed = signer.sign_image(&claim, &image(format, 48)).unwrap();
        assert!(signed.manifest_id.starts_with("urn:c2pa:"));
        let report = verifier.verify(&signed.bytes);
        assert_state(&report, ValidationState::Trusted, &format!("{format}"));
        assert!(report.failures.is_empty(), "{report:#?}");
        assert_eq!(report.format, Some(format));
        assert_eq!(
            report.manifest_id.as_deref(),
            Some(signed.manifest_id.as_str())
        );
        assert_eq!(report.title.as_deref(), Some(claim.title.as_str()));
        assert_eq!(
            report.claim_generator.as_deref(),
            Some(concat!("hallmark/", env!("CARGO_PKG_VERSION")))
        );
        assert_eq!(
            report.digital_source_type.as_deref(),
            Some(TRAINED_ALGORITHMIC_MEDIA)
        );
        assert!(report.declares_ai_origin());
        let signer_info = report.signer.as_ref().unwrap();
        assert_eq!(
            signer_info.common_name.as_deref(),
            Some("Hallmark Content Credentials Signer")
        );
        assert_eq!(signer_info.algorithm.as_deref(), Some("ed25519"));
        let ours = report.hallmark.as_ref().expect("our claims");
        assert_eq!(ours.record_id, claim.record_id);
        assert_eq!(ours.model, claim.model);
        assert_eq!(ours.model_version, claim.model_version);
        assert_eq!(ours.seed, claim.seed);
        assert_eq!(ours.phash, "deadbeef01234567");
        assert_eq!(ours.signing_key_id, signer.key_id());
        // The report is the API's JSON.
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["state"], "trusted");
        assert_eq!(json["hallmark"]["record_id"], claim.record_id.to_string());
    }
}

#[test]
fn a_claim_whose_format_does_not_match_the_bytes_is_refused() {
    let pki = pki();
    let signer = ProvenanceSigner::from_settings(&pki.settings).unwrap();
    assert!(signer
        .sign_image(&claim(ImageFormat::Jpeg), &image(ImageFormat::Png, 8))
        .is_err());
    assert!(signer
        .sign_image(&claim(ImageFormat::Png), b"not an image")
        .is_err());
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap_or_else(|| panic!("{:?} not found", String::from_utf8_lossy(needle)))
}

#[test]
fn tampering_is_caught() {
    let pki = pki();
    let signer = ProvenanceSigner::from_settings(&pki.settings).unwrap();
    let verifier = ProvenanceVerifier::from_settings(&pki.settings).unwrap();

    // One byte of the PNG's pixel data.
    let signed = signer
        .sign_image(&claim(ImageFormat::Png), &image(ImageFormat::Png, 32))
        .unwrap();
    let mut bytes = signed.bytes.clone();
    let idat = find(&bytes, b"IDAT");
    bytes[idat + 10] ^= 0x01;
    let report = verifier.verify(&bytes);
    assert_state(&report, ValidationState::Invalid, "PNG pixel byte");
    assert!(
        report
            .failures
            .iter()
            .any(|c| c == "assertion.dataHash.mismatch"),
        "{report:#?}"
    );
    assert!(report.hallmark.is_none());

    // One byte of the JPEG's entropy-coded data (just before the end-of-image marker).
    let signed_jpeg = signer
        .sign_image(&claim(ImageFormat::Jpeg), &image(ImageFormat::Jpeg, 64))
        .unwrap();
    let mut bytes = signed_jpeg.bytes.clone();
    let n = bytes.len();
    bytes[n - 20] ^= 0x01;
    let report = verifier.verify(&bytes);
    assert_state(&report, ValidationState::Invalid, "JPEG data byte");
    assert!(
        report
            .failures
            .iter()
            .any(|c| c == "assertion.dataHash.mismatch"),
        "{report:#?}"
    );

    // One byte of our assertion (the model name inside the manifest).
    let mut bytes = signed.bytes.clone();
    let at = find(&bytes, b"fashion-dcgan32");
    bytes[at] = b'F';
    let report = verifier.verify(&bytes);
    assert_state(&report, ValidationState::Invalid, "edited assertion");
    assert!(!report.failures.is_empty());
    assert!(report.hallmark.is_none(), "{report:#?}");

    // Decoded and re-encoded pixels carry no manifest.
    let pixels = image::load_from_memory(&signed.bytes).unwrap();
    let mut reencoded = Cursor::new(Vec::new());
    pixels
        .write_to(&mut reencoded, image::ImageFormat::Png)
        .unwrap();
    let report = verifier.verify(&reencoded.into_inner());
    assert_state(&report, ValidationState::NoManifest, "re-encoded");
}

#[test]
fn a_signer_from_an_unrelated_ca_is_valid_but_untrusted_and_not_ours() {
    let ours = pki();
    let theirs = pki();
    let their_signer = ProvenanceSigner::from_settings(&theirs.settings).unwrap();
    let our_verifier = ProvenanceVerifier::from_settings(&ours.settings).unwrap();
    let signed = their_signer
        .sign_image(&claim(ImageFormat::Png), &image(ImageFormat::Png, 16))
        .unwrap();
    let report = our_verifier.verify(&signed.bytes);
    assert_state(&report, ValidationState::ValidUntrusted, "foreign CA");
    assert_eq!(report.failures, vec!["signingCredential.untrusted"]);
    assert!(
        report.hallmark.is_none(),
        "another CA's manifest must not pass for ours"
    );
}

#[test]
fn records_signed_before_a_rotation_still_read_as_ours() {
    let pki = pki();
    let old_signer = ProvenanceSigner::from_settings(&pki.settings).unwrap();
    let signed = old_signer
        .sign_image(&claim(ImageFormat::Png), &image(ImageFormat::Png, 16))
        .unwrap();
    hallmark::provenance::pki::rotate_signing_key(&pki.settings.storage.keys_dir(), 30).unwrap();
    let new_signer = ProvenanceSigner::from_settings(&pki.settings).unwrap();
    assert_ne!(new_signer.key_id(), old_signer.key_id());
    let verifier = ProvenanceVerifier::from_settings(&pki.settings).unwrap();
    let report = verifier.verify(&signed.bytes);
    assert_state(&report, ValidationState::Trusted, "old key");
    assert_eq!(report.hallmark.unwrap().signing_key_id, old_signer.key_id());
}

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(FIXTURES).join(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read fixture {} ({e}): the shared fixtures must sit beside the checkout",
            path.display()
        )
    })
}

#[test]
fn files_from_other_producers_get_the_expected_reports() {
    use ValidationState::*;
    let pki = pki();
    let plain = ProvenanceVerifier::from_settings(&pki.settings).unwrap();
    let mut with_roots_settings = pki.settings.clone();
    with_roots_settings.provenance.trust_anchors =
        Some(Path::new(FIXTURES).join("test_cert_root_bundle.pem"));
    let with_roots = ProvenanceVerifier::from_settings(&with_roots_settings).unwrap();

    // (file, state with the test roots, state without, a failure code expected in both or None)
    let cases: [(&str, ValidationState, ValidationState, Option<&str>); 10] = [
        ("C.jpg", Trusted, ValidUntrusted, None),
        ("CA.jpg", Trusted, ValidUntrusted, None),
        ("boxhash.jpg", Trusted, ValidUntrusted, None),
        ("C_with_CAWG_data.jpg", ValidUntrusted, ValidUntrusted, None),
        (
            "XCA.jpg",
            Invalid,
            Invalid,
            Some("assertion.dataHash.mismatch"),
        ),
        (
            "E-sig-CA.jpg",
            Invalid,
            Invalid,
            Some("claimSignature.mismatch"),
        ),
        ("prerelease.jpg", Unreadable, Unreadable, None),
        ("no_manifest.jpg", NoManifest, NoManifest, None),
        ("libpng-test.png", NoManifest, NoManifest, None),
        ("libpng-test_with_url.png", NoManifest, NoManifest, None),
    ];
    for (name, trusted_state, plain_state, code) in cases {
        let bytes = fixture(name);
        for (verifier, expected, which) in [
            (&with_roots, trusted_state, "with roots"),
            (&plain, plain_state, "without roots"),
        ] {
            let report = verifier.verify(&bytes);
            assert_state(&report, expected, &format!("{name} {which}"));
            assert!(report.hallmark.is_none(), "{name}");
            if let Some(code) = code {
                assert!(
                    report.failures.iter().any(|c| c == code),
                    "{name} {which}: {report:#?}"
                );
            }
            if expected == ValidUntrusted && name != "C_with_CAWG_data.jpg" {
                assert_eq!(
                    report.failures,
                    vec!["signingCredential.untrusted"],
                    "{name}"
                );
            }
            if expected == Trusted {
                assert!(report.failures.is_empty(), "{name}: {report:#?}");
                assert!(report.signer.is_some() && report.claim_generator.is_some());
            }
        }
    }
    assert!(with_roots
        .verify(&fixture("prerelease.jpg"))
        .error
        .unwrap()
        .contains("pre-release"));
    let remote = plain.verify(&fixture("libpng-test_with_url.png"));
    assert!(
        remote
            .remote_manifest_url
            .as_deref()
            .is_some_and(|u| u.starts_with("http")),
        "{remote:#?}"
    );
    let cawg = with_roots.verify(&fixture("C_with_CAWG_data.jpg"));
    assert!(
        cawg.failures
            .iter()
            .any(|c| c == "signingCredential.untrusted"),
        "{cawg:#?}"
    );
}

#[test]
fn a_hostile_tiff_is_refused_by_its_magic_bytes_at_once() {
    let pki = pki();
    let verifier = ProvenanceVerifier::from_settings(&pki.settings).unwrap();
    let bytes = fixture("tiff_poc.tiff");
    let start = Instant::now();
    let report = verifier.verify(&bytes);
    assert!(start.elapsed() < Duration::from_millis(50));
    assert_state(&report, ValidationState::Unsupported, "tiff");
    for junk in [
        &b""[..],
        b"\x89PN",
        b"RIFF\0\0\0\0WEBP",
        &[0xFF, 0xD8, 0xFF, 0x00],
    ] {
        // Truncated headers of accepted formats must not crash the reader either.
        let _ = verifier.verify(junk);
    }
}

fn python() -> PathBuf {
    std::env::var_os("HALLMARK_PYTHON").map_or_else(
        || PathBuf::from("/root/.cache/hallmark/venv/bin/python"),
        PathBuf::from,
    )
}

#[test]
fn c2pa_python_reads_our_png_and_jpeg_as_valid_with_our_assertions() {
    let pki = pki();
    let signer = ProvenanceSigner::from_settings(&pki.settings).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/c2pa_check.py");
    let anchors = pki.settings.storage.keys_dir().join(CA_CERT_FILE);
    for format in [ImageFormat::Png, ImageFormat::Jpeg] {
        let claim = claim(format);
        let signed = signer.sign_image(&claim, &image(format, 40)).unwrap();
        let file = dir.path().join(format!("signed.{format}"));
        std::fs::write(&file, &signed.bytes).unwrap();
        for (trust, expected) in [(true, "Trusted"), (false, "Valid")] {
            let mut command = Command::new(python());
            command.arg(script).arg(&file);
            if trust {
                command.arg("--anchors").arg(&anchors);
            }
            let output = command.output().unwrap_or_else(|e| {
                panic!(
                    "cannot run {} ({e}): set HALLMARK_PYTHON or run scripts/setup.sh",
                    python().display()
                )
            });
            assert!(
                output.status.success(),
                "c2pa-python check failed (is c2pa-python installed? scripts/setup.sh installs \
                 it):\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
            let out: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
            assert_eq!(out["validation_state"], expected, "{format}: {out}");
            if !trust {
                assert_eq!(
                    out["failures"],
                    serde_json::json!(["signingCredential.untrusted"])
                );
            }
            assert_eq!(out["active_manifest"], signed.manifest_id);
            assert_eq!(out["digital_source_type"], TRAINED_ALGORITHMIC_MEDIA);
            assert_eq!(
                out["claim_generator"],
                concat!("hallmark/", env!("CARGO_PKG_VERSION"))
            );
            assert_eq!(out["hallmark"]["record_id"], claim.record_id.to_string());
            assert_eq!(out["hallmark"]["seed"], claim.seed);
            assert_eq!(out["hallmark"]["phash"], "deadbeef01234567");
        }
    }
}

/// Other producers' credentials made here, by the C2PA SDK's Python binding
/// (`scripts/make_c2pa_fixtures.py`), so this check needs nothing beside the repository: a valid
/// AI-declared manifest, the same file with its pixels changed, an edit with the first as its
/// parent ingredient, and one by a signer nobody trusts. Hallmark's reader and the reference
/// reader (c2pa-python) must agree on each.
#[test]
fn credentials_made_by_c2pa_python_read_as_the_reference_reader_reads_them() {
    use ValidationState::*;
    let producer = pki();
    let stranger = pki();
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source.jpg");
    std::fs::write(&source, image(ImageFormat::Jpeg, 64)).unwrap();
    let made = dir.path().join("made");
    let keys = |p: &Pki| p.settings.storage.keys_dir();
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts");
    let output = Command::new(python())
        .arg(scripts.join("make_c2pa_fixtures.py"))
        .arg(&source)
        .arg(&made)
        .arg("--chain")
        .arg(keys(&producer).join(SIGNING_CERT_FILE))
        .arg("--key")
        .arg(keys(&producer).join(SIGNING_KEY_FILE))
        .arg("--other-chain")
        .arg(keys(&stranger).join(SIGNING_CERT_FILE))
        .arg("--other-key")
        .arg(keys(&stranger).join(SIGNING_KEY_FILE))
        .output()
        .expect("python runs (HALLMARK_PYTHON)");
    assert!(
        output.status.success(),
        "make_c2pa_fixtures.py: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let anchors_path = keys(&producer).join(CA_CERT_FILE);
    let anchors = std::fs::read_to_string(&anchors_path).unwrap();
    let ours = ProvenanceVerifier::new(&anchors, Vec::new()).unwrap();
    let cases = [
        ("valid.jpg", Trusted, "Trusted", None),
        (
            "tampered.jpg",
            Invalid,
            "Invalid",
            Some("assertion.dataHash.mismatch"),
        ),
        ("ingredient.jpg", Trusted, "Trusted", None),
        (
            "untrusted.jpg",
            ValidUntrusted,
            "Valid",
            Some("signingCredential.untrusted"),
        ),
    ];
    for (name, state, reference_state, code) in cases {
        let path = made.join(name);
        let report = ours.verify(&std::fs::read(&path).unwrap());
        assert_state(&report, state, name);
        assert!(report.hallmark.is_none(), "{name}: not ours");
        let reference = Command::new(python())
            .arg(scripts.join("c2pa_check.py"))
            .arg(&path)
            .arg("--anchors")
            .arg(&anchors_path)
            .output()
            .unwrap();
        assert!(reference.status.success(), "c2pa_check.py {name}");
        let reference: serde_json::Value = serde_json::from_slice(&reference.stdout).unwrap();
        assert_eq!(
            reference["validation_state"], reference_state,
            "{name}: {reference}"
        );
        if let Some(code) = code {
            assert!(
                report.failures.iter().any(|c| c == code),
                "{name}: {report:#?}"
            );
            assert!(
                reference["failures"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|c| c == code),
                "{name}: {reference}"
            );
        } else {
            assert!(report.failures.is_empty(), "{name}: {report:#?}");
        }
        if name != "ingredient.jpg" {
            assert_eq!(
                report.digital_source_type.as_deref(),
                reference["digital_source_type"].as_str(),
                "{name}"
            );
        }
    }
    let valid = ours.verify(&std::fs::read(made.join("valid.jpg")).unwrap());
    assert!(valid.declares_ai_origin(), "{valid:#?}");
    assert_eq!(valid.claim_generator.as_deref(), Some("fixture-maker/1.0"));
}
