//! WASI `0.2.0-rc-2023-11-10`: `wasi:io`, `wasi:clocks`, `wasi:random`, `wasi:cli`,
//! `wasi:filesystem` and `wasi:sockets` here; `wasi:http` in `rc_2023_11_10_http.rs`.
//!
//! This candidate is close to the final WASI 0.2: almost every function is the final one under
//! another name or with the same types copied. What the final host no longer has: the sockets'
//! `ipv6-only` option (`not-supported`).

use crate::convert::convert;
use crate::{HasRc, RcCtx, RcView, forward, rc};
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::cli::WasiCliView;
use wasmtime_wasi::clocks::WasiClocksView;
use wasmtime_wasi::filesystem::WasiFilesystemView;
use wasmtime_wasi::p2::bindings as p2;
use wasmtime_wasi::random::WasiRandomView;
use wasmtime_wasi::sockets::WasiSocketsView;

pub(crate) mod bindings_rc_2023_11_10 {
    wasmtime::component::bindgen!({
        inline: "
            package kiln:wasi-rc-2023-11-10;
            world proxy {
                include wasi:cli/reactor@0.2.0-rc-2023-11-10;
                include wasi:http/proxy@0.2.0-rc-2023-11-10;
            }
        ",
        path: [
            "../../wit/wasi-0.2.0-rc-2023-11-10/io",
            "../../wit/wasi-0.2.0-rc-2023-11-10/clocks",
            "../../wit/wasi-0.2.0-rc-2023-11-10/random",
            "../../wit/wasi-0.2.0-rc-2023-11-10/filesystem",
            "../../wit/wasi-0.2.0-rc-2023-11-10/sockets",
            "../../wit/wasi-0.2.0-rc-2023-11-10/cli",
            "../../wit/wasi-0.2.0-rc-2023-11-10/http",
        ],
        world: "kiln:wasi-rc-2023-11-10/proxy",
        imports: {
            "wasi:io/poll.poll": async | trappable,
            "wasi:io/poll.[method]pollable.block": async | trappable,
            "wasi:io/poll.[method]pollable.ready": async | trappable,
            "wasi:io/streams.[method]input-stream.blocking-read": async | trappable,
            "wasi:io/streams.[method]input-stream.blocking-skip": async | trappable,
            "wasi:io/streams.[drop]input-stream": async | trappable,
            "wasi:io/streams.[method]output-stream.blocking-write-and-flush": async | trappable,
            "wasi:io/streams.[method]output-stream.blocking-write-zeroes-and-flush": async | trappable,
            "wasi:io/streams.[method]output-stream.blocking-flush": async | trappable,
            "wasi:io/streams.[method]output-stream.blocking-splice": async | trappable,
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
            "wasi:io/error.error": wasmtime_wasi::p2::bindings::io::error::Error,
            "wasi:filesystem/types.descriptor": wasmtime_wasi::p2::bindings::filesystem::types::Descriptor,
            "wasi:filesystem/types.directory-entry-stream": wasmtime_wasi::p2::bindings::filesystem::types::DirectoryEntryStream,
            "wasi:cli/terminal-input.terminal-input": wasmtime_wasi::p2::bindings::cli::terminal_input::TerminalInput,
            "wasi:cli/terminal-output.terminal-output": wasmtime_wasi::p2::bindings::cli::terminal_output::TerminalOutput,
            "wasi:sockets/network.network": wasmtime_wasi::p2::bindings::sockets::network::Network,
            "wasi:sockets/tcp.tcp-socket": wasmtime_wasi::p2::bindings::sockets::tcp::TcpSocket,
            "wasi:sockets/udp.udp-socket": wasmtime_wasi::p2::bindings::sockets::udp::UdpSocket,
            "wasi:sockets/udp.incoming-datagram-stream": wasmtime_wasi::p2::bindings::sockets::udp::IncomingDatagramStream,
            "wasi:sockets/udp.outgoing-datagram-stream": wasmtime_wasi::p2::bindings::sockets::udp::OutgoingDatagramStream,
            "wasi:sockets/ip-name-lookup.resolve-address-stream": wasmtime_wasi::p2::bindings::sockets::ip_name_lookup::ResolveAddressStream,
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
            "wasi:http/types.request-options": wasmtime_wasi_http::p2::bindings::http::types::RequestOptions,
        },
    });
}

