//! The load test's report: the rows its sections measure, each holding one
//! figure per path, and the table and JSON made of them. The `report`
//! module of `examples/load.rs`.

use std::fmt::Write as _;

use super::{Config, MIB, Path, Proto, turns};

pub const RATE: &str = "small GET rate";
/// The targets each path's ratio to A is read against.
pub const SAME: Target = Target::Between(0.97, 1.03);
pub const MEMORY: Target = Target::AtMost(1.10);
const SCALING: Target = Target::AtLeast(3.0);
/// The narrowest column a path's figures get.
const VALUE_WIDTH: usize = 12;

/// One figure, measured on every path.
pub struct Row {
    pub name: &'static str,
    pub protocol: Proto,
    pub in_flight: usize,
    /// HTTP connections; on a channel path some of them are channels
    /// sharing a TCP connection.
    pub connections: usize,
    pub unit: Unit,
    /// One figure per path, in the order of `Config::paths`.
    pub values: Vec<f64>,
    pub target: Option<Target>,
}

impl Row {
    /// The figure of the path at `index` over A's.
    fn ratio(&self, index: usize) -> f64 {
        self.values[index] / self.values[0]
    }

    /// Whether the path at `index` meets the target; A is what the others
    /// are read against, so it has none.
    fn met(&self, index: usize) -> Option<bool> {
        let target = self.target.filter(|_| index > 0)?;
        Some(target.met(self.ratio(index)))
    }
}

#[derive(Clone, Copy)]
pub enum Unit {
    PerSecond,
    Micros,
    MibPerSecond,
    BytesPerConnection,
}

impl Unit {
    fn label(self) -> &'static str {
        match self {
            Unit::PerSecond => "req/s",
            Unit::Micros => "µs",
            Unit::MibPerSecond => "MiB/s",
            Unit::BytesPerConnection => "B/conn",
        }
    }

    fn decimals(self) -> usize {
        match self {
            Unit::Micros | Unit::MibPerSecond => 1,
            Unit::PerSecond | Unit::BytesPerConnection => 0,
        }
    }
}

/// Where a ratio should fall.
#[derive(Clone, Copy)]
pub enum Target {
    Between(f64, f64),
    AtMost(f64),
    AtLeast(f64),
}

impl Target {
    fn met(self, ratio: f64) -> bool {
        match self {
            Target::Between(low, high) => (low..=high).contains(&ratio),
            Target::AtMost(high) => ratio <= high,
            Target::AtLeast(low) => ratio >= low,
        }
    }

    fn label(self) -> String {
        match self {
            Target::Between(low, high) => format!("{low:.2}..{high:.2}"),
            Target::AtMost(high) => format!("<= {high:.2}"),
            Target::AtLeast(low) => format!(">= {low:.2}"),
        }
    }
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "ok",
        Some(false) => "MISS",
        None => "",
    }
}

/// A, B, C ... for the path at `index`.
fn letter(index: usize) -> char {
    char::from(b'A' + index as u8)
}

/// `name (letter)` for each path, as the table heads its columns.
fn labels(paths: &[Path]) -> Vec<String> {
    paths
        .iter()
        .enumerate()
        .map(|(index, path)| format!("{} ({})", path.name(), letter(index)))
        .collect()
}

/// HTTP/2's multiplexing at work: on each path, the rate of HTTP/2 with 64
/// in flight over that of HTTP/1.1 with 1. The target is on every path but
/// A, whose figure (plain hyper's, unless `--paths` says otherwise) shows
/// what hyper alone reaches.
fn scaling(rows: &[Row]) -> Option<Vec<f64>> {
    let rate = |protocol, in_flight| {
        rows.iter()
            .find(|row| row.name == RATE && row.protocol == protocol && row.in_flight == in_flight)
    };
    let (h2, h1) = (rate(Proto::H2, 64)?, rate(Proto::H1, 1)?);
    Some(
        h2.values
            .iter()
            .zip(&h1.values)
            .map(|(h2, h1)| h2 / h1)
            .collect(),
    )
}

pub fn header(config: &Config, command: &str) -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = cpu_model().unwrap_or_else(|| "unknown CPU".to_owned());
    let paths = &config.paths;
    let compared: Vec<String> = paths
        .iter()
        .enumerate()
        .map(|(index, path)| format!("{} ({})", path.describe(), letter(index)))
        .collect();
    // The first rounds' orders, one round for each path.
    let orders: Vec<String> = (0..paths.len())
        .map(|number| {
            let order = turns(number, paths.len()).map(|index| letter(index).to_string());
            order.collect::<Vec<_>>().join(" ")
        })
        .collect();
    let mut out = format!(
        "ptth load test over loopback on this machine\n\
         paths: {}\n\
         machine: {cores} cores ({cpu}); tokio multi-thread runtime, {} worker threads\n\
         command: {command}\n\
         method: per row a warm-up round per path, then {} rounds of {:.1} s each per path, taking turns\n        \
         ({}, ...) on new connections every round; medians.\n        \
         Bulk: {} MiB bodies one after another, each on a new connection.\n        \
         Idle: {} connections, each end in a child process.\n",
        compared.join(", "),
        config.threads,
        config.rounds,
        config.round.as_secs_f64(),
        orders.join(", "),
        config.bulk_bytes / MIB,
        config.idle,
    );
    if paths.iter().any(|path| path.is_channel()) {
        out.push_str(
            "        On a channel path each connection is a channel: with HTTP/1.1 inside, a row's channels\n        \
             share one TCP connection; otherwise each channel has a TCP connection of its own.\n",
        );
    }
    out
}

fn cpu_model() -> Option<String> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = cpuinfo
        .lines()
        .find(|line| line.starts_with("model name"))?;
    Some(line.split_once(':')?.1.trim().to_owned())
}

