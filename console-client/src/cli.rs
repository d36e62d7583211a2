//! `xencons`'s command line (here, not in the binary, so the man page and
//! the shell completions can be generated from it).
use clap::Parser;

use crate::{ConsoleTls, EscapeKey};

/// Attach this terminal to a domain console served by xend.
#[derive(Debug, Parser)]
#[command(name = "xencons", version)]
pub struct Args {
    /// Host of the console (xend's console address).
    pub host: String,
    /// TCP port of the console (9600 + domain id by default in xend).
    pub port: u16,
    /// Escape key that ends the session, in caret notation.
    #[arg(short = 'e', long = "escape", default_value = "^]", value_parser = EscapeKey::parse)]
    pub escape: EscapeKey,
    /// Token sent as the first line [default: $XEND_TOKEN, else the token file].
    #[arg(long, env = "XEND_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// File holding the token [default: $XEND_TOKEN_FILE, else xend's token-file
    /// from $XEND_CONFIG or /etc/xen/xend-config.sxp], read when this user can.
    #[arg(long, env = "XEND_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<std::path::PathBuf>,
    /// Speak TLS even when nothing else says so (see --cacert). Without it,
    /// TLS is used when $XEND_URL is https://, when --cacert is given, or,
    /// with no $XEND_URL, when the local xend config names xend-tls-cert
    /// (that certificate is then the one accepted). Never falls back to
    /// plain TCP.
    #[arg(long)]
    pub tls: bool,
    /// PEM file of the CA certificates that must have signed the console's
    /// certificate (implies --tls) [default: $XEND_CACERT when TLS is on for
    /// another reason, else the system's roots].
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<std::path::PathBuf>,
    /// Pipe mode: seconds to keep copying output after the input ends.
    #[arg(long, default_value_t = 1.0)]
    pub linger: f64,
}

impl Args {
    /// The TLS to speak (`None`: plain TCP): see `--tls`. `url` is
    /// `$XEND_URL`, `env_cacert` `$XEND_CACERT`, `config` the local xend
    /// config.
    pub fn console_tls(
        &self,
        url: Option<&str>,
        env_cacert: Option<&std::path::Path>,
        config: &xend::config::XendConfig,
    ) -> Option<ConsoleTls> {
        if let Some(ca) = &self.cacert {
            return Some(ConsoleTls::CaFile(ca.clone()));
        }
        match xend::config::console_tls(url, env_cacert, config) {
            Some(t) => Some(t),
            None if self.tls => Some(match env_cacert {
                Some(ca) => ConsoleTls::CaFile(ca.to_path_buf()),
                None => ConsoleTls::SystemRoots,
            }),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn tls_is_asked_for_or_follows_the_api_and_the_env_ca_only_supplies_the_ca() {
        let args = |extra: &[&str]| {
            let mut argv = vec!["xencons"];
            argv.extend_from_slice(extra);
            argv.extend(["h", "9601"]);
            Args::try_parse_from(argv).unwrap()
        };
        let plain = xend::config::XendConfig::default();
        let env_ca = Some(Path::new("/env-ca.pem"));
        // $XEND_CACERT alone does not turn TLS on.
        assert_eq!(args(&[]).console_tls(None, env_ca, &plain), None);
        assert_eq!(
            args(&[]).console_tls(Some("http://h:8000"), env_ca, &plain),
            None
        );
        assert_eq!(
            args(&[]).console_tls(Some("https://h:8000"), env_ca, &plain),
            Some(ConsoleTls::CaFile("/env-ca.pem".into()))
        );
        assert_eq!(
            args(&["--tls"]).console_tls(None, None, &plain),
            Some(ConsoleTls::SystemRoots)
        );
        assert_eq!(
            args(&["--tls"]).console_tls(None, env_ca, &plain),
            Some(ConsoleTls::CaFile("/env-ca.pem".into()))
        );
        assert_eq!(
            args(&["--cacert", "/ca.pem"]).console_tls(Some("http://h"), env_ca, &plain),
            Some(ConsoleTls::CaFile("/ca.pem".into()))
        );
        let local = xend::config::XendConfig {
            tls_cert: Some("/etc/xen/cert.pem".into()),
            ..xend::config::XendConfig::default()
        };
        assert_eq!(
            args(&[]).console_tls(None, None, &local),
            Some(ConsoleTls::Pinned("/etc/xen/cert.pem".into()))
        );
    }
}
