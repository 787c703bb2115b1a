//! The settings `serve` takes from flags and files, case by case.

use super::*;

fn file(text: &str) -> PathBuf {
    let path =
        std::env::temp_dir().join(format!("ptth-relay-{}.toml", crate::token::random_token()));
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
    assert_eq!(serve.settings.policy.pinned["lamp"], Digest::of("flag"));
    assert_eq!(serve.settings.policy.pinned["fan"], Digest::of("b"));
}

#[test]
fn pinned_tokens_may_be_given_as_their_digest() {
    let digest = Digest::of("s3cret").to_hex();
    let path = file(&format!(
        "[names]\nlamp = \"sha256:{digest}\"\nfan = \"sha256:beef\"\n"
    ));
    let args = ServeArgs {
        config: Some(path.clone()),
        ..ServeArgs::default()
    };
    let error = Serve::from_args(args).unwrap_err();
    assert!(
        error.contains("\"fan\"") && error.contains("64 hex"),
        "{error}"
    );
    std::fs::write(&path, format!("[names]\nlamp = \"sha256:{digest}\"\n")).unwrap();
    let args = ServeArgs {
        config: Some(path.clone()),
        ..ServeArgs::default()
    };
    let serve = Serve::from_args(args).unwrap();
    std::fs::remove_file(path).unwrap();
    assert!(serve.settings.policy.pinned["lamp"].matches("s3cret"));
}

#[test]
fn bounds_come_from_the_file() {
    let path = file(
        "response-timeout = 2.5\n[claims]\nburst = 100000\n[waits]\nqueue = 0.25\n[liveness]\ninterval = 5\n[longpoll]\nhold = 1.5\npolls = 3\n",
    );
    let args = ServeArgs {
        config: Some(path.clone()),
        ..ServeArgs::default()
    };
    let serve = Serve::from_args(args).unwrap();
    std::fs::remove_file(path).unwrap();
    let settings = serve.settings;
    let defaults = Settings::default();
    assert_eq!(settings.response_timeout, Duration::from_millis(2500));
    assert_eq!(settings.claim_rate.burst, 100_000);
    assert_eq!(
        settings.claim_rate.per_second,
        defaults.claim_rate.per_second
    );
    assert_eq!(settings.waits.queue, Duration::from_millis(250));
    assert_eq!(settings.waits.peer, defaults.waits.peer);
    assert_eq!(settings.liveness.interval, Duration::from_secs(5));
    assert_eq!(settings.liveness.timeout, defaults.liveness.timeout);
    assert_eq!(settings.longpoll.hold, Duration::from_millis(1500));
    assert_eq!(settings.longpoll.polls, 3);
    assert_eq!(settings.longpoll.parked, defaults.longpoll.parked);
}

#[test]
fn bad_bounds_are_named() {
    for (text, named) in [
        ("head-timeout = -1\n", "-1"),
        ("[claims]\nburst = 0\n", "burst"),
        ("[waits]\nforever = 1\n", "forever"),
        ("[liveness]\ninterval = 0\n", "interval"),
    ] {
        let path = file(text);
        let args = ServeArgs {
            config: Some(path.clone()),
            ..ServeArgs::default()
        };
        let error = Serve::from_args(args).unwrap_err();
        std::fs::remove_file(path).unwrap();
        assert!(error.contains(named), "{text:?}: {error}");
    }
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

/// The team's config file that docs/relay.md shows is one the relay
/// takes, once its placeholders are filled in.
#[test]
fn the_documented_team_config_is_taken() {
    let docs = include_str!("../../../docs/relay.md");
    let section = docs.split("### A team's config file").nth(1).unwrap();
    let block = section.split("```toml\n").nth(1).unwrap();
    let mut text = block.split("```").next().unwrap().to_owned();
    for n in 0.. {
        let digest = Digest::of(&n.to_string()).to_hex();
        match text.replacen("<64 hex digits from key new>", &digest, 1) {
            same if same == text => break,
            filled => text = filled,
        }
    }
    let path =
        std::env::temp_dir().join(format!("ptth-docs-{}.toml", crate::token::random_token()));
    std::fs::write(&path, &text).unwrap();
    let args = ServeArgs {
        config: Some(path.clone()),
        ..ServeArgs::default()
    };
    let serve = Serve::from_args(args);
    std::fs::remove_file(path).unwrap();
    let serve = serve.unwrap();
    assert!(!serve.settings.policy.keys.is_empty());
    assert!(!serve.settings.policy.registration_open());
    assert_eq!(serve.acme.unwrap().domain, "relay.example");
}

/// The `[tcp]` table docs/relay.md, "TCP tunnels", shows is one the
/// relay takes, with the values it says.
#[test]
fn the_documented_tcp_config_is_taken() {
    let docs = include_str!("../../../docs/relay.md");
    let section = docs.split("## TCP tunnels").nth(1).unwrap();
    let block = section.split("```toml\n").nth(1).unwrap();
    let path = file(block.split("```").next().unwrap());
    let args = ServeArgs {
        config: Some(path.clone()),
        ..ServeArgs::default()
    };
    let serve = Serve::from_args(args);
    std::fs::remove_file(path).unwrap();
    let tcp = serve.unwrap().settings.tcp;
    let range = crate::settings::PortRange {
        first: 20000,
        last: 20999,
    };
    assert_eq!(tcp.ports, Some(range));
    assert_eq!(tcp.reserved.get("pi"), Some(&20022));
    assert_eq!((tcp.connections_per_name, tcp.ports_per_client), (1024, 16));
    assert_eq!(
        (tcp.idle_timeout, tcp.open_timeout),
        (None, std::time::Duration::from_secs(10))
    );
}

#[cfg(not(feature = "cluster"))]
#[test]
fn cluster_flags_on_a_build_without_the_feature_name_it() {
    let args = ServeArgs {
        cluster_etcd: vec!["http://127.0.0.1:2379".into()],
        ..ServeArgs::default()
    };
    assert_eq!(Serve::from_args(args).unwrap_err(), NO_CLUSTER);
}
