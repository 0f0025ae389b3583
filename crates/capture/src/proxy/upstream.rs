//! The upstream side: the parsed `--upstream` URL, TLS settings, and a pool of keep-alive
//! HTTP/1.1 connections.
//!
//! Upstream connections speak HTTP/1.1 (ALPN `http/1.1` over TLS), like nginx's `proxy_pass`
//! with `proxy_http_version 1.1`: every server speaks it, and upgrades (WebSocket) need it.
//! Idle connections are kept (at most [`MAX_IDLE`]) and reused newest first; a pooled connection
//! the upstream closed meanwhile is detected before use, and a request that could not be written
//! on one is retried on a fresh connection (nothing of it was sent).

use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::header::HeaderValue;
use http::Request;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::tap::TeeRequest;
use super::ProxyError;

/// Idle upstream connections kept for reuse, at most.
pub const MAX_IDLE: usize = 512;

/// How the proxy checks the upstream's certificate (`https://` upstreams).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum UpstreamTrust {
    /// The Mozilla roots (webpki-roots), as browsers do.
    #[default]
    WebPki,
    /// Only the CA certificates in this PEM file (`--upstream-ca`), e.g. a private CA.
    CaFile(PathBuf),
    /// No check of the certificate or its name (`--insecure`): for test servers only.
    Insecure,
}

/// A parsed `--upstream` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamUrl {
    pub https: bool,
    /// Host name or IP address (without brackets).
    pub host: String,
    pub port: u16,
    /// `host[:port]` as the URL wrote it: the `Host` header sent upstream.
    pub authority: String,
    /// The URL's path, the prefix of every forwarded path (empty for none).
    pub prefix: String,
}

impl UpstreamUrl {
    /// Parses `http://host[:port][/prefix]` or `https://...`; the error says what is wrong.
    pub fn parse(url: &str) -> Result<UpstreamUrl, ProxyError> {
        let bad = |why: &str| ProxyError::Upstream(format!("{url:?}: {why}"));
        let uri: http::Uri = url.parse().map_err(|e| {
            bad(&format!(
                "not a URL ({e}); expected http://host:port or https://host"
            ))
        })?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            Some(s) => return Err(bad(&format!("scheme {s} is not http or https"))),
            None => return Err(bad("no scheme; write http://host:port or https://host")),
        };
        let auth = uri.authority().ok_or_else(|| bad("no host"))?;
        if auth.as_str().contains('@') {
            return Err(bad("credentials in the URL are not supported"));
        }
        let host = auth.host().trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(bad("no host"));
        }
        if uri.query().is_some() {
            return Err(bad("a query string is not allowed in the upstream URL"));
        }
        let prefix = uri.path().trim_end_matches('/').to_string();
        Ok(UpstreamUrl {
            https,
            host: host.to_string(),
            port: auth.port_u16().unwrap_or(if https { 443 } else { 80 }),
            authority: auth.as_str().to_string(),
            prefix,
        })
    }

    /// `http://host:port/prefix`, for messages.
    pub fn display(&self) -> String {
        format!(
            "{}://{}{}",
            if self.https { "https" } else { "http" },
            self.authority,
            self.prefix
        )
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
}

fn read_certs(path: &PathBuf, what: &str) -> Result<Vec<CertificateDer<'static>>, ProxyError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| ProxyError::Tls(format!("{what} {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(ProxyError::Tls(format!(
            "{what} {}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it",
            path.display()
        )));
    }
    Ok(certs)
}

/// The TLS configuration of the listener (`--tls-cert`, `--tls-key`, PEM): ALPN `h2` then
/// `http/1.1`.
pub fn server_tls(cert: &PathBuf, key: &PathBuf) -> Result<Arc<rustls::ServerConfig>, ProxyError> {
    let certs = read_certs(cert, "--tls-cert")?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        ProxyError::Tls(format!(
            "--tls-key {}: {e} (expected a PEM private key: PKCS#8, RSA or EC)",
            key.display()
        ))
    })?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ProxyError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ProxyError::Tls(format!("--tls-cert/--tls-key: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The TLS configuration for an `https://` upstream.
pub fn client_tls(trust: &UpstreamTrust) -> Result<Arc<rustls::ClientConfig>, ProxyError> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ProxyError::Tls(e.to_string()))?;
    let mut config = match trust {
        UpstreamTrust::WebPki => builder
            .with_root_certificates(rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            })
            .with_no_client_auth(),
        UpstreamTrust::CaFile(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in read_certs(path, "--upstream-ca")? {
                roots.add(c).map_err(|e| {
                    ProxyError::Tls(format!("--upstream-ca {}: {e}", path.display()))
                })?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        UpstreamTrust::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
            .with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// `--insecure`: any certificate and name, but the handshake signatures are still checked.
#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

pub(crate) type Sender = SendRequest<TeeRequest>;

/// Connections to the one upstream.
pub(crate) struct Upstream {
    pub url: UpstreamUrl,
    /// The `Host` header value sent upstream by default.
    pub host_header: HeaderValue,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    connect_timeout: Duration,
    idle: Mutex<Vec<Sender>>,
}

/// Why a request got no response from the upstream.
#[derive(Debug)]
pub(crate) enum UpstreamFailure {
    Connect(io::Error),
    Http(hyper::Error),
}

impl std::fmt::Display for UpstreamFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpstreamFailure::Connect(e) => write!(f, "cannot connect: {e}"),
            UpstreamFailure::Http(e) => {
                write!(f, "{e}")?;
                let mut source = std::error::Error::source(e);
                while let Some(s) = source {
                    write!(f, ": {s}")?;
                    source = s.source();
                }
                Ok(())
            }
        }
    }
}

