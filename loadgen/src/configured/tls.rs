//! TLS settings for `https://` targets: which roots are trusted, and whether
//! certificates are checked at all.
//!
//! rustls with the ring provider (a pure-Rust-and-asm build, no system OpenSSL), ALPN
//! as `--http` says (`h2` and `http/1.1` by default), SNI from the URL's host. The
//! trusted roots are Mozilla's set bundled with the binary (`webpki-roots`), so a run in
//! a distroless Job image needs no CA bundle; `--cacert FILE` trusts the PEM
//! certificates in FILE instead (a mesh's own root, a test CA). `--insecure` skips the
//! certificate and host name checks but still checks the handshake's signatures: the
//! traffic is encrypted, not authenticated, and the run says so wherever it reports.
//!
//! Built once per run and shared by every connection; rustls resumes sessions across
//! connections to one host, so handshakes after the first are cheaper, as in a browser.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::error::UsageError;

/// The TLS side of a run's configuration.
#[derive(Clone)]
pub struct Tls {
    /// What a connection that may speak HTTP/2 is opened with (ALPN as `--http` says).
    pub client: Arc<ClientConfig>,
    /// What an HTTP/1.1 connection is opened with once a target's server chose
    /// `http/1.1`: ALPN offers nothing else, so the HTTP/1.1 path never meets h2.
    pub client_h1: Arc<ClientConfig>,
    /// Certificates are not checked (`--insecure`).
    pub insecure: bool,
    /// Roots trusted instead of the bundled set (`--cacert`).
    pub cacert: Option<PathBuf>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("insecure", &self.insecure)
            .field("cacert", &self.cacert)
            .finish_non_exhaustive()
    }
}

/// The rustls name a host is checked against: a DNS name, or an IP address (which the
/// certificate must list as an IP SAN).
pub fn server_name(host: &str) -> Result<ServerName<'static>, UsageError> {
    ServerName::try_from(host.to_string())
        .map_err(|_| UsageError::new(format!("{host:?} is not a valid TLS server name")))
}

/// Builds the client side from `--cacert`, `--insecure` and `--http`.
pub fn build(
    cacert: Option<&Path>,
    insecure: bool,
    http: crate::configured::protocol::HttpVersion,
) -> Result<Tls, UsageError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| UsageError::new(format!("TLS setup: {e}")))?;
    let mut client = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoCertificateCheck(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        match cacert {
            Some(path) => {
                for cert in read_pem_certs(path)? {
                    roots.add(cert).map_err(|e| {
                        UsageError::new(format!("--cacert {}: {e}", path.display()))
                    })?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    let mut client_h1 = client.clone();
    client_h1.alpn_protocols = crate::configured::protocol::HttpVersion::Http1.alpn();
    client.alpn_protocols = http.alpn();
    Ok(Tls {
        client: Arc::new(client),
        client_h1: Arc::new(client_h1),
        insecure,
        cacert: cacert.map(Path::to_path_buf),
    })
}

/// The certificates of a PEM file; one at least, or it is an error.
fn read_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, UsageError> {
    let bytes = crate::error::read_input_bytes(path, "--cacert")?;
    let fail = |e: String| UsageError::new(format!("--cacert {}: {e}", path.display()));
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(format!("not a PEM certificate file ({e})")))?;
    if certs.is_empty() {
        return Err(fail("holds no PEM certificate".into()));
    }
    Ok(certs)
}

/// `--insecure`: any certificate for any name, signatures still verified.
#[derive(Debug)]
struct NoCertificateCheck(Arc<CryptoProvider>);

impl ServerCertVerifier for NoCertificateCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
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
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
