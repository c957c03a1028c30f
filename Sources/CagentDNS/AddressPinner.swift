import Synchronization
import CagentNetwork

/// Where the gate puts the addresses it is about to hand out: the session's allow set in the host's
/// nftables table (the Firewall implements this at merge). Both calls return only once the kernel holds
/// the element, because the gate releases the answer right after: a client must never race its pin.
package protocol AddressPinner: Sendable {
    /// Adds `address . proto . port` for each of `ports` to the session's allow set with timeout `ttl`
    /// seconds, or, when an element is already there, sets its timeout to max(remaining, ttl).
    func pin(_ address: IPAddress, ports: [PinPort], ttl: UInt32) throws
    /// Re-arms elements the gate believes are still live (it pinned them earlier and the pin has not run
    /// out by the gate's clock) to max(remaining, ttl). If an element expired meanwhile, it is re-added.
    func refresh(_ address: IPAddress, ports: [PinPort], ttl: UInt32) throws
}

/// Address -> the name the gate resolved it for, so a denial can say which name an address belonged to.
/// Shared by the gate (writer) and the denial reporter (reader).
package final class AddressBook: Sendable {
    private let names = Mutex<[IPAddress: DNSName]>([:])

    package init() {}

    package func record(_ address: IPAddress, for name: DNSName) {
        names.withLock { $0[address] = name }
    }

    package func name(for address: IPAddress) -> DNSName? {
        names.withLock { $0[address] }
    }

    package var count: Int { names.withLock { $0.count } }
}

/// A pinner that only records what it was asked: for tests about gate logic, and for learn mode where
/// nothing is enforced.
package final class RecordingPinner: AddressPinner {
    package struct Call: Equatable, Sendable {
        package var address: IPAddress
        package var ports: [PinPort]
        package var ttl: UInt32
        package var refresh: Bool
    }
    private let log = Mutex<[Call]>([])
    private let failing = Mutex<Bool>(false)

    package init() {}

    package func pin(_ address: IPAddress, ports: [PinPort], ttl: UInt32) throws {
        if failing.withLock({ $0 }) { throw PinFailure() }
        log.withLock { $0.append(Call(address: address, ports: ports, ttl: ttl, refresh: false)) }
    }

    package func refresh(_ address: IPAddress, ports: [PinPort], ttl: UInt32) throws {
        if failing.withLock({ $0 }) { throw PinFailure() }
        log.withLock { $0.append(Call(address: address, ports: ports, ttl: ttl, refresh: true)) }
    }

    /// Makes every later call throw (to test that the gate fails closed).
    package func fail(_ value: Bool) { failing.withLock { $0 = value } }

    package var calls: [Call] { log.withLock { $0 } }

    package struct PinFailure: Error {}
}
