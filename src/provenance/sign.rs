//! Embedding signed C2PA manifests in generated images.
//!
//! Build one [`ProvenanceSigner`] at start-up, share it (`Arc`), and call
//! [`ProvenanceSigner::sign_image`] from a blocking thread for each image. The manifest holds:
//! the claim generator `hallmark/<version>`; a `c2pa.actions` assertion with one `c2pa.created`
//! action whose `digitalSourceType` is IPTC `trainedAlgorithmicMedia` and whose software agent is
//! the model (name and version); Hallmark's own assertion [`HALLMARK_ASSERTION`] with the record
//! id, model, seed and perceptual hash; two soft bindings, Hallmark's perceptual hash
//! ([`super::SOFT_BINDING_ALG`]) and the listed ISCC Content-Code Image
//! ([`super::ISCC_SOFT_BINDING_ALG`], computed here from the bytes handed in); and a title. The
//! COSE signature is by the identity's key ([`super::keys`]: Ed25519 for the PKI `hallmark init`
//! makes; ES256 or ES384 too for an operator's chain), with the certificate chain (the leaf and
//! its issuing CAs, never the root) in its header. With
//! `provenance.tsa_url` set, every signature carries an RFC 3161 time-stamp from that authority
//! ([`super::tsa`]), so the credentials keep validating after the certificate expires.

use std::io::Cursor;
use std::sync::Arc;

use c2pa::crypto::raw_signature::SigningAlg;
use c2pa::{Builder, Context};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::keys::PrivateKey;
use super::pki::SigningIdentity;
use super::record::{self, RecordFields};
use super::tsa::{parse_tsa_url, TsaResolver};
use super::{
    ImageFormat, ProvenanceError, COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA, HALLMARK_ASSERTION,
    TRAINED_ALGORITHMIC_MEDIA,
};
use crate::config::Settings;
use crate::fingerprint::iscc::ImageCode;

/// The C2PA specification version Hallmark's manifests follow (`specVersion` in
/// `claim_generator_info`): the Conformance Program's rubric for it,
/// `third_party/c2pa-conformance/asset-rubric-conformance0.2-spec2.2.yml`, finds no failed trait
/// (`tests/provenance.rs`).
pub const C2PA_SPEC_VERSION: &str = "2.2";

/// What the manifest says about one generated image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageClaim {
    pub record_id: Uuid,
    pub model: String,
    pub model_version: String,
    /// The generation seed (same bits as `records.seed`).
    pub seed: i64,
    /// 64-bit perceptual hash of the pixels.
    pub phash: u64,
    pub title: String,
    /// Must match the encoded bytes' magic bytes.
    pub format: ImageFormat,
    /// The device the model ran on, as `device::label` names it (`cpu`, `cuda:0`).
    pub device: String,
}

/// An enhancement of an upload, as its manifest states it: the upload is the `parentOf`
/// ingredient (with its own manifest store when it carries one, so its history continues), the
/// actions are `c2pa.opened` of it and `c2pa.edited` by the model.
#[derive(Debug, Clone)]
pub struct EditClaim<'a> {
    /// The upload's bytes as received (PNG, JPEG or WebP).
    pub parent: &'a [u8],
    /// `restore`, `inpaint` or `upscale`.
    pub operation: &'a str,
    /// What was done, in words: "region 10,12 12x12 inpainted".
    pub description: &'a str,
    /// The parameters of the `c2pa.edited` action (operation, region, factor, candidates,
    /// starts, steps, refinement steps, seed). Custom parameters are namespaced (C2PA 2.2
    /// §18.14.4.7): a name without a dot is written as `org.hallmark.<name>`.
    pub parameters: serde_json::Map<String, serde_json::Value>,
}

/// The ingredient label that links the `c2pa.opened` action to the upload.
const PARENT_LABEL: &str = "upload";

/// An image with its manifest embedded.
#[derive(Debug, Clone)]
pub struct SignedImage {
    pub bytes: Vec<u8>,
    /// The manifest label, `urn:c2pa:<uuid>` (stored in `records.manifest_id`).
    pub manifest_id: String,
    /// The embedded manifest store (JUMBF, `application/c2pa`), as the manifest repository
    /// keeps it.
    pub manifest: Vec<u8>,
    /// The ISCC Content-Code Image of the bytes signed, the value of the manifest's `io.iscc.v0`
    /// soft binding.
    pub iscc: ImageCode,
}

