//! `expose`'s config file: the settings a user gives every run (the
//! relay, the token, the relay's CA) kept out of the command line, where
//! a token would show in the process list and the shell's history.
//! Flags and `PTTH_RELAY` win over the file (docs/relay.md, "expose's
//! config file").

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::cli::ExposeArgs;

/// The file, as written: kebab-case keys, as the flags are spelled.
#[derive(Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct File {
    relay: Option<Relays>,
    token: Option<String>,
    name: Option<String>,
    relay_ca: Option<PathBuf>,
    strip_prefix: Option<bool>,
}

/// `relay = "URL"`, or a list of a cluster's nodes.
#[derive(Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
enum Relays {
    One(String),
    Many(Vec<String>),
}

/// The default file: `$XDG_CONFIG_HOME/ptth-relay/expose.toml`, else
/// `~/.config/ptth-relay/expose.toml`, as the XDG base directory rules
/// put a user's settings.
pub fn default_path() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|dir| !dir.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME")?).join(".config"),
    };
    Some(base.join("ptth-relay").join("expose.toml"))
}

/// Fills in what `args` leaves unset from `--config FILE`, or from the
/// default file when there is one. A named file that cannot be read is an
/// error; a missing default file is not.
pub fn apply(args: &mut ExposeArgs) -> Result<(), String> {
    let (path, named) = match &args.config {
        Some(path) => (path.clone(), true),
        None => match default_path() {
            Some(path) => (path, false),
            None => return Ok(()),
        },
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if !named && error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(format!("{}: {error}", path.display())),
    };
    let file: File =
        toml::from_str(&text).map_err(|error| format!("{}: {error}", path.display()))?;
    if file.token.is_some() {
        warn_if_others_may_read(&path);
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    merge(args, file, dir);
    Ok(())
}

/// `file` under `args`: a flag given wins; a relative path in the file is
/// read from the file's directory.
fn merge(args: &mut ExposeArgs, file: File, dir: &Path) {
    if args.relay.is_empty() {
        args.relay = match file.relay {
            Some(Relays::One(relay)) => vec![relay],
            Some(Relays::Many(relays)) => relays,
            None => Vec::new(),
        };
    }
    args.token = args.token.take().or(file.token);
    args.name = args.name.take().or(file.name);
    args.relay_ca = (args.relay_ca.take()).or(file.relay_ca.map(|ca| dir.join(ca)));
    args.strip_prefix |= file.strip_prefix.unwrap_or(false);
}

/// A token in a file others may read is a name anyone on the machine may
/// take over: say so, as ssh does of a private key.
fn warn_if_others_may_read(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(metadata) = std::fs::metadata(path)
            && metadata.permissions().mode() & 0o077 != 0
        {
            eprintln!(
                "ptth-relay: warning: {} holds a token and others may read it (chmod 600 it)",
                path.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Result<File, String> {
        toml::from_str(text).map_err(|error| error.to_string())
    }

    #[test]
    fn the_file_takes_the_flags_names_and_nothing_else() {
        let one = parsed("relay = \"relay.example:8080\"\ntoken = \"t\"\nrelay-ca = \"ca.pem\"");
        assert_eq!(
            one.unwrap(),
            File {
                relay: Some(Relays::One("relay.example:8080".into())),
                token: Some("t".into()),
                relay_ca: Some("ca.pem".into()),
                ..File::default()
            }
        );
        let many = parsed("relay = [\"a:1\", \"b:2\"]\nstrip-prefix = true").unwrap();
        assert_eq!(
            many.relay,
            Some(Relays::Many(vec!["a:1".into(), "b:2".into()]))
        );
        assert_eq!(many.strip_prefix, Some(true));
        let unknown = parsed("relays = \"a\"").unwrap_err();
        assert!(unknown.contains("unknown field `relays`"), "{unknown}");
    }

    #[test]
    fn flags_win_and_the_file_fills_the_rest() {
        for (relay_flag, token_flag, relay, token) in [
            (None, None, "from-file:1", "file-token"),
            (Some("flag:2"), None, "flag:2", "file-token"),
            (None, Some("flag-token"), "from-file:1", "flag-token"),
        ] {
            let mut args = ExposeArgs {
                relay: relay_flag.map(str::to_owned).into_iter().collect(),
                token: token_flag.map(str::to_owned),
                ..ExposeArgs::default()
            };
            let file = File {
                relay: Some(Relays::One("from-file:1".into())),
                token: Some("file-token".into()),
                relay_ca: Some("ca.pem".into()),
                ..File::default()
            };
            merge(&mut args, file, Path::new("/home/u/.config/ptth-relay"));
            assert_eq!(args.relay, [relay]);
            assert_eq!(args.token.as_deref(), Some(token));
            let ca = Path::new("/home/u/.config/ptth-relay/ca.pem");
            assert_eq!(args.relay_ca.as_deref(), Some(ca));
        }
    }
}
