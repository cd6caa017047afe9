//! Guest stdout and stderr, sent line by line to the log with the component id as prefix.

use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Longest line kept before it is flushed anyway, so a guest cannot grow host memory without bound.
const MAX_LINE: usize = 16 * 1024;
/// What one instance may write to each of stdout and stderr; the rest is dropped (after one line
/// saying so), so a guest cannot flood the host's log and its disk.
pub(crate) const MAX_OUTPUT_PER_INSTANCE: usize = 1 << 20;

#[derive(Clone, Copy, Debug)]
pub(crate) enum Channel {
    Stdout,
    Stderr,
}

/// One channel of one instance's output, as the log sees it.
#[derive(Clone)]
pub(crate) struct GuestLog {
    output: Arc<InstanceOutput>,
    channel: Channel,
}

/// What one instance's stdout and stderr share: one allocation a store, made with the store.
struct InstanceOutput {
    component: Arc<str>,
    stdout: Budget,
    stderr: Budget,
}

/// What one channel may still write: bytes left (shared by every stream the instance opens on the
/// channel), and whether the line saying it is spent has been logged.
struct Budget {
    left: AtomicUsize,
    announced: AtomicBool,
}

impl Budget {
    fn new() -> Budget {
        Budget { left: AtomicUsize::new(MAX_OUTPUT_PER_INSTANCE), announced: AtomicBool::new(false) }
    }
}

impl GuestLog {
    /// The instance's stdout and stderr, each with its own budget.
    pub(crate) fn for_instance(component: Arc<str>) -> (GuestLog, GuestLog) {
        let output = Arc::new(InstanceOutput { component, stdout: Budget::new(), stderr: Budget::new() });
        (GuestLog { output: output.clone(), channel: Channel::Stdout }, GuestLog { output, channel: Channel::Stderr })
    }

    fn budget(&self) -> &Budget {
        match self.channel {
            Channel::Stdout => &self.output.stdout,
            Channel::Stderr => &self.output.stderr,
        }
    }

    fn component(&self) -> &str {
        &self.output.component
    }

    /// Takes up to `wanted` bytes from the budget; says when this call used it up.
    fn take(&self, wanted: usize) -> (usize, bool) {
        let budget = self.budget();
        let mut granted = 0;
        let _ = budget.left.try_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
            granted = left.min(wanted);
            Some(left - granted)
        });
        (granted, granted < wanted && !budget.announced.swap(true, Ordering::Relaxed))
    }
}

impl IsTerminal for GuestLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestLog {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(LineWriter { log: self.clone(), line: Vec::new() })
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(LineWriter { log: self.clone(), line: Vec::new() })
    }
}

struct LineWriter {
    log: GuestLog,
    line: Vec<u8>,
}

impl LineWriter {
    /// Logs `bytes` within the instance's budget; past it they are dropped.
    fn push(&mut self, bytes: &[u8]) {
        let (granted, used_up) = self.log.take(bytes.len());
        self.push_lines(&bytes[..granted]);
        if used_up {
            if !self.line.is_empty() {
                self.emit();
            }
            tracing::warn!(
                target: "kiln::guest",
                "[{}] wrote more than {} KiB to {:?} in one instance; the rest of its output is dropped",
                self.log.component(),
                MAX_OUTPUT_PER_INSTANCE >> 10,
                self.log.channel
            );
        }
    }

    fn push_lines(&mut self, mut bytes: &[u8]) {
        while let Some(pos) = bytes.iter().position(|b| *b == b'\n') {
            self.line.extend_from_slice(&bytes[..pos]);
            self.emit();
            bytes = &bytes[pos + 1..];
        }
        self.line.extend_from_slice(bytes);
        if self.line.len() >= MAX_LINE {
            self.emit();
        }
    }

    fn emit(&mut self) {
        let text = String::from_utf8_lossy(&self.line);
        let text = text.trim_end_matches('\r');
        match self.log.channel {
            Channel::Stdout => tracing::info!(target: "kiln::guest", "[{}] {}", self.log.component(), text),
            Channel::Stderr => tracing::warn!(target: "kiln::guest", "[{}] {}", self.log.component(), text),
        }
        self.line.clear();
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.line.is_empty() {
            self.emit();
        }
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LineWriter {
    async fn ready(&mut self) {}
}

impl OutputStream for LineWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(MAX_LINE)
    }
}

impl tokio::io::AsyncWrite for LineWriter {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.push(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: std::pin::Pin<&mut Self>, _cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: std::pin::Pin<&mut Self>, _cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}


#[cfg(test)]
mod tests {
    use super::*;

    fn writer() -> LineWriter {
        LineWriter { log: GuestLog::for_instance("c".into()).0, line: Vec::new() }
    }

    #[test]
    fn partial_lines_are_kept_until_their_newline() {
        let mut w = writer();
        w.push(b"hel");
        assert_eq!(w.line, b"hel");
        w.push(b"lo\nwor");
        assert_eq!(w.line, b"wor", "the completed line was emitted");
        w.push(b"ld\n\n");
        assert!(w.line.is_empty());
    }

    #[test]
    fn output_past_the_budget_is_dropped_and_said_once() {
        let (stdout, log) = GuestLog::for_instance("c".into());
        assert_eq!(log.take(MAX_OUTPUT_PER_INSTANCE - 10), (MAX_OUTPUT_PER_INSTANCE - 10, false));
        assert_eq!(log.take(100), (10, true), "cut short: announced");
        assert_eq!(log.take(100), (0, false), "announced once");
        assert_eq!(stdout.take(100), (100, false), "stdout has a budget of its own");
        // A second stream of the same instance shares the budget.
        let mut w = LineWriter { log: log.clone(), line: Vec::new() };
        w.push(b"more\n");
        assert!(w.line.is_empty());
    }

    #[test]
    fn an_endless_line_is_flushed_at_the_limit() {
        let mut w = writer();
        w.push(&vec![b'x'; MAX_LINE + 10]);
        assert!(w.line.is_empty(), "host memory must not grow with one guest line");
    }
}
