//! Benchmark peer: axum 0.8 on a tokio current-thread runtime.
//!
//! `GET /` answers `Hello, World!`, `GET /health` answers 200 `ok`, `GET /delay` answers
//! `Hello, World!` after `tokio::time::sleep` for `DELAY_MS` (environment, default 100; the
//! in-flight run, `benches/inflight.sh`), `GET /blob` the 8 MiB shared body of `blob.rs` (a
//! `Bytes` view of one allocation; axum answers it `application/octet-stream`). Port from
//! argv[1] or `PORT` (default 8080), address
//! from `ADDR` (default 127.0.0.1). `TCP_NODELAY` is set on every accepted
//! stream through `ListenerExt::tap_io` (axum::serve does not set it). SIGTERM/SIGINT: axum's
//! `with_graceful_shutdown`.
use axum::extract::RawQuery;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::Router;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

async fn hello() -> ([(axum::http::HeaderName, &'static str); 1], &'static str) {
    ([(CONTENT_TYPE, "text/plain")], "Hello, World!")
}

async fn delay(delay: Duration) -> ([(axum::http::HeaderName, &'static str); 1], &'static str) {
    tokio::time::sleep(delay).await;
    hello().await
}

async fn health() -> ([(axum::http::HeaderName, &'static str); 1], &'static str) {
    ([(CONTENT_TYPE, "text/plain")], "ok")
}

#[path = "../blob.rs"]
mod blob;

async fn blob(RawQuery(query): RawQuery) -> Response {
    match blob::answer(query.as_deref()) {
        Some(body) => body.into_response(),
        None => StatusCode::BAD_REQUEST.into_response(),
    }
}

async fn shutdown_signal() {
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let port = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("PORT").ok())
        .unwrap_or_else(|| "8080".into());
    let host = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1".into());
    let delay_ms: u64 = std::env::var("DELAY_MS")
        .map_or(Ok(100), |ms| ms.parse())
        .expect("DELAY_MS");
    let pause = Duration::from_millis(delay_ms);
    let app = Router::new()
        .route("/", get(hello))
        .route("/delay", get(move || delay(pause)))
        .route("/health", get(health))
        .route("/blob", get(blob));
    blob::shared();
    let listener = TcpListener::bind(format!("{host}:{port}")).await?;
    eprintln!("peer-axum listening on {}", listener.local_addr()?);
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
}
