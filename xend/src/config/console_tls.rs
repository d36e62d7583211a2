//! Whether a client speaks TLS to xend's consoles and event port, and which
//! certificate it trusts there. xend serves them over TLS exactly when its
//! API is HTTPS (`xend-tls-cert`/`xend-tls-key`), so the client follows what
//! it knows of the API:
//!
//! - an `https://` URL: TLS, the certificate verified for the URL's host
//!   against `--cacert FILE`/`$XEND_CACERT` when given, else the system's
//!   roots;
//! - an `http://` URL: plain TCP;
//! - the local socket (no URL, `unix:PATH` or an absolute path): TLS when
//!   the local `xend-config.sxp` names a certificate, which is then the one
//!   certificate accepted (pinned: the client shares the host's config, and
//!   the console's address, e.g. 127.0.0.1, need not be a name in it);
//!   plain TCP otherwise.
//!
//! A client never falls back to plain TCP when TLS fails.
use std::path::{Path, PathBuf};

use super::XendConfig;

/// How to check the certificate of a console or the event port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConsoleTls {
    /// Verify it for the host name against the system's root certificates.
    SystemRoots,
    /// Verify it for the host name against the CA certificates in this PEM file.
    CaFile(PathBuf),
    /// Accept exactly the (first) certificate in this PEM file: xend's own
    /// `xend-tls-cert` on this host.
    Pinned(PathBuf),
}

/// The TLS a client of the xend at `url` (`None`: the local socket) uses on
/// consoles and the event port; `None` for plain TCP. `cacert` is the
/// client's `--cacert`/`$XEND_CACERT`; `config` the local xend config
/// ([`super::client_config`]).
pub fn console_tls(
    url: Option<&str>,
    cacert: Option<&Path>,
    config: &XendConfig,
) -> Option<ConsoleTls> {
    let url = url.map(str::trim).filter(|u| !u.is_empty());
    let local = match url {
        None => true,
        Some(u) => u.starts_with("unix:") || u.starts_with('/'),
    };
    if local {
        return config.tls_cert.clone().map(ConsoleTls::Pinned);
    }
    let https = url.is_some_and(|u| {
        u.get(..8)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
    });
    https.then(|| match cacert {
        Some(f) => ConsoleTls::CaFile(f.to_path_buf()),
        None => ConsoleTls::SystemRoots,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_follows_the_api() {
        let plain = XendConfig::default();
        let with_cert = XendConfig {
            tls_cert: Some("/etc/xen/cert.pem".into()),
            ..XendConfig::default()
        };
        let ca = Path::new("/ca.pem");
        assert_eq!(console_tls(None, None, &plain), None);
        assert_eq!(
            console_tls(None, Some(ca), &with_cert),
            Some(ConsoleTls::Pinned("/etc/xen/cert.pem".into()))
        );
        assert_eq!(
            console_tls(Some("unix:/run/x.sock"), None, &with_cert),
            Some(ConsoleTls::Pinned("/etc/xen/cert.pem".into()))
        );
        assert_eq!(
            console_tls(Some("http://h:8000"), Some(ca), &with_cert),
            None
        );
        assert_eq!(console_tls(Some("h:8000"), None, &with_cert), None);
        assert_eq!(
            console_tls(Some("https://h:8000"), None, &plain),
            Some(ConsoleTls::SystemRoots)
        );
        assert_eq!(
            console_tls(Some("HTTPS://h"), Some(ca), &plain),
            Some(ConsoleTls::CaFile(ca.into()))
        );
    }
}
