//! The load harness: idle connections, each end in a fresh child process,
//! which keeps the ends apart and gives each a heap holding nothing freed
//! by earlier tests.

use super::*;

/// Bytes of resident memory per connection at each end.
pub(crate) struct PerConnection {
    pub(crate) server: f64,
    pub(crate) client: f64,
}

pub(crate) fn idle_rows(config: &Config, protocol: Proto) -> Result<[Row; 2], BoxError> {
    let measured = config
        .paths
        .iter()
        .map(|&path| idle_pair(config, protocol, path))
        .collect::<Result<Vec<_>, _>>()?;
    let row = |name, end: fn(&PerConnection) -> f64| Row {
        name,
        protocol,
        in_flight: 0,
        connections: config.idle,
        unit: Unit::BytesPerConnection,
        values: measured.iter().map(end).collect(),
        target: Some(MEMORY),
    };
    Ok([
        row("idle, server/initiator end", |m| m.server),
        row("idle, client/acceptor end", |m| m.client),
    ])
}

/// Opens `config.idle` connections on `path` between two child processes
/// and returns how much each one's resident memory grew per connection.
pub(crate) fn idle_pair(
    config: &Config,
    protocol: Proto,
    path: Path,
) -> Result<PerConnection, BoxError> {
    let mut listen = Child::start(config, protocol, path, "listen")?;
    let (addr, listen_before) = listen.ready()?;
    let mut dial = Child::start(config, protocol, path, &addr)?;
    let (_, dial_before) = dial.ready()?;
    // The client end knows when every connection has answered its GET.
    let client = match path.role(End::Listen) {
        Role::Client => &mut listen,
        Role::Server => &mut dial,
    };
    client.expect("idle")?;
    let listen_grew = listen.rss_kib()? - listen_before;
    let dial_grew = dial.rss_kib()? - dial_before;
    listen.finish()?;
    dial.finish()?;
    let per_connection = |kib: i64| kib as f64 * 1024.0 / config.idle as f64;
    let (server, client) = match path.role(End::Listen) {
        Role::Server => (listen_grew, dial_grew),
        Role::Client => (dial_grew, listen_grew),
    };
    Ok(PerConnection {
        server: per_connection(server),
        client: per_connection(client),
    })
}

/// One end of the idle test in a child process, spoken to in lines: it
/// writes `ready ADDR KIB` (where it listens, or `-`, and its resident
/// memory before any connection), the client end then `idle` once every
/// connection is open, and `rss KIB` for each `measure` read; it exits when
/// its stdin closes.
pub(crate) struct Child {
    pub(crate) process: std::process::Child,
    pub(crate) stdin: Option<ChildStdin>,
    pub(crate) stdout: BufReader<ChildStdout>,
}

impl Child {
    pub(crate) fn start(
        config: &Config,
        protocol: Proto,
        path: Path,
        addr: &str,
    ) -> Result<Child, BoxError> {
        let mut process = Command::new(std::env::current_exe()?)
            .arg(IDLE_CHILD)
            .arg(protocol.to_string())
            .arg(path.name())
            .arg(config.idle.to_string())
            .arg(config.threads.to_string())
            .arg(addr)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdin = process.stdin.take();
        let stdout = BufReader::new(process.stdout.take().ok_or("the child has no stdout")?);
        Ok(Child {
            process,
            stdin,
            stdout,
        })
    }

    /// The next line, split into words.
    pub(crate) fn words(&mut self) -> Result<Vec<String>, BoxError> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            return Err("an idle-test child ended early".into());
        }
        Ok(line.split_whitespace().map(str::to_owned).collect())
    }

    pub(crate) fn expect(&mut self, word: &str) -> Result<Vec<String>, BoxError> {
        let words = self.words()?;
        match words.split_first() {
            Some((first, rest)) if first == word => Ok(rest.to_vec()),
            _ => Err(format!("expected {word} from an idle-test child, read {words:?}").into()),
        }
    }

    pub(crate) fn ready(&mut self) -> Result<(String, i64), BoxError> {
        match &self.expect("ready")?[..] {
            [addr, kib] => Ok((addr.clone(), kib.parse()?)),
            other => Err(format!("bad ready line {other:?}").into()),
        }
    }

    pub(crate) fn rss_kib(&mut self) -> Result<i64, BoxError> {
        let stdin = self.stdin.as_mut().ok_or("stdin closed")?;
        writeln!(stdin, "measure")?;
        stdin.flush()?;
        match &self.expect("rss")?[..] {
            [kib] => Ok(kib.parse()?),
            other => Err(format!("bad rss line {other:?}").into()),
        }
    }

    pub(crate) fn finish(&mut self) -> Result<(), BoxError> {
        drop(self.stdin.take());
        let status = self.process.wait()?;
        if !status.success() {
            return Err(format!("an idle-test child failed: {status}").into());
        }
        Ok(())
    }
}

impl Drop for Child {
    /// Leaves no child behind when the test fails half-way.
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// The child's side of [`Child`]: arguments `PROTOCOL PATH COUNT THREADS
/// ADDR`, where ADDR is `listen` for the end that listens.
pub(crate) fn idle_child(args: &[String]) -> Result<(), BoxError> {
    let [protocol, path, count, threads, addr] = args else {
        return Err(format!("{IDLE_CHILD} takes PROTOCOL PATH COUNT THREADS ADDR").into());
    };
    let (protocol, path, count) = (Proto::parse(protocol)?, Path::parse(path)?, count.parse()?);
    let runtime = runtime(threads.parse()?)?;
    let source = match addr.as_str() {
        "listen" => Source::Listen(runtime.block_on(TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))?),
        addr => Source::Dial(addr.parse()?),
    };
    let shown = match &source {
        Source::Listen(listener) => listener.local_addr()?.to_string(),
        Source::Dial(_) => "-".to_owned(),
    };
    println!("ready {shown} {}", rss_kib()?);
    let role = path.role(source.end());
    let builders = Arc::new(Builders::new(protocol));
    // Held until the end, so the client end's connections stay open.
    // On a channel path, one channel per TCP connection: a relay's idle
    // peer.
    let _senders = runtime.block_on(open_end(builders, path, source, count, 1))?;
    if role == Role::Client {
        println!("idle");
    }
    for line in std::io::stdin().lock().lines() {
        if line? == "measure" {
            println!("rss {}", rss_kib()?);
        }
    }
    Ok(())
}

/// This process's resident memory, in KiB.
pub(crate) fn rss_kib() -> Result<i64, BoxError> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let rss = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .ok_or("no VmRSS in /proc/self/status")?;
    Ok(rss.trim().trim_end_matches("kB").trim().parse()?)
}
