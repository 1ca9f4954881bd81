//! The whole manifest history of a file, as a tree: the active manifest with its claim
//! generator, signer, actions, CAWG identity assertions and thumbnail, and its ingredients, each
//! with its own validation state and, when it carried Content Credentials, its own manifest in
//! turn.
//!
//! Bounded whatever the file holds: at most [`MAX_DEPTH`] levels and [`MAX_NODES`] manifests are
//! walked (`truncated` says when the tree was cut), at most [`MAX_THUMBNAILS`] thumbnails of at
//! most [`MAX_THUMBNAIL_BYTES`] each are kept, and only thumbnails whose bytes are PNG, JPEG or
//! WebP by their magic numbers; action parameters larger than [`MAX_PARAMETER_BYTES`] as JSON are
//! dropped. The raw JUMBF never leaves the service.

use std::collections::{HashMap, HashSet};

use c2pa::validation_status::ValidationStatus;
use c2pa::{Ingredient, Manifest, Reader};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::keys::PublicKey;
use super::pki::parse_pem_certificates;
use super::verify::{hallmark_claims, HallmarkClaims, SignerInfo, ValidationState};
use super::ImageFormat;

/// Deepest ingredient nesting walked.
pub const MAX_DEPTH: usize = 64;
/// Most manifests in one tree.
pub const MAX_NODES: usize = 200;
/// Most thumbnails kept from one file.
pub const MAX_THUMBNAILS: usize = 16;
/// Largest thumbnail kept.
pub const MAX_THUMBNAIL_BYTES: usize = 512 * 1024;
/// Largest action `parameters` kept, as JSON.
pub const MAX_PARAMETER_BYTES: usize = 2048;

/// Where the API serves a thumbnail by its SHA-256.
pub const THUMBNAIL_PATH: &str = "/v1/thumbnails/";

/// The manifest store of a file as a tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// The active manifest.
    pub manifest: ManifestNode,
    /// Manifests in the tree.
    pub manifests: usize,
    /// The tree was cut at [`MAX_DEPTH`] or [`MAX_NODES`].
    pub truncated: bool,
}

/// One manifest: one step in the life of the asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestNode {
    pub label: Option<String>,
    pub title: Option<String>,
    pub format: Option<String>,
    /// `name/version` of each claim generator, space-separated.
    pub claim_generator: Option<String>,
    pub signer: Option<SignerInfo>,
    /// Hallmark's claims, when one of this service's keys signed this manifest.
    pub hallmark: Option<HallmarkClaims>,
    pub actions: Vec<Action>,
    pub ingredients: Vec<IngredientNode>,
    /// CAWG identity assertions, as far as the reader decodes them.
    pub identities: Vec<Identity>,
    pub thumbnail: Option<Thumbnail>,
}

/// One entry of a `c2pa.actions` assertion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// e.g. `c2pa.created`, `c2pa.edited`, `c2pa.cropped`.
    pub action: String,
    /// `name/version` (or the plain string) of the software that acted.
    pub software_agent: Option<String>,
    /// IPTC digital source type, e.g. `.../trainedAlgorithmicMedia`.
    pub digital_source_type: Option<String>,
    pub when: Option<String>,
    pub description: Option<String>,
    /// The action's parameters, when small (see [`MAX_PARAMETER_BYTES`]).
    pub parameters: Option<Value>,
}

/// An ingredient of a manifest: what the asset was made from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngredientNode {
    pub title: Option<String>,
    pub format: Option<String>,
    /// `parentOf`, `componentOf` or `inputTo`.
    pub relationship: Option<String>,
    /// The ingredient's own validation: `trusted`, `valid_untrusted`, `invalid`, or
    /// `no_manifest` when it carried no Content Credentials.
    pub state: ValidationState,
    /// Its failure codes.
    pub failures: Vec<String>,
    pub thumbnail: Option<Thumbnail>,
    /// Its own manifest, when it had one (and the tree was not cut).
    pub manifest: Option<Box<ManifestNode>>,
}

/// A CAWG identity assertion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub label: String,
    /// One line: the signature type and who the identity names, where the reader says.
    pub summary: String,
}

/// A thumbnail, served by its content hash at [`THUMBNAIL_PATH`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thumbnail {
    pub sha256: String,
    pub format: String,
    pub url: String,
}

/// A thumbnail's bytes, for the service's cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThumbnailBytes {
    pub sha256: String,
    pub format: ImageFormat,
    pub bytes: Vec<u8>,
}

