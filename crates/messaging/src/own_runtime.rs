//! The small tokio runtime a broker's client runs on.
//!
//! A broker is used from many runtimes (the HTTP workers' current-thread runtimes, the event
//! runtime, tests); its connections live on a runtime of its own, so they outlive none of those by
//! accident and none of them has to poll them.

use anyhow::Context as _;
use std::future::Future;

pub(crate) struct OwnRuntime(Option<tokio::runtime::Runtime>);

impl OwnRuntime {
    /// A multi-threaded runtime with one worker named `name`.
    pub(crate) fn new(name: &str) -> anyhow::Result<OwnRuntime> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(name)
            .enable_all()
            .build()
            .with_context(|| format!("cannot start the {name} runtime"))?;
        Ok(OwnRuntime(Some(runtime)))
    }

    pub(crate) fn handle(&self) -> &tokio::runtime::Handle {
        // Only `Drop` takes the runtime out.
        self.0.as_ref().map(|rt| rt.handle()).expect("the runtime is present until dropped")
    }

    pub(crate) fn spawn<F>(&self, future: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle().spawn(future)
    }
}

impl Drop for OwnRuntime {
    fn drop(&mut self) {
        // Without blocking: a broker may be dropped from async code.
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}