/// One line per row: A's figure, then for every other path its figure, its
/// ratio to A and whether that meets the row's target.
pub fn table(config: &Config, rows: &[Row]) -> String {
    let labels = labels(&config.paths);
    let widths: Vec<usize> = labels.iter().map(|l| l.len().max(VALUE_WIDTH)).collect();
    let mut out = format!(
        "{:<36} {:<8} {:>8} {:>6}",
        "metric", "protocol", "inflight", "conns"
    );
    for (index, label) in labels.iter().enumerate() {
        let _ = write!(out, " {label:>width$}", width = widths[index]);
        if index > 0 {
            let _ = write!(out, " {:>7}     ", format!("{}/A", letter(index)));
        }
    }
    out.push_str("  target\n");
    for row in rows {
        let decimals = row.unit.decimals();
        let mut line = format!(
            "{:<36} {:<8} {:>8} {:>6}",
            format!("{} ({})", row.name, row.unit.label()),
            row.protocol,
            row.in_flight,
            row.connections,
        );
        for (index, value) in row.values.iter().enumerate() {
            let _ = write!(line, " {value:>width$.decimals$}", width = widths[index]);
            if index > 0 {
                let met = verdict(row.met(index));
                let _ = write!(line, " {:>7.3} {met:<4}", row.ratio(index));
            }
        }
        let target = row.target.map(Target::label).unwrap_or_default();
        let _ = writeln!(out, "{}", format!("{line}  {target}").trim_end());
    }
    if let Some(scaling) = scaling(rows) {
        let figures: Vec<String> = scaling
            .iter()
            .zip(&labels)
            .enumerate()
            .map(|(index, (figure, label))| {
                let met = (index > 0).then(|| SCALING.met(*figure));
                format!("{label} {figure:.2}x {}", verdict(met))
                    .trim_end()
                    .to_owned()
            })
            .collect();
        let _ = writeln!(
            out,
            "\nrequests/s of h2 with 64 in flight over http/1.1 with 1 (target {} but for A):\n    {}",
            SCALING.label(),
            figures.join(", ")
        );
    }
    out
}

/// The same figures as the table: per row, each path's figure and, past A,
/// its ratio to A and whether that meets the target.
pub fn json(config: &Config, command: &str, rows: &[Row]) -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let names: Vec<String> = config
        .paths
        .iter()
        .map(|path| json_string(path.name()))
        .collect();
    let mut out = format!(
        "{{\n  \"command\": {},\n  \"paths\": [{}],\n  \"transport\": \"loopback\",\n  \"cores\": {cores},\n  \
         \"cpu\": {},\n  \"worker_threads\": {},\n  \"rounds\": {},\n  \"round_seconds\": {},\n  \
         \"bulk_bytes\": {},\n  \"idle_connections\": {},\n  \"rows\": [\n",
        json_string(command),
        names.join(", "),
        json_string(&cpu_model().unwrap_or_default()),
        config.threads,
        config.rounds,
        config.round.as_secs_f64(),
        config.bulk_bytes,
        config.idle,
    );
    let entries: Vec<String> = rows
        .iter()
        .map(|row| {
            let figures = (0..row.values.len()).map(|index| {
                json_figure(
                    &names[index],
                    row.values[index],
                    Some(row.ratio(index)),
                    row.met(index),
                )
            });
            format!(
                "    {{\"name\": {}, \"unit\": {}, \"protocol\": {}, \"inflight\": {}, \"connections\": {}, \
                 \"target\": {}, \"paths\": [{}]}}",
                json_string(row.name),
                json_string(row.unit.label()),
                json_string(&row.protocol.to_string()),
                row.in_flight,
                row.connections,
                row.target.map_or("null".to_owned(), |t| json_string(&t.label())),
                figures.collect::<Vec<_>>().join(", "),
            )
        })
        .collect();
    out.push_str(&entries.join(",\n"));
    out.push_str("\n  ]");
    if let Some(scaling) = scaling(rows) {
        let figures = scaling.iter().enumerate().map(|(index, &figure)| {
            let met = (index > 0).then(|| SCALING.met(figure));
            json_figure(&names[index], figure, None, met)
        });
        let _ = write!(
            out,
            ",\n  \"scaling\": {{\"name\": \"requests/s of h2 with 64 in flight over http/1.1 with 1\", \
             \"target\": {}, \"paths\": [{}]}}",
            json_string(&SCALING.label()),
            figures.collect::<Vec<_>>().join(", "),
        );
    }
    out.push_str("\n}\n");
    out
}

/// One path's figure in the JSON; `name` is already a JSON string.
fn json_figure(name: &str, value: f64, ratio: Option<f64>, met: Option<bool>) -> String {
    let mut out = format!("{{\"path\": {name}, \"value\": {}", json_number(value));
    if let Some(ratio) = ratio {
        let _ = write!(out, ", \"ratio\": {}", json_number(ratio));
    }
    let met = met.map_or("null".to_owned(), |met| met.to_string());
    let _ = write!(out, ", \"within_target\": {met}}}");
    out
}

fn json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// JSON has no NaN or infinity; a ratio over a zero becomes `null`.
fn json_number(value: f64) -> String {
    if value.is_finite() {
        format!("{value:.4}")
    } else {
        "null".to_owned()
    }
}

/// The command line as a shell would need it to be written.
pub fn command(args: &[String]) -> String {
    args.iter()
        .map(|arg| quoted(arg))
        .collect::<Vec<_>>()
        .join(" ")
}

fn quoted(arg: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@".contains(c);
    if !arg.is_empty() && arg.chars().all(plain) {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}
