//! Prometheus metrics: every name is described here, in one place.

use std::sync::OnceLock;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::AppState;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide recorder, installed on first use.
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let seconds = [
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ];
            let sizes = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &seconds)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full("hallmark_batch_size".into()), &sizes)
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("hallmark_commit_group_size".into()),
                        &sizes,
                    )
                })
                .expect("bucket lists are non-empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_ok() {
                describe();
            }
            handle
        })
        .clone()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "hallmark_http_requests_total",
        "HTTP requests by method, route and status"
    );
    describe_histogram!(
        "hallmark_http_request_duration_seconds",
        Unit::Seconds,
        "HTTP request latency by method and route"
    );
    describe_histogram!(
        "hallmark_generation_stage_seconds",
        Unit::Seconds,
        "Time per generation request in each stage (inference, encode, fingerprint, sign, store)"
    );
    describe_histogram!(
        "hallmark_batch_size",
        Unit::Count,
        "Images per forward pass of the generator"
    );
    describe_counter!(
        "hallmark_images_generated_total",
        "Signed and registered images"
    );
    describe_gauge!(
        "hallmark_registry_index_hashes",
        Unit::Count,
        "Variant pHashes held by the in-memory near-duplicate index"
    );
    describe_counter!(
        "hallmark_uploads_refused_total",
        "Uploads refused before reading, by reason (memory_budget)"
    );
    describe_counter!("hallmark_checks_total", "Checked uploads by verdict");
    describe_histogram!(
        "hallmark_detect_batch_size",
        Unit::Count,
        "Images per forward pass of the detector"
    );
    describe_histogram!(
        "hallmark_check_stage_seconds",
        Unit::Seconds,
        "Time per checked upload in each stage (decode, provenance, hash, registry, detect)"
    );
    describe_histogram!(
        "hallmark_log_integration_delay_seconds",
        Unit::Seconds,
        "Time from a record's commit to the signed checkpoint that first includes it (this replica's integrations)"
    );
    describe_counter!(
        "hallmark_log_entries_integrated_total",
        "Entries this replica's sequencer integrated into the transparency log"
    );
    describe_counter!(
        "hallmark_log_cosignatures_total",
        "Witness cosignatures added to the transparency log's checkpoints"
    );
    describe_histogram!(
        "hallmark_commit_group_size",
        Unit::Count,
        "Records per group commit: one PostgreSQL transaction for the generations that finished together"
    );
    describe_gauge!(
        "hallmark_blob_journal_pending",
        Unit::Count,
        "Blobs committed with their bytes in the journal, waiting for the next sync of the local blob store"
    );
    describe_counter!(
        "hallmark_blob_journal_synced_total",
        "Blobs of the local store made durable by journal checkpoints (one syncfs covers a checkpoint's blobs)"
    );
}

/// The method as a label: the standard ones by name, anything else (any token is a valid method
/// on the wire) as `OTHER`, so clients cannot mint new series.
fn method_label(method: &Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "OPTIONS" => "OPTIONS",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        _ => "OTHER",
    }
}

/// Counts and times every request by its route pattern (not its raw path, to bound cardinality).
pub async fn track(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = method_label(req.method());
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.call(req).await?;
    let status = response.status().as_u16().to_string();
    metrics::counter!("hallmark_http_requests_total", "method" => method, "route" => route.clone(), "status" => status).increment(1);
    metrics::histogram!("hallmark_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    Ok(response)
}

/// The gauges that read this service's own state, written at scrape time beside what the
/// recorder holds. They stay out of the recorder: it is process-wide, and a value set there just
/// before a render could be another service's in the same process (the API tests run many).
fn own_gauges(state: &AppState) -> String {
    use std::fmt::Write;
    use std::sync::atomic::Ordering::Relaxed;
    let inference = &state.generation.inference;
    let gauges = [
        (
            "hallmark_queue_depth",
            "Images waiting for or in the model",
            inference.queued() as u64,
        ),
        (
            "hallmark_largest_batch",
            "Largest forward pass since start",
            inference.stats().largest_batch.load(Relaxed),
        ),
        (
            "hallmark_largest_commit_group",
            "Most records committed in one group transaction since start",
            state
                .generation
                .committer
                .stats()
                .largest_group
                .load(Relaxed),
        ),
    ];
    let mut text = String::new();
    for (name, help, value) in gauges {
        // Writing to a String cannot fail.
        let _ = write!(
            text,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n\n"
        );
    }
    text
}

/// `GET /metrics` in the Prometheus text format.
pub async fn render(state: web::Data<AppState>) -> HttpResponse {
    let mut body = state.metrics.render();
    if !body.is_empty() && !body.ends_with('\n') {
        body.push('\n');
    }
    body.push_str(&own_gauges(&state));
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_up_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        for made_up in ["FOO", "XJ3KQ", "get"] {
            let method = Method::from_bytes(made_up.as_bytes()).unwrap();
            assert_eq!(method_label(&method), "OTHER", "{made_up}");
        }
    }
}
