//! TLS for `https` URLs, with rustls.

use std::sync::{Arc, OnceLock};

use rustls::ClientConfig;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::Error;

/// The ALPN id offered at the TLS layer. The upgrade request is HTTP/1.1
/// whatever the transposed connection will speak (the `ALPN` header of the
/// upgrade chooses that), so a server must not pick `h2` here.
pub(super) const TLS_ALPN: &[u8] = b"http/1.1";

/// Mozilla's root certificates, the ring provider, and `http/1.1` as the
/// only ALPN protocol; built once.
pub(super) fn default_config() -> Arc<ClientConfig> {
    static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    CONFIG.get_or_init(|| config_trusting([], true)).clone()
}

/// The default settings with `roots` trusted, beside Mozilla's root
/// certificates or instead of them.
pub(super) fn config_trusting(
    roots: impl IntoIterator<Item = CertificateDer<'static>>,
    mozilla: bool,
) -> Arc<ClientConfig> {
    let mut store = rustls::RootCertStore::empty();
    if mozilla {
        store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    store.add_parsable_certificates(roots);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default TLS versions")
        .with_root_certificates(store)
        .with_no_client_auth();
    config.alpn_protocols = vec![TLS_ALPN.to_vec()];
    Arc::new(config)
}

pub(super) async fn connect(
    tcp: TcpStream,
    host: &str,
    config: Arc<ClientConfig>,
) -> Result<TlsStream<TcpStream>, Error> {
    let name = ServerName::try_from(host.to_owned()).map_err(|error| Error::InvalidUrl {
        url: host.to_owned(),
        reason: format!("not a TLS server name: {error}"),
    })?;
    Ok(TlsConnector::from(config).connect(name, tcp).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_offers_only_http1_at_the_tls_layer() {
        assert_eq!(default_config().alpn_protocols, [TLS_ALPN.to_vec()]);
        assert!(Arc::ptr_eq(&default_config(), &default_config()));
    }
}
