//! The host code both release candidates share, written once and generated for each candidate.
//!
//! Why macros rather than generic code: each candidate's `bindgen!` makes its own traits and types
//! (`bindings_rc_2023_10_18::wasi::random::random::Host` and `bindings_rc_2023_11_10::wasi::random::random::Host`
//! are unrelated to the compiler), but where an interface did not change between the candidates they
//! have the same shape, and so has the code forwarding them to the final host. Each macro here takes
//! a candidate's bindgen module and implements that module's traits; the resources are the final
//! host's own types under either candidate (`with:` in each `bindgen!`).
//!
//! Where a trait only partly agrees between the candidates, its macro takes the methods that differ
//! from the candidate's file (`output_stream: { ... }` and the like) and adds them to the shared
//! `impl`; they see the names the macro imports as well as those of the candidate's module. Each
//! expansion is a `const _: () = { ... };` block, so that its `use`s stay inside it.

/// The interfaces both candidates link (each candidate adds the ones only it has).
macro_rules! add_shared_interfaces_to_linker {
    ($bindings:ident, $linker:ident, $T:ty) => {{
        use $bindings::wasi::{cli, clocks, filesystem, io, random, sockets};
        use $crate::{HasRc, rc};
        io::poll::add_to_linker::<$T, HasRc<$T>>($linker, rc)?;
        io::streams::add_to_linker::<$T, HasRc<$T>>($linker, rc)?;
        clocks::wall_clock::add_to_linker::<$T, HasRc<$T>>($linker, rc)?;
        clocks::monotonic_clock::add_to_linker::<$T, HasRc<$T>>($linker, rc)?;
        random::random::add_to_linker::<$T, HasRc<$T>>($linker, rc)?;
        random::insecure::add_to_linker::<$T, HasRc<$T>>($linker, rc)?;
        random::insecure_seed::add_to_linker::<$T, HasRc<$T>>($linker, rc)?;
        cli::environment::add_to_linker::<$T, HasRc<$T>>($linker, rc)?;
        cli::exit::add_to_linker::<$T, HasRc<$T>>($linker, rc)?;
        cli::stdin::add_to_linker::<$T, HasRc<$T>>($linker, rc)?;
        cli::stdout::add_to_linker::<$T, HasRc<$T>>($linker, rc)?;
        cli::stderr::add_to_linker::<$T, HasRc<$T>>($linker, rc)?;
        cli::terminal_input::add_to_linker::<$T, HasRc<$T>>($linker, rc)?;
        cli::terminal_output::add_to_linker::<$T, HasRc<$T>>($linker, rc)?;
        cli::terminal_stdin::add_to_linker::<$T, HasRc<$T>>($linker, rc)?;
        cli::terminal_stdout::add_to_linker::<$T, HasRc<$T>>($linker, rc)?;
        cli::terminal_stderr::add_to_linker::<$T, HasRc<$T>>($linker, rc)?;
        filesystem::types::add_to_linker::<$T, HasRc<$T>>($linker, rc)?;
        filesystem::preopens::add_to_linker::<$T, HasRc<$T>>($linker, rc)?;
        sockets::network::add_to_linker::<$T, HasRc<$T>>($linker, rc)?;
        sockets::instance_network::add_to_linker::<$T, HasRc<$T>>($linker, rc)?;
        sockets::ip_name_lookup::add_to_linker::<$T, HasRc<$T>>($linker, rc)?;
        sockets::tcp::add_to_linker::<$T, HasRc<$T>>($linker, rc)?;
        sockets::tcp_create_socket::add_to_linker::<$T, HasRc<$T>>($linker, rc)?;
        sockets::udp::add_to_linker::<$T, HasRc<$T>>($linker, rc)?;
        sockets::udp_create_socket::add_to_linker::<$T, HasRc<$T>>($linker, rc)?;
    }};
}

