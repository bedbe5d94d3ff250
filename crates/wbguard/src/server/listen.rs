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
//!
//! Two things hyper leaves open after that: an HTTP/2 connection that has sent its preface and then nothing (its
//! reads are never timed out: HTTP/2 reads all the time), and a client that stopped reading an answer (the write
//! waits for ever). And nothing bounded how many connections a node holds. Now a connection with no byte moving
//! either way for `idle_timeout` is closed, and beyond `max_connections` open at once a new one is closed as soon
//! as it is accepted (counted in `wbguard_connections_refused_total{why="node"}`; `wbguard_connections_open` says
//! how many are open). So that one host cannot take every place, a peer — an IPv4 address, an IPv6 /64 (what one host is
//! usually given) — may hold `max_connections_per_peer` of them (`why="peer"`); trusted proxies, which carry many
//! clients, are not held to it.
use axum::extract::connect_info::IntoMakeServiceWithConnectInfo;
use axum::Router;
use axum_server::accept::Accept;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Serves `app` on `listener` — over TLS with `tls` — until `stop` resolves, then for at most 10 s more for the
/// requests in flight.
pub async fn serve(
    listener: std::net::TcpListener,
    app: IntoMakeServiceWithConnectInfo<Router, SocketAddr>,
    tls: Option<RustlsConfig>,
    limits: Limits,
    trusted: Vec<ipnet::IpNet>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let Limits {
        client_timeout,
        idle_timeout,
        max_connections,
        per_peer,
    } = limits;
    let open = Places::new(max_connections, per_peer, trusted);
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
            let counted = Counted {
                inner: first,
                idle: idle_timeout,
                open,
            };
            server.acceptor(counted).serve(app).await
        }
        Some(tls) => {
            let counted = Counted {
                inner: axum_server::accept::DefaultAcceptor,
                idle: idle_timeout,
                open,
            };
            let acceptor = RustlsAcceptor::new(tls)
                .handshake_timeout(client_timeout)
                .acceptor(counted);
            server.acceptor(acceptor).serve(app).await
        }
    }
}

/// What a connection may cost the server (`[server]`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// How long a client may keep the server waiting for (a part of) its request.
    pub client_timeout: Duration,
    /// How long a connection may go without a byte either way.
    pub idle_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// Connections one peer (an IPv4 address, an IPv6 /64) may hold open at once, trusted proxies aside.
    pub per_peer: usize,
}

/// The places for connections: in all, and per peer.
#[derive(Debug)]
struct Places {
    all: std::sync::Arc<tokio::sync::Semaphore>,
    per_peer: usize,
    trusted: Vec<ipnet::IpNet>,
    peers: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
}

impl Places {
    fn new(all: usize, per_peer: usize, trusted: Vec<ipnet::IpNet>) -> std::sync::Arc<Places> {
        std::sync::Arc::new(Places {
            all: std::sync::Arc::new(tokio::sync::Semaphore::new(all)),
            per_peer,
            trusted,
            peers: Default::default(),
        })
    }

    /// A place for a connection from `peer`, or why there is none: the node's places are all taken, or that
    /// peer's.
    fn take(
        self: &std::sync::Arc<Self>,
        peer: Option<std::net::IpAddr>,
    ) -> Result<Open, &'static str> {
        let place = self.all.clone().try_acquire_owned().map_err(|_| "node")?;
        // Trusted proxies and peers of no known address are not counted.
        let peer = peer
            .map(|ip| ip.to_canonical())
            .filter(|ip| !self.trusted.iter().any(|net| net.contains(ip)))
            .map(peer_of);
        if let Some(peer) = peer {
            let mut peers = self.peers.lock().map_err(|_| "node")?;
            let held = peers.entry(peer).or_insert(0);
            if *held >= self.per_peer {
                return Err("peer");
            }
            *held += 1;
        }
        metrics::gauge!("wbguard_connections_open").increment(1.0);
        Ok(Open {
            places: self.clone(),
            peer,
            _place: place,
        })
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

/// Whom a connection from `ip` (IPv4-mapped addresses already made IPv4) is counted against: the address
/// itself for IPv4, its /64 for IPv6 — one host is usually given a whole /64.
fn peer_of(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) => {
            std::net::IpAddr::V6((u128::from(v6) & !(u128::MAX >> 64)).into())
        }
        v4 => v4,
    }
}

