//! The OpenAPI document, generated from the handlers' annotations, and a small browsable page
//! for it (embedded: no CDN, no network at run time).

use actix_web::HttpResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{access, enhancements, generations, keys, log, records, softbinding, verify};
use crate::generation::{GenerationRequest, OutputFormat};

#[derive(OpenApi)]
#[openapi(
    info(title = "Hallmark", description = "GAN images with signed C2PA Content Credentials and a tamper-evident registry"),
    paths(
        generations::create, enhancements::create, records::get, records::find, records::image,
        verify::verify, verify::lookup, verify::list_checks, verify::get_check, verify::thumbnail, keys::me,
        softbinding::by_binding, softbinding::by_binding_post, softbinding::by_content,
        softbinding::manifest, softbinding::supported_algorithms,
        log::checkpoint, log::key, log::tile, log::proof
    ),
    components(schemas(
        GenerationRequest, OutputFormat, generations::GenerationResponse, generations::GeneratedImage, enhancements::EnhancementResponse,
        crate::registry::view::RecordView, crate::registry::view::SigningKeyView, records::RecordList, crate::api::error::ErrorBody,
        crate::verify::VerifyReport, crate::verify::Verdict, crate::verify::RegistryEvidence,
        crate::registry::MatchKind, crate::registry::confirm::Tier,
        crate::detect::detector::Detection,
        verify::BatchResponse, verify::BatchItem, verify::ItemError, verify::CheckList,
        crate::store::checks::CheckSummary, crate::store::checks::StoredCheck,
        keys::KeyView, access::Permission, access::Method, access::Scope,
        crate::store::api_keys::Role,
        softbinding::SoftBindingMatch, softbinding::SoftBindingQueryResult,
        softbinding::SoftBindingQuery, softbinding::AlgName, softbinding::SoftBindingAlgList,
        log::ProofPending
    )),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key made with `hallmark keys create`"))
                    .build(),
            ),
        );
    }
}

pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}

pub async fn page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(include_str!("docs.html"))
}
