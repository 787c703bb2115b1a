//! `serve`'s settings from flags and an optional TOML file; flags win.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::cli::{RoutingMode, ServeArgs};
use crate::names::{Policy, valid_name};
use crate::relay::{Routing, Settings};

/// The TOML file: the flags' names, with `[names]` as a table of
/// `name = "token"`.
///
/// ```toml
/// listen = "0.0.0.0:8080"
/// routing = "host"
/// domain = "relay.example"
/// closed = true
/// [names]
/// lamp = "s3cret"
/// ```
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct File {
    listen: Option<SocketAddr>,
    routing: Option<RoutingMode>,
    domain: Option<String>,
    access: Option<String>,
    #[serde(default)]
    names: HashMap<String, String>,
    #[serde(default)]
    closed: bool,
    strip_prefix: Option<bool>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    metrics: Option<SocketAddr>,
}

/// Everything `serve` runs with.
#[derive(Debug)]
pub struct Serve {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The relay's settings.
    pub settings: Settings,
    /// The certificate chain and key files, for TLS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Where to serve metrics.
    pub metrics: Option<SocketAddr>,
}

impl Serve {
    /// Merges the flags over the file named by `--config`, if any.
    pub fn from_args(args: ServeArgs) -> Result<Serve, String> {
        let file = match &args.config {
            Some(path) => read(path)?,
            None => File::default(),
        };
        for name in file.names.keys() {
            if !valid_name(name) {
                return Err(format!("{name:?} in [names] is not a valid name"));
            }
        }
        let mut pinned = file.names;
        pinned.extend(args.names);
        let routing = match args.routing.or(file.routing).unwrap_or(RoutingMode::Path) {
            RoutingMode::Path => Routing::Path,
            RoutingMode::Host => Routing::Host {
                domain: args
                    .domain
                    .or(file.domain)
                    .ok_or("--routing host needs --domain")?
                    .to_ascii_lowercase(),
            },
        };
        let access = args
            .access
            .or(file.access)
            .unwrap_or_else(|| "/reversehttp".to_owned());
        if !access.starts_with('/') {
            return Err(format!("--access {access:?} must start with /"));
        }
        let tls = match (
            args.tls_cert.or(file.tls_cert),
            args.tls_key.or(file.tls_key),
        ) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => return Err("TLS needs both a certificate and a key".to_owned()),
        };
        let settings = Settings {
            routing,
            access,
            strip_prefix: file.strip_prefix.unwrap_or(false),
            policy: Policy {
                pinned,
                closed: args.closed || file.closed,
            },
            tls: tls.is_some(),
            ..Settings::default()
        };
        Ok(Serve {
            listen: args
                .listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            settings,
            tls,
            metrics: args.metrics.or(file.metrics),
        })
    }
}

fn read(path: &Path) -> Result<File, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    toml::from_str(&text).map_err(|error| format!("{}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("ptth-relay-{}.toml", crate::names::random_token()));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn flags_win_over_the_file() {
        let path = file(
            "listen = \"127.0.0.1:9000\"\nrouting = \"host\"\ndomain = \"Relay.Example\"\nclosed = true\n[names]\nlamp = \"a\"\nfan = \"b\"\n",
        );
        let args = ServeArgs {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            names: vec![("lamp".into(), "flag".into())],
            config: Some(path.clone()),
            ..ServeArgs::default()
        };
        let serve = Serve::from_args(args).unwrap();
        std::fs::remove_file(path).unwrap();
        assert_eq!(serve.listen.port(), 0);
        assert_eq!(
            serve.settings.routing,
            Routing::Host {
                domain: "relay.example".into()
            }
        );
        assert!(serve.settings.policy.closed);
        assert_eq!(serve.settings.policy.pinned["lamp"], "flag");
        assert_eq!(serve.settings.policy.pinned["fan"], "b");
    }

    #[test]
    fn bad_settings_are_named() {
        let host_without_domain = ServeArgs {
            routing: Some(RoutingMode::Host),
            ..ServeArgs::default()
        };
        assert!(
            Serve::from_args(host_without_domain)
                .unwrap_err()
                .contains("--domain")
        );
        let path = file("colour = \"blue\"\n");
        let unknown = ServeArgs {
            config: Some(path.clone()),
            ..ServeArgs::default()
        };
        let error = Serve::from_args(unknown).unwrap_err();
        std::fs::remove_file(path).unwrap();
        assert!(error.contains("colour"), "{error}");
    }
}