/// The `io.iscc.v0` soft-binding assertion (C2PA `soft-binding-map`; IEP-0020): one block over the
/// whole image whose value is a CBOR byte string, the ISCC-SEQ of the Content-Code Image; `pad`
/// empty, as c2pa-rs writes it; no `alg-params`.
#[derive(Serialize)]
struct IsccSoftBinding<'a> {
    alg: &'static str,
    blocks: [IsccBlock<'a>; 1],
    name: &'static str,
    pad: ByteString<'a>,
}

#[derive(Serialize)]
struct IsccBlock<'a> {
    /// Empty: the whole image.
    scope: WholeAsset,
    value: ByteString<'a>,
}

#[derive(Serialize)]
struct WholeAsset {}

/// Bytes serialised as a CBOR byte string (major type 2), not an array of integers.
struct ByteString<'a>(&'a [u8]);

impl Serialize for ByteString<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

/// Hallmark's assertion as stored in the manifest (label [`HALLMARK_ASSERTION`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerationAssertion {
    pub record_id: Uuid,
    pub model: String,
    pub model_version: String,
    pub seed: i64,
    /// The perceptual hash, 16 lower-case hex digits.
    pub phash: String,
    /// The device the model ran on (`cpu`, `cuda:0`); absent in manifests made before it was
    /// stated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// For an enhancement: the operation (`restore`, `inpaint`, `upscale`) and the SHA-256 (hex)
    /// of the upload it edited; absent for a generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_sha256: Option<String>,
    /// For an enhancement: what was done, in words ("region 10,12 12x12 inpainted").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Signs images with the service's identity. Build once and share; `Send + Sync`.
pub struct ProvenanceSigner {
    context: Arc<Context>,
    signer: ClaimSigner,
    identity: SigningIdentity,
}

impl std::fmt::Debug for ProvenanceSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProvenanceSigner")
            .field("key_id", &self.identity.key_id())
            .field("tsa_url", &self.signer.tsa_url)
            .finish_non_exhaustive()
    }
}

impl ProvenanceSigner {
    /// The signer the settings describe: [`SigningIdentity::load`] plus `provenance.tsa_url`.
    ///
    /// # Errors
    /// When the identity cannot be loaded or the TSA URL is not an `http://` or `https://` URL.
    pub fn from_settings(settings: &Settings) -> Result<Self, ProvenanceError> {
        let tsa = settings
            .provenance
            .tsa_url
            .as_deref()
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(str::to_owned);
        Self::new(SigningIdentity::load(settings)?, tsa)
    }

    /// # Errors
    /// When the TSA URL is not an `http://` or `https://` URL, or the C2PA context cannot be
    /// built.
    pub fn new(
        identity: SigningIdentity,
        tsa_url: Option<String>,
    ) -> Result<Self, ProvenanceError> {
        if let Some(url) = &tsa_url {
            parse_tsa_url(url)?;
        }
        let context = Context::new()
            .with_settings(serde_json::json!({
                "verify": { "verify_after_sign": false },
                "builder": { "thumbnail": { "enabled": false } },
            }))?
            .with_resolver(TsaResolver::new()?)
            .into_shared();
        let certs = identity.cert_chain_der().to_vec();
        let certs_len: usize = certs.iter().map(Vec::len).sum();
        // The COSE_Sign1 box: chain + signature (at most 96 bytes) + headers; a time-stamp
        // token adds several kilobytes.
        let reserve_size = certs_len + 512 + if tsa_url.is_some() { 12_000 } else { 0 };
        let signer = ClaimSigner {
            key: identity.private_key().clone(),
            certs,
            reserve_size,
            tsa_url,
            context: Arc::clone(&context),
        };
        Ok(Self {
            context,
            signer,
            identity,
        })
    }

    /// The id of the signing key (`signing_keys.id`, `records.signing_key_id`).
    #[must_use]
    pub fn key_id(&self) -> &str {
        self.identity.key_id()
    }

    #[must_use]
    pub fn identity(&self) -> &SigningIdentity {
        &self.identity
    }

