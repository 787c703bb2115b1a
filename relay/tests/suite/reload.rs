//! The operator's side of keys, with the binary: `key new` makes the block
//! a config file takes, SIGHUP reloads it without dropping what stays
//! allowed, a file that does not parse is refused and the last one kept,
//! and `serve` warns when anyone may claim names on a public address.

use std::path::PathBuf;
use std::process::Stdio;

use crate::support::binary::{self, Log, announced};
use crate::support::{Reply, connected, get, peer, within};
use http::StatusCode;
use ptth::tunnel::Phase;

/// `key new --label LABEL --names PATTERN`: the key and its block.
async fn new_key(label: &str, pattern: &str) -> (String, String) {
    let args = ["key", "new", "--label", label, "--names", pattern];
    let output = within(binary::run(&args, Stdio::inherit()).wait_with_output())
        .await
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    let (first, rest) = text.split_once('\n').unwrap();
    let key = first
        .strip_prefix("key: ")
        .expect("the key first")
        .to_owned();
    assert!(
        !rest.contains(&key),
        "the block holds the key in clear: {rest}"
    );
    (key, rest.to_owned())
}

/// A config file of its own, removed when dropped.
struct ConfigFile(PathBuf);

impl ConfigFile {
    fn new() -> Self {
        let name = format!("ptth-relay-{}.toml", ptth_relay::token::random_token());
        ConfigFile(std::env::temp_dir().join(name))
    }

    fn write(&self, text: &str) {
        std::fs::write(&self.0, text).unwrap();
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[tokio::test]
async fn sighup_takes_new_keys_and_drops_only_what_they_no_longer_allow() {
    let (alice, alice_block) = new_key("alice", "alice-*").await;
    let (bob, bob_block) = new_key("bob", "bob-*").await;
    let config = ConfigFile::new();
    config.write(&format!("{alice_block}\n{bob_block}"));
    let args = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--config",
        config.path(),
    ];
    let mut serve = binary::run(&args, Stdio::piped());
    let mut log = Log::of(&mut serve);
    let line = announced(&mut serve).await;
    let url = line.strip_prefix("listening on ").unwrap().to_owned();
    let addr = url.strip_prefix("http://").unwrap().parse().unwrap();
    let lamp = peer(addr, "alice-lamp", &alice, ptth::initiator::Builder::new());
    let fan = peer(addr, "bob-fan", &bob, ptth::initiator::Builder::new());
    connected(&lamp, 1).await;
    let dialled = connected(&fan, 1).await.attempts;

    // Alice's key goes: her peer is closed, her name released, and her
    // tunnel's next claim refused; Bob's connection is not touched.
    config.write(&bob_block);
    binary::signal(&serve, "HUP");
    let reloaded = log.until("config reloaded").await;
    assert!(reloaded.contains("released=1"), "{reloaded}");
    let ended = within(lamp.wait_for(|status| status.phase == Phase::Failed)).await;
    let declined = ended.last_error.as_ref().and_then(|error| error.declined());
    assert_eq!(declined.unwrap().status, StatusCode::FORBIDDEN);
    let Reply { status, .. } = get(&format!("{url}/alice-lamp/")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let Reply { status, .. } = get(&format!("{url}/bob-fan/")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fan.status().attempts, dialled, "Bob's peer dialled again");

    // A file that does not parse is refused with where and why; the
    // relay keeps the last one.
    config.write(&format!(
        "{bob_block}\n[[keys]]\nlabel = \"x\"\nsecret = 7\n"
    ));
    binary::signal(&serve, "HUP");
    let refused = log.until("config not reloaded").await;
    assert!(refused.contains("line"), "{refused}");
    let Reply { status, .. } = get(&format!("{url}/bob-fan/")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fan.status().attempts, dialled);
}

#[tokio::test]
async fn serve_warns_when_anyone_may_claim_on_a_public_address() {
    let (_, block) = new_key("alice", "alice-*").await;
    let config = ConfigFile::new();
    config.write(&block);
    let with_keys = ["--config", config.path()];
    for (listen, extra, warned) in [
        ("0.0.0.0:0", &[][..], true),
        ("0.0.0.0:0", &with_keys[..], false),
        ("127.0.0.1:0", &[][..], false),
    ] {
        let mut args = vec!["serve", "--listen", listen];
        args.extend(extra);
        let mut serve = binary::run(&args, Stdio::piped());
        // The warning comes before the announced line, if at all.
        announced(&mut serve).await;
        serve.start_kill().unwrap();
        let output = within(serve.wait_with_output()).await.unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            stderr.contains("registration is open"),
            warned,
            "{listen} {extra:?}: {stderr}"
        );
    }
}
