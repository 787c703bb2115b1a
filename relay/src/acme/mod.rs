//! Certificates from an ACME server (RFC 8555), proven by TLS-ALPN-01 on
//! the relay's own listener (docs/relay.md, "Automatic HTTPS"): one for
//! the relay's domain at start, and with host routing one for each
//! *claimed* name's host when a client first asks for it, so a stranger
//! cannot make the relay order certificates for hosts nobody uses.
//! Certificates and the account are kept in a cache directory, renewed
//! before they expire, and reused after a restart.

mod budget;
mod http;
mod order;
mod store;

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use instant_acme::{Account, AccountCredentials, NewAccount};
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{Acceptor, ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::TcpStream;
use tokio_rustls::LazyConfigAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::{info, warn};

use self::budget::Budget;
use self::order::Challenges;
use self::store::Store;

/// The ALPN protocol of TLS-ALPN-01 validation (RFC 8737 §6.2).
const ACME_TLS: &[u8] = b"acme-tls/1";

/// How long a client's handshake may wait for its host's first
/// certificate.
const ORDER_WAIT: Duration = Duration::from_secs(60);

/// How long after a failed order the same host is not ordered again.
const FAILED_PAUSE: Duration = Duration::from_secs(60);

/// Where and how certificates are obtained.
#[derive(Debug, Clone)]
pub struct AcmeSettings {
    /// The ACME server's directory URL.
    pub directory: String,
    /// The account's contact address, if any.
    pub email: Option<String>,
    /// Where certificates and the account are kept.
    pub cache: PathBuf,
    /// Certificates, PEM, to trust in the ACME server's own HTTPS besides
    /// the Mozilla roots.
    pub ca: Option<PathBuf>,
    /// The relay's domain: its certificate is ordered at start.
    pub domain: String,
    /// Whether `<name>.<domain>` hosts get certificates on demand.
    pub names: bool,
    /// How long before expiry a certificate is renewed. Default is 30
    /// days.
    pub renew_before: Duration,
    /// How often certificates are checked for renewal. Default is 12
    /// hours.
    pub renew_check: Duration,
}

/// Whether a name is claimed now, as the relay's name table says.
pub type Claimed = Box<dyn Fn(&str) -> bool + Send + Sync>;

/// The ACME side of a relay's TLS.
pub struct Acme {
    settings: AcmeSettings,
    claimed: Claimed,
    store: Store,
    challenges: Arc<Challenges>,
    /// For public clients, and for validators (`acme-tls/1` only).
    config: Arc<ServerConfig>,
    validation: Arc<ServerConfig>,
    account: tokio::sync::Mutex<Option<Account>>,
    /// One order at a time per host; the others wait for it.
    orders: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    failed: Mutex<HashMap<String, tokio::time::Instant>>,
    budget: Mutex<Budget>,
    /// For the tasks it spawns.
    me: std::sync::Weak<Acme>,
}

impl std::fmt::Debug for Acme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acme")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Acme {
    /// Opens the cache and starts the task that orders the domain's
    /// certificate and renews them all. `claimed` says which names may
    /// have one.
    pub fn start(settings: AcmeSettings, claimed: Claimed) -> Result<Arc<Acme>, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let store = Store::open(&settings.cache, provider.clone())?;
        let challenges = Arc::new(Challenges::default());
        let acme = Arc::new_cyclic(|me: &std::sync::Weak<Acme>| Acme {
            config: server_config(
                &provider,
                Arc::new(Served(me.clone())),
                &[b"h2", b"http/1.1"],
            ),
            validation: server_config(
                &provider,
                Arc::new(Validating(challenges.clone())),
                &[ACME_TLS],
            ),
            settings,
            claimed,
            store,
            challenges,
            account: tokio::sync::Mutex::new(None),
            orders: Mutex::default(),
            failed: Mutex::default(),
            budget: Mutex::new(Budget::new(20, Duration::from_secs(60))),
            me: me.clone(),
        });
        tokio::spawn(renew(Arc::downgrade(&acme)));
        Ok(acme)
    }

    /// Takes a TLS connection: a validator gets its challenge answer, a
    /// client the certificate of the host it named, ordered first if it
    /// may have one and has none yet.
    pub async fn accept(&self, tcp: TcpStream) -> io::Result<TlsStream<TcpStream>> {
        let start = LazyConfigAcceptor::new(Acceptor::default(), tcp).await?;
        let hello = start.client_hello();
        let validating = hello
            .alpn()
            .is_some_and(|mut alpn| alpn.any(|p| p == ACME_TLS));
        let host = hello.server_name().map(str::to_ascii_lowercase);
        if validating {
            return start.into_stream(self.validation.clone()).await;
        }
        if let Some(host) = host
            && self.store.get(&host).is_none()
            && self.may_order(&host)
        {
            // The order runs as a task of its own: a client that gives up
            // (or the server's handshake timeout) must not cut it off
            // halfway, with its challenge still served.
            if let Some(me) = self.me.upgrade() {
                let order = tokio::spawn(async move { me.obtain(&host).await });
                let _ = tokio::time::timeout(ORDER_WAIT, order).await;
            }
        }
        start.into_stream(self.config.clone()).await
    }

    /// Whether `host` may have a certificate: the domain, or with host
    /// routing a claimed name's host.
    fn may_order(&self, host: &str) -> bool {
        let domain = &self.settings.domain;
        if host == domain {
            return true;
        }
        let name = host
            .strip_suffix(domain.as_str())
            .and_then(|name| name.strip_suffix('.'));
        self.settings.names
            && name.is_some_and(|name| crate::names::valid_name(name) && (self.claimed)(name))
    }

    /// Orders a certificate for `host` unless another task is ordering
    /// it, an order for it failed a moment ago, or the order budget is
    /// spent; waits for the order another task runs.
    async fn obtain(&self, host: &str) {
        let lock = {
            let mut orders = self.orders.lock().expect("the order map");
            orders.entry(host.to_owned()).or_default().clone()
        };
        let guard = lock.lock().await;
        let fresh = self
            .store
            .get(host)
            .is_some_and(|served| !self.due(served.not_after));
        if !fresh && self.may_try(host) {
            let started = tokio::time::Instant::now();
            info!(%host, "ordering a certificate");
            match self.order(host).await {
                Ok(()) => info!(%host, elapsed = ?started.elapsed(), "certificate obtained"),
                Err(error) => {
                    warn!(%host, "no certificate: {error}");
                    let mut failed = self.failed.lock().expect("the failure map");
                    failed.retain(|_, at| at.elapsed() < FAILED_PAUSE);
                    failed.insert(host.to_owned(), tokio::time::Instant::now());
                }
            }
        }
        drop(guard);
        let mut orders = self.orders.lock().expect("the order map");
        if Arc::strong_count(&lock) <= 2 {
            orders.remove(host);
        }
    }

    /// Whether an order for `host` may go out now.
    fn may_try(&self, host: &str) -> bool {
        let failed = self.failed.lock().expect("the failure map");
        if failed
            .get(host)
            .is_some_and(|at| at.elapsed() < FAILED_PAUSE)
        {
            return false;
        }
        self.budget.lock().expect("the order budget").take()
    }

    async fn order(&self, host: &str) -> Result<(), String> {
        let account = self.account().await?;
        let provider = rustls::crypto::ring::default_provider();
        let issued = order::order(&account, host, &self.challenges, &provider).await?;
        self.store.keep(host, &issued.chain, &issued.key)?;
        Ok(())
    }

    /// The account: from the cache, or made on the ACME server and kept.
    async fn account(&self) -> Result<Account, String> {
        let mut account = self.account.lock().await;
        if let Some(account) = account.as_ref() {
            return Ok(account.clone());
        }
        let http = || http::AcmeHttp::new(self.settings.ca.as_deref()).map(Box::new);
        let made = match self.store.account() {
            Some(json) => {
                let credentials: AccountCredentials =
                    serde_json::from_slice(&json).map_err(|error| error.to_string())?;
                let builder = Account::builder_with_http(http()?);
                (builder.from_credentials(credentials).await).map_err(|error| error.to_string())?
            }
            None => self.new_account(http()?).await?,
        };
        *account = Some(made.clone());
        Ok(made)
    }

    async fn new_account(&self, http: Box<http::AcmeHttp>) -> Result<Account, String> {
        let contact = self
            .settings
            .email
            .as_ref()
            .map(|email| format!("mailto:{email}"));
        let contact: Vec<&str> = contact.iter().map(String::as_str).collect();
        let new = NewAccount {
            contact: &contact,
            terms_of_service_agreed: true,
            only_return_existing: false,
        };
        let builder = Account::builder_with_http(http);
        let (account, credentials) = (builder.create(&new, self.settings.directory.clone(), None))
            .await
            .map_err(|error| format!("ACME account: {error}"))?;
        let json = serde_json::to_vec(&credentials).map_err(|error| error.to_string())?;
        self.store.keep_account(&json)?;
        Ok(account)
    }

    /// Whether a certificate that ends at `not_after` is due for renewal.
    fn due(&self, not_after: SystemTime) -> bool {
        SystemTime::now() + self.settings.renew_before >= not_after
    }
}

