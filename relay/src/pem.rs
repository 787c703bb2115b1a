//! PEM files: certificate chains, private keys and trusted roots, read
//! with the file's name in every error.

use std::path::Path;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

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

/// Adds the certificates in `path` to `roots`.
pub fn add_roots(roots: &mut RootCertStore, path: &Path) -> Result<(), String> {
    for cert in chain(path)? {
        roots
            .add(cert)
            .map_err(|error| format!("{}: {error}", path.display()))?;
    }
    Ok(())
}