/// `wasi:io/streams`: the input stream, and the output stream with the candidate's
/// `output_stream` methods.
macro_rules! wasi_io_streams {
    ($bindings:ident, output_stream: { $($output_stream:tt)* }) => {
        const _: () = {
            use $bindings::wasi::io;
            use io::streams::{InputStream, OutputStream, StreamError};
            use ::wasmtime::component::Resource;
            use ::wasmtime_wasi::p2::DynPollable;
            use ::wasmtime_wasi::p2::bindings as p2;
            use $crate::{RcCtx, RcView};

            /// A final-host stream result as this candidate's: the error becomes an `error` resource
            /// (the same table entry the final `wasi:io/error` uses).
            fn stream_result<T, U: From<T>>(ctx: &mut RcCtx<'_, impl RcView>, result: Result<T, ::wasmtime_wasi::p2::StreamError>) -> ::wasmtime::Result<Result<U, StreamError>> {
                match result {
                    Ok(value) => Ok(Ok(value.into())),
                    Err(err) => match p2::io::streams::Host::convert_stream_error(ctx.table(), err)? {
                        p2::io::streams::StreamError::Closed => Ok(Err(StreamError::Closed)),
                        p2::io::streams::StreamError::LastOperationFailed(err) => Ok(Err(StreamError::LastOperationFailed(err))),
                    },
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

                $($output_stream)*
            }
        };
    };
}

/// `wasi:clocks`: the wall clock, and the monotonic clock with the candidate's `monotonic_clock`
/// methods (its subscriptions).
macro_rules! wasi_clocks {
    ($bindings:ident, monotonic_clock: { $($monotonic_clock:tt)* }) => {
        const _: () = {
            use $bindings::wasi::clocks;
            use clocks::wall_clock::Datetime;
            use ::wasmtime_wasi::clocks::WasiClocksView;
            use ::wasmtime_wasi::p2::bindings as p2;
            use $crate::{RcCtx, RcView};

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

                $($monotonic_clock)*
            }
        };
    };
}

/// `wasi:random`, the same in both candidates.
macro_rules! wasi_random {
    ($bindings:ident) => {
        const _: () = {
            use $bindings::wasi::random;
            use ::wasmtime_wasi::p2::bindings as p2;
            use ::wasmtime_wasi::random::WasiRandomView;
            use $crate::{RcCtx, RcView};

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
        };
    };
}

/// `wasi:cli`, the same in both candidates.
macro_rules! wasi_cli {
    ($bindings:ident) => {
        const _: () = {
            use $bindings::wasi::cli;
            use cli::terminal_input::TerminalInput;
            use cli::terminal_output::TerminalOutput;
            use ::wasmtime::component::Resource;
            use ::wasmtime_wasi::cli::WasiCliView;
            use ::wasmtime_wasi::p2::bindings as p2;
            use ::wasmtime_wasi::p2::bindings::io::streams::{InputStream, OutputStream};
            use $crate::{RcCtx, RcView};

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
                fn drop(&mut self, terminal: Resource<TerminalInput>) -> wasmtime::Result<()> {
                    p2::cli::terminal_input::HostTerminalInput::drop(&mut self.0.cli(), terminal)
                }
            }

            impl<T: RcView> cli::terminal_output::Host for RcCtx<'_, T> {}

            impl<T: RcView> cli::terminal_output::HostTerminalOutput for RcCtx<'_, T> {
                fn drop(&mut self, terminal: Resource<TerminalOutput>) -> wasmtime::Result<()> {
                    p2::cli::terminal_output::HostTerminalOutput::drop(&mut self.0.cli(), terminal)
                }
            }

            impl<T: RcView> cli::terminal_stdin::Host for RcCtx<'_, T> {
                fn get_terminal_stdin(&mut self) -> wasmtime::Result<Option<Resource<TerminalInput>>> {
                    p2::cli::terminal_stdin::Host::get_terminal_stdin(&mut self.0.cli())
                }
            }

            impl<T: RcView> cli::terminal_stdout::Host for RcCtx<'_, T> {
                fn get_terminal_stdout(&mut self) -> wasmtime::Result<Option<Resource<TerminalOutput>>> {
                    p2::cli::terminal_stdout::Host::get_terminal_stdout(&mut self.0.cli())
                }
            }

            impl<T: RcView> cli::terminal_stderr::Host for RcCtx<'_, T> {
                fn get_terminal_stderr(&mut self) -> wasmtime::Result<Option<Resource<TerminalOutput>>> {
                    p2::cli::terminal_stderr::Host::get_terminal_stderr(&mut self.0.cli())
                }
            }
        };
    };
}

