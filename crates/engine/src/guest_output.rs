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

#[derive(Clone)]
pub(crate) struct GuestLog {
    component: Arc<str>,
    channel: Channel,
    /// Bytes the instance may still write on this channel (shared by every stream it opens on it).
    budget: Arc<AtomicUsize>,
    /// Whether the line saying the budget is spent has been logged.
    announced: Arc<AtomicBool>,
}

impl GuestLog {
    pub(crate) fn new(component: Arc<str>, channel: Channel) -> GuestLog {
        GuestLog {
            component,
            channel,
            budget: Arc::new(AtomicUsize::new(MAX_OUTPUT_PER_INSTANCE)),
            announced: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Takes up to `wanted` bytes from the budget; says when this call used it up.
    fn take(&self, wanted: usize) -> (usize, bool) {
        let mut granted = 0;
        let _ = self.budget.try_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
            granted = left.min(wanted);
            Some(left - granted)
        });
        (granted, granted < wanted && !self.announced.swap(true, Ordering::Relaxed))
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
                self.log.component,
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
            Channel::Stdout => tracing::info!(target: "kiln::guest", "[{}] {}", self.log.component, text),
            Channel::Stderr => tracing::warn!(target: "kiln::guest", "[{}] {}", self.log.component, text),
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
        LineWriter { log: GuestLog::new("c".into(), Channel::Stdout), line: Vec::new() }
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
        let log = GuestLog::new("c".into(), Channel::Stderr);
        assert_eq!(log.take(MAX_OUTPUT_PER_INSTANCE - 10), (MAX_OUTPUT_PER_INSTANCE - 10, false));
        assert_eq!(log.take(100), (10, true), "cut short: announced");
        assert_eq!(log.take(100), (0, false), "announced once");
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
