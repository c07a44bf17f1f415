//! One post to a webhook: the URL's endpoint, the checked addresses, TLS, and HTTP/1.1.
//!
//! https goes through rustls with the `ring` provider, so the worker needs no system TLS library:
//! the server's certificate chain is verified against Mozilla's roots (webpki-roots) plus the
//! operator's own CA file (`--webhook-ca`), and its name against the URL's host. Redirects are
//! not followed: a 3xx is a failed attempt like any other non-2xx, so a receiver cannot send the
//! worker to a host that was never checked.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use http::uri::{PathAndQuery, Scheme};
use http::{HeaderMap, Request, Uri, header};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::rt::{Read, Write};
use hyper_util::rt::TokioIo;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

use super::target::{self, Unreachable};

/// Why the TLS client could not be set up.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs, reason = "each variant's message names its fields")]
pub enum TlsError {
    /// The operator's CA file cannot be read or holds no usable certificate.
    #[error("cannot use {file} as the webhooks' CA: {why}")]
    Ca { file: String, why: String },
    /// rustls refused the configuration (a bug, not input).
    #[error("cannot set up TLS for webhooks: {0}")]
    Config(#[from] rustls::Error),
}

/// The TLS client configuration every https post uses: Mozilla's roots, plus the certificates
/// in `ca_file` (PEM) if given.
pub(crate) fn tls_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(file) = ca_file {
        let ca = |why: String| TlsError::Ca {
            file: file.display().to_string(),
            why,
        };
        let certificates = CertificateDer::pem_file_iter(file)
            .map_err(|e| ca(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ca(e.to_string()))?;
        if certificates.is_empty() {
            return Err(ca("it holds no PEM certificate".into()));
        }
        for certificate in certificates {
            roots.add(certificate).map_err(|e| ca(e.to_string()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A webhook that can be posted to.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    https: bool,
    /// The host without an IPv6 address's brackets: what is resolved and, for https, verified.
    host: String,
    port: u16,
    /// The `Host` header: the URL's host and port, never its user information.
    host_header: String,
    pub(crate) path: PathAndQuery,
}

impl Endpoint {
    /// The endpoint of `url`, or why it cannot be posted to, as a sentence.
    pub(crate) fn parse(url: &str) -> Result<Endpoint, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("webhook URL is not a URL: {e}"))?;
        let https = match uri.scheme() {
            Some(scheme) if *scheme == Scheme::HTTPS => true,
            Some(scheme) if *scheme == Scheme::HTTP => false,
            _ => return Err("webhook URL is not an http:// or https:// URL".to_string()),
        };
        let authority = uri
            .authority()
            .ok_or_else(|| "webhook URL names no host".to_string())?;
        let bracketed = authority.host();
        let host = bracketed
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(bracketed);
        if host.is_empty() {
            return Err("webhook URL names no host".to_string());
        }
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let host_header = match authority.port() {
            Some(port) => format!("{bracketed}:{port}"),
            None => bracketed.to_string(),
        };
        Ok(Endpoint {
            https,
            host: host.to_string(),
            port,
            host_header,
            path: uri
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
        })
    }
}

/// The endpoint without its query, which may hold a receiver's token, nor user information.
impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.host_header, self.path.path())
    }
}

/// Why one attempt got no 2xx answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The target may not be posted to; retrying cannot change that.
    Refused(String),
    /// Anything that may go better next time.
    Failed(String),
}

/// How posts are made: the same for every webhook.
pub(crate) struct Client {
    pub(crate) tls: Arc<rustls::ClientConfig>,
    pub(crate) allow_private: bool,
}

