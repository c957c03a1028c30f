import CShim
import CagentCore
import Foundation

/// The hermetic test network. Each instance is a fresh pair of network namespaces:
///
///   simulated host  `cgt-<id>-host`  (where cagent runs; its only route leads into the internet)
///        │ veth cgt<id>h ─ cgt<id>i
///   simulated internet `cgt-<id>-inet`: dnsmasq authoritative for the test zones (every query logged), web
///        servers on several IPv4/IPv6 addresses, and the attacker's sink (every packet to the attacker's
///        addresses captured, every connection and datagram accepted and logged).
///
/// Nothing is created in the machine's own network namespace: both veth ends are created inside the lab's
/// namespaces, the internet has no route anywhere else. `shutdown()` removes everything; a lab whose test
/// process died is removed by the next lab's start (or scripts/netlab-clean.sh) through the registry.
package final class Netlab: @unchecked Sendable {
    package enum Side: Sendable { case host, internet }

    package let id: String
    package let hostNamespace: String
    package let internetNamespace: String
    package let hostInterface: String
    package let internetInterface: String
    /// Scratch directory for this lab's logs and config.
    package let directory: String

    private var children: [SpawnedProcess] = []
    private let lock = NSLock()
    private var isShutDown = false

    static let registry = "/run/cgt-netlab"
    static let resources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Resources").path

    /// Starts a lab with every service running. Throws (and leaves nothing behind) when a step fails.
    package init(services: Set<Service> = Set(Service.allCases)) throws {
        try Requirements.root()
        for tool in ["ip", "dnsmasq", "tcpdump", "python3"] { try Requirements.tool(tool) }
        Netlab.removeOrphans()

        id = Netlab.newID()
        hostNamespace = "cgt-\(id)-host"
        internetNamespace = "cgt-\(id)-inet"
        hostInterface = "cgt\(id)h"
        internetInterface = "cgt\(id)i"
        directory = "/tmp/cgt-netlab-\(id)"
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            // Register before creating anything, so a crash at any later point is cleaned up by the next run.
            try Netlab.register(id: id)
            try buildTopology()
            try startServices(services)
        } catch {
            shutdown()
            throw error
        }
    }

    package enum Service: CaseIterable, Sendable { case dns, web, sink }

    deinit { shutdown() }

    // MARK: - Topology

    private func buildTopology() throws {
        let a = NetlabAddresses.self
        try ip(["netns", "add", hostNamespace])
        try ip(["netns", "add", internetNamespace])
        // The veth is created directly in the lab namespaces: never in the machine's own.
        try ip(["-n", hostNamespace, "link", "add", hostInterface, "type", "veth",
                "peer", "name", internetInterface, "netns", internetNamespace])
        for (ns, iface) in [(hostNamespace, hostInterface), (internetNamespace, internetInterface)] {
            try ip(["-n", ns, "link", "set", "lo", "up"])
            try ip(["-n", ns, "link", "set", iface, "up"])
        }
        try ip(["-n", hostNamespace, "addr", "add", "\(a.host4)/24", "dev", hostInterface])
        try ip(["-n", hostNamespace, "addr", "add", "\(a.host6)/64", "dev", hostInterface, "nodad"])
        try ip(["-n", internetNamespace, "addr", "add", "\(a.router4)/24", "dev", internetInterface])
        try ip(["-n", internetNamespace, "addr", "add", "\(a.router6)/64", "dev", internetInterface, "nodad"])
        // The host's only way out is the internet; the internet has no default route at all.
        try ip(["-n", hostNamespace, "route", "add", "default", "via", a.router4])
        try ip(["-n", hostNamespace, "-6", "route", "add", "default", "via", a.router6])
        // The internet's service addresses live on its loopback.
        let serviceAddresses = [a.dns4, a.dns6, a.publicResolver4, a.publicResolver6, a.attacker4, a.attacker6]
            + a.webAll4 + a.webAll6
        for address in serviceAddresses {
            let prefix = address.contains(":") ? "/128" : "/32"
            var arguments = ["-n", internetNamespace, "addr", "add", address + prefix, "dev", "lo"]
            if address.contains(":") { arguments.append("nodad") }
            try ip(arguments)
        }
        // Processes run with `ip netns exec` see this resolv.conf: the simulated host resolves through the
        // internet's DNS server, never the machine's resolver.
        let etc = "/etc/netns/\(hostNamespace)"
        try FileManager.default.createDirectory(atPath: etc, withIntermediateDirectories: true)
        try "nameserver \(a.dns4)\n".write(toFile: etc + "/resolv.conf", atomically: true, encoding: .utf8)
    }

    // MARK: - Services

    package var dnsLog: String { directory + "/dnsmasq.log" }
    package var webLog: String { directory + "/web.log" }
    package var sinkLog: String { directory + "/sink.log" }
    package var sinkCapture: String { directory + "/sink.pcap.txt" }
    var hostsFile: String { directory + "/hosts" }
    private var dnsmasq: SpawnedProcess?

    private func startServices(_ services: Set<Service>) throws {
        let a = NetlabAddresses.self
        if services.contains(.sink) {
            // Every packet to an attacker address, as tcpdump sees it arriving on the internet's interface.
            try spawn(in: .internet, ["tcpdump", "-i", internetInterface, "-n", "-l", "-p", "-U",
                                                    a.attackerAll.map { "dst host \($0)" }.joined(separator: " or ")],
                                    stdout: sinkCapture, readyOnStderr: "listening on")
            try spawn(in: .internet, ["python3", Netlab.resources + "/sink.py", sinkLog,
                                          a.sinkTCPPorts.map(String.init).joined(separator: ","),
                                          a.sinkUDPPorts.map(String.init).joined(separator: ",")] + a.attackerAll,
                          readyOnStdout: "ready")
        }
        if services.contains(.web) {
            try spawn(in: .internet, ["python3", Netlab.resources + "/httpd.py", webLog,
                                          a.webTCPPorts.map(String.init).joined(separator: ",")] + a.webAll4 + a.webAll6,
                          readyOnStdout: "ready")
        }
        if services.contains(.dns) {
            try "\(a.web1) moving.allowed.test\n".write(toFile: hostsFile, atomically: true, encoding: .utf8)
            dnsmasq = try spawn(in: .internet, [
                "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
                "--user=root", "--pid-file=", "--bind-interfaces",
                "--listen-address=\(a.dns4)", "--listen-address=\(a.dns6)", "--except-interface=\(internetInterface)",
                "--cache-size=0", "--log-queries=extra", "--log-facility=\(dnsLog)",
            ] + NetlabZones.dnsmasqRecords(hostsFile: hostsFile))
            try waitUntil(seconds: 5, "dnsmasq answers") {
                (try? self.run(in: .internet, ["dig", "+short", "+time=1", "+tries=1", "@\(a.dns4)", "www.allowed.test"]))?
                    .stdout.contains(a.web1) == true
            }
        }
    }

    /// Points `name` (a hosts-file record, e.g. moving.allowed.test) at a new address.
    package func setRecord(_ name: String, to address: String) throws {
        try setRecords([name: address])
    }

    /// Replaces the hosts-file records (the mutable ones, moving.allowed.test included) by `records`, name -> address.
    package func setRecords(_ records: [String: String]) throws {
        let lines = records.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)\n" }.joined()
        try lines.write(toFile: hostsFile, atomically: true, encoding: .utf8)
        if let dnsmasq { kill(dnsmasq.pid, SIGHUP) }
        usleep(200_000)
    }

    /// Lines the internet's DNS server logged for queries whose name contains `fragment` (case-insensitive).
    package func dnsQueries(containing fragment: String) -> [String] {
        let text = (try? String(contentsOfFile: dnsLog, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").map(String.init)
            .filter { $0.contains(" query[") && $0.lowercased().contains(fragment.lowercased()) }
    }

    /// Everything the attacker saw: captured packets and logged connections/datagrams.
    package func sinkRecords() -> [String] {
        // The capture is line-buffered; give in-flight packets a moment to be written.
        usleep(300_000)
        let capture = (try? String(contentsOfFile: sinkCapture, encoding: .utf8)) ?? ""
        let log = (try? String(contentsOfFile: sinkLog, encoding: .utf8)) ?? ""
        return (capture + log).split(separator: "\n").map(String.init)
    }

    /// Lines the web servers logged.
    package func webRequests() -> [String] {
        ((try? String(contentsOfFile: webLog, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    // MARK: - Running things in the lab

    package struct Output: Sendable {
        package var status: Int32
        package var stdout: String
        package var stderr: String
        package var succeeded: Bool { status == 0 }
    }

    package func namespace(_ side: Side) -> String { side == .host ? hostNamespace : internetNamespace }

    /// Runs a command in one of the lab's namespaces (through `ip netns exec`, so a separate process: no
    /// thread of the test process changes namespace) and waits for it, killing it after `timeout` seconds.
    @discardableResult
    package func run(in side: Side, _ arguments: [String], timeout: Double = 20) throws -> Output {
        try Netlab.execute(["ip", "netns", "exec", namespace(side)] + arguments, timeout: timeout)
    }

    /// Runs `body` on a dedicated thread whose network namespace is the lab's `side` (setns applies to one
    /// thread only, so this never touches the caller's thread or Swift's cooperative pool).
    package func onThread<T: Sendable>(in side: Side, _ body: @escaping @Sendable () throws -> T) throws -> T {
        try NamespaceThread.run(netnsPath: "/run/netns/" + namespace(side), body)
    }

    /// Starts a long-running process in a namespace; it is stopped at shutdown. When a ready marker is given,
    /// waits (up to 10 s) until the process printed it.
    @discardableResult
    package func spawn(in side: Side, _ arguments: [String], stdout: String? = nil,
                      readyOnStdout: String? = nil, readyOnStderr: String? = nil) throws -> SpawnedProcess {
        let name = (arguments.first as NSString?)?.lastPathComponent ?? "process"
        let outFile = stdout ?? directory + "/\(name)-\(children.count).out"
        let errFile = directory + "/\(name)-\(children.count).err"
        let process = try SpawnedProcess.start(["ip", "netns", "exec", namespace(side)] + arguments,
                                               stdout: outFile, stderr: errFile)
        lock.withLock { children.append(process) }
        Netlab.recordChild(id: id, pid: process.pid)
        if let marker = readyOnStdout { try waitForText(outFile, marker, process, arguments) }
        if let marker = readyOnStderr { try waitForText(errFile, marker, process, arguments) }
        return process
    }

    private func waitForText(_ file: String, _ marker: String, _ process: SpawnedProcess, _ arguments: [String]) throws {
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if let text = FileSystem.readText(file), text.contains(marker) { return }
            if !process.isRunning { break }
            usleep(20_000)
        }
        let output = FileSystem.readText(file) ?? ""
        throw CagentError(stage: "netlab", "\(arguments.joined(separator: " ")) did not become ready: \(output)")
    }

    private func waitUntil(seconds: Double, _ what: String, _ condition: () -> Bool) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return }
            usleep(100_000)
        }
        throw CagentError(stage: "netlab", "timed out waiting until \(what)")
    }

    // MARK: - Teardown

    /// Stops every process and removes both namespaces, the resolver file and the scratch directory.
    package func shutdown() {
        let processes: [SpawnedProcess]? = lock.withLock {
            if isShutDown { return nil }
            isShutDown = true
            return children
        }
        guard let processes else { return }
        for process in processes { process.stop() }
        Netlab.removeLab(id: id, pids: [])
        try? FileManager.default.removeItem(atPath: directory)
    }

    // MARK: - Registry and orphans

    static func newID() -> String {
        String(UInt32.random(in: 0...0xFF_FFFF), radix: 16).leftPadded(6)
    }

    static func register(id: String) throws {
        try FileManager.default.createDirectory(atPath: registry, withIntermediateDirectories: true)
        try "owner \(getpid()) \(Netlab.startTime(of: getpid()))\n".write(toFile: registry + "/" + id, atomically: true, encoding: .utf8)
    }

    static func recordChild(id: String, pid: Int32) {
        guard let handle = FileHandle(forUpdatingAtPath: registry + "/" + id) else { return }
        handle.seekToEndOfFile()
        handle.write(Data("child \(pid) \(Netlab.startTime(of: pid))\n".utf8))
        try? handle.close()
    }

    /// Kills the lab's processes (whole process groups of `ip netns exec`) and removes its objects.
    static func removeLab(id: String, pids: [Int32]) {
        for pid in pids where pid > 0 {
            kill(pid, SIGTERM)
        }
        for pid in pids where pid > 0 {
            var status: Int32 = 0
            for _ in 0..<30 {
                if waitpid(pid, &status, WNOHANG) != 0 { break }
                usleep(20_000)
            }
            kill(pid, SIGKILL)
            _ = waitpid(pid, &status, WNOHANG)
        }
        // Anything still running inside the lab's namespaces (e.g. a probe a test left) is killed too: host,
        // inet, and the sandbox namespaces tests add in the lab (cgt-ID-sN, -ls, ...).
        let labNamespaces = FileSystem.list("/run/netns").filter { $0.hasPrefix("cgt-\(id)-") }
        for name in Set(labNamespaces + ["cgt-\(id)-host", "cgt-\(id)-inet"]) {
            if let pids = try? execute(["ip", "netns", "pids", name], timeout: 5).stdout {
                for pid in pids.split(separator: "\n").compactMap({ Int32($0) }) { kill(pid, SIGKILL) }
            }
            _ = try? execute(["ip", "netns", "delete", name], timeout: 5)
            try? FileManager.default.removeItem(atPath: "/etc/netns/\(name)")
        }
        try? FileManager.default.removeItem(atPath: "/tmp/cgt-netlab-\(id)")
        unlink(registry + "/" + id)
    }

    /// Removes labs whose owning test process is gone (a crashed or interrupted run).
    package static func removeOrphans() {
        for id in (try? FileManager.default.contentsOfDirectory(atPath: registry)) ?? [] {
            guard let text = try? String(contentsOfFile: registry + "/" + id, encoding: .utf8) else { continue }
            var ownerAlive = false
            var children: [Int32] = []
            for line in text.split(separator: "\n") {
                let fields = line.split(separator: " ")
                guard fields.count >= 3, let pid = Int32(fields[1]) else { continue }
                let alive = Netlab.startTime(of: pid) == String(fields[2])
                if fields[0] == "owner" { ownerAlive = alive } else if alive { children.append(pid) }
            }
            if !ownerAlive { removeLab(id: id, pids: children) }
        }
    }

    /// A process's start time (field 22 of /proc/PID/stat): with the pid it identifies the process, so a
    /// reused pid is never mistaken for the original.
    static func startTime(of pid: Int32) -> String {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return "gone" }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 19 ? String(fields[19]) : "gone"
    }

    private func ip(_ arguments: [String]) throws {
        let result = try Netlab.execute(["ip"] + arguments, timeout: 10)
        if !result.succeeded {
            throw CagentError(stage: "netlab", "ip \(arguments.joined(separator: " ")): \(result.stderr)")
        }
    }

    /// Runs a program and collects its output, killing it after `timeout` seconds.
    package static func execute(_ arguments: [String], timeout: Double, environment: [String: String]? = nil,
                               directory: String? = nil) throws -> Output {
        let base = "/tmp/cgt-exec-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        defer { unlink(base + ".out"); unlink(base + ".err") }
        // Files rather than pipes: a child that fills a pipe while we wait would block forever.
        // A working directory through the shell: posix_spawn's chdir action is a GNU extension Swift cannot see.
        let argv = directory.map { ["/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", $0] + arguments } ?? arguments
        let process = try SpawnedProcess.start(argv, stdout: base + ".out", stderr: base + ".err",
                                               environment: environment)
        let status = process.wait(timeout: timeout)
        return Output(status: status, stdout: FileSystem.readText(base + ".out") ?? "",
                      stderr: FileSystem.readText(base + ".err") ?? "")
    }
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
