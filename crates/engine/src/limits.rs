use std::time::Duration;

/// Enforces one instance's memory limit and remembers whether the guest hit it, so a failure can be
/// reported as "out of memory" rather than as an anonymous trap.
pub(crate) struct MemoryLimiter {
    max_memory: usize,
    exceeded: bool,
}

impl MemoryLimiter {
    pub(crate) fn new(max_memory: usize) -> MemoryLimiter {
        MemoryLimiter { max_memory, exceeded: false }
    }

    pub(crate) fn exceeded(&self) -> bool {
        self.exceeded
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.max_memory {
            self.exceeded = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        // Tables hold function references; a million entries is far beyond any real guest.
        Ok(desired <= 1_000_000)
    }
}

/// Why an instance ended without producing a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceFailure {
    /// It ran past its deadline.
    Deadline(Duration),
    /// It asked for more memory than its limit.
    OutOfMemory { limit: usize },
    /// It trapped (panic, unreachable, bad memory access …); the one-line reason.
    Trap(String),
}

impl std::fmt::Display for InstanceFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InstanceFailure::Deadline(d) => write!(f, "the component ran past its deadline of {}", humanize(*d)),
            InstanceFailure::OutOfMemory { limit } => {
                write!(f, "the component exceeded its memory limit of {} MiB", limit >> 20)
            }
            InstanceFailure::Trap(reason) => write!(f, "the component trapped: {reason}"),
        }
    }
}

fn humanize(d: Duration) -> String {
    if d.as_millis().is_multiple_of(1000) { format!("{}s", d.as_secs()) } else { format!("{}ms", d.as_millis()) }
}

/// Turns the error an instance returned into an [`InstanceFailure`]. `memory_exceeded` comes from the
/// store (see [`KilnState::memory_exceeded`](crate::KilnState::memory_exceeded)), `deadline` is the
/// instance's time budget, used when the error is an epoch interrupt.
pub fn classify_failure(err: &wasmtime::Error, memory_exceeded: bool, memory_limit: usize, deadline: Duration) -> InstanceFailure {
    if let Some(trap) = err.downcast_ref::<wasmtime::Trap>()
        && *trap == wasmtime::Trap::Interrupt {
            return InstanceFailure::Deadline(deadline);
        }
    if memory_exceeded {
        return InstanceFailure::OutOfMemory { limit: memory_limit };
    }
    InstanceFailure::Trap(one_line(err))
}

/// The first line of the error chain, without the wasm backtrace that follows it.
fn one_line(err: &wasmtime::Error) -> String {
    let mut parts = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string();
        let first = text.lines().next().unwrap_or_default().trim().to_string();
        if !first.is_empty() && !parts.contains(&first) {
            parts.push(first);
        }
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn growth_past_the_limit_is_refused_and_remembered() {
        let mut limiter = MemoryLimiter::new(1 << 20);
        assert!(limiter.memory_growing(0, 1 << 20, None).unwrap());
        assert!(!limiter.exceeded());
        assert!(!limiter.memory_growing(1 << 20, 2 << 20, None).unwrap());
        assert!(limiter.exceeded());
    }

    #[test]
    fn failures_are_classified() {
        let deadline = Duration::from_secs(3);
        let interrupt = wasmtime::Error::from(wasmtime::Trap::Interrupt);
        assert_eq!(classify_failure(&interrupt, false, 1 << 20, deadline), InstanceFailure::Deadline(deadline));
        let unreachable = wasmtime::Error::from(wasmtime::Trap::UnreachableCodeReached);
        assert_eq!(classify_failure(&unreachable, true, 64 << 20, deadline), InstanceFailure::OutOfMemory { limit: 64 << 20 });
        let InstanceFailure::Trap(reason) = classify_failure(&unreachable, false, 1 << 20, deadline) else {
            panic!("expected a trap");
        };
        assert!(!reason.contains('\n'), "one line: {reason}");
        assert_eq!(InstanceFailure::Deadline(deadline).to_string(), "the component ran past its deadline of 3s");
    }
}
