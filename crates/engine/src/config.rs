use anyhow::Result;
use std::path::PathBuf;
use std::time::Duration;
use wasmtime::{Enabled, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances. Guests yield to the scheduler at every tick, so this bounds how long
/// a busy guest can hold a worker thread (and so how much a looping neighbour delays every other
/// request on its worker), and how late a deadline can fire. A tick costs a busy guest one fiber
/// switch and the ticker thread one wake-up; 2 ms keeps both negligible.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(2);

/// Engine-wide settings, fixed for the life of the process.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Instances that may exist at once: the size of the pooling allocator.
    pub max_instances: u32,
    /// The largest linear memory any instance may grow to, in bytes (per-app limits may be lower).
    pub max_instance_memory: usize,
    /// Where precompiled components are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Use the pooling allocator (on by default; off only for debugging or tiny machines).
    pub pooling: bool,
    /// Component-model concurrency (async functions, streams, futures): needed by WASI 0.3 and
    /// Spin 4's `spin:*@3.0.0` interfaces, and measurably slower for every other guest. Turn it on
    /// only when a component needs it (see [`crate::needs_concurrency`]).
    pub concurrency: bool,
    /// Interrupt guests at their deadline and make busy ones yield (epoch interruption). Every
    /// trigger needs it; `kiln run` without `--timeout` does not, and runs compute-bound programs
    /// faster without the checks it compiles into every loop.
    pub deadlines: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_instances: 1000,
            max_instance_memory: 256 << 20,
            cache_dir: default_cache_dir(),
            pooling: true,
            concurrency: false,
            deadlines: true,
        }
    }
}

/// `$KILN_CACHE_DIR`, else `$XDG_CACHE_HOME/kiln`, else `~/.cache/kiln`.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("KILN_CACHE_DIR") {
        return Some(dir.into());
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(dir).join("kiln"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache").join("kiln"))
}

impl EngineConfig {
    pub(crate) fn wasmtime_config(&self) -> Result<wasmtime::Config> {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(self.deadlines);
        // wasi:http 0.2 needs none of the component-model-async machinery; leaving it off saves
        // per-store setup on every request.
        config.concurrency_support(self.concurrency);
        config.memory_init_cow(true);
        if std::env::var_os("KILN_PERF_MAP").is_some() {
            // For profiling: `perf` names guest functions from /tmp/perf-<pid>.map (bench/README.md).
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        if self.pooling {
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(self.pooling_config()));
        }
        Ok(config)
    }

    fn pooling_config(&self) -> PoolingAllocationConfig {
        let n = self.max_instances.max(1);
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(n);
        // A component holds several core instances (the guest, WASI adapters, shims) and up to a
        // couple of memories and tables; size the pools so the component count is the real limit.
        pool.total_core_instances(n.saturating_mul(8));
        pool.total_memories(n.saturating_mul(2));
        pool.total_tables(n.saturating_mul(4));
        pool.total_stacks(n);
        pool.max_memory_size(self.max_instance_memory);
        // Up to this many bytes of the pages an instance wrote are reset in place (copied back
        // from the image, found with pagemap_scan where the kernel has it) instead of decommitted,
        // so the next instance does not fault them in again. The cost is the pages actually
        // written, not this budget. 8 MiB covers an interpreter's request: the Python template
        // writes ~1.4 MB of its heap snapshot per request, and with 1 MiB faulted ~100 pages back
        // in every time.
        pool.linear_memory_keep_resident(8 << 20);
        pool.table_keep_resident(64 << 10);
        pool.pagemap_scan(Enabled::Auto);
        pool
    }
}

#[cfg(test)]
mod tests {
    use super::EngineConfig;
    use wasmtime::{Instance, Module, Store};

    /// A guest that writes one byte on every other 4 KiB page of its first 1.5 MiB: 192 separate
    /// dirty regions, as an interpreter's heap snapshot leaves them.
    const SCATTERED_WRITER: &str = r#"(module
        (memory (export "memory") 32)
        (data (i32.const 0) "kiln")
        (func (export "dirty")
            (local $page i32)
            (loop $next
                (i32.store8 (i32.mul (local.get $page) (i32.const 4096)) (i32.const 1))
                (local.set $page (i32.add (local.get $page) (i32.const 2)))
                (br_if $next (i32.lt_u (local.get $page) (i32.const 384))))))"#;

    /// This thread's minor page faults so far (`/proc/thread-self/stat`, field 10).
    fn thread_minor_faults() -> u64 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("procfs");
        let after_name = &stat[stat
            .rfind(')')
            .expect("stat has the command in parentheses")
            + 2..];
        after_name
            .split(' ')
            .nth(7)
            .expect("minflt field")
            .parse()
            .expect("a number")
    }

    fn run_once(engine: &wasmtime::Engine, module: &Module) {
        let mut store = Store::new(engine, ());
        let instance = Instance::new(&mut store, module, &[]).expect("instantiates");
        let dirty = instance
            .get_typed_func::<(), ()>(&mut store, "dirty")
            .expect("exported");
        dirty.call(&mut store, ()).expect("runs");
    }

    /// The pooling allocator resets the pages an instance wrote in place (within
    /// `linear_memory_keep_resident`), however scattered they are, so the next instance of the
    /// module does not fault them back in. wasmtime 48.0.8 gave up after 32 regions and
    /// decommitted the rest (vendor/wasmtime/KILN-PATCH.md): ~170 faults here for every instance.
    #[test]
    #[cfg(target_os = "linux")]
    fn scattered_writes_stay_resident_for_the_next_instance() {
        let config = EngineConfig {
            max_instances: 4,
            deadlines: false,
            ..EngineConfig::default()
        };
        let engine = wasmtime::Engine::new(&config.wasmtime_config().unwrap()).unwrap();
        let module = Module::new(&engine, SCATTERED_WRITER).unwrap();
        run_once(&engine, &module); // maps the image and faults the pages in once
        run_once(&engine, &module);
        let before = thread_minor_faults();
        run_once(&engine, &module);
        let faults = thread_minor_faults() - before;
        assert!(
            faults < 48,
            "a fresh instance took {faults} page faults for 192 pages its predecessor wrote"
        );
    }
}
