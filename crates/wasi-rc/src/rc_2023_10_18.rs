//! WASI `0.2.0-rc-2023-10-18` (spin-sdk 2.1 and 2.2): `wasi:io`, `wasi:clocks`, `wasi:random`,
//! `wasi:cli`, `wasi:filesystem` and `wasi:sockets` here; `wasi:http` in `rc_2023_10_18_http.rs`.
//!
//! What the final host no longer has: `wasi:clocks/timezone` (answered as UTC), the file system's
//! `access-at` with permissions, `change-*-permissions-at` and advisory locks (`unsupported`;
//! `access-at … exists` is a `stat-at`), `open-at`'s `modes` (new files get the host's default
//! permissions), the sockets' `ipv6-only` and `no-delay` options (`not-supported`). UDP's
//! `start-connect`/`finish-connect`/`send`/`receive` are served over the final datagram streams
//! ([`UdpSocket`]), and `resolve-addresses` filters by address family itself ([`ResolveAddressStream`]).

use crate::convert::convert;
use crate::{HasRc, RcCtx, RcView, forward, rc};
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::cli::WasiCliView;
use wasmtime_wasi::clocks::WasiClocksView;
use wasmtime_wasi::filesystem::WasiFilesystemView;
use wasmtime_wasi::p2::bindings as p2;
use wasmtime_wasi::random::WasiRandomView;
use wasmtime_wasi::sockets::WasiSocketsView;

pub(crate) mod bindings_rc_2023_10_18 {
    wasmtime::component::bindgen!({
        inline: "
            package kiln:wasi-rc-2023-10-18;
            world proxy {
                include wasi:cli/reactor@0.2.0-rc-2023-10-18;
                include wasi:http/proxy@0.2.0-rc-2023-10-18;
            }
        ",
        path: [
            "../../wit/wasi-0.2.0-rc-2023-10-18/io",
            "../../wit/wasi-0.2.0-rc-2023-10-18/clocks",
            "../../wit/wasi-0.2.0-rc-2023-10-18/random",
            "../../wit/wasi-0.2.0-rc-2023-10-18/filesystem",
            "../../wit/wasi-0.2.0-rc-2023-10-18/sockets",
            "../../wit/wasi-0.2.0-rc-2023-10-18/cli",
            "../../wit/wasi-0.2.0-rc-2023-10-18/http",
        ],
        world: "kiln:wasi-rc-2023-10-18/proxy",
        imports: {
            "wasi:io/poll.poll-list": async | trappable,
            "wasi:io/poll.poll-one": async | trappable,
            "wasi:io/streams.[method]input-stream.blocking-read": async | trappable,
            "wasi:io/streams.[method]input-stream.blocking-skip": async | trappable,
            "wasi:io/streams.[drop]input-stream": async | trappable,
            "wasi:io/streams.[method]output-stream.blocking-write-and-flush": async | trappable,
            "wasi:io/streams.[method]output-stream.blocking-write-zeroes-and-flush": async | trappable,
            "wasi:io/streams.[method]output-stream.blocking-flush": async | trappable,
            "wasi:io/streams.[method]output-stream.blocking-splice": async | trappable,
            "wasi:io/streams.[method]output-stream.forward": async | trappable,
            "wasi:io/streams.[drop]output-stream": async | trappable,
            "wasi:filesystem/types": async | trappable,
            "wasi:sockets/tcp": async | trappable,
            "wasi:sockets/udp": async | trappable,
            "wasi:sockets/udp-create-socket": async | trappable,
            default: trappable,
        },
        exports: { default: async },
        with: {
            "wasi:io/poll.pollable": wasmtime_wasi::p2::bindings::io::poll::Pollable,
            "wasi:io/streams.input-stream": wasmtime_wasi::p2::bindings::io::streams::InputStream,
            "wasi:io/streams.output-stream": wasmtime_wasi::p2::bindings::io::streams::OutputStream,
            "wasi:io/streams.error": wasmtime_wasi::p2::bindings::io::error::Error,
            "wasi:filesystem/types.descriptor": wasmtime_wasi::p2::bindings::filesystem::types::Descriptor,
            "wasi:filesystem/types.directory-entry-stream": wasmtime_wasi::p2::bindings::filesystem::types::DirectoryEntryStream,
            "wasi:cli/terminal-input.terminal-input": wasmtime_wasi::p2::bindings::cli::terminal_input::TerminalInput,
            "wasi:cli/terminal-output.terminal-output": wasmtime_wasi::p2::bindings::cli::terminal_output::TerminalOutput,
            "wasi:sockets/network.network": wasmtime_wasi::p2::bindings::sockets::network::Network,
            "wasi:sockets/tcp.tcp-socket": wasmtime_wasi::p2::bindings::sockets::tcp::TcpSocket,
            "wasi:sockets/udp.udp-socket": super::UdpSocket,
            "wasi:sockets/ip-name-lookup.resolve-address-stream": super::ResolveAddressStream,
            "wasi:http/types.fields": wasmtime_wasi_http::p2::bindings::http::types::Fields,
            "wasi:http/types.incoming-request": wasmtime_wasi_http::p2::bindings::http::types::IncomingRequest,
            "wasi:http/types.incoming-response": wasmtime_wasi_http::p2::bindings::http::types::IncomingResponse,
            "wasi:http/types.incoming-body": wasmtime_wasi_http::p2::bindings::http::types::IncomingBody,
            "wasi:http/types.outgoing-request": wasmtime_wasi_http::p2::bindings::http::types::OutgoingRequest,
            "wasi:http/types.outgoing-response": wasmtime_wasi_http::p2::bindings::http::types::OutgoingResponse,
            "wasi:http/types.outgoing-body": wasmtime_wasi_http::p2::bindings::http::types::OutgoingBody,
            "wasi:http/types.response-outparam": wasmtime_wasi_http::p2::bindings::http::types::ResponseOutparam,
            "wasi:http/types.future-incoming-response": wasmtime_wasi_http::p2::bindings::http::types::FutureIncomingResponse,
            "wasi:http/types.future-trailers": wasmtime_wasi_http::p2::bindings::http::types::FutureTrailers,
        },
    });
}

pub(crate) use bindings_rc_2023_10_18::wasi::{cli, clocks, filesystem, http, io, random, sockets};

/// The `wasi:http/incoming-handler@0.2.0-rc-2023-10-18` export: `ProxyPre::new` finds it in a
/// component (and fails if it has none); `Proxy::wasi_http_incoming_handler` calls it.
pub use bindings_rc_2023_10_18::{Proxy, ProxyIndices, ProxyPre};

use clocks::wall_clock::Datetime;
use filesystem::types::{
    AccessType, Advice, Descriptor, DescriptorFlags, DescriptorStat, DescriptorType, DirectoryEntry, DirectoryEntryStream,
    ErrorCode as FsErrorCode, Filesize, MetadataHashValue, Modes, NewTimestamp, OpenFlags, PathFlags,
};
use io::streams::{InputStream, OutputStream, StreamError};
use sockets::network::{ErrorCode as SocketErrorCode, IpAddress, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, Ipv6SocketAddress, Network};
use sockets::tcp::{ShutdownType, TcpSocket};
use sockets::udp::Datagram;
use wasmtime_wasi::p2::DynPollable;

