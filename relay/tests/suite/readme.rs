//! The README's relay quick start, run as printed: `serve`, then
//! `expose 3000 ...`, then the curl, which gets the app's page. The test
//! changes only what would tie it to fixed ports: `serve` listens on a
//! free one, and the app is the test's, wherever it listens.

use std::process::Stdio;

use http::StatusCode;
use hyper::service::service_fn;

use crate::support::binary::{self, announced};
use crate::support::{Reply, describe, get, http1_origin};

const README: &str = include_str!("../../../README.md");

/// The command lines of the quick start's block: `ptth-relay ...` and
/// `curl ...`, and the `# prints:` line under each.
fn quick_start() -> Vec<(Vec<&'static str>, Option<&'static str>)> {
    let section = &README[README.find("## Run a relay").expect("the quick start")..];
    let block = &section[section.find("```sh\n").unwrap() + 6..];
    let block = &block[..block.find("```").unwrap()];
    let mut commands: Vec<(Vec<&str>, Option<&str>)> = Vec::new();
    for line in block.lines() {
        if let Some(printed) = line.strip_prefix("# prints: ") {
            let printed = printed.split("   ").next().unwrap();
            commands.last_mut().unwrap().1 = Some(printed);
        } else if !line.is_empty() && !line.starts_with('#') {
            commands.push((line.split_whitespace().collect(), None));
        }
    }
    commands
}

#[tokio::test]
async fn the_readme_s_quick_start_gets_the_app_s_page() {
    let commands = quick_start();
    let [
        (serve, Some(listening)),
        (expose, Some(public)),
        (curl, None),
    ] = &commands[..]
    else {
        panic!("not serve, expose and curl: {commands:?}");
    };
    let readme_relay = listening.strip_prefix("listening on http://").unwrap();
    // serve, on a free port.
    assert_eq!(serve, &["ptth-relay", "serve"]);
    let mut relay = binary::run(&["serve", "--listen", "127.0.0.1:0"], Stdio::null());
    let line = announced(&mut relay).await;
    let relay_url = line.strip_prefix("listening on ").unwrap().to_owned();
    let relay_addr = relay_url.strip_prefix("http://").unwrap().to_owned();
    // expose, with the README's flags, for the test's app.
    let app = http1_origin(service_fn(describe)).await.port().to_string();
    assert_eq!(expose[..2], ["ptth-relay", "expose"]);
    let args: Vec<&str> = expose[1..]
        .iter()
        .map(|arg| match *arg {
            "3000" => app.as_str(),
            arg if arg == readme_relay => relay_addr.as_str(),
            arg => arg,
        })
        .collect();
    let mut exposed = binary::run(&args, Stdio::null());
    let announced_url = announced(&mut exposed).await;
    let public_url = announced_url.strip_prefix("public URL: ").unwrap();
    let readme_public = public.strip_prefix("public URL: ").unwrap();
    let readme_name = readme_public
        .strip_prefix(&format!("http://{readme_relay}/"))
        .unwrap();
    // The curl: the README's URL with the name this run was given.
    assert_eq!(curl, &["curl", readme_public]);
    let url = public_url.to_owned();
    assert!(
        url.starts_with(&format!("{relay_url}/")),
        "{url} for {readme_name}"
    );
    let Reply { status, body, .. } = get(&url).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.starts_with("GET /\n"), "the app did not get /: {body}");
}
