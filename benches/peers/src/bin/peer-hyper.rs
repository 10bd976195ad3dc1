//! Benchmark peer: hyper 1.x HTTP/1.1 on a tokio current-thread runtime.
//!
//! `GET /` answers `Hello, World!`, `GET /health` answers 200 `ok`, `GET /blob` the 8 MiB shared
//! body of `blob.rs` (one `Bytes` for every connection; `?bytes=N` a `slice` of it, no copy).
//! Port from argv[1] or `PORT`
//! (default 8080), address from `ADDR` (default 127.0.0.1). `TCP_NODELAY` is set on every accepted
//! stream (hyper leaves it to the caller). SIGTERM/SIGINT: stop accepting, let hyper's graceful
//! shutdown finish in-flight requests and close idle keep-alive connections, then exit.
use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

#[path = "../blob.rs"]
mod blob;

static HELLO: &[u8] = b"Hello, World!";
static OK: &[u8] = b"ok";

async fn handle(req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, body, content_type) = match req.uri().path() {
        "/" => (StatusCode::OK, Bytes::from_static(HELLO), "text/plain"),
        "/health" => (StatusCode::OK, Bytes::from_static(OK), "text/plain"),
        "/blob" => match blob::answer(req.uri().query()) {
            Some(body) => (StatusCode::OK, body, "application/octet-stream"),
            None => (StatusCode::BAD_REQUEST, Bytes::new(), "text/plain"),
        },
        _ => (StatusCode::NOT_FOUND, Bytes::new(), "text/plain"),
    };
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(resp)
}

fn addr() -> SocketAddr {
    let port = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("PORT").ok())
        .unwrap_or_else(|| "8080".into());
    let host = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1".into());
    format!("{host}:{port}").parse().expect("ADDR:PORT")
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    blob::shared();
    let listener = TcpListener::bind(addr()).await?;
    eprintln!("peer-hyper listening on {}", listener.local_addr()?);
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let conn = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(handle));
                let conn = graceful.watch(conn);
                tokio::spawn(async move { let _ = conn.await; });
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