pub(crate) fn add_to_linker<T: RcView>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    io::poll::add_to_linker::<T, HasRc<T>>(linker, rc)?;
    io::streams::add_to_linker::<T, HasRc<T>>(linker, rc)?;
    clocks::wall_clock::add_to_linker::<T, HasRc<T>>(linker, rc)?;
    clocks::monotonic_clock::add_to_linker::<T, HasRc<T>>(linker, rc)?;
    clocks::timezone::add_to_linker::<T, HasRc<T>>(linker, rc)?;
    random::random::add_to_linker::<T, HasRc<T>>(linker, rc)?;
    random::insecure::add_to_linker::<T, HasRc<T>>(linker, rc)?;
    random::insecure_seed::add_to_linker::<T, HasRc<T>>(linker, rc)?;
    cli::environment::add_to_linker::<T, HasRc<T>>(linker, rc)?;
    cli::exit::add_to_linker::<T, HasRc<T>>(linker, rc)?;
    cli::stdin::add_to_linker::<T, HasRc<T>>(linker, rc)?;
    cli::stdout::add_to_linker::<T, HasRc<T>>(linker, rc)?;
    cli::stderr::add_to_linker::<T, HasRc<T>>(linker, rc)?;
    cli::terminal_input::add_to_linker::<T, HasRc<T>>(linker, rc)?;
    cli::terminal_output::add_to_linker::<T, HasRc<T>>(linker, rc)?;
    cli::terminal_stdin::add_to_linker::<T, HasRc<T>>(linker, rc)?;
    cli::terminal_stdout::add_to_linker::<T, HasRc<T>>(linker, rc)?;
    cli::terminal_stderr::add_to_linker::<T, HasRc<T>>(linker, rc)?;
    filesystem::types::add_to_linker::<T, HasRc<T>>(linker, rc)?;
    filesystem::preopens::add_to_linker::<T, HasRc<T>>(linker, rc)?;
    sockets::network::add_to_linker::<T, HasRc<T>>(linker, rc)?;
    sockets::instance_network::add_to_linker::<T, HasRc<T>>(linker, rc)?;
    sockets::ip_name_lookup::add_to_linker::<T, HasRc<T>>(linker, rc)?;
    sockets::tcp::add_to_linker::<T, HasRc<T>>(linker, rc)?;
    sockets::tcp_create_socket::add_to_linker::<T, HasRc<T>>(linker, rc)?;
    sockets::udp::add_to_linker::<T, HasRc<T>>(linker, rc)?;
    sockets::udp_create_socket::add_to_linker::<T, HasRc<T>>(linker, rc)?;
    crate::rc_2023_10_18_http::add_to_linker(linker)
}

/// A final-host stream result as this candidate's: the error becomes an `error` resource (the same
/// table entry the final `wasi:io/error` uses).
pub(crate) fn stream_result<T, U: From<T>>(ctx: &mut RcCtx<'_, impl RcView>, result: Result<T, wasmtime_wasi::p2::StreamError>) -> wasmtime::Result<Result<U, StreamError>> {
    match result {
        Ok(value) => Ok(Ok(value.into())),
        Err(err) => match p2::io::streams::Host::convert_stream_error(ctx.table(), err)? {
            p2::io::streams::StreamError::Closed => Ok(Err(StreamError::Closed)),
            p2::io::streams::StreamError::LastOperationFailed(err) => Ok(Err(StreamError::LastOperationFailed(err))),
        },
    }
}

// wasi:io

impl<T: RcView> io::poll::Host for RcCtx<'_, T> {
    async fn poll_list(&mut self, pollables: Vec<Resource<DynPollable>>) -> wasmtime::Result<Vec<u32>> {
        p2::io::poll::Host::poll(self.table(), pollables).await
    }

    async fn poll_one(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        p2::io::poll::HostPollable::block(self.table(), pollable).await
    }
}

impl<T: RcView> io::poll::HostPollable for RcCtx<'_, T> {
    fn drop(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        p2::io::poll::HostPollable::drop(self.table(), pollable)
    }
}

impl<T: RcView> io::streams::Host for RcCtx<'_, T> {}

impl<T: RcView> io::streams::HostError for RcCtx<'_, T> {
    fn to_debug_string(&mut self, err: Resource<io::streams::Error>) -> wasmtime::Result<String> {
        p2::io::error::HostError::to_debug_string(self.table(), err)
    }

    fn drop(&mut self, err: Resource<io::streams::Error>) -> wasmtime::Result<()> {
        p2::io::error::HostError::drop(self.table(), err)
    }
}

impl<T: RcView> io::streams::HostInputStream for RcCtx<'_, T> {
    fn read(&mut self, stream: Resource<InputStream>, len: u64) -> wasmtime::Result<Result<Vec<u8>, StreamError>> {
        let result = p2::io::streams::HostInputStream::read(self.table(), stream, len);
        stream_result(self, result)
    }

    async fn blocking_read(&mut self, stream: Resource<InputStream>, len: u64) -> wasmtime::Result<Result<Vec<u8>, StreamError>> {
        let result = p2::io::streams::HostInputStream::blocking_read(self.table(), stream, len).await;
        stream_result(self, result)
    }

    fn skip(&mut self, stream: Resource<InputStream>, len: u64) -> wasmtime::Result<Result<u64, StreamError>> {
        let result = p2::io::streams::HostInputStream::skip(self.table(), stream, len);
        stream_result(self, result)
    }

    async fn blocking_skip(&mut self, stream: Resource<InputStream>, len: u64) -> wasmtime::Result<Result<u64, StreamError>> {
        let result = p2::io::streams::HostInputStream::blocking_skip(self.table(), stream, len).await;
        stream_result(self, result)
    }

    fn subscribe(&mut self, stream: Resource<InputStream>) -> wasmtime::Result<Resource<DynPollable>> {
        p2::io::streams::HostInputStream::subscribe(self.table(), stream)
    }

    async fn drop(&mut self, stream: Resource<InputStream>) -> wasmtime::Result<()> {
        p2::io::streams::HostInputStream::drop(self.table(), stream).await
    }
}

impl<T: RcView> io::streams::HostOutputStream for RcCtx<'_, T> {
    fn check_write(&mut self, stream: Resource<OutputStream>) -> wasmtime::Result<Result<u64, StreamError>> {
        let result = p2::io::streams::HostOutputStream::check_write(self.table(), stream);
        stream_result(self, result)
    }

    fn write(&mut self, stream: Resource<OutputStream>, contents: Vec<u8>) -> wasmtime::Result<Result<(), StreamError>> {
        let result = p2::io::streams::HostOutputStream::write(self.table(), stream, contents);
        stream_result(self, result)
    }

    async fn blocking_write_and_flush(&mut self, stream: Resource<OutputStream>, contents: Vec<u8>) -> wasmtime::Result<Result<(), StreamError>> {
        let result = p2::io::streams::HostOutputStream::blocking_write_and_flush(self.table(), stream, contents).await;
        stream_result(self, result)
    }

    fn flush(&mut self, stream: Resource<OutputStream>) -> wasmtime::Result<Result<(), StreamError>> {
        let result = p2::io::streams::HostOutputStream::flush(self.table(), stream);
        stream_result(self, result)
    }

    async fn blocking_flush(&mut self, stream: Resource<OutputStream>) -> wasmtime::Result<Result<(), StreamError>> {
        let result = p2::io::streams::HostOutputStream::blocking_flush(self.table(), stream).await;
        stream_result(self, result)
    }

    fn subscribe(&mut self, stream: Resource<OutputStream>) -> wasmtime::Result<Resource<DynPollable>> {
        p2::io::streams::HostOutputStream::subscribe(self.table(), stream)
    }

    fn write_zeroes(&mut self, stream: Resource<OutputStream>, len: u64) -> wasmtime::Result<Result<(), StreamError>> {
        let result = p2::io::streams::HostOutputStream::write_zeroes(self.table(), stream, len);
        stream_result(self, result)
    }

    async fn blocking_write_zeroes_and_flush(&mut self, stream: Resource<OutputStream>, len: u64) -> wasmtime::Result<Result<(), StreamError>> {
        let result = p2::io::streams::HostOutputStream::blocking_write_zeroes_and_flush(self.table(), stream, len).await;
        stream_result(self, result)
    }

    fn splice(&mut self, stream: Resource<OutputStream>, src: Resource<InputStream>, len: u64) -> wasmtime::Result<Result<u64, StreamError>> {
        let result = p2::io::streams::HostOutputStream::splice(self.table(), stream, src, len);
        stream_result(self, result)
    }

    async fn blocking_splice(&mut self, stream: Resource<OutputStream>, src: Resource<InputStream>, len: u64) -> wasmtime::Result<Result<u64, StreamError>> {
        let result = p2::io::streams::HostOutputStream::blocking_splice(self.table(), stream, src, len).await;
        stream_result(self, result)
    }

    /// The whole of `src`, to its end, in blocking splices; the count of bytes moved.
    async fn forward(&mut self, stream: Resource<OutputStream>, src: Resource<InputStream>) -> wasmtime::Result<Result<u64, StreamError>> {
        const CHUNK: u64 = 64 * 1024;
        let mut moved = 0u64;
        loop {
            let dst = Resource::new_borrow(stream.rep());
            let from = Resource::new_borrow(src.rep());
            match p2::io::streams::HostOutputStream::blocking_splice(self.table(), dst, from, CHUNK).await {
                Ok(n) => moved = moved.saturating_add(n),
                // The input ended: everything was forwarded.
                Err(wasmtime_wasi::p2::StreamError::Closed) => return Ok(Ok(moved)),
                Err(err) => return stream_result::<u64, u64>(self, Err(err)),
            }
        }
    }

    async fn drop(&mut self, stream: Resource<OutputStream>) -> wasmtime::Result<()> {
        p2::io::streams::HostOutputStream::drop(self.table(), stream).await
    }
}

