//! The listening socket and what a connection may cost the server: one server (axum-server on hyper) for plain
//! HTTP and HTTPS, with the same limits and the same graceful stop.
//!
//! A client that opened connections and then sent its request's headers slowly, or nothing at all (slowloris),
//! held each for as long as it liked: hyper times the headers out only with a timer, which neither `axum::serve`
//! nor axum-server sets. Now every connection has `client_timeout` to begin and finish each request's head — the
//! first byte of a plain connection (waited for here: hyper's timer starts only once bytes arrive), the TLS
//! handshake of an HTTPS one, and each request head after it, the first and every one a kept-alive connection
//! sends — or it is closed. (A request body that stalls as long fails with 408: the router's
//! `RequestBodyTimeoutLayer`.)
use axum::extract::connect_info::IntoMakeServiceWithConnectInfo;
use axum::Router;
use axum_server::accept::Accept;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

/// Serves `app` on `listener` — over TLS with `tls` — until `stop` resolves, then for at most 10 s more for the
/// requests in flight.
pub async fn serve(
    listener: std::net::TcpListener,
    app: IntoMakeServiceWithConnectInfo<Router, SocketAddr>,
    tls: Option<RustlsConfig>,
    client_timeout: Duration,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        stop.await;
        stopper.graceful_shutdown(Some(Duration::from_secs(10)));
    });
    let mut server = axum_server::from_tcp(listener).handle(handle);
    // (The builder goes with the server whichever acceptor it gets below.)
    limit_heads(server.http_builder(), client_timeout);
    match tls {
        None => {
            let first = FirstByte {
                within: client_timeout,
            };
            server.acceptor(first).serve(app).await
        }
        Some(tls) => {
            let acceptor = RustlsAcceptor::new(tls).handshake_timeout(client_timeout);
            server.acceptor(acceptor).serve(app).await
        }
    }
}

/// Each request head (HTTP/1) must arrive within `within` of the connection being ready for it.
fn limit_heads<E>(http: &mut hyper_util::server::conn::auto::Builder<E>, within: Duration) {
    http.http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(within);
}

/// Hands a plain connection on once its first byte has arrived, and drops it if none has within `within`.
#[derive(Debug, Clone, Copy)]
struct FirstByte {
    within: Duration,
}

impl<S: Send + 'static> Accept<tokio::net::TcpStream, S> for FirstByte {
    type Stream = tokio::net::TcpStream;
    type Service = S;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<(tokio::net::TcpStream, S)>> + Send>>;

    fn accept(&self, stream: tokio::net::TcpStream, service: S) -> Self::Future {
        let within = self.within;
        Box::pin(async move {
            // `peek` waits for a byte (`readable` may answer early) and leaves it for hyper.
            let mut first = [0u8; 1];
            match tokio::time::timeout(within, stream.peek(&mut first)).await {
                Ok(peeked) => peeked.map(|_| (stream, service)),
                Err(_) => Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no request began within the header timeout",
                )),
            }
        })
    }
}
