//! PEM files: certificate chains, private keys and trusted roots, read
//! with the file's name in every error, and the TLS client settings that
//! trust them.

use std::path::Path;

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

/// The certificates in `path`, in order.
pub fn chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|error| format!("{}: {error}", path.display()))
}

/// The private key in `path`.
pub fn key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|error| format!("{}: {error}", path.display()))
}

/// TLS client settings (rustls, ring) trusting the certificates in
/// `extra`, beside the Mozilla roots when `mozilla` says so.
pub fn client_config(mozilla: bool, extra: Option<&Path>) -> Result<ClientConfig, String> {
    let mut roots = RootCertStore::empty();
    if mozilla {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    if let Some(extra) = extra {
        add_roots(&mut roots, extra)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| error.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Adds the certificates in `path` to `roots`.
pub fn add_roots(roots: &mut RootCertStore, path: &Path) -> Result<(), String> {
    for cert in chain(path)? {
        roots
            .add(cert)
            .map_err(|error| format!("{}: {error}", path.display()))?;
    }
    Ok(())
}