/// Holds each accepted connection to a place in `open` (closing it at once when none is left) and to `idle`.
#[derive(Debug, Clone)]
struct Counted<A> {
    inner: A,
    idle: Duration,
    open: std::sync::Arc<Places>,
}

impl<S, A> Accept<tokio::net::TcpStream, S> for Counted<A>
where
    A: Accept<tokio::net::TcpStream, S>,
    A::Future: Send + 'static,
    A::Stream: Send + 'static,
    A::Service: Send + 'static,
{
    type Stream = Quiet<A::Stream>;
    type Service = A::Service;
    type Future =
        Pin<Box<dyn Future<Output = std::io::Result<(Quiet<A::Stream>, A::Service)>> + Send>>;

    fn accept(&self, stream: tokio::net::TcpStream, service: S) -> Self::Future {
        // Counted from here, so that a connection still waiting for its first byte or handshake counts too.
        let place = match self.open.take(stream.peer_addr().ok().map(|a| a.ip())) {
            Ok(place) => place,
            Err(why) => {
                metrics::counter!("wbguard_connections_refused_total", "why" => why).increment(1);
                drop(stream);
                return Box::pin(std::future::ready(Err(std::io::Error::other(
                    "too many connections open",
                ))));
            }
        };
        let idle = self.idle;
        let accepted = self.inner.accept(stream, service);
        Box::pin(async move {
            let (io, service) = accepted.await?;
            Ok((
                Quiet {
                    io,
                    idle,
                    last: tokio::time::Instant::now(),
                    timer: Box::pin(tokio::time::sleep(idle)),
                    _place: place,
                },
                service,
            ))
        })
    }
}

/// A connection's place, given back (its peer's count and the gauge lowered) when the connection ends.
#[derive(Debug)]
struct Open {
    places: std::sync::Arc<Places>,
    peer: Option<std::net::IpAddr>,
    _place: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for Open {
    fn drop(&mut self) {
        metrics::gauge!("wbguard_connections_open").decrement(1.0);
        if let (Some(peer), Ok(mut peers)) = (self.peer, self.places.peers.lock()) {
            if let Some(held) = peers.get_mut(&peer) {
                *held -= 1;
                if *held == 0 {
                    peers.remove(&peer);
                }
            }
        }
    }
}

/// A connection that fails its pending read or write once no byte has moved either way for `idle`. The timer is
/// not moved on every byte: when it fires early (bytes moved meanwhile) it is set again from the last one.
#[derive(Debug)]
struct Quiet<S> {
    io: S,
    idle: Duration,
    last: tokio::time::Instant,
    timer: Pin<Box<tokio::time::Sleep>>,
    _place: Open,
}

impl<S> Quiet<S> {
    /// Whether the connection has been quiet for `idle`; if not, the timer will wake this task when it may be.
    fn quiet(&mut self, cx: &mut std::task::Context<'_>) -> bool {
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            let deadline = self.last + self.idle;
            if deadline <= tokio::time::Instant::now() {
                return true;
            }
            self.timer.as_mut().reset(deadline);
        }
    }

    /// `polled`'s outcome; a pending one turned into an error when the connection has been quiet too long.
    fn moved<T>(
        &mut self,
        cx: &mut std::task::Context<'_>,
        polled: Poll<std::io::Result<T>>,
        progress: impl FnOnce(&T) -> bool,
    ) -> Poll<std::io::Result<T>> {
        match polled {
            Poll::Ready(Ok(t)) => {
                if progress(&t) {
                    self.last = tokio::time::Instant::now();
                }
                Poll::Ready(Ok(t))
            }
            Poll::Pending if self.quiet(cx) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no byte moved either way within the idle timeout",
            ))),
            other => other,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Quiet<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        let read = buf.filled().len() > before;
        this.moved(cx, polled, |_| read)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Quiet<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write(cx, buf);
        this.moved(cx, polled, |n| *n > 0)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.moved(cx, polled, |n| *n > 0)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_flush(cx);
        this.moved(cx, polled, |_| false)
    }

    fn poll_shutdown(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