// wasi:clocks

impl<T: RcView> clocks::wall_clock::Host for RcCtx<'_, T> {
    fn now(&mut self) -> wasmtime::Result<Datetime> {
        Ok(p2::clocks::wall_clock::Host::now(&mut self.0.clocks())?.into())
    }

    fn resolution(&mut self) -> wasmtime::Result<Datetime> {
        Ok(p2::clocks::wall_clock::Host::resolution(&mut self.0.clocks())?.into())
    }
}

impl<T: RcView> clocks::monotonic_clock::Host for RcCtx<'_, T> {
    fn now(&mut self) -> wasmtime::Result<u64> {
        p2::clocks::monotonic_clock::Host::now(&mut self.0.clocks())
    }

    fn resolution(&mut self) -> wasmtime::Result<u64> {
        p2::clocks::monotonic_clock::Host::resolution(&mut self.0.clocks())
    }

    fn subscribe(&mut self, when: u64, absolute: bool) -> wasmtime::Result<Resource<DynPollable>> {
        let mut clocks = self.0.clocks();
        if absolute {
            p2::clocks::monotonic_clock::Host::subscribe_instant(&mut clocks, when)
        } else {
            p2::clocks::monotonic_clock::Host::subscribe_duration(&mut clocks, when)
        }
    }
}

/// The final WASI 0.2 has no time zones; the host's clock is UTC.
impl<T: RcView> clocks::timezone::Host for RcCtx<'_, T> {
    fn display(&mut self, _when: Datetime) -> wasmtime::Result<clocks::timezone::TimezoneDisplay> {
        Ok(clocks::timezone::TimezoneDisplay { utc_offset: 0, name: "UTC".to_string(), in_daylight_saving_time: false })
    }

    fn utc_offset(&mut self, _when: Datetime) -> wasmtime::Result<i32> {
        Ok(0)
    }
}

// wasi:random

impl<T: RcView> random::random::Host for RcCtx<'_, T> {
    fn get_random_bytes(&mut self, len: u64) -> wasmtime::Result<Vec<u8>> {
        p2::random::random::Host::get_random_bytes(self.0.random(), len)
    }

    fn get_random_u64(&mut self) -> wasmtime::Result<u64> {
        p2::random::random::Host::get_random_u64(self.0.random())
    }
}

impl<T: RcView> random::insecure::Host for RcCtx<'_, T> {
    fn get_insecure_random_bytes(&mut self, len: u64) -> wasmtime::Result<Vec<u8>> {
        p2::random::insecure::Host::get_insecure_random_bytes(self.0.random(), len)
    }

    fn get_insecure_random_u64(&mut self) -> wasmtime::Result<u64> {
        p2::random::insecure::Host::get_insecure_random_u64(self.0.random())
    }
}

impl<T: RcView> random::insecure_seed::Host for RcCtx<'_, T> {
    fn insecure_seed(&mut self) -> wasmtime::Result<(u64, u64)> {
        p2::random::insecure_seed::Host::insecure_seed(self.0.random())
    }
}

// wasi:cli

impl<T: RcView> cli::environment::Host for RcCtx<'_, T> {
    fn get_environment(&mut self) -> wasmtime::Result<Vec<(String, String)>> {
        p2::cli::environment::Host::get_environment(&mut self.0.cli())
    }

    fn get_arguments(&mut self) -> wasmtime::Result<Vec<String>> {
        p2::cli::environment::Host::get_arguments(&mut self.0.cli())
    }

    fn initial_cwd(&mut self) -> wasmtime::Result<Option<String>> {
        p2::cli::environment::Host::initial_cwd(&mut self.0.cli())
    }
}

impl<T: RcView> cli::exit::Host for RcCtx<'_, T> {
    fn exit(&mut self, status: Result<(), ()>) -> wasmtime::Result<()> {
        p2::cli::exit::Host::exit(&mut self.0.cli(), status)
    }
}

impl<T: RcView> cli::stdin::Host for RcCtx<'_, T> {
    fn get_stdin(&mut self) -> wasmtime::Result<Resource<InputStream>> {
        p2::cli::stdin::Host::get_stdin(&mut self.0.cli())
    }
}

impl<T: RcView> cli::stdout::Host for RcCtx<'_, T> {
    fn get_stdout(&mut self) -> wasmtime::Result<Resource<OutputStream>> {
        p2::cli::stdout::Host::get_stdout(&mut self.0.cli())
    }
}

impl<T: RcView> cli::stderr::Host for RcCtx<'_, T> {
    fn get_stderr(&mut self) -> wasmtime::Result<Resource<OutputStream>> {
        p2::cli::stderr::Host::get_stderr(&mut self.0.cli())
    }
}

impl<T: RcView> cli::terminal_input::Host for RcCtx<'_, T> {}

impl<T: RcView> cli::terminal_input::HostTerminalInput for RcCtx<'_, T> {
    fn drop(&mut self, terminal: Resource<cli::terminal_input::TerminalInput>) -> wasmtime::Result<()> {
        p2::cli::terminal_input::HostTerminalInput::drop(&mut self.0.cli(), terminal)
    }
}

impl<T: RcView> cli::terminal_output::Host for RcCtx<'_, T> {}

impl<T: RcView> cli::terminal_output::HostTerminalOutput for RcCtx<'_, T> {
    fn drop(&mut self, terminal: Resource<cli::terminal_output::TerminalOutput>) -> wasmtime::Result<()> {
        p2::cli::terminal_output::HostTerminalOutput::drop(&mut self.0.cli(), terminal)
    }
}

impl<T: RcView> cli::terminal_stdin::Host for RcCtx<'_, T> {
    fn get_terminal_stdin(&mut self) -> wasmtime::Result<Option<Resource<cli::terminal_input::TerminalInput>>> {
        p2::cli::terminal_stdin::Host::get_terminal_stdin(&mut self.0.cli())
    }
}

impl<T: RcView> cli::terminal_stdout::Host for RcCtx<'_, T> {
    fn get_terminal_stdout(&mut self) -> wasmtime::Result<Option<Resource<cli::terminal_output::TerminalOutput>>> {
        p2::cli::terminal_stdout::Host::get_terminal_stdout(&mut self.0.cli())
    }
}

impl<T: RcView> cli::terminal_stderr::Host for RcCtx<'_, T> {
    fn get_terminal_stderr(&mut self) -> wasmtime::Result<Option<Resource<cli::terminal_output::TerminalOutput>>> {
        p2::cli::terminal_stderr::Host::get_terminal_stderr(&mut self.0.cli())
    }
}

// wasi:filesystem

use p2::filesystem::types::HostDescriptor as P2Descriptor;