/// Builds the tree. `own_keys` recognises Hallmark's manifests anywhere in it.
pub(super) struct Walker<'a> {
    reader: &'a Reader,
    own_keys: &'a [PublicKey],
    nodes: usize,
    truncated: bool,
    on_path: HashSet<String>,
    /// This reader's validation of each ingredient where it differs from what was recorded at
    /// ingestion (`ingredientDeltas`), by the ingredient assertion's URI: successes, failures.
    deltas: HashMap<String, (Vec<String>, Vec<String>)>,
    pub thumbnails: Vec<ThumbnailBytes>,
}

impl<'a> Walker<'a> {
    pub(super) fn new(reader: &'a Reader, own_keys: &'a [PublicKey]) -> Self {
        let mut deltas = HashMap::new();
        let listed = reader
            .validation_results()
            .and_then(|results| results.ingredient_deltas());
        for delta in listed.into_iter().flatten() {
            let codes = delta.validation_deltas();
            let names = |list: &[ValidationStatus]| {
                list.iter().map(|s| s.code().to_owned()).collect::<Vec<_>>()
            };
            deltas.insert(
                delta.ingredient_assertion_uri().to_owned(),
                (names(codes.success()), names(codes.failure())),
            );
        }
        Self {
            reader,
            own_keys,
            nodes: 0,
            truncated: false,
            on_path: HashSet::new(),
            deltas,
            thumbnails: Vec::new(),
        }
    }

    /// The history from the active manifest, or `None` without one.
    pub(super) fn history(&mut self) -> Option<History> {
        let manifest = self.reader.active_manifest()?;
        let node = self.manifest(manifest, 0);
        Some(History {
            manifest: node,
            manifests: self.nodes,
            truncated: self.truncated,
        })
    }

    fn manifest(&mut self, manifest: &Manifest, depth: usize) -> ManifestNode {
        self.nodes += 1;
        let label = manifest.label().map(str::to_owned);
        if let Some(label) = &label {
            self.on_path.insert(label.clone());
        }
        let thumbnail = manifest
            .thumbnail()
            .and_then(|(_, bytes)| self.keep_thumbnail(&bytes));
        let ingredients = manifest
            .ingredients()
            .iter()
            .map(|ingredient| self.ingredient(label.as_deref(), ingredient, depth + 1))
            .collect();
        if let Some(label) = &label {
            self.on_path.remove(label);
        }
        ManifestNode {
            label,
            title: manifest.title().map(str::to_owned),
            format: manifest.format().map(str::to_owned),
            claim_generator: claim_generator(manifest),
            signer: signer_info(manifest),
            hallmark: hallmark_claims(manifest, self.own_keys),
            actions: actions(manifest),
            ingredients,
            identities: identities(manifest),
            thumbnail,
        }
    }

    fn ingredient(
        &mut self,
        parent: Option<&str>,
        ingredient: &Ingredient,
        depth: usize,
    ) -> IngredientNode {
        let delta = match (parent, ingredient.label()) {
            (Some(parent), Some(label)) => self.deltas.get(&format!(
                "self#jumbf=/c2pa/{parent}/c2pa.assertions/{label}"
            )),
            _ => None,
        };
        let (state, failures) = ingredient_validation(ingredient, delta);
        let thumbnail = ingredient
            .thumbnail()
            .and_then(|(_, bytes)| self.keep_thumbnail(&bytes));
        let manifest = ingredient.active_manifest().and_then(|label| {
            // A manifest that names itself (a loop in a hostile store) is not walked twice.
            if depth >= MAX_DEPTH || self.nodes >= MAX_NODES || self.on_path.contains(label) {
                self.truncated = true;
                return None;
            }
            let manifest = self.reader.get_manifest(label)?;
            Some(Box::new(self.manifest(manifest, depth)))
        });
        IngredientNode {
            title: ingredient.title().map(str::to_owned),
            format: ingredient.format().map(str::to_owned),
            relationship: serde_json::to_value(ingredient.relationship())
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned)),
            state,
            failures,
            thumbnail,
            manifest,
        }
    }

    /// The manifest's own word for the type is not asked: the bytes decide.
    fn keep_thumbnail(&mut self, bytes: &[u8]) -> Option<Thumbnail> {
        if bytes.len() > MAX_THUMBNAIL_BYTES {
            return None;
        }
        let format = ImageFormat::sniff(bytes)?;
        let sha256 = hex::encode(crate::fingerprint::sha256(bytes));
        if !self.thumbnails.iter().any(|t| t.sha256 == sha256) {
            if self.thumbnails.len() >= MAX_THUMBNAILS {
                return None;
            }
            self.thumbnails.push(ThumbnailBytes {
                sha256: sha256.clone(),
                format,
                bytes: bytes.to_vec(),
            });
        }
        Some(Thumbnail {
            url: format!("{THUMBNAIL_PATH}{sha256}"),
            sha256,
            format: format.mime().to_owned(),
        })
    }
}

