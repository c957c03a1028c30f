import CShim
#if canImport(Glibc)
import Glibc
#endif

/// A joinable POSIX thread running one closure. cagent's launch path stays free of Foundation (whose
/// CoreFoundation initializers alone cost milliseconds at every process start: docs/benchmarks.md
/// "Sandbox start"), so threads that must own a namespace or a poll loop are plain pthreads.
// @unchecked: a pthread_t (C), joined once by the owner.
public final class DedicatedThread: @unchecked Sendable {
    private var handle: pthread_t
    private var joined = false

    private init(handle: pthread_t) { self.handle = handle }

    /// Starts `body` on a new thread named `name` (the kernel keeps 15 bytes of it, shown by `ps -L`).
    public static func start(name: String, _ body: @escaping @Sendable () -> Void) throws -> DedicatedThread {
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
    public func join() {
        guard !joined else { return }
        joined = true
        pthread_join(handle, nil)
    }

    /// Runs `body` on a new thread and waits for its result: for work that must not run on a shared thread
    /// (setns is per thread).
    public static func run<T>(name: String, _ body: @escaping @Sendable () throws -> T) throws -> T {
        let box = ResultBox<T>()
        let thread = try start(name: name) { box.result = Result { try body() } }
        thread.join()
        return try box.result!.get()
    }
}

private final class ClosureBox {
    let body: @Sendable () -> Void
    init(_ body: @escaping @Sendable () -> Void) { self.body = body }
}

// @unchecked: written by the thread, read after pthread_join.
private final class ResultBox<T>: @unchecked Sendable {
    var result: Result<T, Error>?   // written by the thread, read after pthread_join (a happens-before edge)
}

/// A one-shot signal between threads: `wait` returns once `open` was called (before or after).
// @unchecked: a pthread mutex and condition variable (C: Synchronization has no condition variable).
public final class Latch: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var isOpen = false

    public init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    public func open() {
        pthread_mutex_lock(mutex)
        isOpen = true
        pthread_cond_broadcast(condition)
        pthread_mutex_unlock(mutex)
    }

    public func wait() {
        pthread_mutex_lock(mutex)
        while !isOpen { pthread_cond_wait(condition, mutex) }
        pthread_mutex_unlock(mutex)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }
}