impl<T: RcView> filesystem::types::Host for RcCtx<'_, T> {
    async fn filesystem_error_code(&mut self, err: Resource<io::streams::Error>) -> wasmtime::Result<Option<FsErrorCode>> {
        Ok(p2::filesystem::types::Host::filesystem_error_code(&mut self.0.filesystem(), err)?.map(Into::into))
    }
}

impl<T: RcView> filesystem::types::HostDescriptor for RcCtx<'_, T> {
    async fn read_via_stream(&mut self, fd: Resource<Descriptor>, offset: Filesize) -> wasmtime::Result<Result<Resource<InputStream>, FsErrorCode>> {
        forward(P2Descriptor::read_via_stream(&mut self.0.filesystem(), fd, offset))
    }

    async fn write_via_stream(&mut self, fd: Resource<Descriptor>, offset: Filesize) -> wasmtime::Result<Result<Resource<OutputStream>, FsErrorCode>> {
        forward(P2Descriptor::write_via_stream(&mut self.0.filesystem(), fd, offset))
    }

    async fn append_via_stream(&mut self, fd: Resource<Descriptor>) -> wasmtime::Result<Result<Resource<OutputStream>, FsErrorCode>> {
        forward(P2Descriptor::append_via_stream(&mut self.0.filesystem(), fd))
    }

    async fn advise(&mut self, fd: Resource<Descriptor>, offset: Filesize, length: Filesize, advice: Advice) -> wasmtime::Result<Result<(), FsErrorCode>> {
        forward(P2Descriptor::advise(&mut self.0.filesystem(), fd, offset, length, advice.into()).await)
    }

    async fn sync_data(&mut self, fd: Resource<Descriptor>) -> wasmtime::Result<Result<(), FsErrorCode>> {
        forward(P2Descriptor::sync_data(&mut self.0.filesystem(), fd).await)
    }

    async fn get_flags(&mut self, fd: Resource<Descriptor>) -> wasmtime::Result<Result<DescriptorFlags, FsErrorCode>> {
        forward(P2Descriptor::get_flags(&mut self.0.filesystem(), fd).await)
    }

    async fn get_type(&mut self, fd: Resource<Descriptor>) -> wasmtime::Result<Result<DescriptorType, FsErrorCode>> {
        forward(P2Descriptor::get_type(&mut self.0.filesystem(), fd).await)
    }

    async fn set_size(&mut self, fd: Resource<Descriptor>, size: Filesize) -> wasmtime::Result<Result<(), FsErrorCode>> {
        forward(P2Descriptor::set_size(&mut self.0.filesystem(), fd, size).await)
    }

    async fn set_times(&mut self, fd: Resource<Descriptor>, atime: NewTimestamp, mtime: NewTimestamp) -> wasmtime::Result<Result<(), FsErrorCode>> {
        forward(P2Descriptor::set_times(&mut self.0.filesystem(), fd, atime.into(), mtime.into()).await)
    }

    async fn read(&mut self, fd: Resource<Descriptor>, length: Filesize, offset: Filesize) -> wasmtime::Result<Result<(Vec<u8>, bool), FsErrorCode>> {
        forward(P2Descriptor::read(&mut self.0.filesystem(), fd, length, offset).await)
    }

    async fn write(&mut self, fd: Resource<Descriptor>, buffer: Vec<u8>, offset: Filesize) -> wasmtime::Result<Result<Filesize, FsErrorCode>> {
        forward(P2Descriptor::write(&mut self.0.filesystem(), fd, buffer, offset).await)
    }

    async fn read_directory(&mut self, fd: Resource<Descriptor>) -> wasmtime::Result<Result<Resource<DirectoryEntryStream>, FsErrorCode>> {
        forward(P2Descriptor::read_directory(&mut self.0.filesystem(), fd).await)
    }

    async fn sync(&mut self, fd: Resource<Descriptor>) -> wasmtime::Result<Result<(), FsErrorCode>> {
        forward(P2Descriptor::sync(&mut self.0.filesystem(), fd).await)
    }

    async fn create_directory_at(&mut self, fd: Resource<Descriptor>, path: String) -> wasmtime::Result<Result<(), FsErrorCode>> {
        forward(P2Descriptor::create_directory_at(&mut self.0.filesystem(), fd, path).await)
    }

    async fn stat(&mut self, fd: Resource<Descriptor>) -> wasmtime::Result<Result<DescriptorStat, FsErrorCode>> {
        forward(P2Descriptor::stat(&mut self.0.filesystem(), fd).await)
    }

    async fn stat_at(&mut self, fd: Resource<Descriptor>, path_flags: PathFlags, path: String) -> wasmtime::Result<Result<DescriptorStat, FsErrorCode>> {
        forward(P2Descriptor::stat_at(&mut self.0.filesystem(), fd, path_flags.into(), path).await)
    }

    async fn set_times_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: PathFlags,
        path: String,
        atime: NewTimestamp,
        mtime: NewTimestamp,
    ) -> wasmtime::Result<Result<(), FsErrorCode>> {
        forward(P2Descriptor::set_times_at(&mut self.0.filesystem(), fd, path_flags.into(), path, atime.into(), mtime.into()).await)
    }

    async fn link_at(
        &mut self,
        fd: Resource<Descriptor>,
        old_path_flags: PathFlags,
        old_path: String,
        new_descriptor: Resource<Descriptor>,
        new_path: String,
    ) -> wasmtime::Result<Result<(), FsErrorCode>> {
        forward(P2Descriptor::link_at(&mut self.0.filesystem(), fd, old_path_flags.into(), old_path, new_descriptor, new_path).await)
    }

    /// `modes` (the permissions of a file created) has no counterpart: the host's defaults apply.
    async fn open_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: PathFlags,
        path: String,
        open_flags: OpenFlags,
        flags: DescriptorFlags,
        _modes: Modes,
    ) -> wasmtime::Result<Result<Resource<Descriptor>, FsErrorCode>> {
        forward(P2Descriptor::open_at(&mut self.0.filesystem(), fd, path_flags.into(), path, open_flags.into(), flags.into()).await)
    }

    async fn readlink_at(&mut self, fd: Resource<Descriptor>, path: String) -> wasmtime::Result<Result<String, FsErrorCode>> {
        forward(P2Descriptor::readlink_at(&mut self.0.filesystem(), fd, path).await)
    }

    async fn remove_directory_at(&mut self, fd: Resource<Descriptor>, path: String) -> wasmtime::Result<Result<(), FsErrorCode>> {
        forward(P2Descriptor::remove_directory_at(&mut self.0.filesystem(), fd, path).await)
    }

    async fn rename_at(&mut self, fd: Resource<Descriptor>, old_path: String, new_descriptor: Resource<Descriptor>, new_path: String) -> wasmtime::Result<Result<(), FsErrorCode>> {
        forward(P2Descriptor::rename_at(&mut self.0.filesystem(), fd, old_path, new_descriptor, new_path).await)
    }

    async fn symlink_at(&mut self, fd: Resource<Descriptor>, old_path: String, new_path: String) -> wasmtime::Result<Result<(), FsErrorCode>> {
        forward(P2Descriptor::symlink_at(&mut self.0.filesystem(), fd, old_path, new_path).await)
    }

    /// `exists` is a `stat-at`; checking permissions has no counterpart (`unsupported`).
    async fn access_at(&mut self, fd: Resource<Descriptor>, path_flags: PathFlags, path: String, access: AccessType) -> wasmtime::Result<Result<(), FsErrorCode>> {
        match access {
            AccessType::Exists => {
                let stat: Result<DescriptorStat, FsErrorCode> = forward(P2Descriptor::stat_at(&mut self.0.filesystem(), fd, path_flags.into(), path).await)?;
                Ok(stat.map(|_| ()))
            }
            AccessType::Access(_) => Ok(Err(FsErrorCode::Unsupported)),
        }
    }

    async fn unlink_file_at(&mut self, fd: Resource<Descriptor>, path: String) -> wasmtime::Result<Result<(), FsErrorCode>> {
        forward(P2Descriptor::unlink_file_at(&mut self.0.filesystem(), fd, path).await)
    }

    async fn change_file_permissions_at(&mut self, _fd: Resource<Descriptor>, _path_flags: PathFlags, _path: String, _modes: Modes) -> wasmtime::Result<Result<(), FsErrorCode>> {
        Ok(Err(FsErrorCode::Unsupported))
    }

    async fn change_directory_permissions_at(&mut self, _fd: Resource<Descriptor>, _path_flags: PathFlags, _path: String, _modes: Modes) -> wasmtime::Result<Result<(), FsErrorCode>> {
        Ok(Err(FsErrorCode::Unsupported))
    }

    async fn lock_shared(&mut self, _fd: Resource<Descriptor>) -> wasmtime::Result<Result<(), FsErrorCode>> {
        Ok(Err(FsErrorCode::Unsupported))
    }

    async fn lock_exclusive(&mut self, _fd: Resource<Descriptor>) -> wasmtime::Result<Result<(), FsErrorCode>> {
        Ok(Err(FsErrorCode::Unsupported))
    }

    async fn try_lock_shared(&mut self, _fd: Resource<Descriptor>) -> wasmtime::Result<Result<(), FsErrorCode>> {
        Ok(Err(FsErrorCode::Unsupported))
    }

    async fn try_lock_exclusive(&mut self, _fd: Resource<Descriptor>) -> wasmtime::Result<Result<(), FsErrorCode>> {
        Ok(Err(FsErrorCode::Unsupported))
    }

    async fn unlock(&mut self, _fd: Resource<Descriptor>) -> wasmtime::Result<Result<(), FsErrorCode>> {
        Ok(Err(FsErrorCode::Unsupported))
    }

    async fn is_same_object(&mut self, fd: Resource<Descriptor>, other: Resource<Descriptor>) -> wasmtime::Result<bool> {
        P2Descriptor::is_same_object(&mut self.0.filesystem(), fd, other).await
    }

    async fn metadata_hash(&mut self, fd: Resource<Descriptor>) -> wasmtime::Result<Result<MetadataHashValue, FsErrorCode>> {
        forward(P2Descriptor::metadata_hash(&mut self.0.filesystem(), fd).await)
    }

    async fn metadata_hash_at(&mut self, fd: Resource<Descriptor>, path_flags: PathFlags, path: String) -> wasmtime::Result<Result<MetadataHashValue, FsErrorCode>> {
        forward(P2Descriptor::metadata_hash_at(&mut self.0.filesystem(), fd, path_flags.into(), path).await)
    }

    async fn drop(&mut self, fd: Resource<Descriptor>) -> wasmtime::Result<()> {
        P2Descriptor::drop(&mut self.0.filesystem(), fd)
    }
}

