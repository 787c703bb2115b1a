//! `--tcp-ports` and the `[tcp]` table: TCP names' public ports and the
//! bounds on their visitors (docs/relay.md, "TCP tunnels").

use std::collections::HashMap;
use std::net::IpAddr;

use serde::Deserialize;

use super::Seconds;
use crate::cli::ServeArgs;
use crate::names::valid_name;
use crate::settings::{PortRange, Tcp};

/// The `[tcp]` table; the flag wins.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct TcpFile {
    /// `"20000-20999"`.
    ports: Option<String>,
    /// `name = port`: kept for that name alone.
    #[serde(default)]
    reserved: HashMap<String, u16>,
    connections_per_name: Option<usize>,
    ports_per_client: Option<usize>,
    /// 0 is none.
    idle_timeout: Option<Seconds>,
    open_timeout: Option<Seconds>,
}

/// The TCP settings from `--tcp-ports` and `[tcp]`.
pub(super) fn tcp(args: &ServeArgs, file: &TcpFile, address: IpAddr) -> Result<Tcp, String> {
    let defaults = Tcp::default();
    let ports = match (args.tcp_ports, &file.ports) {
        (Some(range), _) => Some(range),
        (None, Some(text)) => Some(
            text.parse::<PortRange>()
                .map_err(|e| format!("[tcp] ports: {e}"))?,
        ),
        (None, None) => None,
    };
    for (name, port) in &file.reserved {
        if !valid_name(name) {
            return Err(format!("{name:?} in [tcp.reserved] is not a valid name"));
        }
        if !ports.is_some_and(|range| range.contains(*port)) {
            return Err(format!(
                "[tcp.reserved] {name} = {port}: not in [tcp] ports"
            ));
        }
    }
    let mut ports_reserved: Vec<u16> = file.reserved.values().copied().collect();
    ports_reserved.sort_unstable();
    if let Some(twice) = ports_reserved.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(format!(
            "[tcp.reserved] gives port {} to two names",
            twice[0]
        ));
    }
    let connections_per_name = file
        .connections_per_name
        .unwrap_or(defaults.connections_per_name);
    if connections_per_name == 0 {
        return Err("[tcp] connections-per-name must be at least 1".to_owned());
    }
    let ports_per_client = file.ports_per_client.unwrap_or(defaults.ports_per_client);
    if ports_per_client == 0 {
        return Err("[tcp] ports-per-client must be at least 1".to_owned());
    }
    let open_timeout = super::or(file.open_timeout, defaults.open_timeout);
    if open_timeout.is_zero() {
        return Err("[tcp] open-timeout must be above 0".to_owned());
    }
    Ok(Tcp {
        ports,
        address,
        reserved: file.reserved.clone(),
        connections_per_name,
        ports_per_client,
        idle_timeout: file
            .idle_timeout
            .map(|Seconds(d)| d)
            .filter(|d| !d.is_zero()),
        open_timeout,
    })
}
