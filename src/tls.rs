//! TLS on the Thrift port (rustls): the server's certificate and key, and for mutual TLS the
//! CAs whose client certificates are accepted, read from PEM files at start-up.
//!
//! One port serves both: a connection whose first byte is 0x16 (a TLS handshake record) is
//! TLS, any other is plain Thrift, which starts with a frame length (0x00 for any frame under
//! 16 MiB) or a protocol byte (0x80 binary, 0x82 compact). [`crate::server`] tells them apart
//! and refuses plaintext when [`Tls::required`] says so.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;
use crate::error::{Error, Result};

/// The first byte of a TLS connection: a handshake record.
pub const HANDSHAKE_RECORD: u8 = 0x16;

/// What the server needs to speak TLS.
pub struct Tls {
    pub acceptor: TlsAcceptor,
    /// Plaintext connections are refused.
    pub required: bool,
    /// Clients must show a certificate (mutual TLS).
    pub mutual: bool,
}

fn certificates(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| Error::config(format!("{key} {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::config(format!(
            "{key} {}: no PEM certificate in it",
            path.display()
        )));
    }
    Ok(certs)
}

impl Tls {
    /// Reads the files of `config`; an error names the key and the file.
    pub fn load(config: &TlsConfig) -> Result<Tls> {
        let chain = certificates("TLS_CERT_FILE", &config.cert_file)?;
        let key = PrivateKeyDer::from_pem_file(&config.key_file).map_err(|e| {
            Error::config(format!(
                "TLS_KEY_FILE {}: no usable PEM private key: {e}",
                config.key_file.display()
            ))
        })?;
        // The ring provider: it builds with a C compiler alone. rustls deprecates it for
        // having no post-quantum key exchange; the aws-lc-rs provider has one, at the price of
        // a much heavier build, and replaces this line when that matters.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::internal("TLS protocol versions").with_source(e))?;
        let builder = match &config.client_ca_file {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let mut roots = RootCertStore::empty();
                for ca in certificates("TLS_CLIENT_CA_FILE", path)? {
                    roots.add(ca).map_err(|e| {
                        Error::config(format!("TLS_CLIENT_CA_FILE {}: {e}", path.display()))
                    })?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|e| {
                            Error::config(format!("TLS_CLIENT_CA_FILE {}: {e}", path.display()))
                        })?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let server = builder.with_single_cert(chain, key).map_err(|e| {
            Error::config(format!(
                "TLS_CERT_FILE {} and TLS_KEY_FILE {} do not make a usable pair: {e}",
                config.cert_file.display(),
                config.key_file.display()
            ))
        })?;
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            required: config.required,
            mutual: config.client_ca_file.is_some(),
        })
    }
}
