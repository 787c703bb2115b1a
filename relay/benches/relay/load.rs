//! Small GETs with wrk, and bulk transfers with curl.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::origin::{BULK, NAME};

/// What one wrk run measured.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub per_second: f64,
    /// Requests answered in the run.
    pub requests: f64,
    pub p50: Duration,
    pub p99: Duration,
}

/// Runs wrk with one thread (so the client's share of the two cores is
/// the same on every path) and `connections` connections, kept alive or
/// (with `close`) a new one for every request, as many API clients do.
pub fn wrk(label: &str, base: &str, connections: usize, close: bool, seconds: u64) -> Load {
    let url = format!("{base}/{NAME}/small.html");
    let mut command = Command::new("wrk");
    if close {
        command.args(["-H", "Connection: close"]);
    }
    let output = command
        .args(["-t1", "--latency", "--timeout", "5s"])
        .arg(format!("-c{connections}"))
        .arg(format!("-d{seconds}s"))
        .arg(&url)
        .output()
        .expect("cannot run wrk");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "wrk failed on {label}: {text}");
    // A path that answers errors fast must not look fast.
    for bad in ["Non-2xx", "Socket errors"] {
        assert!(
            !text.contains(bad),
            "{label}, {connections} connections: {text}"
        );
    }
    let field = |key: &str| {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(key))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {key:?} in wrk's output: {text}"))
    };
    Load {
        per_second: field("Requests/sec:").parse().unwrap(),
        requests: (text.lines())
            .find_map(|line| line.trim().split_once(" requests in "))
            .and_then(|(count, _)| count.parse().ok())
            .unwrap_or_else(|| panic!("no request count in wrk's output: {text}")),
        p50: duration(field("50%")),
        p99: duration(field("99%")),
    }
}

/// wrk's durations: `662.00us`, `1.15ms`, `2.00s`.
fn duration(text: &str) -> Duration {
    let split = text.find(|c: char| c.is_ascii_alphabetic()).unwrap();
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().unwrap();
    let scale = match unit {
        "us" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        _ => panic!("unknown unit in {text:?}"),
    };
    Duration::from_secs_f64(number * scale)
}

/// Downloads 1 GiB from `base` and returns MiB/s.
pub fn down(base: &str) -> f64 {
    curl(
        Command::new("curl").arg("-o").arg("/dev/null"),
        &format!("{base}/{NAME}/down"),
        "size_download",
    )
}

/// Uploads the 1 GiB `file` to `base` and returns MiB/s; the origin
/// answers with the count it received, which is checked.
pub fn up(base: &str, file: &Path) -> f64 {
    curl(
        Command::new("curl").arg("-T").arg(file),
        &format!("{base}/{NAME}/up"),
        "size_upload",
    )
}

fn curl(command: &mut Command, url: &str, size: &str) -> f64 {
    let output = command
        .args(["-sS", "--fail", "-w"])
        .arg(format!("\n%{{{size}}} %{{time_total}}"))
        .arg(url)
        .output()
        .expect("cannot run curl");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "curl failed on {url}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (body, written) = text.rsplit_once('\n').unwrap();
    if !body.is_empty() {
        assert_eq!(body, BULK.to_string(), "the origin received {body} bytes");
    }
    let mut fields = written.split_whitespace();
    let bytes: u64 = fields.next().and_then(|f| f.parse().ok()).unwrap();
    let seconds: f64 = fields.next().and_then(|f| f.parse().ok()).unwrap();
    assert_eq!(bytes, BULK, "{url} moved {bytes} bytes");
    BULK as f64 / (1024.0 * 1024.0) / seconds
}

/// A 1 GiB file of zeros for uploads; sparse, so it costs no disk. It is
/// read once here: the first read of a sparse file fills the page cache
/// and took 2.5 s, which would fall on whichever path uploads first.
pub fn upload_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("upload.bin");
    std::fs::File::create(&path)
        .and_then(|file| file.set_len(BULK))
        .unwrap();
    let mut file = std::fs::File::open(&path).unwrap();
    std::io::copy(&mut file, &mut std::io::sink()).unwrap();
    path
}

/// The median of `values`.
pub fn median<T: Copy + PartialOrd>(values: &mut [T]) -> T {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    values[values.len() / 2]
}
