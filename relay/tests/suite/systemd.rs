//! The systemd units of docs/relay.md, "Running for good: systemd", as
//! the docs print them: `systemd-analyze verify` reads each, and the
//! binary runs with each unit's `ExecStart=` arguments, `${VAR}`s
//! expanded from the directories systemd would give the service.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;

use http::StatusCode;
use hyper::service::service_fn;

use crate::support::binary::{self, Log, announced};
use crate::support::pebble::{Pebble, free_port, scratch, served};
use crate::support::{Reply, describe, get, http1_origin};

const DOCS: &str = include_str!("../../../docs/relay.md");
const PROGRAM: &str = "/usr/local/bin/ptth-relay";

/// The `ini` block of the docs whose first line is `# PATH`.
fn unit(path: &str) -> String {
    let heading = format!("```ini\n# {path}\n");
    let start = DOCS
        .find(&heading)
        .unwrap_or_else(|| panic!("docs/relay.md has no unit {path}"));
    let body = &DOCS[start + "```ini\n".len()..];
    body[..body.find("```").unwrap()].to_owned()
}

/// The arguments of the unit's `ExecStart=` after the program, with each
/// `${VAR}` replaced from `env`, as systemd expands them.
fn arguments(unit: &str, env: &[(&str, &str)]) -> Vec<String> {
    let line = unit
        .lines()
        .find_map(|line| line.strip_prefix("ExecStart="))
        .expect("an ExecStart= line");
    let mut words = line.split_whitespace();
    assert_eq!(words.next(), Some(PROGRAM));
    words
        .map(|word| {
            env.iter().fold(word.to_owned(), |word, (name, value)| {
                word.replace(&format!("${{{name}}}"), value)
            })
        })
        .inspect(|word| assert!(!word.contains("${"), "unexpanded: {word}"))
        .collect()
}

/// `systemd-analyze verify` on the unit, its program swapped for the
/// binary under test (verify checks that it can be executed): no error
/// and no warning, such as an unknown or misspelt key.
fn verify(unit: &str, file_name: &str) {
    let dir = scratch("systemd-unit");
    let file = dir.join(file_name);
    std::fs::write(
        &file,
        unit.replace(PROGRAM, env!("CARGO_BIN_EXE_ptth-relay")),
    )
    .unwrap();
    let output = std::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&file)
        .output()
        .unwrap_or_else(|error| {
            panic!("systemd-analyze does not run ({error}): apt-get install systemd")
        });
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.is_empty(),
        "{file_name}: {stderr}"
    );
}

fn path(dir: &Path) -> &str {
    dir.to_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_serve_unit_serves_https_with_certificates_in_the_cache_systemd_gives() {
    let unit = unit("/etc/systemd/system/ptth-relay.service");
    verify(&unit, "ptth-relay.service");
    let port = free_port();
    let pebble = Pebble::start(port).await;
    let root = pebble.root().await;
    let (configuration, cache) = (scratch("systemd-etc"), scratch("systemd-cache"));
    let config = format!(
        "listen = \"127.0.0.1:{port}\"\nrouting = \"host\"\ndomain = \"relay.test\"\n\
         [acme]\ndirectory = \"{}\"\nca = \"{}\"\nemail = \"ops@relay.test\"\n",
        pebble.directory,
        path(&pebble.ca),
    );
    std::fs::write(configuration.join("relay.toml"), config).unwrap();
    let env = [
        ("CONFIGURATION_DIRECTORY", path(&configuration)),
        ("CACHE_DIRECTORY", path(&cache)),
    ];
    let args = arguments(&unit, &env);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut relay = binary::run_with(&args, Stdio::piped(), &env);
    let mut log = Log::of(&mut relay);
    let listening = announced(&mut relay).await;
    assert_eq!(listening, format!("listening on https://127.0.0.1:{port}"));
    log.until("certificate obtained host=relay.test").await;
    served(port, "relay.test", &root)
        .await
        .expect("a certificate");
    let kept = std::fs::read_dir(&cache).unwrap().count();
    assert!(kept > 0, "nothing kept in CACHE_DIRECTORY");
    // ExecReload=: what `systemctl reload` sends.
    binary::signal(&relay, "HUP");
    log.until("config reloaded").await;
}

#[tokio::test]
async fn the_expose_unit_exposes_its_port_with_the_config_handed_over_as_a_credential() {
    let unit = unit("/etc/systemd/system/ptth-expose.service");
    verify(&unit, "ptth-expose.service");
    let mut serve = binary::run(&["serve", "--listen", "127.0.0.1:0"], Stdio::null());
    let line = announced(&mut serve).await;
    let url = line.strip_prefix("listening on ").unwrap().to_owned();
    // systemd's credentials are the service's alone: mode 400.
    let credentials = scratch("systemd-credentials");
    let file = credentials.join("expose.toml");
    let config = format!("relay = \"{url}\"\nname = \"device\"\ntoken = \"device-secret\"\n");
    std::fs::write(&file, config).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o400)).unwrap();
    let env = [("CREDENTIALS_DIRECTORY", path(&credentials))];
    // The one change: the unit's origin port 3000, which this machine may
    // have taken, becomes the test origin's.
    let origin = http1_origin(service_fn(describe)).await.port().to_string();
    let args = arguments(&unit, &env);
    let args: Vec<&str> = (args.iter())
        .map(|arg| if arg == "3000" { origin.as_str() } else { arg })
        .collect();
    let mut expose = binary::run_with(&args, Stdio::piped(), &env);
    let mut log = Log::of(&mut expose);
    assert_eq!(
        announced(&mut expose).await,
        format!("public URL: {url}/device/")
    );
    let Reply { status, body, .. } = get(&format!("{url}/device/hello")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.starts_with("GET /device/hello\n"), "{body}");
    drop(expose);
    assert!(!log.rest().await.contains("others may read"));
}