impl<T: RcView> filesystem::types::HostDirectoryEntryStream for RcCtx<'_, T> {
    async fn read_directory_entry(&mut self, stream: Resource<DirectoryEntryStream>) -> wasmtime::Result<Result<Option<DirectoryEntry>, FsErrorCode>> {
        let entry = p2::filesystem::types::HostDirectoryEntryStream::read_directory_entry(&mut self.0.filesystem(), stream).await;
        forward(entry.map(|entry| entry.map(DirectoryEntry::from)))
    }

    async fn drop(&mut self, stream: Resource<DirectoryEntryStream>) -> wasmtime::Result<()> {
        p2::filesystem::types::HostDirectoryEntryStream::drop(&mut self.0.filesystem(), stream)
    }
}

impl<T: RcView> filesystem::preopens::Host for RcCtx<'_, T> {
    fn get_directories(&mut self) -> wasmtime::Result<Vec<(Resource<Descriptor>, String)>> {
        p2::filesystem::preopens::Host::get_directories(&mut self.0.filesystem())
    }
}

// wasi:sockets

use p2::sockets::tcp::HostTcpSocket as P2Tcp;
use p2::sockets::udp::HostUdpSocket as P2Udp;

impl<T: RcView> sockets::network::Host for RcCtx<'_, T> {}

impl<T: RcView> sockets::network::HostNetwork for RcCtx<'_, T> {
    fn drop(&mut self, network: Resource<Network>) -> wasmtime::Result<()> {
        p2::sockets::network::HostNetwork::drop(&mut self.0.sockets(), network)
    }
}

impl<T: RcView> sockets::instance_network::Host for RcCtx<'_, T> {
    fn instance_network(&mut self) -> wasmtime::Result<Resource<Network>> {
        p2::sockets::instance_network::Host::instance_network(&mut self.0.sockets())
    }
}

/// A name lookup, and the address family the guest asked for (the final host returns both).
pub struct ResolveAddressStream {
    inner: Resource<p2::sockets::ip_name_lookup::ResolveAddressStream>,
    family: Option<p2::sockets::network::IpAddressFamily>,
}

impl<T: RcView> sockets::ip_name_lookup::Host for RcCtx<'_, T> {
    /// `include-unavailable` asks for more than the final host knows of: the addresses it returns
    /// are the ones available.
    fn resolve_addresses(
        &mut self,
        network: Resource<Network>,
        name: String,
        family: Option<IpAddressFamily>,
        _include_unavailable: bool,
    ) -> wasmtime::Result<Result<Resource<ResolveAddressStream>, SocketErrorCode>> {
        let inner = match forward(p2::sockets::ip_name_lookup::Host::resolve_addresses(&mut self.0.sockets(), network, name))? {
            Ok(inner) => inner,
            Err(code) => return Ok(Err(code)),
        };
        let stream = ResolveAddressStream { inner, family: family.map(Into::into) };
        Ok(Ok(self.table().push(stream)?))
    }
}

/// Whether `address` is of `family` (any, if none was asked for).
fn family_matches(address: &p2::sockets::network::IpAddress, family: Option<p2::sockets::network::IpAddressFamily>) -> bool {
    use p2::sockets::network::{IpAddress as Address, IpAddressFamily as Family};
    matches!((address, family), (_, None) | (Address::Ipv4(_), Some(Family::Ipv4)) | (Address::Ipv6(_), Some(Family::Ipv6)))
}

impl<T: RcView> sockets::ip_name_lookup::HostResolveAddressStream for RcCtx<'_, T> {
    fn resolve_next_address(&mut self, stream: Resource<ResolveAddressStream>) -> wasmtime::Result<Result<Option<IpAddress>, SocketErrorCode>> {
        let (inner, family) = {
            let stream = self.table().get(&stream)?;
            (stream.inner.rep(), stream.family)
        };
        loop {
            let next = p2::sockets::ip_name_lookup::HostResolveAddressStream::resolve_next_address(&mut self.0.sockets(), Resource::new_borrow(inner));
            let address = match forward::<_, _, _, SocketErrorCode>(next)? {
                Ok(Some(address)) => address,
                other => return Ok(other.map(|none: Option<p2::sockets::network::IpAddress>| none.map(Into::into))),
            };
            if family_matches(&address, family) {
                return Ok(Ok(Some(address.into())));
            }
        }
    }

    fn subscribe(&mut self, stream: Resource<ResolveAddressStream>) -> wasmtime::Result<Resource<DynPollable>> {
        let inner = self.table().get(&stream)?.inner.rep();
        p2::sockets::ip_name_lookup::HostResolveAddressStream::subscribe(&mut self.0.sockets(), Resource::new_borrow(inner))
    }

    fn drop(&mut self, stream: Resource<ResolveAddressStream>) -> wasmtime::Result<()> {
        let stream = self.table().delete(stream)?;
        p2::sockets::ip_name_lookup::HostResolveAddressStream::drop(&mut self.0.sockets(), stream.inner)
    }
}

impl<T: RcView> sockets::tcp_create_socket::Host for RcCtx<'_, T> {
    fn create_tcp_socket(&mut self, family: IpAddressFamily) -> wasmtime::Result<Result<Resource<TcpSocket>, SocketErrorCode>> {
        forward(p2::sockets::tcp_create_socket::Host::create_tcp_socket(&mut self.0.sockets(), family.into()))
    }
}