pub(crate) use bindings_rc_2023_11_10::wasi::{cli, clocks, filesystem, http, io, random, sockets};

/// The `wasi:http/incoming-handler@0.2.0-rc-2023-11-10` export: `ProxyPre::new` finds it in a
/// component (and fails if it has none); `Proxy::wasi_http_incoming_handler` calls it.
pub use bindings_rc_2023_11_10::{Proxy, ProxyIndices, ProxyPre};

use clocks::wall_clock::Datetime;
use filesystem::types::{
    Advice, Descriptor, DescriptorFlags, DescriptorStat, DescriptorType, DirectoryEntry, DirectoryEntryStream, ErrorCode as FsErrorCode,
    Filesize, MetadataHashValue, NewTimestamp, OpenFlags, PathFlags,
};
use io::streams::{InputStream, OutputStream, StreamError};
use sockets::network::{ErrorCode as SocketErrorCode, IpAddress, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, Ipv6SocketAddress, Network};
use sockets::tcp::{ShutdownType, TcpSocket};
use sockets::ip_name_lookup::ResolveAddressStream;
use sockets::udp::{IncomingDatagram, IncomingDatagramStream, OutgoingDatagram, OutgoingDatagramStream, UdpSocket};
use wasmtime_wasi::p2::DynPollable;

pub(crate) fn add_to_linker<T: RcView>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    io::error::add_to_linker::<T, HasRc<T>>(linker, rc)?;
    io::poll::add_to_linker::<T, HasRc<T>>(linker, rc)?;
    io::streams::add_to_linker::<T, HasRc<T>>(linker, rc)?;
    clocks::wall_clock::add_to_linker::<T, HasRc<T>>(linker, rc)?;
    clocks::monotonic_clock::add_to_linker::<T, HasRc<T>>(linker, rc)?;
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
    crate::rc_2023_11_10_http::add_to_linker(linker)
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
    async fn poll(&mut self, pollables: Vec<Resource<DynPollable>>) -> wasmtime::Result<Vec<u32>> {
        p2::io::poll::Host::poll(self.table(), pollables).await
    }
}

impl<T: RcView> io::poll::HostPollable for RcCtx<'_, T> {
    async fn ready(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<bool> {
        p2::io::poll::HostPollable::ready(self.table(), pollable).await
    }

    async fn block(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        p2::io::poll::HostPollable::block(self.table(), pollable).await
    }

    fn drop(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        p2::io::poll::HostPollable::drop(self.table(), pollable)
    }
}

impl<T: RcView> io::error::Host for RcCtx<'_, T> {}

impl<T: RcView> io::error::HostError for RcCtx<'_, T> {
    fn to_debug_string(&mut self, err: Resource<io::error::Error>) -> wasmtime::Result<String> {
        p2::io::error::HostError::to_debug_string(self.table(), err)
    }

    fn drop(&mut self, err: Resource<io::error::Error>) -> wasmtime::Result<()> {
        p2::io::error::HostError::drop(self.table(), err)
    }
}

