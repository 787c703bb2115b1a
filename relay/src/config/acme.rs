//! `--acme-*` and the `[acme]` table: where TLS certificates are ordered.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{Seconds, or};
use crate::acme::AcmeSettings;
use crate::cli::ServeArgs;
use crate::settings::Routing;

/// The `[acme]` table; the flags win.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct AcmeFile {
    directory: Option<String>,
    email: Option<String>,
    cache: Option<PathBuf>,
    ca: Option<PathBuf>,
    /// How long before expiry a certificate is renewed.
    renew_before: Option<Seconds>,
    /// How often certificates are checked for renewal.
    renew_check: Option<Seconds>,
}

/// The ACME settings, when a directory is given: it needs the relay's
/// domain and a cache directory.
pub(super) fn acme(
    args: &ServeArgs,
    file: &AcmeFile,
    domain: Option<String>,
    routing: &Routing,
) -> Result<Option<AcmeSettings>, String> {
    let Some(directory) = args.acme_directory.clone().or(file.directory.clone()) else {
        return Ok(None);
    };
    let domain = domain.ok_or("--acme-directory needs --domain: the relay's own host")?;
    let cache = (args.acme_cache.clone().or(file.cache.clone()))
        .ok_or("--acme-directory needs --acme-cache: where certificates are kept")?;
    Ok(Some(AcmeSettings {
        directory,
        email: args.acme_email.clone().or(file.email.clone()),
        cache,
        ca: args.acme_ca.clone().or(file.ca.clone()),
        domain,
        names: matches!(routing, Routing::Host { .. }),
        renew_before: or(file.renew_before, Duration::from_secs(30 * 24 * 3600)),
        renew_check: or(file.renew_check, Duration::from_secs(12 * 3600)),
    }))
}
