import CShim
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A joinable POSIX thread running one closure. cagent's launch path stays free of Foundation (whose
/// CoreFoundation initializers alone cost milliseconds at every process start: docs/benchmarks.md
/// "Sandbox start"), so threads that must own a namespace or a poll loop are plain pthreads.
// @unchecked: a pthread_t (C), joined once by the owner.
package final class DedicatedThread: @unchecked Sendable {
    private var handle: pthread_t
    private var joined = false

    private init(handle: pthread_t) { self.handle = handle }

    /// Starts `body` on a new thread named `name` (the kernel keeps 15 bytes of it, shown by `ps -L`).
    package static func start(name: String, _ body: @escaping @Sendable () -> Void) throws -> DedicatedThread {
        let box = Unmanaged.passRetained(ClosureBox {
            cg_thread_set_name(name)
            body()
        })
        var handle = pthread_t()
        let result = pthread_create(&handle, nil, { raw in
            let box = Unmanaged<ClosureBox>.fromOpaque(raw!).takeRetainedValue()
            box.body()
            return nil
        }, box.toOpaque())
        guard result == 0 else {
            box.release()
            errno = result
            throw CagentError.system(name, "start a thread")
        }
        return DedicatedThread(handle: handle)
    }

    /// Waits until the closure has returned. Call once.
    package func join() {
        guard !joined else { return }
        joined = true
        pthread_join(handle, nil)
    }

    /// Runs `body` on a new thread and waits for its result: for work that must not run on a shared thread
    /// (setns is per thread).
    package static func run<T: Sendable>(name: String, _ body: @escaping @Sendable () throws -> T) throws -> T {
        let outcome = try ThreadWork.start(name: name, body).join()
        guard let outcome else { throw CagentError(stage: name, "the thread ended without a result") }
        return try outcome.get()
    }
}

/// Work on a thread of its own whose outcome the owner collects: `join` waits for the thread and hands over
/// what `body` returned or threw (once: later calls give nil).
package final class ThreadWork<T: Sendable>: Sendable {
    private let thread: DedicatedThread
    private let outcome: ResultBox<T>

    private init(thread: DedicatedThread, outcome: ResultBox<T>) { self.thread = thread; self.outcome = outcome }

    /// Starts `body` on a new thread named `name`; throws when no thread can be started.
    package static func start(name: String, _ body: @escaping @Sendable () throws -> T) throws -> ThreadWork<T> {
        let box = ResultBox<T>()
        let thread = try DedicatedThread.start(name: name) {
            let result = Result { try body() }
            box.result.withLock { $0 = result }
        }
        return ThreadWork(thread: thread, outcome: box)
    }

    /// Waits for the thread; its outcome the first time, nil after. From the owner's thread.
    @discardableResult
    package func join() -> Result<T, any Error>? {
        thread.join()
        return outcome.result.withLock { $0.take() }
    }
}

private final class ClosureBox {
    let body: @Sendable () -> Void
    init(_ body: @escaping @Sendable () -> Void) { self.body = body }
}

/// A thread's outcome, read after pthread_join.
private final class ResultBox<T: Sendable>: Sendable {
    let result = Mutex<Result<T, any Error>?>(nil)
}

/// A value behind a lock that a thread can wait on: `update` changes it and wakes the waiters, `wait(for:)`
/// blocks until it satisfies a condition. The project's locks are Synchronization's `Mutex`; this is the one
/// exception, for the waits a `Mutex` cannot do (events, bounds).
// @unchecked: a pthread mutex and condition variable (C: Synchronization has no condition variable).
package final class Monitor<State: Sendable>: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var state: State

    package init(_ state: State) {
        self.state = state
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    /// Changes the value under the lock and wakes every waiter.
    @discardableResult
    package func update<R>(_ body: (inout State) throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer {
            pthread_cond_broadcast(condition)
            pthread_mutex_unlock(mutex)
        }
        return try body(&state)
    }

    /// Blocks until `take` gives a value (it runs under the lock, at the start and after each change, and may
    /// change the value itself), then returns that value.
    package func wait<R>(for take: (inout State) -> R?) -> R {
        pthread_mutex_lock(mutex)
        defer {
            pthread_cond_broadcast(condition)
            pthread_mutex_unlock(mutex)
        }
        while true {
            if let taken = take(&state) { return taken }
            pthread_cond_wait(condition, mutex)
        }
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }
}

/// A one-shot signal between threads: `wait` returns once `open` was called (before or after).
package final class Latch: Sendable {
    private let isOpen = Monitor(false)

    package init() {}

    package func open() { isOpen.update { $0 = true } }

    package func wait() { isOpen.wait { $0 ? () : nil } }
}
