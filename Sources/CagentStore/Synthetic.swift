import CagentEvents

/// Synthetic sessions for benchmarks and tests: `events` events drawn from `distinctKeys` distinct
/// things, in a realistic mix (mostly file accesses, then DNS, flows and execs), deterministic for a seed.
package struct SyntheticSession: Sequence, Sendable {
    package var events: Int
    package var distinctKeys: Int
    package var seed: UInt64
    package var startTime: Nanoseconds

    package init(events: Int, distinctKeys: Int, seed: UInt64 = 42, startTime: Nanoseconds = 1_764_374_400_000_000_000) {
        self.events = Swift.max(0, events); self.distinctKeys = Swift.max(1, distinctKeys); self.seed = seed
        self.startTime = startTime
    }

    /// The mix, in percent: files 70, DNS 15, flows 10, exec 5 (an agent mostly reads files).
    package static let mix = (files: 70, dns: 15, flows: 10, exec: 5)

    package func makeIterator() -> Iterator { Iterator(session: self) }

    package struct Iterator: IteratorProtocol {
        let session: SyntheticSession
        var index = 0
        var state: UInt64
        let programs: [RawText] = ["node", "git", "bash", "python3", "npm", "curl", "rg", "cat"].map { RawText($0) }
        let directories = ["/usr/lib/node_modules/pkg", "/home/agent/work/src", "/home/agent/work/tests", "/etc",
                           "/usr/share/zoneinfo", "/tmp/build", "/home/agent/.cache/npm", "/proc/self"]
        let tlds = ["com", "org", "io", "dev", "net"]

        init(session: SyntheticSession) {
            self.session = session
            state = session.seed &* 0x9E37_79B9_7F4A_7C15 | 1
        }

        mutating func next64() -> UInt64 {
            // xorshift64*: fast, deterministic, good enough for picking keys.
            state ^= state >> 12; state ^= state << 25; state ^= state >> 27
            return state &* 0x2545_F491_4F6C_DD1D
        }

        func owner(_ key: Int) -> (RawText, Int32) {
            (programs[key % programs.count], Int32(1000 + key % 50))
        }

        package mutating func next() -> ObservedEvent? {
            guard index < session.events else { return nil }
            defer { index += 1 }
            let time = session.startTime + Nanoseconds(index) * 1_000
            let roll = Int(next64() % 100)
            // Each kind gets its share of the distinct keys; a key is picked uniformly among them.
            let keys = session.distinctKeys
            // Program and pid follow from the key, so that K distinct keys make exactly K rows.
            if roll < SyntheticSession.mix.files {
                let key = Int(next64() % UInt64(Swift.max(1, keys * 70 / 100)))
                let (program, pid) = owner(key)
                let directory = directories[key % directories.count]
                let operation: FileOperation = key % 11 == 0 ? .write : (key % 17 == 0 ? .create : .read)
                let result: Int32 = key % 13 == 0 ? 2 : 0
                return .file(FileAccess(time: time, pid: pid, program: program,
                                        path: RawText("\(directory)/file-\(key).js"), operation: operation,
                                        result: result, flags: operation == .read ? 0o100000 : (operation == .create ? 0o101101 : 0o100001)))
            }
            if roll < SyntheticSession.mix.files + SyntheticSession.mix.dns {
                let key = Int(next64() % UInt64(Swift.max(1, keys * 15 / 100)))
                let (program, pid) = owner(key)
                let name = RawText("host\(key).example\(key % 7).\(tlds[key % tlds.count])")
                let response = next64() % 2 == 0
                let address = "198.51.\((key / 250) % 256).\(key % 250 + 1)"
                return .dns(DNSObservation(time: time, pid: pid, program: program, question: name, type: "A",
                                           isResponse: response, rcode: response ? "NOERROR" : "",
                                           answers: response ? [DNSAnswer(name: name, type: "A", data: RawText(address), ttl: 300)] : [],
                                           resolver: "10.0.0.1", source: .gate))
            }
            if roll < SyntheticSession.mix.files + SyntheticSession.mix.dns + SyntheticSession.mix.flows {
                let key = Int(next64() % UInt64(Swift.max(1, keys * 10 / 100)))
                let (program, pid) = owner(key)
                return .flow(FlowObservation(time: time, pid: pid, program: program, proto: "tcp",
                                             address: "198.51.\((key / 250) % 256).\(key % 250 + 1)", port: 443,
                                             verdict: .observed, bytesOut: 512, bytesIn: 4096, packets: 8))
            }
            let key = Int(next64() % UInt64(Swift.max(1, keys * 5 / 100)))
            let (program, _) = owner(key)
            // The parent (pid 1) never execs here, so the parent executable stays unknown and the key is the argv.
            return .exec(ProcessExec(time: time, pid: Int32(100_000 + key % 30_000), ppid: 1,
                                     executable: RawText("/usr/bin/tool\(key % 40)"),
                                     argv: [RawText("tool\(key % 40)"), RawText("--job=\(key)")], program: program))
        }
    }
}