    /// Signs a record's canonical encoding with the same key ([`record::sign_record`]).
    ///
    /// # Errors
    /// As [`record::sign_record`].
    pub fn sign_record(&self, fields: &RecordFields) -> Result<Vec<u8>, record::RecordError> {
        record::sign_record(fields, self.identity.private_key())
    }

    /// Embeds a signed manifest describing `claim` in the encoded image.
    ///
    /// # Errors
    /// When the bytes are not of `claim.format`, or C2PA cannot parse or sign them.
    pub fn sign_image(
        &self,
        claim: &ImageClaim,
        encoded: &[u8],
    ) -> Result<SignedImage, ProvenanceError> {
        self.sign(claim, encoded, None)
    }

    /// Embeds a signed manifest describing `claim` as an edit of an upload ([`EditClaim`]).
    ///
    /// # Errors
    /// As [`Self::sign_image`]; when the upload is not PNG, JPEG or WebP, or C2PA cannot read it
    /// as an ingredient.
    pub fn sign_edit(
        &self,
        claim: &ImageClaim,
        encoded: &[u8],
        edit: &EditClaim<'_>,
    ) -> Result<SignedImage, ProvenanceError> {
        self.sign(claim, encoded, Some(edit))
    }

    fn sign(
        &self,
        claim: &ImageClaim,
        encoded: &[u8],
        edit: Option<&EditClaim<'_>>,
    ) -> Result<SignedImage, ProvenanceError> {
        match ImageFormat::sniff(encoded) {
            Some(found) if found == claim.format => {}
            found => {
                return Err(ProvenanceError::Format(format!(
                    "claimed {}, bytes are {}",
                    claim.format,
                    found.map_or("of no accepted format", ImageFormat::as_str)
                )))
            }
        }
        // IEP-0020: the units of the source, the file as handed to the signer.
        let iscc = ImageCode::of_file(encoded).map_err(|error| {
            ProvenanceError::Format(format!("the image does not decode: {error}"))
        })?;
        let manifest_id = format!("urn:c2pa:{}", Uuid::new_v4());
        let assertion = GenerationAssertion::of(claim, edit);
        let actions = actions(claim, edit);
        let definition = serde_json::json!({
            "label": manifest_id,
            "title": claim.title,
            "format": claim.format.mime(),
            "claim_generator_info": [{
                "name": "hallmark",
                "version": env!("CARGO_PKG_VERSION"),
                "specVersion": C2PA_SPEC_VERSION,
            }],
            // Every assertion is the signer's own statement (`created`, claim v2's
            // created_assertions); the actions assertion comes first, its first action the
            // inception, and it says it lists every action (`allActionsIncluded`): the
            // Conformance Program's rubric asks for all three.
            "assertions": [
                {
                    "label": "c2pa.actions",
                    "created": true,
                    "data": {
                        "allActionsIncluded": true,
                        "actions": actions,
                    },
                },
                { "label": HALLMARK_ASSERTION, "created": true, "data": assertion },
                {
                    "label": "c2pa.soft-binding",
                    "created": true,
                    "data": {
                        "alg": super::SOFT_BINDING_ALG,
                        "name": "Hallmark perceptual hash of the whole image (docs/soft-binding.md)",
                        "blocks": [{ "scope": {}, "value": super::soft_binding_value(claim.phash) }],
                    },
                },
            ],
        });
        let mut builder =
            Builder::from_shared_context(&self.context).with_definition(definition.to_string())?;
        // After Hallmark's own: `c2pa.soft-binding__1` in the manifest.
        let unit = iscc.unit();
        builder.add_assertion(
            "c2pa.soft-binding",
            &IsccSoftBinding {
                alg: super::ISCC_SOFT_BINDING_ALG,
                blocks: [IsccBlock {
                    scope: WholeAsset {},
                    value: ByteString(&unit),
                }],
                name: "ISCC Content-Code Image of the whole image (ISO 24138, IEP-0020)",
                pad: ByteString(&[]),
            },
        )?;
        // The signer's own too (`add_assertion` files it as gathered).
        if let Some(iscc_assertion) = builder.definition.assertions.last_mut() {
            iscc_assertion.created = true;
        }
        if let Some(e) = edit {
            add_parent(&mut builder, e)?;
        }
        let mut source = Cursor::new(encoded);
        let mut dest = Cursor::new(Vec::with_capacity(encoded.len() + 4096));
        let manifest = builder.sign(&self.signer, claim.format.mime(), &mut source, &mut dest)?;
        Ok(SignedImage {
            bytes: dest.into_inner(),
            manifest_id,
            manifest,
            iscc,
        })
    }
}