impl<T: RcView> sockets::tcp::Host for RcCtx<'_, T> {}

impl<T: RcView> sockets::tcp::HostTcpSocket for RcCtx<'_, T> {
    async fn start_bind(&mut self, socket: Resource<TcpSocket>, network: Resource<Network>, local: IpSocketAddress) -> wasmtime::Result<Result<(), SocketErrorCode>> {
        forward(P2Tcp::start_bind(&mut self.0.sockets(), socket, network, local.into()).await)
    }

    async fn finish_bind(&mut self, socket: Resource<TcpSocket>) -> wasmtime::Result<Result<(), SocketErrorCode>> {
        forward(P2Tcp::finish_bind(&mut self.0.sockets(), socket))
    }

    async fn start_connect(&mut self, socket: Resource<TcpSocket>, network: Resource<Network>, remote: IpSocketAddress) -> wasmtime::Result<Result<(), SocketErrorCode>> {
        forward(P2Tcp::start_connect(&mut self.0.sockets(), socket, network, remote.into()))
    }

    async fn finish_connect(&mut self, socket: Resource<TcpSocket>) -> wasmtime::Result<Result<(Resource<InputStream>, Resource<OutputStream>), SocketErrorCode>> {
        forward(P2Tcp::finish_connect(&mut self.0.sockets(), socket))
    }

    async fn start_listen(&mut self, socket: Resource<TcpSocket>) -> wasmtime::Result<Result<(), SocketErrorCode>> {
        forward(P2Tcp::start_listen(&mut self.0.sockets(), socket).await)
    }

    async fn finish_listen(&mut self, socket: Resource<TcpSocket>) -> wasmtime::Result<Result<(), SocketErrorCode>> {
        forward(P2Tcp::finish_listen(&mut self.0.sockets(), socket))
    }

    async fn accept(&mut self, socket: Resource<TcpSocket>) -> wasmtime::Result<Result<(Resource<TcpSocket>, Resource<InputStream>, Resource<OutputStream>), SocketErrorCode>> {
        forward(P2Tcp::accept(&mut self.0.sockets(), socket))
    }

    async fn local_address(&mut self, socket: Resource<TcpSocket>) -> wasmtime::Result<Result<IpSocketAddress, SocketErrorCode>> {
        forward(P2Tcp::local_address(&mut self.0.sockets(), socket))
    }

    async fn remote_address(&mut self, socket: Resource<TcpSocket>) -> wasmtime::Result<Result<IpSocketAddress, SocketErrorCode>> {
        forward(P2Tcp::remote_address(&mut self.0.sockets(), socket))
    }

    async fn address_family(&mut self, socket: Resource<TcpSocket>) -> wasmtime::Result<IpAddressFamily> {
        Ok(P2Tcp::address_family(&mut self.0.sockets(), socket)?.into())
    }

    async fn ipv6_only(&mut self, _socket: Resource<TcpSocket>) -> wasmtime::Result<Result<bool, SocketErrorCode>> {
        Ok(Err(SocketErrorCode::NotSupported))
    }

    async fn set_ipv6_only(&mut self, _socket: Resource<TcpSocket>, _value: bool) -> wasmtime::Result<Result<(), SocketErrorCode>> {
        Ok(Err(SocketErrorCode::NotSupported))
    }

    async fn set_listen_backlog_size(&mut self, socket: Resource<TcpSocket>, value: u64) -> wasmtime::Result<Result<(), SocketErrorCode>> {
        forward(P2Tcp::set_listen_backlog_size(&mut self.0.sockets(), socket, value))
    }

    async fn keep_alive(&mut self, socket: Resource<TcpSocket>) -> wasmtime::Result<Result<bool, SocketErrorCode>> {
        forward(P2Tcp::keep_alive_enabled(&mut self.0.sockets(), socket))
    }

    async fn set_keep_alive(&mut self, socket: Resource<TcpSocket>, value: bool) -> wasmtime::Result<Result<(), SocketErrorCode>> {
        forward(P2Tcp::set_keep_alive_enabled(&mut self.0.sockets(), socket, value))
    }

    async fn no_delay(&mut self, _socket: Resource<TcpSocket>) -> wasmtime::Result<Result<bool, SocketErrorCode>> {
        Ok(Err(SocketErrorCode::NotSupported))
    }

    async fn set_no_delay(&mut self, _socket: Resource<TcpSocket>, _value: bool) -> wasmtime::Result<Result<(), SocketErrorCode>> {
        Ok(Err(SocketErrorCode::NotSupported))
    }

    async fn unicast_hop_limit(&mut self, socket: Resource<TcpSocket>) -> wasmtime::Result<Result<u8, SocketErrorCode>> {
        forward(P2Tcp::hop_limit(&mut self.0.sockets(), socket))
    }

    async fn set_unicast_hop_limit(&mut self, socket: Resource<TcpSocket>, value: u8) -> wasmtime::Result<Result<(), SocketErrorCode>> {
        forward(P2Tcp::set_hop_limit(&mut self.0.sockets(), socket, value))
    }

    async fn receive_buffer_size(&mut self, socket: Resource<TcpSocket>) -> wasmtime::Result<Result<u64, SocketErrorCode>> {
        forward(P2Tcp::receive_buffer_size(&mut self.0.sockets(), socket))
    }

    async fn set_receive_buffer_size(&mut self, socket: Resource<TcpSocket>, value: u64) -> wasmtime::Result<Result<(), SocketErrorCode>> {
        forward(P2Tcp::set_receive_buffer_size(&mut self.0.sockets(), socket, value))
    }

    async fn send_buffer_size(&mut self, socket: Resource<TcpSocket>) -> wasmtime::Result<Result<u64, SocketErrorCode>> {
        forward(P2Tcp::send_buffer_size(&mut self.0.sockets(), socket))
    }

    async fn set_send_buffer_size(&mut self, socket: Resource<TcpSocket>, value: u64) -> wasmtime::Result<Result<(), SocketErrorCode>> {
        forward(P2Tcp::set_send_buffer_size(&mut self.0.sockets(), socket, value))
    }

    async fn subscribe(&mut self, socket: Resource<TcpSocket>) -> wasmtime::Result<Resource<DynPollable>> {
        P2Tcp::subscribe(&mut self.0.sockets(), socket)
    }

    async fn shutdown(&mut self, socket: Resource<TcpSocket>, how: ShutdownType) -> wasmtime::Result<Result<(), SocketErrorCode>> {
        forward(P2Tcp::shutdown(&mut self.0.sockets(), socket, how.into()))
    }

    async fn drop(&mut self, socket: Resource<TcpSocket>) -> wasmtime::Result<()> {
        P2Tcp::drop(&mut self.0.sockets(), socket)
    }
}

/// A UDP socket of this candidate: the final host's socket, the remote address `start-connect`
/// set, and the datagram streams the final host gives for sending and receiving (made by
/// `finish-connect`, or by the first `send`/`receive` of an unconnected socket).
pub struct UdpSocket {
    socket: Resource<p2::sockets::udp::UdpSocket>,
    connecting: Option<p2::sockets::network::IpSocketAddress>,
    streams: Option<(Resource<p2::sockets::udp::IncomingDatagramStream>, Resource<p2::sockets::udp::OutgoingDatagramStream>)>,
}

