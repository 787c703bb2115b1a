//! The certificates the relay serves, by host name, and the cache
//! directory that keeps them and the ACME account across restarts:
//! `account.json`, and `<host>.crt` (the chain) with `<host>.key`.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::sign::CertifiedKey;

/// A certificate ready to serve, and when it stops being valid.
#[derive(Debug, Clone)]
pub(super) struct Served {
    pub key: Arc<CertifiedKey>,
    pub not_after: SystemTime,
}

/// Certificates by host, in memory and in the cache directory.
#[derive(Debug)]
pub(super) struct Store {
    dir: PathBuf,
    provider: Arc<CryptoProvider>,
    served: RwLock<HashMap<String, Served>>,
}

impl Store {
    /// The store of `dir`, with every certificate found there loaded.
    pub fn open(dir: &Path, provider: Arc<CryptoProvider>) -> Result<Store, String> {
        std::fs::create_dir_all(dir).map_err(|error| format!("{}: {error}", dir.display()))?;
        let store = Store {
            dir: dir.to_owned(),
            provider,
            served: RwLock::default(),
        };
        let entries =
            std::fs::read_dir(dir).map_err(|error| format!("{}: {error}", dir.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(host) = path
                .file_name()
                .and_then(|name| name.to_str()?.strip_suffix(".crt"))
            else {
                continue;
            };
            let chain =
                std::fs::read(&path).map_err(|error| format!("{}: {error}", path.display()))?;
            let key = std::fs::read(path.with_extension("key"))
                .map_err(|error| format!("{}: {error}", path.display()))?;
            let served = store
                .parse(&chain, &key)
                .map_err(|error| format!("{}: {error}", path.display()))?;
            store.insert(host, served);
        }
        Ok(store)
    }

    /// The certificate for `host`, if there is one.
    pub fn get(&self, host: &str) -> Option<Served> {
        self.served
            .read()
            .expect("the certificate map")
            .get(host)
            .cloned()
    }

    /// Every host with a certificate, and when each expires.
    pub fn expiries(&self) -> Vec<(String, SystemTime)> {
        let served = self.served.read().expect("the certificate map");
        served
            .iter()
            .map(|(host, served)| (host.clone(), served.not_after))
            .collect()
    }

    /// Keeps `chain` and `key` (PEM) for `host`, on disk first, then
    /// serves them.
    pub fn keep(&self, host: &str, chain: &str, key: &str) -> Result<Served, String> {
        let served = self.parse(chain.as_bytes(), key.as_bytes())?;
        write(&self.dir.join(format!("{host}.key")), key.as_bytes())?;
        write(&self.dir.join(format!("{host}.crt")), chain.as_bytes())?;
        self.insert(host, served.clone());
        Ok(served)
    }

    /// The account's credentials, if an earlier run kept them.
    pub fn account(&self) -> Option<Vec<u8>> {
        std::fs::read(self.dir.join("account.json")).ok()
    }

    /// Keeps the account's credentials.
    pub fn keep_account(&self, json: &[u8]) -> Result<(), String> {
        write(&self.dir.join("account.json"), json)
    }

    fn insert(&self, host: &str, served: Served) {
        let mut map = self.served.write().expect("the certificate map");
        map.insert(host.to_owned(), served);
    }

    fn parse(&self, chain: &[u8], key: &[u8]) -> Result<Served, String> {
        let chain = CertificateDer::pem_slice_iter(chain)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| error.to_string())?;
        let leaf = chain.first().ok_or("no certificate")?;
        let not_after = not_after(leaf)?;
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key)
            .map_err(|error| error.to_string())?;
        let key = CertifiedKey::from_der(chain, key, &self.provider)
            .map_err(|error| error.to_string())?;
        Ok(Served {
            key: Arc::new(key),
            not_after,
        })
    }
}

/// When `cert` stops being valid.
fn not_after(cert: &CertificateDer<'_>) -> Result<SystemTime, String> {
    let (_, parsed) =
        x509_parser::parse_x509_certificate(cert).map_err(|error| error.to_string())?;
    let seconds = parsed.validity().not_after.timestamp();
    let seconds = u64::try_from(seconds).map_err(|_| "a certificate that expired before 1970")?;
    Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds))
}

/// Writes `bytes` to `path` whole or not at all (a new file renamed over
/// the old), readable by the owner only: keys are secrets.
fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |error: std::io::Error| format!("{}: {error}", path.display());
    let partial = path.with_extension("partial");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&partial)
        .map_err(fail)?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(fail)?;
    std::fs::rename(&partial, path).map_err(fail)
}