/// `name/version` of each claim generator, space-separated (else the v1 string).
pub(super) fn claim_generator(manifest: &Manifest) -> Option<String> {
    if let Some(infos) = manifest.claim_generator_info.as_deref() {
        let names: Vec<String> = infos
            .iter()
            .map(|info| match info.version.as_deref() {
                Some(version) => format!("{}/{version}", info.name),
                None => info.name.clone(),
            })
            .collect();
        if !names.is_empty() {
            return Some(names.join(" "));
        }
    }
    manifest.claim_generator().map(str::to_owned)
}

pub(super) fn signer_info(manifest: &Manifest) -> Option<SignerInfo> {
    manifest.signature_info().map(|info| SignerInfo {
        issuer: info.issuer.clone(),
        common_name: info.common_name.clone(),
        algorithm: info.alg.map(|alg| alg.to_string()),
        time: info.time.clone(),
    })
}

/// The signer's public key, when it is of a kind Hallmark signs with (Ed25519, P-256, P-384).
pub(super) fn signing_key(manifest: &Manifest) -> Option<PublicKey> {
    let info = manifest.signature_info()?;
    let chain = parse_pem_certificates(info.cert_chain().as_bytes()).ok()?;
    PublicKey::from_certificate(chain.first()?).ok()
}

/// Every action of every `c2pa.actions` assertion, in order.
fn actions(manifest: &Manifest) -> Vec<Action> {
    let mut out = Vec::new();
    for assertion in manifest.assertions() {
        if !assertion.label().starts_with("c2pa.actions") {
            continue;
        }
        let Ok(value) = assertion.value() else {
            continue;
        };
        let Some(list) = value.get("actions").and_then(Value::as_array) else {
            continue;
        };
        for action in list {
            let text = |key: &str| action.get(key).and_then(Value::as_str).map(str::to_owned);
            let parameters = action
                .get("parameters")
                .filter(|p| serde_json::to_vec(p).is_ok_and(|b| b.len() <= MAX_PARAMETER_BYTES))
                .cloned();
            out.push(Action {
                action: text("action").unwrap_or_else(|| "unknown".to_owned()),
                software_agent: action.get("softwareAgent").and_then(agent_name),
                digital_source_type: text("digitalSourceType"),
                when: text("when"),
                description: text("description"),
                parameters,
            });
        }
    }
    out
}

/// A software agent: a string (actions v1) or a claim-generator-info object (v2).
fn agent_name(value: &Value) -> Option<String> {
    match value {
        Value::String(name) => Some(name.clone()),
        Value::Object(info) => {
            let name = info.get("name")?.as_str()?;
            Some(match info.get("version").and_then(Value::as_str) {
                Some(version) => format!("{name}/{version}"),
                None => name.to_owned(),
            })
        }
        _ => None,
    }
}

/// CAWG identity assertions (`cawg.identity`), summarised from what the reader decoded.
fn identities(manifest: &Manifest) -> Vec<Identity> {
    manifest
        .assertions()
        .iter()
        .filter(|a| a.label().starts_with("cawg.identity"))
        .map(|assertion| Identity {
            label: assertion.label_with_instance(),
            summary: assertion
                .value()
                .map_or_else(|_| "not decoded".to_owned(), identity_summary),
        })
        .collect()
}

fn identity_summary(value: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(sig_type) = value
        .pointer("/signer_payload/sig_type")
        .and_then(Value::as_str)
    {
        parts.push(format!("signature type {sig_type}"));
    }
    // An identity claims aggregation names verified identities; an X.509 credential names its
    // subject.
    if let Some(list) = value
        .pointer("/verifiedIdentities")
        .or_else(|| value.pointer("/named_actor/verifiedIdentities"))
        .and_then(Value::as_array)
    {
        for identity in list.iter().take(4) {
            let kind = identity
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("identity");
            let who = ["username", "name", "uri"]
                .iter()
                .find_map(|k| identity.get(*k).and_then(Value::as_str))
                .unwrap_or("unnamed");
            parts.push(format!("{kind}: {who}"));
        }
    }
    for (pointer, name) in [
        ("/named_actor/name", "named"),
        ("/signature_info/common_name", "signed by"),
        ("/signature_info/issuer", "issued by"),
    ] {
        if let Some(text) = value.pointer(pointer).and_then(Value::as_str) {
            parts.push(format!("{name} {text}"));
        }
    }
    let referenced = value
        .pointer("/signer_payload/referenced_assertions")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if referenced > 0 {
        parts.push(format!("covers {referenced} assertion(s)"));
    }
    if parts.is_empty() {
        "identity assertion present".to_owned()
    } else {
        parts.join("; ")
    }
}