impl GenerationAssertion {
    /// Hallmark's assertion for `claim` (and the edit, for an enhancement).
    fn of(claim: &ImageClaim, edit: Option<&EditClaim<'_>>) -> Self {
        Self {
            record_id: claim.record_id,
            model: claim.model.clone(),
            model_version: claim.model_version.clone(),
            seed: claim.seed,
            phash: format!("{:016x}", claim.phash),
            device: Some(claim.device.clone()),
            operation: edit.map(|e| e.operation.to_owned()),
            parent_sha256: edit
                .map(|e| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(e.parent))),
            description: edit.map(|e| e.description.to_owned()),
        }
    }
}

/// The `c2pa.actions` list: `c2pa.created` by the model for a generation; `c2pa.opened` of the
/// upload then `c2pa.edited` by the model for an edit, its custom parameters namespaced.
fn actions(claim: &ImageClaim, edit: Option<&EditClaim<'_>>) -> serde_json::Value {
    let agent = serde_json::json!({ "name": claim.model, "version": claim.model_version });
    match edit {
        None => serde_json::json!([{
            "action": "c2pa.created",
            "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
            "softwareAgent": agent,
        }]),
        Some(e) => {
            let parameters: serde_json::Map<String, serde_json::Value> = e
                .parameters
                .iter()
                .map(|(k, v)| {
                    let name = if k.contains('.') {
                        k.clone()
                    } else {
                        format!("org.hallmark.{k}")
                    };
                    (name, v.clone())
                })
                .collect();
            serde_json::json!([
                {
                    "action": "c2pa.opened",
                    "parameters": { "ingredientIds": [PARENT_LABEL] },
                },
                {
                    "action": "c2pa.edited",
                    "description": e.description,
                    "digitalSourceType": COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA,
                    "softwareAgent": agent,
                    "parameters": parameters,
                },
            ])
        }
    }
}

/// Adds the edited upload as the `parentOf` ingredient the `c2pa.opened` action names.
fn add_parent(builder: &mut Builder, edit: &EditClaim<'_>) -> Result<(), ProvenanceError> {
    let format = ImageFormat::sniff(edit.parent).ok_or_else(|| {
        ProvenanceError::Format("the edited upload is not a PNG, JPEG or WebP file".into())
    })?;
    let ingredient = serde_json::json!({
        "title": format!("upload.{}", format.as_str()),
        "relationship": "parentOf",
        "label": PARENT_LABEL,
    });
    builder.add_ingredient_from_stream(
        ingredient.to_string(),
        format.mime(),
        &mut Cursor::new(edit.parent),
    )?;
    Ok(())
}

/// The C2PA signer: the identity's key (COSE's fixed-size signatures), a reserve sized to the
/// chain, optional TSA.
struct ClaimSigner {
    key: PrivateKey,
    certs: Vec<Vec<u8>>,
    reserve_size: usize,
    tsa_url: Option<String>,
    context: Arc<Context>,
}

impl c2pa::Signer for ClaimSigner {
    fn sign(&self, data: &[u8]) -> c2pa::Result<Vec<u8>> {
        Ok(self.key.sign(data))
    }

    fn alg(&self) -> SigningAlg {
        self.key.algorithm().c2pa()
    }

    fn certs(&self) -> c2pa::Result<Vec<Vec<u8>>> {
        Ok(self.certs.clone())
    }

    fn reserve_size(&self) -> usize {
        self.reserve_size
    }

    fn time_authority_url(&self) -> Option<String> {
        self.tsa_url.clone()
    }

    fn send_timestamp_request(&self, message: &[u8]) -> Option<c2pa::Result<Vec<u8>>> {
        let url = self.tsa_url.as_deref()?;
        let body = match self.timestamp_request_body(message) {
            Ok(body) => body,
            Err(error) => return Some(Err(error)),
        };
        Some(
            c2pa::crypto::time_stamp::default_rfc3161_request(
                url,
                None,
                &body,
                message,
                &self.context,
            )
            .map_err(Into::into),
        )
    }
}
