//! `hallmark log witness` over HTTP: the c2sp.org/tlog-witness `add-checkpoint` call (and the
//! witness's verifier key), a small server of its own beside any Hallmark service.

use std::sync::Arc;

use actix_web::{http::header, web, App, HttpResponse, HttpServer};

use crate::tlog::witness::{Witness, WitnessError, MAX_REQUEST_BYTES, SIZE_CONTENT_TYPE};

const TEXT: &str = "text/plain; charset=utf-8";

/// `POST /add-checkpoint`: the cosignature line, or the protocol's refusal.
async fn add_checkpoint(witness: web::Data<Witness>, body: web::Bytes) -> HttpResponse {
    let witness = witness.into_inner();
    // It fsyncs its state before answering: off the async executor.
    let answer = match tokio::task::spawn_blocking(move || witness.add_checkpoint(&body)).await {
        Ok(answer) => answer,
        Err(error) => Err(WitnessError::Storage(error.to_string())),
    };
    match answer {
        Ok(lines) => HttpResponse::Ok().content_type(TEXT).body(lines),
        Err(WitnessError::Conflict { size }) => HttpResponse::Conflict()
            .content_type(SIZE_CONTENT_TYPE)
            .body(format!("{size}\n")),
        Err(error) => {
            if matches!(error, WitnessError::Storage(_)) {
                tracing::error!(error = %error, "the witness could not persist its state");
            }
            let status = actix_web::http::StatusCode::from_u16(error.status())
                .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
            HttpResponse::build(status)
                .content_type(TEXT)
                .body(format!("{error}\n"))
        }
    }
}

/// `GET /key`: the witness's verifier key (pin it out of band).
async fn key(witness: web::Data<Witness>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(TEXT)
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(format!("{}\n", witness.verifier_key()))
}

/// Serves `witness` on `listener` until the process is stopped.
///
/// # Errors
/// When the server cannot start.
pub async fn serve(witness: Arc<Witness>, listener: std::net::TcpListener) -> std::io::Result<()> {
    let witness = web::Data::from(witness);
    HttpServer::new(move || {
        App::new()
            .app_data(witness.clone())
            .app_data(web::PayloadConfig::new(MAX_REQUEST_BYTES))
            .route("/add-checkpoint", web::post().to(add_checkpoint))
            .route("/key", web::get().to(key))
    })
    .workers(1)
    .listen(listener)?
    .run()
    .await
}
