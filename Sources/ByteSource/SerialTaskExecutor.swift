import Dispatch
import Synchronization

/// Runs one file's tasks one at a time, in the order they become ready, on whichever pool
/// thread is draining them.
///
/// A remote file's parse is a swarm of small tasks (a child per object, a batch per round of
/// reads) that mostly run for microseconds between reads already in the cache. On the global
/// executor each of those hand-offs is an enqueue that may wake a thread, and on two cores they
/// cost a WRF-like file's parse 4.4 ms of CPU against 2.7 ms here (`zarrmount-bench
/// parse-cpu`). Files are many, so running each file's tasks serially loses no parallelism, and
/// a job enqueued while the file is already being drained is only appended to a list.
public final class SerialTaskExecutor: TaskExecutor {
    private struct Queue {
        var jobs: [UnownedJob] = []
        var draining = false
    }

    private let queue = Mutex(Queue())

    /// The executor of the work running now, for unstructured tasks, which do not inherit a
    /// preference (`Task(executorPreference: SerialTaskExecutor.current)`).
    @TaskLocal public static var current: SerialTaskExecutor?

    public init() {}

    /// Runs `body`, its child tasks and the unstructured tasks it starts through `current` on a
    /// new serial executor.
    public static func run<T: Sendable>(_ body: () async throws -> T) async rethrows -> T {
        let executor = SerialTaskExecutor()
        return try await $current.withValue(executor) {
            try await withTaskExecutorPreference(executor) { try await body() }
        }
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let startDrain = queue.withLock { queue -> Bool in
            queue.jobs.append(job)
            if queue.draining { return false }
            queue.draining = true
            return true
        }
        if startDrain {
            DispatchQueue.global().async { self.drain() }
        }
    }

    private func drain() {
        let executor = asUnownedTaskExecutor()
        // Two buffers change places: the queue fills one while this loop runs the other, so
        // neither is reallocated per batch.
        var batch: [UnownedJob] = []
        while true {
            batch.removeAll(keepingCapacity: true)
            queue.withLock { queue in
                swap(&queue.jobs, &batch)
                if batch.isEmpty { queue.draining = false }
            }
            if batch.isEmpty { return }
            for job in batch { job.runSynchronously(on: executor) }
        }
    }
}