/// `wasi:filesystem`: the descriptor with the candidate's `descriptor` methods (`open-at` and what
/// only one candidate has), the directory entry stream and the preopens.
macro_rules! wasi_filesystem {
    ($bindings:ident, descriptor: { $($descriptor:tt)* }) => {
        const _: () = {
            use $bindings::wasi::filesystem;
            use filesystem::types::{
                Advice, Descriptor, DescriptorFlags, DescriptorStat, DescriptorType, DirectoryEntry, DirectoryEntryStream,
                ErrorCode as FsErrorCode, Filesize, MetadataHashValue, NewTimestamp, PathFlags,
            };
            use ::wasmtime::component::Resource;
            use ::wasmtime_wasi::filesystem::WasiFilesystemView;
            use ::wasmtime_wasi::p2::bindings as p2;
            use ::wasmtime_wasi::p2::bindings::io::error::Error as IoError;
            use ::wasmtime_wasi::p2::bindings::io::streams::{InputStream, OutputStream};
            use p2::filesystem::types::HostDescriptor as P2Descriptor;
            use $crate::{RcCtx, RcView, forward};

            impl<T: RcView> filesystem::types::Host for RcCtx<'_, T> {
                // The candidates' `error` resource (`wasi:io/streams.error` in 10-18, `wasi:io/error.error`
                // in 11-10) is the final host's under both.
                async fn filesystem_error_code(&mut self, err: Resource<IoError>) -> wasmtime::Result<Option<FsErrorCode>> {
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

                $($descriptor)*
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
        };
    };
}

/// `wasi:sockets` but for name lookups and UDP: the network, and the TCP socket with the
/// candidate's `tcp_socket` methods (its options).
macro_rules! wasi_sockets_tcp {
    ($bindings:ident, tcp_socket: { $($tcp_socket:tt)* }) => {
        const _: () = {
            use $bindings::wasi::sockets;
            use sockets::network::{ErrorCode as SocketErrorCode, IpAddressFamily, IpSocketAddress, Network};
            use sockets::tcp::{ShutdownType, TcpSocket};
            use ::wasmtime::component::Resource;
            use ::wasmtime_wasi::p2::DynPollable;
            use ::wasmtime_wasi::p2::bindings as p2;
            use ::wasmtime_wasi::p2::bindings::io::streams::{InputStream, OutputStream};
            use ::wasmtime_wasi::sockets::WasiSocketsView;
            use p2::sockets::tcp::HostTcpSocket as P2Tcp;
            use $crate::{RcCtx, RcView, forward};

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

                $($tcp_socket)*
            }
        };
    };
}

