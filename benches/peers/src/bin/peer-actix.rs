//! Benchmark peer: actix-web 4 with one worker.
//!
//! `GET /` answers `Hello, World!`, `GET /health` answers 200 `ok`, `GET /delay` answers
//! `Hello, World!` after `actix_web::rt::time::sleep` for `DELAY_MS` (environment, default 100;
//! the in-flight run, `benches/inflight.sh`), `GET /blob` the 8 MiB shared body of `blob.rs`
//! (a `web::Bytes` view of one allocation; actix-web's encoder copies it into each connection's
//! write buffer, which the slow-reader run shows). Port from argv[1] or `PORT` (default 8080),
//! address
//! from `ADDR` (default 127.0.0.1). `TCP_NODELAY` is asked for explicitly
//! with `HttpServer::tcp_nodelay(true)` (its default leaves the socket as accepted).
//! SIGTERM/SIGINT: actix-server's own graceful stop (stop accepting, wait for in-flight requests
//! up to its 30 s shutdown timeout, exit). One worker thread serves; actix also runs a separate
//! acceptor thread, pinned to the same core by the harness.
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};

async fn hello() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain")
        .body("Hello, World!")
}

async fn delay(pause: web::Data<Duration>) -> HttpResponse {
    actix_web::rt::time::sleep(**pause).await;
    hello().await
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

#[path = "../blob.rs"]
mod blob;

async fn blob(req: actix_web::HttpRequest) -> HttpResponse {
    let query = Some(req.query_string()).filter(|q| !q.is_empty());
    match blob::answer(query) {
        Some(body) => HttpResponse::Ok()
            .content_type("application/octet-stream")
            .body(body),
        None => HttpResponse::BadRequest().finish(),
    }
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("PORT").ok())
        .unwrap_or_else(|| "8080".into())
        .parse()
        .expect("PORT");
    let host = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1".into());
    let delay_ms: u64 = std::env::var("DELAY_MS")
        .map_or(Ok(100), |ms| ms.parse())
        .expect("DELAY_MS");
    let pause = web::Data::new(Duration::from_millis(delay_ms));
    blob::shared();
    eprintln!("peer-actix listening on {host}:{port}");
    HttpServer::new(move || {
        App::new()
            .app_data(pause.clone())
            .route("/", web::get().to(hello))
            .route("/delay", web::get().to(delay))
            .route("/health", web::get().to(health))
            .route("/blob", web::get().to(blob))
    })
    .workers(1)
    .tcp_nodelay(true)
    // actix closes a keep-alive connection after 5 s idle by default; the idle-connection memory
    // test needs 10,000 connections to stay open while they are opened and measured, so use the
    // 75 s that nginx and lameduck use.
    .keep_alive(Duration::from_secs(75))
    .bind((host.as_str(), port))?
    .run()
    .await
}
