//! How the log is written: lines gathered in memory and written to
//! stderr by a thread of their own, at most [`WINDOW`] after they were
//! logged, and fields as plain `name=value` text.
//!
//! Writing each line as it is logged cost a `write` per request on each
//! side, on the thread serving it (a tenth of the relay's CPU per request
//! under load, docs/performance.md); a channel to a writer thread, as
//! `tracing-appender` has, wakes that thread per line when the load is
//! light and saves little. Here a burst of lines is one `write`, and an
//! idle process has no timer.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a line may wait in memory before it is written.
pub const WINDOW: Duration = Duration::from_millis(50);

/// Past this much waiting, the line that crosses it is written at once by
/// the thread that logs it, so memory stays bounded when stderr is slow.
const MOST: usize = 256 * 1024;

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    logged: Condvar,
}

#[derive(Default)]
struct State {
    waiting: Vec<u8>,
    closing: bool,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while the lock was held leaves bytes, not a broken state.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The writer `tracing_subscriber::fmt` takes (`.with_writer(..)`).
pub struct Lines<W> {
    shared: Arc<Shared>,
    out: Arc<Mutex<W>>,
}

// Not derived: that would ask `W: Clone`, and only the `Arc`s are cloned.
impl<W> Clone for Lines<W> {
    fn clone(&self) -> Self {
        Lines {
            shared: self.shared.clone(),
            out: self.out.clone(),
        }
    }
}

/// Writes what is waiting, and stops the writer thread, when dropped:
/// keep it until the process ends.
pub struct Flush<W: Write> {
    lines: Lines<W>,
    thread: Option<JoinHandle<()>>,
}

/// The writer for `out`, and its guard.
pub fn lines<W: Write + Send + 'static>(out: W) -> (Lines<W>, Flush<W>) {
    let lines = Lines {
        shared: Arc::default(),
        out: Arc::new(Mutex::new(out)),
    };
    let writer = lines.clone();
    let thread = std::thread::Builder::new()
        .name("log".into())
        .spawn(move || writer.run())
        .expect("a thread for the log");
    let flush = Flush {
        lines: lines.clone(),
        thread: Some(thread),
    };
    (lines, flush)
}

impl<W: Write> Lines<W> {
    /// The writer thread: sleeps until a line is logged, lets the window
    /// fill, writes it all.
    fn run(&self) {
        loop {
            let mut state = self.shared.state();
            while state.waiting.is_empty() && !state.closing {
                state = (self.shared.logged.wait(state)).unwrap_or_else(|p| p.into_inner());
            }
            if state.closing {
                return;
            }
            drop(state);
            std::thread::sleep(WINDOW);
            self.write_waiting();
        }
    }

    /// Writes what is waiting now.
    fn write_waiting(&self) {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let waiting = std::mem::take(&mut self.shared.state().waiting);
        // Nowhere to report a failed write of the log.
        let _ = out.write_all(&waiting).and_then(|()| out.flush());
    }

    fn add(&self, line: &[u8]) {
        let mut state = self.shared.state();
        let was_empty = state.waiting.is_empty();
        state.waiting.extend_from_slice(line);
        let full = state.waiting.len() >= MOST;
        drop(state);
        if full {
            self.write_waiting();
        } else if was_empty {
            self.shared.logged.notify_one();
        }
    }
}

impl<W: Write> Write for &Lines<W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.add(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a, W: Write + 'a> tracing_subscriber::fmt::MakeWriter<'a> for Lines<W> {
    type Writer = &'a Lines<W>;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

impl<W: Write> Flush<W> {
    /// Writes what is waiting now, as before a message on stderr that
    /// must come after the log's lines.
    pub fn now(&self) {
        self.lines.write_waiting();
    }
}

impl<W: Write> Drop for Flush<W> {
    fn drop(&mut self) {
        self.lines.shared.state().closing = true;
        self.lines.shared.logged.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.lines.write_waiting();
    }
}

/// Fields as `name=value`, space-separated: the text the default
/// formatter writes with colour off (strings quoted, `%` values bare),
/// without its colour machinery, which costs per field even when off
/// (with the per-request line's six fields, a tenth of a request's
/// instructions).
#[derive(Debug, Default)]
pub struct PlainFields;

impl<'writer> tracing_subscriber::fmt::FormatFields<'writer> for PlainFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        writer: tracing_subscriber::fmt::format::Writer<'writer>,
        fields: R,
    ) -> std::fmt::Result {
        let mut visitor = Plain {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct Plain<'writer> {
    writer: tracing_subscriber::fmt::format::Writer<'writer>,
    first: bool,
    result: std::fmt::Result,
}

impl Plain<'_> {
    /// One field, written in pieces: a `write!` of `name=value` nests a
    /// formatting pass per piece, which is most of a field's cost.
    fn field(&mut self, name: &str, value: &dyn std::fmt::Debug) -> std::fmt::Result {
        if !std::mem::take(&mut self.first) {
            self.writer.write_char(' ')?;
        }
        if name != "message" {
            // `r#type` and the like are written without the `r#`.
            self.writer.write_str(name.trim_start_matches("r#"))?;
            self.writer.write_char('=')?;
        }
        write!(self.writer, "{value:?}")
    }
}

impl tracing::field::Visit for Plain<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if self.result.is_ok() {
            self.result = self.field(field.name(), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Write` whose calls are counted and whose bytes are kept.
    #[derive(Clone, Default)]
    struct Kept(Arc<Mutex<(Vec<u8>, usize)>>);

    impl Write for Kept {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let mut kept = self.0.lock().unwrap();
            kept.0.extend_from_slice(bytes);
            kept.1 += 1;
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn fields_are_written_as_the_default_formatter_writes_them_without_colour() {
        let kept = Kept::default();
        let (lines, flush) = lines(kept.clone());
        let subscriber = tracing_subscriber::fmt()
            .with_writer(lines)
            .with_ansi(false)
            .without_time()
            .fmt_fields(PlainFields)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("exchange", name = "lamp", n = 2);
            let _entered = span.enter();
            tracing::info!(status = 200, target = "/a b", flag = true, what = ?"q", "request");
            tracing::info!(r#type = %"bare", "raw");
        });
        drop(flush);
        let text = String::from_utf8(kept.0.lock().unwrap().0.clone()).unwrap();
        assert_eq!(
            text,
            " INFO exchange{name=\"lamp\" n=2}: ptth_relay::logging::tests: request status=200 \
             target=\"/a b\" flag=true what=\"q\"\n \
             INFO exchange{name=\"lamp\" n=2}: ptth_relay::logging::tests: raw type=bare\n"
        );
    }

    #[test]
    fn a_burst_of_lines_is_one_write_in_order_and_the_guard_writes_the_rest() {
        let kept = Kept::default();
        let (lines, flush) = lines(kept.clone());
        for n in 0..1000 {
            (&lines)
                .write_all(format!("line {n}\n").as_bytes())
                .unwrap();
        }
        drop(flush);
        let (bytes, writes) = kept.0.lock().unwrap().clone();
        let text = String::from_utf8(bytes).unwrap();
        let expected: String = (0..1000).map(|n| format!("line {n}\n")).collect();
        assert_eq!(text, expected);
        assert!(writes <= 2, "{writes} writes for one burst");
    }

    #[test]
    fn past_the_bound_the_logging_thread_writes_at_once() {
        let kept = Kept::default();
        let (lines, flush) = lines(kept.clone());
        (&lines).write_all(&vec![b'x'; MOST]).unwrap();
        // Written before the window could have passed, by this thread.
        assert_eq!(kept.0.lock().unwrap().0.len(), MOST);
        drop(flush);
    }
}
