use crate::capability::ComponentCapability;
use crate::Engine;
use crate::guest_output::GuestLog;
use crate::limits::{InstanceFailure, MemoryLimiter, classify_failure};
use crate::state::KilnState;
use anyhow::{Context, Result};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{InstancePre, ResourceTable};
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpHooks};

/// What a component's WASI context holds, prepared once at load so that each instance only copies it.
#[derive(Clone, Default)]
pub struct WasiTemplate {
    /// `environment` from the manifest.
    pub env: Vec<(String, String)>,
    /// Read-only directories: (host directory, guest path).
    pub preopens: Vec<(PathBuf, String)>,
    /// Directories the guest may also write (`kiln run --dir`, as `wasmtime run --dir`); an app's
    /// components have none.
    pub writable_preopens: Vec<(PathBuf, String)>,
    /// Which socket addresses the guest may use (`wasi:sockets`); `None` denies every socket.
    pub sockets: Option<SocketPolicy>,
}

/// Decides whether an instance may connect to (or bind) an address.
pub type SocketPolicy = Arc<dyn Fn(std::net::SocketAddr, wasmtime_wasi::sockets::SocketAddrUse) -> bool + Send + Sync>;

/// Per-instance settings chosen by the trigger.
pub struct InstanceOptions {
    /// The instance is interrupted when it is still running at this instant.
    pub deadline: Instant,
    /// Linear memory limit in bytes (at most the engine's `max_instance_memory`).
    pub memory_limit: usize,
    /// Outbound HTTP policy for this instance.
    pub http_hooks: Box<dyn WasiHttpHooks>,
    /// A command's arguments and streams (WAGI); `None`: no arguments, no stdin, stdout to the log.
    pub command: Option<CommandIo>,
}

/// What a command run gets beyond the component's template: WAGI's CGI request, a file for the
/// directory trigger, or the terminal for `kiln run`.
pub struct CommandIo {
    pub args: Vec<String>,
    /// Added to the manifest's `environment`.
    pub env: Vec<(String, String)>,
    pub stdio: CommandStdio,
}

/// Instantiates a WASI program and runs its `wasi:cli/run` to the end: its exit code (`exit(n)`, or
/// 0/1 for `run`'s result). A trap is the error.
pub async fn run_to_exit(command: &wasmtime_wasi::p2::bindings::CommandPre<KilnState>, store: &mut wasmtime::Store<KilnState>) -> wasmtime::Result<i32> {
    let instance = command.instantiate_async(&mut *store).await?;
    match instance.wasi_cli_run().call_run(&mut *store).await {
        Ok(Ok(())) => Ok(0),
        Ok(Err(())) => Ok(1),
        Err(err) => match err.downcast_ref::<wasmtime_wasi::I32Exit>() {
            Some(wasmtime_wasi::I32Exit(code)) => Ok(*code),
            None => Err(err),
        },
    }
}

/// A command's standard streams.
pub enum CommandStdio {
    /// stdin from memory, stdout captured (the caller keeps a clone of the pipe to read it once
    /// the run ends), stderr captured too when given, else to the log.
    Captured {
        stdin: bytes::Bytes,
        stdout: wasmtime_wasi::p2::pipe::MemoryOutputPipe,
        stderr: Option<wasmtime_wasi::p2::pipe::MemoryOutputPipe>,
    },
    /// The kiln process's own stdin, stdout and stderr (`kiln run`).
    Inherited,
}

/// What bounds one instance, as a trigger sets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InstanceLimits {
    /// Cut off (504 for HTTP) once it has run this long.
    pub deadline: Duration,
    /// Linear memory limit in bytes.
    pub memory_limit: usize,
}

/// What a trigger does with a fresh store in [`ComponentPre::run`]: instantiate and call its export.
pub type InstanceCall<'s, T> = Pin<Box<dyn Future<Output = wasmtime::Result<T>> + Send + 's>>;

/// A component ready to be instantiated: compiled, linked, with its WASI template.
#[derive(Clone)]
pub struct ComponentPre {
    id: Arc<str>,
    engine: Engine,
    pre: InstancePre<KilnState>,
    wasi: Arc<WasiTemplate>,
    capabilities: Arc<[Arc<dyn ComponentCapability>]>,
}