impl Upstream {
    pub fn new(
        url: UpstreamUrl,
        trust: &UpstreamTrust,
        connect_timeout: Duration,
    ) -> Result<Upstream, ProxyError> {
        let tls = if url.https {
            let name = ServerName::try_from(url.host.clone())
                .map_err(|e| ProxyError::Upstream(format!("{}: {e}", url.display())))?;
            Some((tokio_rustls::TlsConnector::from(client_tls(trust)?), name))
        } else {
            None
        };
        let host_header = HeaderValue::from_str(&url.authority)
            .map_err(|e| ProxyError::Upstream(format!("{}: {e}", url.display())))?;
        Ok(Upstream {
            url,
            host_header,
            tls,
            connect_timeout,
            idle: Mutex::new(Vec::new()),
        })
    }

    fn pop_idle(&self) -> Option<Sender> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    /// Gives a connection whose response was read to the end back for reuse.
    pub fn put_back(&self, sender: Sender) {
        // Not `is_ready()`: the connection task may not have seen the end of the response yet;
        // whoever takes it next waits for `ready()`.
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(sender);
        }
    }

    /// Closes every idle connection (at shutdown).
    pub fn clear(&self) {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Sends `req` on an idle connection, or a new one; returns the response head and the
    /// connection to give back once the response body was read.
    pub async fn send(
        &self,
        mut req: Request<TeeRequest>,
    ) -> Result<(http::Response<Incoming>, Sender), UpstreamFailure> {
        while let Some(mut sender) = self.pop_idle() {
            if sender.is_closed() || sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(req).await {
                Ok(resp) => return Ok((resp, sender)),
                Err(mut e) => match e.take_message() {
                    // Not written at all (the connection was closing): try the next one.
                    Some(r) => req = r,
                    None => return Err(UpstreamFailure::Http(e.into_error())),
                },
            }
        }
        let mut sender = self.connect().await?;
        match sender.send_request(req).await {
            Ok(resp) => Ok((resp, sender)),
            Err(e) => Err(UpstreamFailure::Http(e)),
        }
    }

    async fn connect(&self) -> Result<Sender, UpstreamFailure> {
        let addr = (self.url.host.as_str(), self.url.port);
        let tcp = match tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(UpstreamFailure::Connect(e)),
            Err(_) => {
                return Err(UpstreamFailure::Connect(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no connection within {:?}", self.connect_timeout),
                )))
            }
        };
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => handshake(tcp).await,
            Some((connector, name)) => {
                let tls = tokio::time::timeout(
                    self.connect_timeout,
                    connector.connect(name.clone(), tcp),
                )
                .await
                .map_err(|_| {
                    UpstreamFailure::Connect(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "TLS handshake timed out",
                    ))
                })?
                .map_err(|e| {
                    UpstreamFailure::Connect(io::Error::new(e.kind(), format!("TLS: {e}")))
                })?;
                handshake(tls).await
            }
        }
    }
}

async fn handshake<I>(io: I) -> Result<Sender, UpstreamFailure>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = http1::Builder::new()
        .preserve_header_case(true)
        .handshake(TokioIo::new(io))
        .await
        .map_err(UpstreamFailure::Http)?;
    tokio::spawn(async move {
        // Errors reach the request that was in flight; an idle connection closing is normal.
        let _ = conn.with_upgrades().await;
    });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_urls() {
        let u = UpstreamUrl::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            (u.https, u.host.as_str(), u.port, u.prefix.as_str()),
            (false, "127.0.0.1", 8080, "")
        );
        let u = UpstreamUrl::parse("https://api.example.com/v1/").unwrap();
        assert_eq!(
            (u.https, u.port, u.prefix.as_str(), u.authority.as_str()),
            (true, 443, "/v1", "api.example.com")
        );
        let u = UpstreamUrl::parse("http://[::1]:9000").unwrap();
        assert_eq!(u.host, "::1");
        for bad in [
            "127.0.0.1:8080",
            "ftp://x",
            "http://u:p@x",
            "http://x/?a=1",
            "not a url",
        ] {
            assert!(UpstreamUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