/// Orders the domain's certificate when it has none, then checks every
/// certificate for renewal, every `renew_check`, while the relay lives.
async fn renew(acme: std::sync::Weak<Acme>) {
    loop {
        let interval = {
            let Some(acme) = acme.upgrade() else {
                return;
            };
            let domain = acme.settings.domain.clone();
            let mut hosts: Vec<String> = (acme.store.expiries().into_iter())
                .filter(|(host, not_after)| acme.due(*not_after) && acme.may_order(host))
                .map(|(host, _)| host)
                .collect();
            if acme.store.get(&domain).is_none() && !hosts.contains(&domain) {
                hosts.push(domain);
            }
            info!(due = hosts.len(), "certificates checked");
            for host in hosts {
                acme.obtain(&host).await;
            }
            // Without its own certificate the relay serves no one: try
            // again soon, not at the next renewal check.
            match acme.store.get(&acme.settings.domain) {
                Some(_) => acme.settings.renew_check,
                None => FAILED_PAUSE,
            }
        };
        tokio::time::sleep(interval).await;
    }
}

fn server_config(
    provider: &Arc<CryptoProvider>,
    resolver: Arc<dyn ResolvesServerCert>,
    alpn: &[&[u8]],
) -> Arc<ServerConfig> {
    let mut config = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring's default protocol versions")
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    Arc::new(config)
}

/// The certificates for public clients: the host's, or the domain's for
/// a client that names none.
#[derive(Debug)]
struct Served(std::sync::Weak<Acme>);

impl ResolvesServerCert for Served {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let acme = self.0.upgrade()?;
        let host = hello
            .server_name()
            .map_or_else(|| acme.settings.domain.clone(), str::to_ascii_lowercase);
        acme.store.get(&host).map(|served| served.key)
    }
}

/// The challenge answers for validators.
#[derive(Debug)]
struct Validating(Arc<Challenges>);

impl ResolvesServerCert for Validating {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let host = hello.server_name()?.to_ascii_lowercase();
        self.0
            .read()
            .expect("the challenge map")
            .get(&host)
            .cloned()
    }
}
