//! The `ptth-relay` binary: `serve` a relay or `expose` a local server.
//! Announced lines go to stdout, everything logged to stderr.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use clap::Parser;
use ptth_relay::acme::Acme;
use ptth_relay::cli::{Cli, Command, KeyCommand, LogArgs, LogFormat, ServeArgs};
use ptth_relay::config::Serve;
use ptth_relay::server::Server;
use ptth_relay::tls::Certificates;
use ptth_relay::{Relay, expose, logging};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let log = logging(&cli.log);
    let result = match cli.command {
        Command::Serve(args) => serve(*args).await,
        Command::Expose(args) => {
            let public = |url: String| match url.starts_with("tcp://") {
                true => announce(&format!("public address: {url}")),
                false => announce(&format!("public URL: {url}")),
            };
            let inspector = |url| announce(&format!("inspector: {url}"));
            expose::run_inspected(*args, public, inspector).await
        }
        Command::Key(KeyCommand::New(args)) => new_key(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // After the log's lines, which say what led here.
            log.now();
            eprintln!("ptth-relay: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    // Each connection is a descriptor: take all the system allows, so the
    // connection bounds are what turns clients away, not EMFILE.
    if let Err(error) = rlimit::increase_nofile_limit(u64::MAX) {
        tracing::warn!(%error, "the open-file limit could not be raised");
    }
    #[cfg(feature = "cluster")]
    let cluster = (
        args.cluster_etcd.clone(),
        args.node_id.clone(),
        args.advertise.clone(),
        args.cluster_ca.clone(),
    );
    let config = Serve::from_args(args.clone())?;
    if !config.listen.ip().is_loopback() && config.settings.policy.registration_open() {
        eprintln!(
            "ptth-relay: warning: registration is open on {}: anyone may claim a free name \
             (configure [[keys]], or pin names with --closed)",
            config.listen
        );
    }
    let relay = Relay::new(config.settings.clone());
    let mut server = Server::bind(config.listen, relay.clone())
        .await
        .map_err(|error| format!("cannot listen on {}: {error}", config.listen))?;
    let certificates = certificates(&config, &relay)?;
    let scheme = match &certificates {
        Some(certificates) => {
            server = server.tls(certificates.clone());
            "https"
        }
        None => "http",
    };
    if let Some(metrics) = config.metrics {
        let listener = tokio::net::TcpListener::bind(metrics)
            .await
            .map_err(|error| format!("cannot listen on {metrics}: {error}"))?;
        let head_timeout = std::time::Duration::from_secs(10);
        let relay = relay.clone();
        let text = move || relay.metrics_text();
        tokio::spawn(ptth_relay::metrics::serve(listener, text, head_timeout));
    }
    let addr = server.local_addr().map_err(|error| error.to_string())?;
    #[cfg(feature = "cluster")]
    if let (endpoints, Some(node), advertise, ca) = cluster {
        let advertise = advertise.unwrap_or_else(|| format!("{scheme}://{addr}"));
        let mut settings = ptth_relay::cluster::Settings::new(endpoints, &node, &advertise);
        if let Some(ca) = ca {
            settings.tls = Some(ptth_relay::tls::client(&ca)?);
        }
        let cluster = ptth_relay::cluster::Cluster::join(settings)
            .await
            .map_err(|error| format!("cannot join the cluster: {error}"))?;
        relay.attach_cluster(cluster);
    }
    announce(&format!("listening on {scheme}://{addr}"));
    tokio::spawn(reload_on_hangup(args, relay.clone(), certificates));
    server.run(shutdown_signal()).await;
    Ok(())
}

/// On each SIGHUP, reads the flags and the config file again and hands
/// the relay what it can take while it runs (docs/relay.md, "Reloading").
/// A file that does not parse is refused with its reason, and the relay
/// keeps what it had.
async fn reload_on_hangup(args: ServeArgs, relay: Arc<Relay>, tls: Option<Certificates>) {
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .expect("a SIGHUP handler");
    while hangups.recv().await.is_some() {
        match Serve::from_args(args.clone()) {
            Ok(config) => {
                let released = relay.reload(&config.settings);
                tracing::info!(released, "config reloaded");
            }
            Err(error) => tracing::error!("config not reloaded, keeping the last one: {error}"),
        }
        match tls.as_ref().map(Certificates::reload) {
            Some(Ok(true)) => tracing::info!("TLS files reloaded"),
            Some(Err(error)) => {
                tracing::error!("TLS files not reloaded, keeping the last ones: {error}")
            }
            Some(Ok(false)) | None => {}
        }
    }
}

/// The relay's TLS: PEM files, read again when they change on disk and on
/// SIGHUP, or certificates ordered from an ACME server for the names the
/// relay holds.
fn certificates(config: &Serve, relay: &Arc<Relay>) -> Result<Option<Certificates>, String> {
    if let Some((cert, key)) = &config.tls {
        let certificates = Certificates::files(cert, key)?;
        tokio::spawn(reload_on_change(
            certificates.clone(),
            vec![cert.clone(), key.clone()],
        ));
        return Ok(Some(certificates));
    }
    let Some(settings) = config.acme.clone() else {
        return Ok(None);
    };
    let relay = Arc::downgrade(relay);
    let claimed = move |name: &str| {
        relay
            .upgrade()
            .is_some_and(|relay| relay.names().lookup(name).is_some())
    };
    let acme = Acme::start(settings, Box::new(claimed))?;
    Ok(Some(Certificates::acme(acme)))
}

/// Reads the TLS files again when their modification times change,
/// checked every few seconds: a renewal by certbot or a secret manager
/// takes effect without a signal.
async fn reload_on_change(certificates: Certificates, files: Vec<PathBuf>) {
    let stamps = || -> Vec<Option<SystemTime>> {
        let modified = |path: &PathBuf| std::fs::metadata(path).and_then(|m| m.modified()).ok();
        files.iter().map(modified).collect()
    };
    let mut seen = stamps();
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let now = stamps();
        if now != seen {
            // Until the pair loads (a certificate written before its
            // key does not fit it), the change is tried again.
            match certificates.reload() {
                Ok(_) => {
                    seen = now;
                    tracing::info!("TLS files reloaded");
                }
                Err(error) => tracing::error!("TLS files not reloaded yet: {error}"),
            }
        }
    }
}

/// `key new`: the key on stdout's first line, then the block to paste.
fn new_key(args: &ptth_relay::cli::KeyNewArgs) -> Result<(), String> {
    let (secret, block) = ptth_relay::config::new_key(args)?;
    announce(&format!(
        "key: {secret}\n\n# Give the key above to {}; it is shown only now.\n\
         # The relay keeps its digest: paste this into its config file.\n{block}",
        args.label
    ));
    Ok(())
}

/// Log lines on stderr: at the level of `-v`/`-q`, or as `RUST_LOG` says;
/// text, coloured only on a terminal, or JSON; written in bursts
/// (ptth_relay::logging) until the returned guard is dropped.
fn logging(args: &LogArgs) -> logging::Flush<std::io::Stderr> {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.is_empty() => EnvFilter::new(directives),
        _ => EnvFilter::new(args.level().as_str().to_ascii_lowercase()),
    };
    let (lines, flush) = logging::lines(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_writer(lines)
        .with_env_filter(filter);
    match args.log_format.unwrap_or(LogFormat::Text) {
        LogFormat::Text if std::io::stderr().is_terminal() => builder.init(),
        // The same text without the colour machinery's cost.
        LogFormat::Text => builder
            .with_ansi(false)
            .fmt_fields(logging::PlainFields)
            .init(),
        LogFormat::Json => builder.json().init(),
    }
    flush
}

/// The one line a script reads, flushed at once.
fn announce(line: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

/// SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler");
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
