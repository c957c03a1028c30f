#if canImport(Glibc)
import Glibc
#endif

/// A dedicated thread running one poll loop (the DNS gate, the nflog reader, the DNS capture): started with a
/// setup step whose failure is reported to the caller, stopped through a wake pipe the loop polls. The thread
/// owns its namespace and its descriptors; nothing of it runs on Swift's shared pool.
// @unchecked: its thread, wake pipe and start error are written by start()/stop() on the owner's thread.
package final class ServiceThread: @unchecked Sendable {
    private let name: String
    private var thread: DedicatedThread?
    private var wakePipe: [Int32] = [-1, -1]
    private var startError: (any Error)?

    package init(name: String) { self.name = name }

    /// The descriptor the loop polls for readability: readable means "stop now".
    package var wakeFD: Int32 { wakePipe[0] }

    /// Runs `setup` on the new thread, then `run` with its result until `run` returns (after the wake
    /// descriptor became readable). Throws what `setup` threw, with the thread gone and nothing left open.
    package func start<Context>(setup: @escaping @Sendable () throws -> Context, run: @escaping @Sendable (Context) -> Void) throws {
        guard thread == nil else { return }
        guard pipe(&wakePipe) == 0 else { throw CagentError.system(name, "pipe") }
        for fd in wakePipe { _ = fcntl(fd, F_SETFD, FD_CLOEXEC); _ = fcntl(fd, F_SETFL, O_NONBLOCK) }
        let started = Latch()
        let thread: DedicatedThread
        do {
            thread = try DedicatedThread.start(name: name) { [self] in
                let context: Context
                do {
                    context = try setup()
                } catch {
                    startError = error
                    started.open()
                    return
                }
                started.open()
                run(context)
            }
        } catch {
            closePipe()
            throw error
        }
        started.wait()
        if let startError {
            thread.join()
            closePipe()
            throw startError
        }
        self.thread = thread
    }

    /// Wakes the loop without waiting (`stop` waits). Nothing happens when the thread is not running.
    package func wake() {
        guard thread != nil else { return }
        var byte: UInt8 = 1
        _ = write(wakePipe[1], &byte, 1)
    }

    /// Wakes the loop and waits until it has returned. Safe to call more than once.
    package func stop() {
        guard thread != nil else { return }
        var byte: UInt8 = 1
        _ = write(wakePipe[1], &byte, 1)
        thread?.join()
        thread = nil
        closePipe()
    }

    private func closePipe() {
        for fd in wakePipe where fd >= 0 { close(fd) }
        wakePipe = [-1, -1]
    }

    deinit { stop() }
}
