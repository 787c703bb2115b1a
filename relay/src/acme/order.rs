//! One certificate order (RFC 8555 §7.4), proven by TLS-ALPN-01 (RFC
//! 8737): for each authorization, a self-signed certificate for the host
//! carrying the key authorization's digest, served to the ACME server's
//! validator on the relay's own listener while the order is pending.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewOrder, OrderStatus, RetryPolicy,
};
use rcgen::{CertificateParams, CustomExtension, DistinguishedName, KeyPair};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;

/// The challenge certificates being served, by host.
pub(super) type Challenges = RwLock<HashMap<String, Arc<CertifiedKey>>>;

/// A certificate issued: its chain and its key, PEM.
pub(super) struct Issued {
    pub chain: String,
    pub key: String,
}

/// Orders a certificate for `host` with `account`, answering its
/// challenges through `challenges`, and waits for it (each wait bounded
/// by instant-acme's retry policy, 30 s).
pub(super) async fn order(
    account: &Account,
    host: &str,
    challenges: &Challenges,
    provider: &CryptoProvider,
) -> Result<Issued, String> {
    let identifiers = [Identifier::Dns(host.to_owned())];
    let mut order = (account.new_order(&NewOrder::new(&identifiers)).await)
        .map_err(|error| format!("new order: {error}"))?;
    let mut authorizations = order.authorizations();
    while let Some(authorization) = authorizations.next().await {
        let mut authorization = authorization.map_err(|error| format!("authorization: {error}"))?;
        match authorization.status {
            AuthorizationStatus::Pending => {}
            // Authorizations are reused for a while after one succeeded.
            AuthorizationStatus::Valid => continue,
            status => return Err(format!("an authorization is {status:?}")),
        }
        let mut challenge = (authorization.challenge(ChallengeType::TlsAlpn01))
            .ok_or("the ACME server offers no tls-alpn-01 challenge")?;
        let digest = challenge.key_authorization().digest();
        let answer = challenge_key(host, digest.as_ref(), provider)?;
        (challenges.write().expect("the challenge map")).insert(host.to_owned(), Arc::new(answer));
        challenge
            .set_ready()
            .await
            .map_err(|error| format!("challenge: {error}"))?;
    }
    let status = order.poll_ready(&RetryPolicy::new()).await;
    challenges.write().expect("the challenge map").remove(host);
    match status.map_err(|error| format!("validation: {error}"))? {
        OrderStatus::Ready => {}
        status => return Err(format!("the order is {status:?} after validation")),
    }
    let key = KeyPair::generate().map_err(|error| error.to_string())?;
    let mut params =
        CertificateParams::new(vec![host.to_owned()]).map_err(|error| error.to_string())?;
    params.distinguished_name = DistinguishedName::new();
    let csr = params
        .serialize_request(&key)
        .map_err(|error| error.to_string())?;
    (order.finalize_csr(csr.der()).await).map_err(|error| format!("finalize: {error}"))?;
    let chain = (order.poll_certificate(&RetryPolicy::new()).await)
        .map_err(|error| format!("certificate: {error}"))?;
    Ok(Issued {
        chain,
        key: key.serialize_pem(),
    })
}

/// The TLS-ALPN-01 answer for `host`: a self-signed certificate for it
/// alone, with the critical `acmeIdentifier` extension holding `digest`
/// (RFC 8737 §3).
fn challenge_key(
    host: &str,
    digest: &[u8],
    provider: &CryptoProvider,
) -> Result<CertifiedKey, String> {
    let mut params =
        CertificateParams::new(vec![host.to_owned()]).map_err(|error| error.to_string())?;
    params.custom_extensions = vec![CustomExtension::new_acme_identifier(digest)];
    let key = KeyPair::generate().map_err(|error| error.to_string())?;
    let cert = params
        .self_signed(&key)
        .map_err(|error| error.to_string())?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    // Not `CertifiedKey::from_der`: its check that key and certificate
    // fit parses the certificate with webpki, which refuses the critical
    // extension the challenge needs.
    let key = (provider.key_provider.load_private_key(key)).map_err(|error| error.to_string())?;
    Ok(CertifiedKey::new(vec![cert.der().clone()], key))
}
