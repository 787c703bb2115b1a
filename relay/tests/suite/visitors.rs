//! Who may call a name behind `expose`: `--basic-auth`,
//! `--basic-auth-file` and `--allow-ip` answer the public before anything
//! reaches the origin, which echoes the fields it got.

use crate::support::{Reply, Running, describe, http1_origin, relay, send, within};
use http::{Request, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use ptth_relay::Settings;
use ptth_relay::cli::ExposeArgs;

/// A relay with `settings`, and `expose` claiming `lamp` on it for an
/// origin that echoes what it got, with the flags `flags` sets.
async fn exposed(settings: Settings, flags: impl FnOnce(&mut ExposeArgs)) -> Running {
    let running = relay(settings).await;
    let origin = http1_origin(service_fn(describe)).await;
    let mut args = ExposeArgs {
        relay: vec![format!("http://{}", running.addr)],
        name: Some("lamp".into()),
        token: Some("t".into()),
        to: Some(format!("http://{origin}")),
        ..ExposeArgs::default()
    };
    flags(&mut args);
    let (announce, announced) = tokio::sync::oneshot::channel();
    tokio::spawn(ptth_relay::expose::run(args, move |url| {
        let _ = announce.send(url);
    }));
    within(announced).await.unwrap();
    running
}

/// GETs `/lamp/` with `fields`.
async fn call(running: &Running, fields: &[(&str, &str)]) -> Reply {
    let mut request = Request::get(format!("http://{}/lamp/", running.addr));
    for (name, value) in fields {
        request = request.header(*name, *value);
    }
    send(request.body(Full::default()).unwrap()).await
}

/// `Basic` credentials for `user:password`.
fn basic(user_password: &str) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(user_password);
    format!("Basic {encoded}")
}

const CHALLENGE: &str = "Basic realm=\"ptth\", charset=\"UTF-8\"";

/// Asserts `reply` is a `401` with the Basic challenge, from `expose`.
fn unauthorized(reply: &Reply, what: &str) {
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "{what}: {}",
        reply.body
    );
    assert_eq!(reply.headers["www-authenticate"], CHALLENGE, "{what}");
    assert!(
        !reply.body.contains("GET /lamp/"),
        "{what} reached the origin"
    );
}

