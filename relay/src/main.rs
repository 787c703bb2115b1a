//! The `ptth-relay` binary: `serve` a relay or `expose` a local server.
//! Announced lines go to stdout, everything logged to stderr.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use ptth_relay::cli::{Cli, Command, ServeArgs};
use ptth_relay::config::Serve;
use ptth_relay::server::Server;
use ptth_relay::{Relay, expose};

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::INFO)
        .init();
    let result = match Cli::parse().command {
        Command::Serve(args) => serve(args).await,
        Command::Expose(args) => {
            expose::run(args, |url| announce(&format!("public URL: {url}"))).await
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
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
    let config = Serve::from_args(args)?;
    let relay = Relay::new(config.settings);
    let mut server = Server::bind(config.listen, relay.clone())
        .await
        .map_err(|error| format!("cannot listen on {}: {error}", config.listen))?
        .connection_limits(config.connections);
    let scheme = match &config.tls {
        Some((cert, key)) => {
            server = server.tls(ptth_relay::tls::acceptor(cert, key)?);
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
    server.run(shutdown_signal()).await;
    Ok(())
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
