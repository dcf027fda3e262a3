//! Sends one vetted outbound HTTP/1.1 request: connects to an address that the policy has
//! already approved (never re-resolving the name), optionally over TLS checked against the
//! web PKI roots, and caps the response body's size and idle time.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep, timeout};
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

/// Time bounds of one request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub(crate) connect: Duration,
    pub(crate) first_byte: Duration,
    pub(crate) between_bytes: Duration,
}

/// Where a request may go, as decided by the policy.
pub(crate) struct Target {
    /// Approved addresses, tried in order.
    pub(crate) addresses: Vec<SocketAddr>,
    /// The name to verify the server's certificate against; `None` for plain HTTP.
    pub(crate) tls_name: Option<String>,
    pub(crate) max_response_bytes: u64,
}

type IoFuture = Box<dyn Future<Output = Result<(), HttpError>> + Send>;

trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// Lookups running at once in this process. The system resolver blocks a thread of the shared
/// blocking pool for as long as a name server takes (a timeout here only stops waiting), so a
/// guest pointing many lookups at a name server that never answers must not be able to take
/// every blocking thread.
const MAX_CONCURRENT_LOOKUPS: usize = 64;

fn lookup_slots() -> Arc<Semaphore> {
    static SLOTS: OnceLock<Arc<Semaphore>> = OnceLock::new();
    SLOTS
        .get_or_init(|| Arc::new(Semaphore::new(MAX_CONCURRENT_LOOKUPS)))
        .clone()
}

/// Resolves `host` (an IP literal resolves to itself). The lookup holds its slot until the
/// resolver thread returns, even when this call has already given up waiting.
pub(crate) async fn resolve(
    host: &str,
    port: u16,
    limit: Duration,
) -> Result<Vec<SocketAddr>, HttpError> {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let host = host.to_owned();
    let lookup = async move {
        let slot = lookup_slots()
            .acquire_owned()
            .await
            .map_err(|_| HttpError::DnsTimeout)?;
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
                .map(|addresses| addresses.collect::<Vec<_>>())
        })
        .await
        .map_err(|_| HttpError::DnsTimeout)?
        .map_err(|e| HttpError::DnsError {
            rcode: Some(e.to_string()),
            info_code: None,
        })
    };
    timeout(limit, lookup)
        .await
        .map_err(|_| HttpError::DnsTimeout)?
}

/// Connects, sends `request` and returns the response head with a bounded body, plus the
/// future that drives the connection.
pub(crate) async fn send(
    mut request: http::Request<WasiBody>,
    target: Target,
    timeouts: Timeouts,
) -> Result<(http::Response<WasiBody>, IoFuture), HttpError> {
    let tcp = connect(&target.addresses, timeouts.connect).await?;
    let stream: Box<dyn Stream> = match &target.tls_name {
        None => Box::new(tcp),
        Some(name) => {
            let server_name = rustls::pki_types::ServerName::try_from(name.clone())?;
            let tls = timeout(timeouts.connect, tls_connector().connect(server_name, tcp))
                .await
                .map_err(|_| HttpError::ConnectionTimeout)?
                .map_err(HttpError::Tls)?;
            Box::new(tls)
        }
    };
    let (mut sender, connection) = timeout(
        timeouts.connect,
        hyper::client::conn::http1::handshake(TokioIo::new(stream)),
    )
    .await
    .map_err(|_| HttpError::ConnectionTimeout)??;
    // The connection task ends with the request's resources: dropping the handle aborts it.
    let connection = wasmtime_wasi::runtime::spawn(connection);

    // On the wire the request line carries only the path; the Host header has the authority.
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    *request.uri_mut() = http::Uri::builder()
        .path_and_query(path)
        .build()
        .map_err(|_| HttpError::HttpRequestUriInvalid)?;

    let response = timeout(timeouts.first_byte, sender.send_request(request))
        .await
        .map_err(|_| HttpError::ConnectionReadTimeout)??;
    let response = response.map(|incoming| {
        BoundedBody {
            incoming,
            remaining: target.max_response_bytes,
            limit: target.max_response_bytes,
            idle_limit: timeouts.between_bytes,
            idle: Box::pin(tokio::time::sleep(timeouts.between_bytes)),
        }
        .boxed_unsync()
    });
    let io: IoFuture = Box::new(async move { connection.await.map_err(HttpError::from) });
    Ok((response, io))
}

async fn connect(addresses: &[SocketAddr], limit: Duration) -> Result<TcpStream, HttpError> {
    let mut last_error = None;
    for address in addresses {
        match timeout(limit, TcpStream::connect(address)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => last_error = Some(HttpError::Connect(e)),
            Err(_) => last_error = Some(HttpError::ConnectionTimeout),
        }
    }
    Err(last_error.unwrap_or(HttpError::DestinationNotFound))
}

fn tls_connector() -> tokio_rustls::TlsConnector {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.into(),
        };
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        Arc::new(config)
    });
    tokio_rustls::TlsConnector::from(config.clone())
}

/// A response body that fails once it exceeds `limit` bytes or stays idle for `idle_limit`.
struct BoundedBody {
    incoming: hyper::body::Incoming,
    remaining: u64,
    limit: u64,
    idle_limit: Duration,
    idle: Pin<Box<Sleep>>,
}

impl Body for BoundedBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    if len > this.remaining {
                        return Poll::Ready(Some(Err(HttpError::HttpResponseBodySize(Some(
                            this.limit,
                        )))));
                    }
                    this.remaining -= len;
                }
                this.idle.as_mut().reset(Instant::now() + this.idle_limit);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.idle.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }
}