/// An ingredient's own validation state and failure codes: as recorded when it was ingested,
/// updated by this reader's delta (e.g. a signer untrusted then and trusted here now).
fn ingredient_validation(
    ingredient: &Ingredient,
    delta: Option<&(Vec<String>, Vec<String>)>,
) -> (ValidationState, Vec<String>) {
    let mut failures: Vec<String> = Vec::new();
    if let Some(results) = ingredient.validation_results() {
        for status in results.active_manifest().map_or(&[][..], |a| a.failure()) {
            if !failures.iter().any(|c| c == status.code()) {
                failures.push(status.code().to_owned());
            }
        }
    } else if let Some(statuses) = ingredient.validation_status() {
        // Ingredient v1/v2: one list; codes that are not successes are failures.
        for status in statuses {
            let code = status.code();
            if !is_success_code(code) && !failures.iter().any(|c| c == code) {
                failures.push(code.to_owned());
            }
        }
    }
    if let Some((now_success, now_failure)) = delta {
        // A success now cancels the failure of the same check then (…trusted / …untrusted).
        failures.retain(|code| {
            !now_success.iter().any(|ok| {
                ok == code
                    || matches!(
                        (ok.strip_suffix(".trusted"), code.strip_suffix(".untrusted")),
                        (Some(a), Some(b)) if a == b
                    )
            })
        });
        for code in now_failure {
            if !failures.contains(code) {
                failures.push(code.clone());
            }
        }
    }
    let state = if ingredient.active_manifest().is_none() && failures.is_empty() {
        ValidationState::NoManifest
    } else {
        state_from_codes(&failures)
    };
    (state, failures)
}

fn is_success_code(code: &str) -> bool {
    [".validated", ".match", ".trusted", ".accessible"]
        .iter()
        .any(|suffix| code.ends_with(suffix))
}

/// The state that failure codes add up to: untrusted when the only failure is the signer's trust.
pub(super) fn state_from_codes(failures: &[String]) -> ValidationState {
    let untrusted = |c: &String| c == "signingCredential.untrusted";
    if failures.iter().any(|c| !untrusted(c)) {
        ValidationState::Invalid
    } else if failures.iter().any(untrusted) {
        ValidationState::ValidUntrusted
    } else {
        ValidationState::Trusted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_add_up_to_a_state() {
        let codes = |list: &[&str]| list.iter().map(|c| (*c).to_owned()).collect::<Vec<_>>();
        assert_eq!(state_from_codes(&[]), ValidationState::Trusted);
        assert_eq!(
            state_from_codes(&codes(&["signingCredential.untrusted"])),
            ValidationState::ValidUntrusted
        );
        assert_eq!(
            state_from_codes(&codes(&[
                "signingCredential.untrusted",
                "assertion.dataHash.mismatch"
            ])),
            ValidationState::Invalid
        );
    }

    #[test]
    fn agents_read_in_both_action_versions() {
        assert_eq!(
            agent_name(&serde_json::json!("Photoshop 25.0")).as_deref(),
            Some("Photoshop 25.0")
        );
        assert_eq!(
            agent_name(&serde_json::json!({"name": "GIMP", "version": "3.0"})).as_deref(),
            Some("GIMP/3.0")
        );
        assert_eq!(agent_name(&serde_json::json!(7)), None);
    }

    #[test]
    fn identity_summaries_name_what_the_reader_decoded() {
        let value = serde_json::json!({
            "signer_payload": {"sig_type": "cawg.x509.cose", "referenced_assertions": [{}, {}]},
            "signature_info": {"common_name": "Jane Doe", "issuer": "CAWG Test"}
        });
        assert_eq!(
            identity_summary(&value),
            "signature type cawg.x509.cose; signed by Jane Doe; issued by CAWG Test; covers 2 \
             assertion(s)"
        );
        assert_eq!(
            identity_summary(&serde_json::json!({})),
            "identity assertion present"
        );
    }
}
