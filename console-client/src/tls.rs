//! TLS for console connections (rustls with the ring provider): the client
//! configuration for each way of trusting xend's certificate
//! ([`ConsoleTls`]), and the errors, worded for the person at the terminal.
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::pem::PemObject;
pub use xend::config::ConsoleTls;

/// Errors setting up TLS for a console.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate file could not be read or holds no certificate.
    #[error("cannot read certificates from {path}: {reason}")]
    CertFile {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The system has no root certificates to verify against.
    #[error(
        "no system root certificates found to verify the console's certificate; give its CA with --cacert FILE or $XEND_CACERT"
    )]
    NoRoots,
    /// The host is neither a DNS name nor an IP address.
    #[error("{0} cannot be checked against a certificate (not a DNS name or IP address)")]
    BadName(String),
    /// rustls refused the configuration.
    #[error("cannot set up TLS")]
    Rustls(#[source] rustls::Error),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bad = |reason: String| TlsError::CertFile {
        path: path.display().to_string(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no PEM certificate in it".into()));
    }
    Ok(certs)
}

/// The rustls client configuration for `trust`.
pub fn client_config(trust: &ConsoleTls) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Rustls)?;
    let roots = |certs: Vec<CertificateDer<'static>>| {
        let mut store = rustls::RootCertStore::empty();
        store.add_parsable_certificates(certs);
        store
    };
    let config = match trust {
        ConsoleTls::SystemRoots => {
            let store = roots(rustls_native_certs::load_native_certs().certs);
            if store.is_empty() {
                return Err(TlsError::NoRoots);
            }
            builder.with_root_certificates(store)
        }
        ConsoleTls::CaFile(path) => {
            let store = roots(read_certs(path)?);
            if store.is_empty() {
                return Err(TlsError::CertFile {
                    path: path.display().to_string(),
                    reason: "no usable CA certificate in it".into(),
                });
            }
            builder.with_root_certificates(store)
        }
        ConsoleTls::Pinned(path) => {
            let cert = read_certs(path)?.swap_remove(0);
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Pinned {
                    cert,
                    algorithms: provider.signature_verification_algorithms,
                }))
        }
    };
    Ok(Arc::new(config.with_no_client_auth()))
}

/// The name `host` is checked as in the certificate.
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(bare.to_string()).map_err(|_| TlsError::BadName(host.to_string()))
}

/// A sentence for a failed handshake: what went wrong with the certificate
/// and what to do, or rustls's own words for anything else.
pub fn describe(e: &std::io::Error, trust: &ConsoleTls) -> String {
    let rustls_error = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match rustls_error {
        Some(rustls::Error::InvalidCertificate(why)) => {
            let fix = match trust {
                ConsoleTls::SystemRoots => {
                    "not signed by a CA this system trusts; give its CA with --cacert FILE or $XEND_CACERT".to_string()
                }
                ConsoleTls::CaFile(f) => format!("not signed by a CA in {}", f.display()),
                ConsoleTls::Pinned(f) => {
                    format!("not xend's certificate {} (xend-tls-cert)", f.display())
                }
            };
            format!("TLS: the server's certificate is refused ({why:?}): {fix}")
        }
        Some(other) => format!("TLS: {other}"),
        None => format!("TLS handshake failed: {}", crate::console::describe_io(e)),
    }
}

/// Accepts exactly one certificate: xend's own, read from its config on
/// this host. The handshake's signatures are still checked, so the server
/// must hold the certificate's key.
#[derive(Debug)]
struct Pinned {
    cert: CertificateDer<'static>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.cert.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
