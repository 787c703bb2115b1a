//! TLS for `serve`: a certificate chain and key from PEM files, or
//! certificates from an ACME server.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::acme::Acme;

/// A TLS acceptor for the chain in `cert` and the key in `key`, offering
/// `h2` and `http/1.1` to public clients.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, String> {
    let chain = crate::pem::chain(cert)?;
    let key = crate::pem::key(key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| error.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|error| format!("the certificate and key do not fit: {error}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A TLS client that trusts the certificates in the PEM file `roots`,
/// for the nodes of a cluster reaching each other at `https://` URLs.
pub fn client(roots: &Path) -> Result<Arc<rustls::ClientConfig>, String> {
    Ok(Arc::new(crate::pem::client_config(false, Some(roots))?))
}

/// Where the relay's TLS connections get their certificate: fixed, PEM
/// files that can be read again, or an ACME server. Cheap to clone: a
/// clone kept by the caller reloads the one the server uses.
#[derive(Clone)]
pub struct Certificates(Arc<Source>);

enum Source {
    Fixed(TlsAcceptor),
    Files {
        cert: PathBuf,
        key: PathBuf,
        current: RwLock<TlsAcceptor>,
    },
    Acme(Arc<Acme>),
}

impl Certificates {
    /// The chain in `cert` and the key in `key`, read again by
    /// [`reload`](Certificates::reload).
    pub fn files(cert: &Path, key: &Path) -> Result<Certificates, String> {
        Ok(Certificates(Arc::new(Source::Files {
            cert: cert.to_owned(),
            key: key.to_owned(),
            current: RwLock::new(acceptor(cert, key)?),
        })))
    }

    /// Certificates from an ACME server.
    pub fn acme(acme: Arc<Acme>) -> Certificates {
        Certificates(Arc::new(Source::Acme(acme)))
    }

    /// Reads the PEM files again, and says whether there were files to
    /// read; a pair that does not load leaves the last one in use.
    /// Connections already open keep theirs.
    pub fn reload(&self) -> Result<bool, String> {
        let Source::Files { cert, key, current } = &*self.0 else {
            return Ok(false);
        };
        let fresh = acceptor(cert, key)?;
        *current.write().expect("the TLS acceptor") = fresh;
        Ok(true)
    }

    /// The TLS handshake of a new connection.
    pub(crate) async fn accept(&self, tcp: TcpStream) -> io::Result<TlsStream<TcpStream>> {
        match &*self.0 {
            Source::Fixed(acceptor) => acceptor.accept(tcp).await,
            Source::Files { current, .. } => {
                let acceptor = current.read().expect("the TLS acceptor").clone();
                acceptor.accept(tcp).await
            }
            Source::Acme(acme) => acme.accept(tcp).await,
        }
    }
}

impl From<TlsAcceptor> for Certificates {
    fn from(acceptor: TlsAcceptor) -> Self {
        Certificates(Arc::new(Source::Fixed(acceptor)))
    }
}

impl std::fmt::Debug for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &*self.0 {
            Source::Fixed(_) => f.write_str("Certificates::Fixed"),
            Source::Files { cert, key, .. } => f
                .debug_struct("Certificates::Files")
                .field("cert", cert)
                .field("key", key)
                .finish(),
            Source::Acme(acme) => f.debug_tuple("Certificates::Acme").field(acme).finish(),
        }
    }
}
