//! The options that bound what one client connection may hold (`kiln up` and `kiln serve`).

use kiln_trigger_http::ConnectionLimits;
use std::time::Duration;

#[derive(clap::Args, Clone, Copy, Debug)]
pub(crate) struct ConnectionArgs {
    /// Close a connection that has not sent a whole request head this long after it opened or
    /// after its last response (slow clients, and idle keep-alive connections).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    header_read_timeout: Duration,
    /// Request line and headers larger than this in all get 431, in bytes (at least 8192).
    #[arg(long, default_value_t = 64 << 10, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(8192..=(1 << 30)))]
    max_request_headers: u64,
    /// Client connections open at once; past it the oldest is asked to close (at once if idle).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    max_connections: u64,
}

impl ConnectionArgs {
    pub(crate) fn limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: self.header_read_timeout,
            max_header_bytes: usize::try_from(self.max_request_headers).unwrap_or(usize::MAX),
            max_connections: usize::try_from(self.max_connections).unwrap_or(usize::MAX),
        }
    }
}