impl<T: RcView> RcCtx<'_, T> {
    fn udp_inner(&mut self, socket: &Resource<UdpSocket>) -> wasmtime::Result<Resource<p2::sockets::udp::UdpSocket>> {
        Ok(Resource::new_borrow(self.table().get(socket)?.socket.rep()))
    }

    /// Drops the socket's datagram streams, if it has any.
    async fn udp_drop_streams(&mut self, socket: &Resource<UdpSocket>) -> wasmtime::Result<()> {
        if let Some((incoming, outgoing)) = self.table().get_mut(socket)?.streams.take() {
            p2::sockets::udp::HostIncomingDatagramStream::drop(&mut self.0.sockets(), incoming)?;
            p2::sockets::udp::HostOutgoingDatagramStream::drop(&mut self.0.sockets(), outgoing).await?;
        }
        Ok(())
    }

    /// (Re)makes the datagram streams, connected to `remote` or not.
    async fn udp_stream(&mut self, socket: &Resource<UdpSocket>, remote: Option<p2::sockets::network::IpSocketAddress>) -> wasmtime::Result<Result<(), SocketErrorCode>> {
        self.udp_drop_streams(socket).await?;
        let inner = self.udp_inner(socket)?;
        match forward(P2Udp::stream(&mut self.0.sockets(), inner, remote).await)? {
            Ok(streams) => {
                self.table().get_mut(socket)?.streams = Some(streams);
                Ok(Ok(()))
            }
            Err(code) => Ok(Err(code)),
        }
    }

    /// The socket's datagram streams (as borrows), made unconnected if it has none yet.
    async fn udp_streams(
        &mut self,
        socket: &Resource<UdpSocket>,
    ) -> wasmtime::Result<Result<(Resource<p2::sockets::udp::IncomingDatagramStream>, Resource<p2::sockets::udp::OutgoingDatagramStream>), SocketErrorCode>> {
        if self.table().get(socket)?.streams.is_none()
            && let Err(code) = self.udp_stream(socket, None).await?
        {
            return Ok(Err(code));
        }
        match &self.table().get(socket)?.streams {
            Some((incoming, outgoing)) => Ok(Ok((Resource::new_borrow(incoming.rep()), Resource::new_borrow(outgoing.rep())))),
            None => Ok(Err(SocketErrorCode::InvalidState)),
        }
    }
}

impl<T: RcView> sockets::udp_create_socket::Host for RcCtx<'_, T> {
    async fn create_udp_socket(&mut self, family: IpAddressFamily) -> wasmtime::Result<Result<Resource<UdpSocket>, SocketErrorCode>> {
        let socket = match forward(p2::sockets::udp_create_socket::Host::create_udp_socket(&mut self.0.sockets(), family.into()).await)? {
            Ok(socket) => socket,
            Err(code) => return Ok(Err(code)),
        };
        Ok(Ok(self.table().push(UdpSocket { socket, connecting: None, streams: None })?))
    }
}

impl<T: RcView> sockets::udp::Host for RcCtx<'_, T> {}

impl<T: RcView> sockets::udp::HostUdpSocket for RcCtx<'_, T> {
    async fn start_bind(&mut self, socket: Resource<UdpSocket>, network: Resource<Network>, local: IpSocketAddress) -> wasmtime::Result<Result<(), SocketErrorCode>> {
        let inner = self.udp_inner(&socket)?;
        forward(P2Udp::start_bind(&mut self.0.sockets(), inner, network, local.into()).await)
    }

    async fn finish_bind(&mut self, socket: Resource<UdpSocket>) -> wasmtime::Result<Result<(), SocketErrorCode>> {
        let inner = self.udp_inner(&socket)?;
        forward(P2Udp::finish_bind(&mut self.0.sockets(), inner))
    }

    async fn start_connect(&mut self, socket: Resource<UdpSocket>, _network: Resource<Network>, remote: IpSocketAddress) -> wasmtime::Result<Result<(), SocketErrorCode>> {
        let socket = self.table().get_mut(&socket)?;
        if socket.connecting.is_some() {
            return Ok(Err(SocketErrorCode::ConcurrencyConflict));
        }
        socket.connecting = Some(remote.into());
        Ok(Ok(()))
    }

    async fn finish_connect(&mut self, socket: Resource<UdpSocket>) -> wasmtime::Result<Result<(), SocketErrorCode>> {
        let Some(remote) = self.table().get_mut(&socket)?.connecting.take() else {
            return Ok(Err(SocketErrorCode::NotInProgress));
        };
        self.udp_stream(&socket, Some(remote)).await
    }

    async fn receive(&mut self, socket: Resource<UdpSocket>, max_results: u64) -> wasmtime::Result<Result<Vec<Datagram>, SocketErrorCode>> {
        let (incoming, _) = match self.udp_streams(&socket).await? {
            Ok(streams) => streams,
            Err(code) => return Ok(Err(code)),
        };
        let received = p2::sockets::udp::HostIncomingDatagramStream::receive(&mut self.0.sockets(), incoming, max_results);
        let received: Result<Vec<p2::sockets::udp::IncomingDatagram>, SocketErrorCode> = forward(received)?;
        Ok(received.map(|datagrams| datagrams.into_iter().map(|d| Datagram { data: d.data, remote_address: d.remote_address.into() }).collect()))
    }

    /// Sends as many of `datagrams` as the final host accepts now (its `check-send`).
    async fn send(&mut self, socket: Resource<UdpSocket>, mut datagrams: Vec<Datagram>) -> wasmtime::Result<Result<u64, SocketErrorCode>> {
        let (_, outgoing) = match self.udp_streams(&socket).await? {
            Ok(streams) => streams,
            Err(code) => return Ok(Err(code)),
        };
        let permitted = p2::sockets::udp::HostOutgoingDatagramStream::check_send(&mut self.0.sockets(), Resource::new_borrow(outgoing.rep()));
        match forward::<u64, u64, _, SocketErrorCode>(permitted)? {
            Ok(permitted) => datagrams.truncate(usize::try_from(permitted).unwrap_or(usize::MAX)),
            Err(code) => return Ok(Err(code)),
        }
        let datagrams = datagrams
            .into_iter()
            .map(|d| p2::sockets::udp::OutgoingDatagram { data: d.data, remote_address: Some(d.remote_address.into()) })
            .collect();
        forward(p2::sockets::udp::HostOutgoingDatagramStream::send(&mut self.0.sockets(), outgoing, datagrams))
    }

    async fn local_address(&mut self, socket: Resource<UdpSocket>) -> wasmtime::Result<Result<IpSocketAddress, SocketErrorCode>> {
        let inner = self.udp_inner(&socket)?;
        forward(P2Udp::local_address(&mut self.0.sockets(), inner))
    }

    async fn remote_address(&mut self, socket: Resource<UdpSocket>) -> wasmtime::Result<Result<IpSocketAddress, SocketErrorCode>> {
        let inner = self.udp_inner(&socket)?;
        forward(P2Udp::remote_address(&mut self.0.sockets(), inner))
    }

    async fn address_family(&mut self, socket: Resource<UdpSocket>) -> wasmtime::Result<IpAddressFamily> {
        let inner = self.udp_inner(&socket)?;
        Ok(P2Udp::address_family(&mut self.0.sockets(), inner)?.into())
    }

    async fn ipv6_only(&mut self, _socket: Resource<UdpSocket>) -> wasmtime::Result<Result<bool, SocketErrorCode>> {
        Ok(Err(SocketErrorCode::NotSupported))
    }

    async fn set_ipv6_only(&mut self, _socket: Resource<UdpSocket>, _value: bool) -> wasmtime::Result<Result<(), SocketErrorCode>> {
        Ok(Err(SocketErrorCode::NotSupported))
    }

    async fn unicast_hop_limit(&mut self, socket: Resource<UdpSocket>) -> wasmtime::Result<Result<u8, SocketErrorCode>> {
        let inner = self.udp_inner(&socket)?;
        forward(P2Udp::unicast_hop_limit(&mut self.0.sockets(), inner))
    }

    async fn set_unicast_hop_limit(&mut self, socket: Resource<UdpSocket>, value: u8) -> wasmtime::Result<Result<(), SocketErrorCode>> {
        let inner = self.udp_inner(&socket)?;
        forward(P2Udp::set_unicast_hop_limit(&mut self.0.sockets(), inner, value))
    }

    async fn receive_buffer_size(&mut self, socket: Resource<UdpSocket>) -> wasmtime::Result<Result<u64, SocketErrorCode>> {
        let inner = self.udp_inner(&socket)?;
        forward(P2Udp::receive_buffer_size(&mut self.0.sockets(), inner))
    }

    async fn set_receive_buffer_size(&mut self, socket: Resource<UdpSocket>, value: u64) -> wasmtime::Result<Result<(), SocketErrorCode>> {
        let inner = self.udp_inner(&socket)?;
        forward(P2Udp::set_receive_buffer_size(&mut self.0.sockets(), inner, value))
    }

    async fn send_buffer_size(&mut self, socket: Resource<UdpSocket>) -> wasmtime::Result<Result<u64, SocketErrorCode>> {
        let inner = self.udp_inner(&socket)?;
        forward(P2Udp::send_buffer_size(&mut self.0.sockets(), inner))
    }

    async fn set_send_buffer_size(&mut self, socket: Resource<UdpSocket>, value: u64) -> wasmtime::Result<Result<(), SocketErrorCode>> {
        let inner = self.udp_inner(&socket)?;
        forward(P2Udp::set_send_buffer_size(&mut self.0.sockets(), inner, value))
    }

    async fn subscribe(&mut self, socket: Resource<UdpSocket>) -> wasmtime::Result<Resource<DynPollable>> {
        let inner = self.udp_inner(&socket)?;
        P2Udp::subscribe(&mut self.0.sockets(), inner)
    }

    async fn drop(&mut self, socket: Resource<UdpSocket>) -> wasmtime::Result<()> {
        self.udp_drop_streams(&socket).await?;
        let socket = self.table().delete(socket)?;
        P2Udp::drop(&mut self.0.sockets(), socket.socket)
    }
}