impl ComponentPre {
    /// Compiles (or loads from cache) and links the component at `path`.
    pub fn load(
        engine: &Engine,
        id: &str,
        path: &std::path::Path,
        wasi: WasiTemplate,
        capabilities: Vec<Arc<dyn ComponentCapability>>,
    ) -> Result<ComponentPre> {
        let component = engine.load_component(path)?;
        Self::link(engine, id, component, wasi, capabilities)
    }

    /// Compiles (or loads from cache) and links a component given as bytes (a composed one).
    pub fn load_bytes(
        engine: &Engine,
        id: &str,
        bytes: &[u8],
        wasi: WasiTemplate,
        capabilities: Vec<Arc<dyn ComponentCapability>>,
    ) -> Result<ComponentPre> {
        let component = engine.load_component_bytes(bytes).with_context(|| format!("failed to load component `{id}`"))?;
        Self::link(engine, id, component, wasi, capabilities)
    }

    fn link(
        engine: &Engine,
        id: &str,
        component: wasmtime::component::Component,
        wasi: WasiTemplate,
        capabilities: Vec<Arc<dyn ComponentCapability>>,
    ) -> Result<ComponentPre> {
        let pre = engine.linker().instantiate_pre(&component).map_err(|err| {
            let ty = component.component_type();
            let names = ty.imports(engine.wasmtime()).map(|(name, _)| name).chain(ty.exports(engine.wasmtime()).map(|(name, _)| name));
            let error = anyhow::Error::from(err);
            match crate::release_candidates::unsupported_wasi_help(names) {
                Some(help) => error.context(format!("component `{id}` cannot run on Kiln: {help}")),
                None => error.context(format!("component `{id}` imports something Kiln does not provide")),
            }
        })?;
        Ok(ComponentPre {
            id: id.into(),
            engine: engine.clone(),
            pre,
            wasi: Arc::new(wasi),
            capabilities: capabilities.into(),
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn instance_pre(&self) -> &InstancePre<KilnState> {
        &self.pre
    }

    /// Runs one instance, start to end, the way every trigger does: a fresh store, then `call`
    /// (which instantiates and calls the trigger's export), cut off at the deadline, and any failure
    /// classified (deadline, memory limit, trap).
    pub async fn run<T>(
        &self,
        limits: InstanceLimits,
        http_hooks: Box<dyn WasiHttpHooks>,
        call: impl for<'s> FnOnce(&'s mut Store<KilnState>) -> InstanceCall<'s, T>,
    ) -> Result<T, InstanceFailure> {
        self.run_with(limits, http_hooks, None, call).await
    }

    /// [`ComponentPre::run`] for a command given its arguments, environment and streams (WAGI).
    pub async fn run_command<T>(
        &self,
        limits: InstanceLimits,
        http_hooks: Box<dyn WasiHttpHooks>,
        command: CommandIo,
        call: impl for<'s> FnOnce(&'s mut Store<KilnState>) -> InstanceCall<'s, T>,
    ) -> Result<T, InstanceFailure> {
        self.run_with(limits, http_hooks, Some(command), call).await
    }

    async fn run_with<T>(
        &self,
        limits: InstanceLimits,
        http_hooks: Box<dyn WasiHttpHooks>,
        command: Option<CommandIo>,
        call: impl for<'s> FnOnce(&'s mut Store<KilnState>) -> InstanceCall<'s, T>,
    ) -> Result<T, InstanceFailure> {
        let deadline = Instant::now() + limits.deadline;
        let mut store = self
            .new_store(InstanceOptions { deadline, memory_limit: limits.memory_limit, http_hooks, command })
            .map_err(|err| InstanceFailure::Trap(format!("cannot create the instance: {err:#}")))?;
        let outcome = {
            let mut call = std::pin::pin!(call(&mut store));
            // Most instances finish in their first poll (they never wait on I/O): only one that
            // waits arms a timer for its deadline. A guest that computes past it is interrupted by
            // the epoch callback above either way.
            match poll_once(call.as_mut()).await {
                Some(outcome) => Ok(outcome),
                None => tokio::time::timeout_at(deadline.into(), call).await,
            }
        };
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(classify_failure(&err, store.data().memory_exceeded(), limits.memory_limit, limits.deadline)),
            Err(_elapsed) => Err(InstanceFailure::Deadline(limits.deadline)),
        }
    }

    /// A fresh store for one instance of this component. This is on every request's path: it only
    /// copies prepared data.
    pub fn new_store(&self, options: InstanceOptions) -> Result<Store<KilnState>> {
        let state = KilnState {
            table: ResourceTable::new(),
            wasi: self.wasi_ctx(options.command)?,
            http: WasiHttpCtx::new(),
            http_hooks: options.http_hooks,
            limiter: MemoryLimiter::new(options.memory_limit),
            deadline: options.deadline,
            capabilities: crate::state::CapabilityStates::new(self.capabilities.clone()),
            response_body: Default::default(),
        };
        let mut store = Store::new(self.engine.wasmtime(), state);
        store.limiter(|state| &mut state.limiter);
        // Yield to the executor at every epoch tick so a busy guest never holds a worker thread, and
        // trap once the deadline has passed. tokio's `yield_now` (not a plain self-wake) puts the task
        // back only after the worker has polled for I/O: a worker whose guests loop would otherwise
        // always have a task ready and look at its sockets only every 61 polls, ~120 ms of 2 ms ticks,
        // before it sees a neighbour's request.
        if self.engine.config().deadlines {
            store.set_epoch_deadline(1);
            store.epoch_deadline_callback(|store| {
                if Instant::now() >= store.data().deadline {
                    Ok(UpdateDeadline::Interrupt)
                } else {
                    Ok(UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now())))
                }
            });
        }
        Ok(store)
    }

    fn wasi_ctx(&self, command: Option<CommandIo>) -> Result<WasiCtx> {
        let mut builder = WasiCtxBuilder::new();
        builder.envs(&self.wasi.env);
        let (log_stdout, log_stderr) = GuestLog::for_instance(self.id.clone());
        match command {
            Some(command) => {
                builder.args(&command.args).envs(&command.env);
                match command.stdio {
                    CommandStdio::Captured { stdin, stdout, stderr } => {
                        builder.stdin(wasmtime_wasi::p2::pipe::MemoryInputPipe::new(stdin));
                        builder.stdout(stdout);
                        match stderr {
                            Some(stderr) => builder.stderr(stderr),
                            None => builder.stderr(log_stderr),
                        };
                    }
                    CommandStdio::Inherited => {
                        builder.inherit_stdio();
                    }
                }
            }
            None => {
                builder.stdout(log_stdout);
                builder.stderr(log_stderr);
            }
        }
        let read_only = self.wasi.preopens.iter().map(|(host, guest)| (host, guest, FsPerms::ReadOnly));
        let writable = self.wasi.writable_preopens.iter().map(|(host, guest)| (host, guest, FsPerms::ReadWrite));
        for (host, guest, perms) in read_only.chain(writable) {
            builder
                .preopened_dir(host, guest, perms)
                .map_err(anyhow::Error::from)
                .with_context(|| format!("failed to open `{}` for component `{}`", host.display(), self.id))?;
        }
        if let Some(policy) = &self.wasi.sockets {
            let policy = policy.clone();
            builder.allow_tcp(true).allow_udp(true).allow_ip_name_lookup(true);
            builder.socket_addr_check(move |addr, usage| {
                let allowed = policy(addr, usage);
                Box::pin(async move { allowed })
            });
        }
        Ok(builder.build())
    }
}

/// Polls `future` once: its output if it finished, `None` if it is waiting (and will wake the
/// current task, which does no harm once another task polls it instead).
pub async fn poll_once<F: Future + ?Sized>(mut future: Pin<&mut F>) -> Option<F::Output> {
    std::future::poll_fn(|cx| match future.as_mut().poll(cx) {
        std::task::Poll::Ready(output) => std::task::Poll::Ready(Some(output)),
        std::task::Poll::Pending => std::task::Poll::Ready(None),
    })
    .await
}