/// The conversions between the final host's types and the candidate's for clocks, the file system
/// and sockets, the same in both candidates.
macro_rules! final_type_conversions {
    ($bindings:ident) => {
        const _: () = {
            use $bindings::wasi::{clocks, filesystem, sockets};
            use clocks::wall_clock::Datetime;
            use filesystem::types::{
                Advice, DescriptorFlags, DescriptorStat, DescriptorType, DirectoryEntry, ErrorCode as FsErrorCode, MetadataHashValue,
                NewTimestamp, OpenFlags, PathFlags,
            };
            use sockets::network::{ErrorCode as SocketErrorCode, IpAddress, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, Ipv6SocketAddress};
            use sockets::tcp::ShutdownType;
            use ::wasmtime_wasi::p2::bindings as p2;

            $crate::convert::convert! {
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
        };
    };
}

/// `wasi:http/types`' incoming request, response and body, and the method and scheme they carry,
/// the same in both candidates.
macro_rules! wasi_http_incoming {
    ($bindings:ident) => {
        const _: () = {
            use $bindings::wasi::http;
            use http::types::{Fields, FutureTrailers, IncomingBody, IncomingRequest, IncomingResponse, Method, Scheme, StatusCode};
            use ::wasmtime::component::Resource;
            use ::wasmtime_wasi_http::p2::bindings::http as p2;
            use ::wasmtime_wasi_http::p2::bindings::http::types::{
                HostIncomingBody as P2IncomingBody, HostIncomingRequest as P2IncomingRequest, HostIncomingResponse as P2IncomingResponse,
            };
            use $crate::{RcCtx, RcView};

            impl<T: RcView> http::types::HostIncomingRequest for RcCtx<'_, T> {
                fn method(&mut self, request: Resource<IncomingRequest>) -> wasmtime::Result<Method> {
                    Ok(P2IncomingRequest::method(&mut self.http(), request)?.into())
                }

                fn path_with_query(&mut self, request: Resource<IncomingRequest>) -> wasmtime::Result<Option<String>> {
                    P2IncomingRequest::path_with_query(&mut self.http(), request)
                }

                fn scheme(&mut self, request: Resource<IncomingRequest>) -> wasmtime::Result<Option<Scheme>> {
                    Ok(P2IncomingRequest::scheme(&mut self.http(), request)?.map(Into::into))
                }

                fn authority(&mut self, request: Resource<IncomingRequest>) -> wasmtime::Result<Option<String>> {
                    P2IncomingRequest::authority(&mut self.http(), request)
                }

                fn headers(&mut self, request: Resource<IncomingRequest>) -> wasmtime::Result<Resource<Fields>> {
                    P2IncomingRequest::headers(&mut self.http(), request)
                }

                fn consume(&mut self, request: Resource<IncomingRequest>) -> wasmtime::Result<Result<Resource<IncomingBody>, ()>> {
                    P2IncomingRequest::consume(&mut self.http(), request)
                }

                fn drop(&mut self, request: Resource<IncomingRequest>) -> wasmtime::Result<()> {
                    P2IncomingRequest::drop(&mut self.http(), request)
                }
            }

            impl<T: RcView> http::types::HostIncomingResponse for RcCtx<'_, T> {
                fn status(&mut self, response: Resource<IncomingResponse>) -> wasmtime::Result<StatusCode> {
                    P2IncomingResponse::status(&mut self.http(), response)
                }

                fn headers(&mut self, response: Resource<IncomingResponse>) -> wasmtime::Result<Resource<Fields>> {
                    P2IncomingResponse::headers(&mut self.http(), response)
                }

                fn consume(&mut self, response: Resource<IncomingResponse>) -> wasmtime::Result<Result<Resource<IncomingBody>, ()>> {
                    P2IncomingResponse::consume(&mut self.http(), response)
                }

                fn drop(&mut self, response: Resource<IncomingResponse>) -> wasmtime::Result<()> {
                    P2IncomingResponse::drop(&mut self.http(), response)
                }
            }

            impl<T: RcView> http::types::HostIncomingBody for RcCtx<'_, T> {
                fn stream(&mut self, body: Resource<IncomingBody>) -> wasmtime::Result<Result<Resource<::wasmtime_wasi::p2::DynInputStream>, ()>> {
                    P2IncomingBody::stream(&mut self.http(), body)
                }

                fn finish(&mut self, body: Resource<IncomingBody>) -> wasmtime::Result<Resource<FutureTrailers>> {
                    P2IncomingBody::finish(&mut self.http(), body)
                }

                fn drop(&mut self, body: Resource<IncomingBody>) -> wasmtime::Result<()> {
                    P2IncomingBody::drop(&mut self.http(), body)
                }
            }

            $crate::convert::convert! {
                enum p2::types::Method = Method { Get, Head, Post, Put, Delete, Connect, Options, Trace, Patch, Other(method), }
                enum p2::types::Scheme = Scheme { Http, Https, Other(scheme), }
            }
        };
    };
}

pub(crate) use add_shared_interfaces_to_linker;
pub(crate) use final_type_conversions;
pub(crate) use wasi_cli;
pub(crate) use wasi_clocks;
pub(crate) use wasi_filesystem;
pub(crate) use wasi_http_incoming;
pub(crate) use wasi_io_streams;
pub(crate) use wasi_random;
pub(crate) use wasi_sockets_tcp;