impl Client {
    /// One post of `body` with `headers` to `endpoint`.
    pub(crate) async fn post(
        &self,
        endpoint: &Endpoint,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<(), Failure> {
        let addresses = target::resolve(&endpoint.host, endpoint.port, self.allow_private)
            .await
            .map_err(|unreachable| match unreachable {
                Unreachable::Refused(reason) => Failure::Refused(reason),
                Unreachable::Unresolved(reason) => Failure::Failed(reason),
            })?;
        let stream = connect(endpoint, &addresses).await?;
        let mut request = Request::post(Uri::from(endpoint.path.clone()))
            .header(header::HOST, &endpoint.host_header)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|e| Failure::Failed(format!("cannot build a request to {endpoint}: {e}")))?;
        request.headers_mut().extend(headers);
        if !endpoint.https {
            return send(endpoint, TokioIo::new(stream), request).await;
        }
        let name = ServerName::try_from(endpoint.host.clone()).map_err(|e| {
            Failure::Failed(format!(
                "{} cannot be checked against a certificate: {e}",
                endpoint.host
            ))
        })?;
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, stream)
            .await
            .map_err(|e| Failure::Failed(format!("TLS with {endpoint} failed: {e}")))?;
        send(endpoint, TokioIo::new(tls), request).await
    }
}

/// A connection to the first of `addresses` that accepts one: only these, which were checked.
async fn connect(endpoint: &Endpoint, addresses: &[SocketAddr]) -> Result<TcpStream, Failure> {
    let mut last = None;
    for address in addresses {
        match TcpStream::connect(address).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    let why = last.map_or_else(|| "no address".to_string(), |e| e.to_string());
    Err(Failure::Failed(format!(
        "cannot connect to {endpoint}: {why}"
    )))
}

async fn send<T>(endpoint: &Endpoint, io: T, request: Request<Full<Bytes>>) -> Result<(), Failure>
where
    T: Read + Write + Unpin + Send + 'static,
{
    let failed = |what: &str, e: hyper::Error| Failure::Failed(format!("{endpoint} {what}: {e}"));
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| failed("cannot be talked HTTP to", e))?;
    let connection = tokio::spawn(connection);
    let answer = sender.send_request(request).await;
    connection.abort();
    let status = answer.map_err(|e| failed("did not answer", e))?.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(Failure::Failed(format!("{endpoint} answered {status}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_and_https_webhooks_are_parsed_without_leaking_tokens() {
        let endpoint = Endpoint::parse("http://127.0.0.1:8080/inbox?token=secret").unwrap();
        assert_eq!((endpoint.host.as_str(), endpoint.port), ("127.0.0.1", 8080));
        assert_eq!(endpoint.path.as_str(), "/inbox?token=secret");
        assert_eq!(endpoint.to_string(), "http://127.0.0.1:8080/inbox");
        let endpoint = Endpoint::parse("https://b1.example.org/inbox").unwrap();
        assert!(endpoint.https);
        assert_eq!(
            (endpoint.host.as_str(), endpoint.port),
            ("b1.example.org", 443)
        );
        assert_eq!(endpoint.host_header, "b1.example.org");
        assert_eq!(Endpoint::parse("http://b1.example.org").unwrap().port, 80);
        let endpoint = Endpoint::parse("https://user:pass@[::1]:8443/in").unwrap();
        assert_eq!((endpoint.host.as_str(), endpoint.port), ("::1", 8443));
        assert_eq!(endpoint.host_header, "[::1]:8443");
        assert_eq!(endpoint.to_string(), "https://[::1]:8443/in");
        assert_eq!(
            Endpoint::parse("ftp://b1.example.org/").unwrap_err(),
            "webhook URL is not an http:// or https:// URL"
        );
        assert_eq!(
            Endpoint::parse("/inbox").unwrap_err(),
            "webhook URL is not an http:// or https:// URL"
        );
    }

    #[test]
    fn a_ca_file_must_hold_a_certificate() {
        assert!(tls_config(None).is_ok());
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let error = tls_config(Some(&empty)).unwrap_err().to_string();
        assert!(error.ends_with("it holds no PEM certificate"), "{error}");
        assert!(tls_config(Some(&dir.path().join("missing.pem"))).is_err());
    }
}
