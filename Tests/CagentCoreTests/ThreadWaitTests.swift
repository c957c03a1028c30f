import CagentCore
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The waits a Mutex cannot do (Monitor, Latch) and a thread's outcome (ThreadWork).
@Suite struct ThreadWaitTests {
    /// A bound of two: a third taker waits until one is given back (the Recorder's in-flight batches).
    @Test func monitorBoundHoldsATakerUntilOneIsGivenBack() throws {
        let inFlight = Monitor(0)
        @Sendable func take() {
            inFlight.wait { (count: inout Int) -> Void? in
                guard count < 2 else { return nil }
                count += 1
                return ()
            }
        }
        take(); take()
        let third = Latch(), returned = Mutex(false)
        let taker = try DedicatedThread.start(name: "test-taker") {
            take()
            returned.withLock { $0 = true }
            third.open()
        }
        // Control: the taker has had time to run, and still waits while two are out.
        for _ in 0..<50 where !returned.withLock({ $0 }) { usleep(1000) }
        #expect(returned.withLock { $0 } == false)
        inFlight.update { $0 -= 1 }
        third.wait()
        taker.join()
        #expect(returned.withLock { $0 })
        #expect(inFlight.wait { $0 } == 2)
    }

    @Test func latchOpenedBeforeOrAfterTheWait() throws {
        let early = Latch()
        early.open()
        early.wait()  // opened before: returns at once
        let late = Latch(), opened = Mutex(false)
        let opener = try DedicatedThread.start(name: "test-opener") {
            usleep(10_000)
            opened.withLock { $0 = true }
            late.open()
        }
        late.wait()
        #expect(opened.withLock { $0 })
        opener.join()
    }

    @Test func threadWorkHandsItsOutcomeOverOnce() throws {
        let value = try ThreadWork.start(name: "test-value") { 42 }
        #expect(try value.join()?.get() == 42)
        #expect(value.join() == nil)
        struct Refused: Error {}
        let failing = try ThreadWork<Int>.start(name: "test-error") { throw Refused() }
        #expect(throws: Refused.self) { try failing.join()?.get() }
        #expect(try DedicatedThread.run(name: "test-run") { "ran" } == "ran")
    }
}