impl<T: RcView> io::streams::Host for RcCtx<'_, T> {}

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

    fn subscribe_instant(&mut self, when: u64) -> wasmtime::Result<Resource<DynPollable>> {
        p2::clocks::monotonic_clock::Host::subscribe_instant(&mut self.0.clocks(), when)
    }

    fn subscribe_duration(&mut self, when: u64) -> wasmtime::Result<Resource<DynPollable>> {
        p2::clocks::monotonic_clock::Host::subscribe_duration(&mut self.0.clocks(), when)
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
    async fn filesystem_error_code(&mut self, err: Resource<io::error::Error>) -> wasmtime::Result<Option<FsErrorCode>> {
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

    async fn open_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: PathFlags,
        path: String,
        open_flags: OpenFlags,
        flags: DescriptorFlags,
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

    async fn unlink_file_at(&mut self, fd: Resource<Descriptor>, path: String) -> wasmtime::Result<Result<(), FsErrorCode>> {
        forward(P2Descriptor::unlink_file_at(&mut self.0.filesystem(), fd, path).await)
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

impl<T: RcView> sockets::ip_name_lookup::Host for RcCtx<'_, T> {
    fn resolve_addresses(&mut self, network: Resource<Network>, name: String) -> wasmtime::Result<Result<Resource<ResolveAddressStream>, SocketErrorCode>> {
        forward(p2::sockets::ip_name_lookup::Host::resolve_addresses(&mut self.0.sockets(), network, name))
    }
}

impl<T: RcView> sockets::ip_name_lookup::HostResolveAddressStream for RcCtx<'_, T> {
    fn resolve_next_address(&mut self, stream: Resource<ResolveAddressStream>) -> wasmtime::Result<Result<Option<IpAddress>, SocketErrorCode>> {
        let next = p2::sockets::ip_name_lookup::HostResolveAddressStream::resolve_next_address(&mut self.0.sockets(), stream);
        let next: Result<Option<p2::sockets::network::IpAddress>, SocketErrorCode> = forward(next)?;
        Ok(next.map(|address| address.map(Into::into)))
    }

    fn subscribe(&mut self, stream: Resource<ResolveAddressStream>) -> wasmtime::Result<Resource<DynPollable>> {
        p2::sockets::ip_name_lookup::HostResolveAddressStream::subscribe(&mut self.0.sockets(), stream)
    }

    fn drop(&mut self, stream: Resource<ResolveAddressStream>) -> wasmtime::Result<()> {
        p2::sockets::ip_name_lookup::HostResolveAddressStream::drop(&mut self.0.sockets(), stream)
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

    async fn is_listening(&mut self, socket: Resource<TcpSocket>) -> wasmtime::Result<bool> {
        P2Tcp::is_listening(&mut self.0.sockets(), socket)
    }

    async fn set_listen_backlog_size(&mut self, socket: Resource<TcpSocket>, value: u64) -> wasmtime::Result<Result<(), SocketErrorCode>> {
        forward(P2Tcp::set_listen_backlog_size(&mut self.0.sockets(), socket, value))
    }

    async fn keep_alive_enabled(&mut self, socket: Resource<TcpSocket>) -> wasmtime::Result<Result<bool, SocketErrorCode>> {
        forward(P2Tcp::keep_alive_enabled(&mut self.0.sockets(), socket))
    }

    async fn set_keep_alive_enabled(&mut self, socket: Resource<TcpSocket>, value: bool) -> wasmtime::Result<Result<(), SocketErrorCode>> {
        forward(P2Tcp::set_keep_alive_enabled(&mut self.0.sockets(), socket, value))
    }

    async fn keep_alive_idle_time(&mut self, socket: Resource<TcpSocket>) -> wasmtime::Result<Result<u64, SocketErrorCode>> {
        forward(P2Tcp::keep_alive_idle_time(&mut self.0.sockets(), socket))
    }

    async fn set_keep_alive_idle_time(&mut self, socket: Resource<TcpSocket>, value: u64) -> wasmtime::Result<Result<(), SocketErrorCode>> {
        forward(P2Tcp::set_keep_alive_idle_time(&mut self.0.sockets(), socket, value))
    }

    async fn keep_alive_interval(&mut self, socket: Resource<TcpSocket>) -> wasmtime::Result<Result<u64, SocketErrorCode>> {
        forward(P2Tcp::keep_alive_interval(&mut self.0.sockets(), socket))
    }

    async fn set_keep_alive_interval(&mut self, socket: Resource<TcpSocket>, value: u64) -> wasmtime::Result<Result<(), SocketErrorCode>> {
        forward(P2Tcp::set_keep_alive_interval(&mut self.0.sockets(), socket, value))
    }

    async fn keep_alive_count(&mut self, socket: Resource<TcpSocket>) -> wasmtime::Result<Result<u32, SocketErrorCode>> {
        forward(P2Tcp::keep_alive_count(&mut self.0.sockets(), socket))
    }

    async fn set_keep_alive_count(&mut self, socket: Resource<TcpSocket>, value: u32) -> wasmtime::Result<Result<(), SocketErrorCode>> {
        forward(P2Tcp::set_keep_alive_count(&mut self.0.sockets(), socket, value))
    }

    async fn hop_limit(&mut self, socket: Resource<TcpSocket>) -> wasmtime::Result<Result<u8, SocketErrorCode>> {
        forward(P2Tcp::hop_limit(&mut self.0.sockets(), socket))
    }

    async fn set_hop_limit(&mut self, socket: Resource<TcpSocket>, value: u8) -> wasmtime::Result<Result<(), SocketErrorCode>> {
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

impl<T: RcView> sockets::udp_create_socket::Host for RcCtx<'_, T> {
    async fn create_udp_socket(&mut self, family: IpAddressFamily) -> wasmtime::Result<Result<Resource<UdpSocket>, SocketErrorCode>> {
        forward(p2::sockets::udp_create_socket::Host::create_udp_socket(&mut self.0.sockets(), family.into()).await)
    }
}

impl<T: RcView> sockets::udp::Host for RcCtx<'_, T> {}

impl<T: RcView> sockets::udp::HostUdpSocket for RcCtx<'_, T> {
    async fn start_bind(&mut self, socket: Resource<UdpSocket>, network: Resource<Network>, local: IpSocketAddress) -> wasmtime::Result<Result<(), SocketErrorCode>> {
        forward(P2Udp::start_bind(&mut self.0.sockets(), socket, network, local.into()).await)
    }

    async fn finish_bind(&mut self, socket: Resource<UdpSocket>) -> wasmtime::Result<Result<(), SocketErrorCode>> {
        forward(P2Udp::finish_bind(&mut self.0.sockets(), socket))
    }

    async fn stream(
        &mut self,
        socket: Resource<UdpSocket>,
        remote: Option<IpSocketAddress>,
    ) -> wasmtime::Result<Result<(Resource<IncomingDatagramStream>, Resource<OutgoingDatagramStream>), SocketErrorCode>> {
        forward(P2Udp::stream(&mut self.0.sockets(), socket, remote.map(Into::into)).await)
    }

    async fn local_address(&mut self, socket: Resource<UdpSocket>) -> wasmtime::Result<Result<IpSocketAddress, SocketErrorCode>> {
        forward(P2Udp::local_address(&mut self.0.sockets(), socket))
    }

    async fn remote_address(&mut self, socket: Resource<UdpSocket>) -> wasmtime::Result<Result<IpSocketAddress, SocketErrorCode>> {
        forward(P2Udp::remote_address(&mut self.0.sockets(), socket))
    }

    async fn address_family(&mut self, socket: Resource<UdpSocket>) -> wasmtime::Result<IpAddressFamily> {
        Ok(P2Udp::address_family(&mut self.0.sockets(), socket)?.into())
    }

    async fn ipv6_only(&mut self, _socket: Resource<UdpSocket>) -> wasmtime::Result<Result<bool, SocketErrorCode>> {
        Ok(Err(SocketErrorCode::NotSupported))
    }

    async fn set_ipv6_only(&mut self, _socket: Resource<UdpSocket>, _value: bool) -> wasmtime::Result<Result<(), SocketErrorCode>> {
        Ok(Err(SocketErrorCode::NotSupported))
    }

    async fn unicast_hop_limit(&mut self, socket: Resource<UdpSocket>) -> wasmtime::Result<Result<u8, SocketErrorCode>> {
        forward(P2Udp::unicast_hop_limit(&mut self.0.sockets(), socket))
    }

    async fn set_unicast_hop_limit(&mut self, socket: Resource<UdpSocket>, value: u8) -> wasmtime::Result<Result<(), SocketErrorCode>> {
        forward(P2Udp::set_unicast_hop_limit(&mut self.0.sockets(), socket, value))
    }

    async fn receive_buffer_size(&mut self, socket: Resource<UdpSocket>) -> wasmtime::Result<Result<u64, SocketErrorCode>> {
        forward(P2Udp::receive_buffer_size(&mut self.0.sockets(), socket))
    }

    async fn set_receive_buffer_size(&mut self, socket: Resource<UdpSocket>, value: u64) -> wasmtime::Result<Result<(), SocketErrorCode>> {
        forward(P2Udp::set_receive_buffer_size(&mut self.0.sockets(), socket, value))
    }

    async fn send_buffer_size(&mut self, socket: Resource<UdpSocket>) -> wasmtime::Result<Result<u64, SocketErrorCode>> {
        forward(P2Udp::send_buffer_size(&mut self.0.sockets(), socket))
    }

    async fn set_send_buffer_size(&mut self, socket: Resource<UdpSocket>, value: u64) -> wasmtime::Result<Result<(), SocketErrorCode>> {
        forward(P2Udp::set_send_buffer_size(&mut self.0.sockets(), socket, value))
    }

    async fn subscribe(&mut self, socket: Resource<UdpSocket>) -> wasmtime::Result<Resource<DynPollable>> {
        P2Udp::subscribe(&mut self.0.sockets(), socket)
    }

    async fn drop(&mut self, socket: Resource<UdpSocket>) -> wasmtime::Result<()> {
        P2Udp::drop(&mut self.0.sockets(), socket)
    }
}

impl<T: RcView> sockets::udp::HostIncomingDatagramStream for RcCtx<'_, T> {
    async fn receive(&mut self, stream: Resource<IncomingDatagramStream>, max_results: u64) -> wasmtime::Result<Result<Vec<IncomingDatagram>, SocketErrorCode>> {
        let received = p2::sockets::udp::HostIncomingDatagramStream::receive(&mut self.0.sockets(), stream, max_results);
        let received: Result<Vec<p2::sockets::udp::IncomingDatagram>, SocketErrorCode> = forward(received)?;
        Ok(received.map(|datagrams| datagrams.into_iter().map(Into::into).collect()))
    }

    async fn subscribe(&mut self, stream: Resource<IncomingDatagramStream>) -> wasmtime::Result<Resource<DynPollable>> {
        p2::sockets::udp::HostIncomingDatagramStream::subscribe(&mut self.0.sockets(), stream)
    }

    async fn drop(&mut self, stream: Resource<IncomingDatagramStream>) -> wasmtime::Result<()> {
        p2::sockets::udp::HostIncomingDatagramStream::drop(&mut self.0.sockets(), stream)
    }
}

impl<T: RcView> sockets::udp::HostOutgoingDatagramStream for RcCtx<'_, T> {
    async fn check_send(&mut self, stream: Resource<OutgoingDatagramStream>) -> wasmtime::Result<Result<u64, SocketErrorCode>> {
        forward(p2::sockets::udp::HostOutgoingDatagramStream::check_send(&mut self.0.sockets(), stream))
    }

    async fn send(&mut self, stream: Resource<OutgoingDatagramStream>, datagrams: Vec<OutgoingDatagram>) -> wasmtime::Result<Result<u64, SocketErrorCode>> {
        let datagrams = datagrams.into_iter().map(Into::into).collect();
        forward(p2::sockets::udp::HostOutgoingDatagramStream::send(&mut self.0.sockets(), stream, datagrams))
    }

    async fn subscribe(&mut self, stream: Resource<OutgoingDatagramStream>) -> wasmtime::Result<Resource<DynPollable>> {
        p2::sockets::udp::HostOutgoingDatagramStream::subscribe(&mut self.0.sockets(), stream)
    }

    async fn drop(&mut self, stream: Resource<OutgoingDatagramStream>) -> wasmtime::Result<()> {
        p2::sockets::udp::HostOutgoingDatagramStream::drop(&mut self.0.sockets(), stream).await
    }
}

impl From<p2::sockets::udp::IncomingDatagram> for IncomingDatagram {
    fn from(datagram: p2::sockets::udp::IncomingDatagram) -> IncomingDatagram {
        IncomingDatagram { data: datagram.data, remote_address: datagram.remote_address.into() }
    }
}

impl From<OutgoingDatagram> for p2::sockets::udp::OutgoingDatagram {
    fn from(datagram: OutgoingDatagram) -> p2::sockets::udp::OutgoingDatagram {
        p2::sockets::udp::OutgoingDatagram { data: datagram.data, remote_address: datagram.remote_address.map(Into::into) }
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