convert! {
    struct p2::clocks::wall_clock::Datetime = Datetime { seconds, nanoseconds, }
    enum p2::filesystem::types::ErrorCode => FsErrorCode {
        Access, WouldBlock, Already, BadDescriptor, Busy, Deadlock, Quota, Exist, FileTooLarge, IllegalByteSequence,
        InProgress, Interrupted, Invalid, Io, IsDirectory, Loop, TooManyLinks, MessageSize, NameTooLong, NoDevice,
        NoEntry, NoLock, InsufficientMemory, InsufficientSpace, NotDirectory, NotEmpty, NotRecoverable, Unsupported,
        NoTty, NoSuchDevice, Overflow, NotPermitted, Pipe, ReadOnly, InvalidSeek, TextFileBusy, CrossDevice,
    }
    enum Advice => p2::filesystem::types::Advice { Normal, Sequential, Random, WillNeed, DontNeed, NoReuse, }
    flags DescriptorFlags = p2::filesystem::types::DescriptorFlags {
        READ, WRITE, FILE_INTEGRITY_SYNC, DATA_INTEGRITY_SYNC, REQUESTED_WRITE_SYNC, MUTATE_DIRECTORY,
    }
    enum p2::filesystem::types::DescriptorType => DescriptorType {
        Unknown, BlockDevice, CharacterDevice, Directory, Fifo, SymbolicLink, RegularFile, Socket,
    }
    enum NewTimestamp => p2::filesystem::types::NewTimestamp { NoChange, Now, Timestamp(time), }
    flags PathFlags => p2::filesystem::types::PathFlags { SYMLINK_FOLLOW, }
    flags OpenFlags => p2::filesystem::types::OpenFlags { CREATE, DIRECTORY, EXCLUSIVE, TRUNCATE, }
    struct p2::filesystem::types::MetadataHashValue => MetadataHashValue { lower, upper, }
    struct p2::filesystem::types::DirectoryEntry => DirectoryEntry { type_, name, }
    enum p2::sockets::network::ErrorCode => SocketErrorCode {
        Unknown, AccessDenied, NotSupported, InvalidArgument, OutOfMemory, Timeout, ConcurrencyConflict, NotInProgress,
        WouldBlock, InvalidState, NewSocketLimit, AddressNotBindable, AddressInUse, RemoteUnreachable, ConnectionRefused,
        ConnectionReset, ConnectionAborted, DatagramTooLarge, NameUnresolvable, TemporaryResolverFailure,
        PermanentResolverFailure,
    }
    enum p2::sockets::network::IpAddress = IpAddress { Ipv4(address), Ipv6(address), }
    enum p2::sockets::network::IpSocketAddress = IpSocketAddress { Ipv4(address), Ipv6(address), }
    struct p2::sockets::network::Ipv4SocketAddress = Ipv4SocketAddress { port, address, }
    struct p2::sockets::network::Ipv6SocketAddress = Ipv6SocketAddress { port, flow_info, address, scope_id, }
    enum p2::sockets::network::IpAddressFamily = IpAddressFamily { Ipv4, Ipv6, }
    enum ShutdownType => p2::sockets::tcp::ShutdownType { Receive, Send, Both, }
}

impl From<p2::filesystem::types::DescriptorStat> for DescriptorStat {
    fn from(stat: p2::filesystem::types::DescriptorStat) -> DescriptorStat {
        DescriptorStat {
            type_: stat.type_.into(),
            link_count: stat.link_count,
            size: stat.size,
            data_access_timestamp: stat.data_access_timestamp.map(Into::into),
            data_modification_timestamp: stat.data_modification_timestamp.map(Into::into),
            status_change_timestamp: stat.status_change_timestamp.map(Into::into),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_lookups_keep_the_family_asked_for() {
        let v4 = p2::sockets::network::IpAddress::Ipv4((127, 0, 0, 1));
        let v6 = p2::sockets::network::IpAddress::Ipv6((0, 0, 0, 0, 0, 0, 0, 1));
        assert!(family_matches(&v4, None) && family_matches(&v6, None));
        assert!(family_matches(&v4, Some(p2::sockets::network::IpAddressFamily::Ipv4)));
        assert!(!family_matches(&v6, Some(p2::sockets::network::IpAddressFamily::Ipv4)));
        assert!(family_matches(&v6, Some(p2::sockets::network::IpAddressFamily::Ipv6)));
    }

    #[test]
    fn file_system_types_convert() {
        let flags = DescriptorFlags::READ | DescriptorFlags::MUTATE_DIRECTORY;
        let final_flags: p2::filesystem::types::DescriptorFlags = flags.into();
        assert_eq!(final_flags, p2::filesystem::types::DescriptorFlags::READ | p2::filesystem::types::DescriptorFlags::MUTATE_DIRECTORY);
        assert_eq!(DescriptorFlags::from(final_flags), flags);
        let stat = DescriptorStat::from(p2::filesystem::types::DescriptorStat {
            type_: p2::filesystem::types::DescriptorType::RegularFile,
            link_count: 1,
            size: 42,
            data_access_timestamp: Some(p2::clocks::wall_clock::Datetime { seconds: 7, nanoseconds: 8 }),
            data_modification_timestamp: None,
            status_change_timestamp: None,
        });
        assert!(matches!(stat.type_, DescriptorType::RegularFile));
        assert_eq!((stat.size, stat.data_access_timestamp.map(|t| (t.seconds, t.nanoseconds))), (42, Some((7, 8))));
        assert!(matches!(FsErrorCode::from(p2::filesystem::types::ErrorCode::NoEntry), FsErrorCode::NoEntry));
    }

    #[test]
    fn socket_addresses_round_trip() {
        let address = IpSocketAddress::Ipv6(Ipv6SocketAddress { port: 80, flow_info: 1, address: (1, 2, 3, 4, 5, 6, 7, 8), scope_id: 9 });
        let final_address: p2::sockets::network::IpSocketAddress = address.into();
        let back = IpSocketAddress::from(final_address);
        assert!(matches!(back, IpSocketAddress::Ipv6(Ipv6SocketAddress { port: 80, flow_info: 1, scope_id: 9, address: (1, 2, 3, 4, 5, 6, 7, 8) })));
        assert!(matches!(SocketErrorCode::from(p2::sockets::network::ErrorCode::AccessDenied), SocketErrorCode::AccessDenied));
    }
}