#[tokio::test]
async fn basic_auth_admits_the_right_credentials_and_keeps_them_from_the_origin() {
    let running = exposed(Settings::default(), |args| {
        args.basic_auth = vec!["ada:lovelace".into(), "grace:hop:per".into()];
    })
    .await;
    unauthorized(&call(&running, &[]).await, "no credentials");
    for wrong in ["ada:lovelacE", "ada:hop:per", "eve:lovelace", "ada"] {
        let reply = call(&running, &[("authorization", &basic(wrong))]).await;
        unauthorized(&reply, wrong);
    }
    let reply = call(&running, &[("authorization", "Bearer t")]).await;
    unauthorized(&reply, "a bearer token");
    for right in ["ada:lovelace", "grace:hop:per"] {
        let reply = call(
            &running,
            &[("authorization", &basic(right)), ("x-kept", "1")],
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{right}: {}", reply.body);
        assert!(reply.body.contains("x-kept: 1\n"), "{}", reply.body);
        assert!(!reply.body.contains("authorization"), "{}", reply.body);
    }
}

#[tokio::test]
async fn a_users_file_holds_bcrypt_and_sha256_hashes() {
    // SHA-256 of "hopper".
    let sha = "392a5bcbd71a7db2cfb9796c633326f7fba6730bdb0c801d3b0fd30886821000";
    let bcrypt = bcrypt::hash("lovelace", 4).unwrap();
    let path = std::env::temp_dir().join(format!("ptth-visitors-{}.users", std::process::id()));
    std::fs::write(
        &path,
        format!("# who may call\nada:{bcrypt}\ngrace:sha256:{sha}\n"),
    )
    .unwrap();
    let file = path.clone();
    let running = exposed(Settings::default(), move |args| {
        args.basic_auth_file = Some(file);
    })
    .await;
    std::fs::remove_file(&path).unwrap();
    for (credentials, status) in [
        ("ada:lovelace", StatusCode::OK),
        ("grace:hopper", StatusCode::OK),
        ("ada:hopper", StatusCode::UNAUTHORIZED),
        ("grace:lovelace", StatusCode::UNAUTHORIZED),
        ("grace:Hopper", StatusCode::UNAUTHORIZED),
    ] {
        let reply = call(&running, &[("authorization", &basic(credentials))]).await;
        assert_eq!(reply.status, status, "{credentials}: {}", reply.body);
    }
}

#[tokio::test]
async fn allow_ip_judges_the_address_the_relay_saw() {
    for (range, status) in [
        ("127.0.0.0/8", StatusCode::OK),
        ("127.0.0.1", StatusCode::OK),
        ("10.0.0.0/8", StatusCode::FORBIDDEN),
        ("::1", StatusCode::FORBIDDEN),
    ] {
        let running = exposed(Settings::default(), |args| {
            args.allow_ip = vec![range.parse().unwrap()];
        })
        .await;
        let reply = call(&running, &[]).await;
        assert_eq!(reply.status, status, "{range}: {}", reply.body);
        assert!(reply.headers.get("www-authenticate").is_none());
    }
}

// An attacker's own fields cannot pass the allow list: the relay replaces
// them with the address it saw. From a proxy the relay trusts, they are
// that proxy's word, and count.
#[tokio::test]
async fn a_client_s_own_address_fields_count_only_from_a_trusted_proxy() {
    let spoofed: &[(&str, &str)] = &[
        ("x-real-ip", "10.1.2.3"),
        ("x-forwarded-for", "10.1.2.3"),
        ("forwarded", "for=10.1.2.3"),
    ];
    for (trusted, status) in [
        (Vec::new(), StatusCode::FORBIDDEN),
        (vec!["127.0.0.0/8".parse().unwrap()], StatusCode::OK),
    ] {
        let settings = Settings {
            trusted_proxies: trusted,
            ..Settings::default()
        };
        let running = exposed(settings, |args| {
            args.allow_ip = vec!["10.0.0.0/8".parse().unwrap()];
        })
        .await;
        let reply = call(&running, spoofed).await;
        assert_eq!(reply.status, status, "{}", reply.body);
    }
}

#[tokio::test]
async fn a_caller_needs_both_the_address_and_the_credentials() {
    let running = exposed(Settings::default(), |args| {
        args.basic_auth = vec!["ada:lovelace".into()];
        args.allow_ip = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    unauthorized(&call(&running, &[]).await, "no credentials");
    let reply = call(&running, &[("authorization", &basic("ada:lovelace"))]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert!(
        reply.body.contains("x-real-ip: 127.0.0.1\n"),
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn a_bad_users_file_stops_expose_without_echoing_it() {
    let path = std::env::temp_dir().join(format!("ptth-visitors-bad-{}.users", std::process::id()));
    std::fs::write(&path, "ada:lovelace\n").unwrap();
    let args = ExposeArgs {
        relay: vec!["http://127.0.0.1:1".into()],
        name: Some("lamp".into()),
        to: Some("http://127.0.0.1:1".into()),
        basic_auth_file: Some(path.clone()),
        ..ExposeArgs::default()
    };
    let error = within(ptth_relay::expose::run(args, |_| {}))
        .await
        .unwrap_err();
    std::fs::remove_file(&path).unwrap();
    assert!(error.contains("line 1"), "{error}");
    assert!(!error.contains("lovelace"), "{error}");
    let args = ExposeArgs {
        relay: vec!["http://127.0.0.1:1".into()],
        name: Some("lamp".into()),
        to: Some("http://127.0.0.1:1".into()),
        basic_auth: vec!["adalovelace".into()],
        ..ExposeArgs::default()
    };
    let error = within(ptth_relay::expose::run(args, |_| {}))
        .await
        .unwrap_err();
    assert!(!error.contains("adalovelace"), "{error}");
}
