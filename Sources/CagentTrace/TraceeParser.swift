// Tracee's JSON output, one event per line, mapped to cagent's event model.
//
// Two shapes exist: the released `trace.Event` (`eventName`, `args[{name,type,value}]`, flat process
// fields) and the newer `v1beta1.Event` (`name`, `workload.process…`, `data[{name, <kind>: value}]`).
// Both are reduced to one `TraceeEvent` (name, time, process, arguments by name) and then mapped by event
// name. The input is hostile: every field is optional and type-checked, nothing is force-unwrapped.
import Foundation
#if canImport(CagentEvents)
import CagentEvents
#endif

/// One Tracee event, whatever its shape.
package struct TraceeEvent {
    package var name: String
    package var time: Nanoseconds
    package var pid: Int32
    package var ppid: Int32
    package var program: RawText
    package var executable: RawText
    package var returnValue: Int64?
    package var arguments: [String: Any]
}

package enum TraceeLine {
    /// Mapped events (possibly none, e.g. a connect on a unix socket).
    case events(name: String, [ObservedEvent])
    /// A well-formed event cagent does not map; counted by name.
    case unknown(name: String)
    /// Not a Tracee event: the reason, for the error message.
    case malformed(String)
    /// An empty line.
    case blank
}

package enum TraceeParser {
    /// Parses one line (without its newline).
    package static func parse(line: some Collection<UInt8>) -> TraceeLine {
        if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { return .blank }
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(line), options: [])
        } catch {
            return .malformed("not valid JSON")
        }
        guard let dictionary = object as? [String: Any] else { return .malformed("not a JSON object") }
        guard let event = normalize(dictionary) else {
            return .malformed("neither a Tracee trace.Event (eventName) nor a v1beta1 event (name)")
        }
        guard let mapped = map(event) else { return .unknown(name: event.name) }
        return .events(name: event.name, mapped)
    }

    // MARK: the two shapes -> TraceeEvent

    static func normalize(_ object: [String: Any]) -> TraceeEvent? {
        if let name = object["eventName"] as? String { return legacy(object, name: name) }
        if let name = object["name"] as? String { return v1beta1(object, name: name) }
        return nil
    }

    /// Released shape: flat process fields, `args[{name, type, value}]`.
    static func legacy(_ object: [String: Any], name: String) -> TraceeEvent {
        var arguments: [String: Any] = [:]
        for argument in object["args"] as? [Any] ?? [] {
            guard let entry = argument as? [String: Any], let key = entry["name"] as? String else { continue }
            arguments[key] = entry["value"] ?? NSNull()
        }
        let executable = (object["executable"] as? [String: Any]).flatMap { string($0["path"]) } ?? ""
        return TraceeEvent(
            name: name,
            time: int(object["timestamp"]) ?? 0,
            pid: int32(object["hostProcessId"]) ?? int32(object["processId"]) ?? 0,
            ppid: int32(object["hostParentProcessId"]) ?? int32(object["parentProcessId"]) ?? 0,
            program: RawText(string(object["processName"]) ?? ""),
            executable: RawText(executable),
            returnValue: int(object["returnValue"]),
            arguments: arguments)
    }

    /// v1beta1 shape (protojson): `timestamp` as {seconds, nanos}, an RFC 3339 string or a number;
    /// numbers possibly as strings; wrappers possibly as {value: x}; field names snake_case or camelCase.
    static func v1beta1(_ object: [String: Any], name: String) -> TraceeEvent {
        var arguments: [String: Any] = [:]
        var returnValue: Int64? = int(field(object, "return_value"))
        for item in object["data"] as? [Any] ?? [] {
            guard let entry = item as? [String: Any], let key = entry["name"] as? String else { continue }
            // The oneof value is the one other key.
            let value = entry.first(where: { $0.key != "name" })?.value ?? NSNull()
            if key == "returnValue" || key == "return_value" { returnValue = int(unwrap(value)); continue }
            arguments[key] = value
        }
        let process = field(field(object, "workload"), "process") as? [String: Any]
        let thread = field(process, "thread")
        let ancestor = (field(process, "ancestors") as? [Any])?.first
        return TraceeEvent(
            name: name,
            time: timestamp(object["timestamp"]) ?? 0,
            pid: int32(unwrap(field(process, "host_pid"))) ?? int32(unwrap(field(process, "pid"))) ?? 0,
            ppid: int32(unwrap(field(ancestor, "host_pid"))) ?? int32(unwrap(field(ancestor, "pid"))) ?? 0,
            program: RawText(string(field(thread, "name")) ?? ""),
            executable: RawText(string(field(field(process, "executable"), "path")) ?? ""),
            returnValue: returnValue,
            arguments: arguments)
    }

    // MARK: event name -> model

    static func map(_ event: TraceeEvent) -> [ObservedEvent]? {
        let a = event.arguments
        func file(_ path: Any?, _ operation: FileOperation, flags: Int32? = nil) -> ObservedEvent? {
            guard let path = string(unwrap(path)), !path.isEmpty else { return nil }
            return .file(FileAccess(time: event.time, pid: event.pid, program: event.program, path: RawText(path),
                                    operation: operation, result: result(event.returnValue), flags: flags))
        }
        switch event.name {
        case "sched_process_exec":
            let path = string(unwrap(a["pathname"])) ?? string(unwrap(a["cmdpath"])) ?? event.executable.lossyString
            let argv = strings(a["argv"]).map { RawText($0) }
            return [.exec(ProcessExec(time: event.time, pid: event.pid, ppid: event.ppid, executable: RawText(path),
                                      argv: argv, program: event.program))]
        case "sched_process_exit":
            return [.exit(ProcessExit(time: event.time, pid: event.pid, exitCode: int32(unwrap(a["exit_code"]))))]
        case "execve", "execveat", "process_execute_failed", "security_bprm_check":
            return [file(a["pathname"], .exec)].compactMap { $0 }
        case "security_file_open", "open", "openat", "openat2", "creat":
            let flags = openFlags(a["flags"]) ?? (event.name == "creat" ? 0o1101 : nil)
            let path = a["pathname"] ?? a["syscall_pathname"]
            return [file(path, flags.map(OpenFlags.operation) ?? .read, flags: flags)].compactMap { $0 }
        case "security_inode_unlink", "unlink", "unlinkat", "rmdir":
            return [file(a["pathname"], .delete)].compactMap { $0 }
        case "security_inode_mkdir", "mkdir", "mkdirat":
            return [file(a["pathname"], .mkdir)].compactMap { $0 }
        case "security_inode_rename", "rename", "renameat", "renameat2":
            return [file(a["old_path"] ?? a["oldpath"], .rename), file(a["new_path"] ?? a["newpath"], .rename)]
                .compactMap { $0 }
        case "security_socket_connect", "connect":
            guard let address = sockaddr(a["remote_addr"] ?? a["addr"]) else { return [] }
            var code = result(event.returnValue)
            if code == 115 { code = 0 }  // EINPROGRESS: a non-blocking connect under way
            return [.flow(FlowObservation(time: event.time, pid: event.pid, program: event.program,
                                          proto: socketProto(a["type"]), address: address.0, port: address.1,
                                          result: code))]
        case "security_socket_bind", "bind":
            guard let address = sockaddr(a["local_addr"] ?? a["addr"]) else { return [] }
            // security_socket_bind carries no socket type: the protocol is then unknown, not guessed.
            let proto = a["type"] == nil ? "unknown" : socketProto(a["type"])
            return [.bind(BindObservation(time: event.time, pid: event.pid, program: event.program, proto: proto,
                                          address: address.0, port: address.1, result: result(event.returnValue)))]
        case "net_flow_tcp_begin":
            let outgoing = (string(unwrap(a["conn_direction"])) ?? "outgoing") != "incoming"
            guard let address = string(unwrap(outgoing ? a["dst"] : a["src"])),
                  let port = int(unwrap(outgoing ? a["dst_port"] : a["src_port"])) else { return [] }
            let name = strings(outgoing ? a["dst_dns"] : a["src_dns"]).first.map { RawText($0) }
            // dst_dns: the name Tracee's DNS cache holds for the address (a DNS answer it saw).
            return [.flow(FlowObservation(time: event.time, pid: event.pid, program: event.program, proto: "tcp",
                                          address: address, port: UInt16(truncatingIfNeeded: port), name: name,
                                          nameSource: .dns))]
        case "net_packet_dns":
            return dnsPacket(event)
        case "net_packet_dns_request":
            return dnsDeprecated(event, response: false)
        case "net_packet_dns_response":
            return dnsDeprecated(event, response: true)
        default:
            return nil
        }
    }

    /// A negative return value is -errno; anything else is success.
    static func result(_ value: Int64?) -> Int32 {
        guard let value, value < 0, value > -4096 else { return 0 }
        return Int32(-value)
    }

    /// `flags` is an integer without `--output option:parse-arguments` and a string like
    /// "O_RDONLY|O_LARGEFILE" with it.
    static func openFlags(_ value: Any?) -> Int32? {
        let value = unwrap(value)
        if let number = int(value) { return Int32(truncatingIfNeeded: number) }
        if let text = value as? String { return OpenFlags.parse(text) }
        return nil
    }

    static func socketProto(_ value: Any?) -> String {
        let value = unwrap(value)
        if let text = value as? String {
            if text.contains("SOCK_DGRAM") { return "udp" }
            if text.contains("SOCK_STREAM") { return "tcp" }
        }
        if let number = int(value) { return (number & 0xF) == 2 ? "udp" : "tcp" }
        return "tcp"
    }

    /// (address, port) of an AF_INET/AF_INET6 sockaddr map; nil for unix and others.
    static func sockaddr(_ value: Any?) -> (String, UInt16)? {
        guard let map = unwrap(value) as? [String: Any] else { return nil }
        let family = string(field(map, "sa_family")) ?? int(field(map, "sa_family")).map(String.init) ?? ""
        let v6 = family == "AF_INET6" || family == "10"
        guard v6 || family == "AF_INET" || family == "2" else { return nil }
        guard let address = string(field(map, v6 ? "sin6_addr" : "sin_addr")), !address.isEmpty else { return nil }
        let port = int(field(map, v6 ? "sin6_port" : "sin_port")) ?? 0
        return (address, UInt16(truncatingIfNeeded: port))
    }

    // MARK: DNS

    /// net_packet_dns: the whole message. The resolver is the peer: the destination of a query, the
    /// source of a response (QR), or by `metadata.direction` (1 ingress, 2 or 3 egress) when QR is absent.
    static func dnsPacket(_ event: TraceeEvent) -> [ObservedEvent] {
        let a = event.arguments
        guard let message = unwrap(a["proto_dns"] ?? a["dns"]) as? [String: Any] else { return [] }
        var isResponse: Bool
        if let qr = int(field(message, "qr")) {
            isResponse = qr == 1
        } else {
            let direction = field(unwrap(a["metadata"]), "direction")
            if let text = string(direction) { isResponse = text.uppercased() == "INGRESS" }
            else { isResponse = int(direction) == 1 }
        }
        let source = string(unwrap(a["src"])) ?? string(field(unwrap(a["metadata"]), "src_ip")) ?? ""
        let destination = string(unwrap(a["dst"])) ?? string(field(unwrap(a["metadata"]), "dst_ip")) ?? ""
        let rcode = isResponse ? normalizeRcode(string(field(message, "response_code")) ?? "") : ""
        var answers: [DNSAnswer] = []
        if isResponse {
            for item in field(message, "answers") as? [Any] ?? [] {
                guard let record = item as? [String: Any], let answer = answerRecord(record) else { continue }
                answers.append(answer)
            }
        }
        return (field(message, "questions") as? [Any] ?? []).compactMap { item -> ObservedEvent? in
            guard let question = item as? [String: Any], let name = string(field(question, "name")) else { return nil }
            return .dns(DNSObservation(time: event.time, pid: event.pid, program: event.program,
                                       question: RawText(name), type: recordType(field(question, "type")),
                                       isResponse: isResponse, rcode: rcode, answers: answers,
                                       resolver: isResponse ? source : destination, source: .tracee))
        }
    }

    static func answerRecord(_ record: [String: Any]) -> DNSAnswer? {
        let type = recordType(field(record, "type"))
        if type == "OPT" { return nil }
        let data: String?
        switch type {
        case "A", "AAAA": data = string(field(record, "ip"))
        case "CNAME": data = string(field(record, "cname"))
        case "PTR": data = string(field(record, "ptr"))
        case "NS": data = string(field(record, "ns"))
        case "MX": data = string(field(field(record, "mx"), "name"))
        case "SRV": data = string(field(field(record, "srv"), "name"))
        case "TXT":
            let parts = strings(field(record, "txts"))
            data = parts.isEmpty ? string(field(record, "txt")) : parts.joined()
        default: data = string(field(record, "ip")) ?? string(field(record, "txt"))
        }
        return DNSAnswer(name: RawText(string(field(record, "name")) ?? ""), type: type, data: RawText(data ?? ""),
                         ttl: UInt32(truncatingIfNeeded: max(0, min(Int64(UInt32.max), int(field(record, "ttl")) ?? 0))))
    }

    /// net_packet_dns_request / _response (deprecated): `metadata{src_ip,dst_ip}` plus `dns_questions` or
    /// `dns_response[{query_data, dns_answer[{answer_type, ttl, answer}]}]`. Answers carry no owner name,
    /// so it is inferred along the CNAME chain (the question, then each CNAME target).
    static func dnsDeprecated(_ event: TraceeEvent, response: Bool) -> [ObservedEvent] {
        let a = event.arguments
        let metadata = unwrap(a["metadata"] ?? a["packet_metadata"])
        let resolver = string(field(metadata, response ? "src_ip" : "dst_ip")) ?? ""
        func observation(_ query: Any?, answers: [DNSAnswer]) -> ObservedEvent? {
            guard let name = string(field(query, "query")) else { return nil }
            return .dns(DNSObservation(time: event.time, pid: event.pid, program: event.program, question: RawText(name),
                                       type: recordType(field(query, "query_type")), isResponse: response,
                                       answers: answers, resolver: resolver, source: .tracee))
        }
        if !response {
            let questions = unwrapList(a["dns_questions"], "questions")
            return questions.compactMap { observation($0, answers: []) }
        }
        return unwrapList(a["dns_response"] ?? a["dns_responses"], "responses").compactMap { item -> ObservedEvent? in
            let query = field(item, "query_data") ?? field(item, "dns_query_data")
            var owner = string(field(query, "query")) ?? ""
            var answers: [DNSAnswer] = []
            for entry in field(item, "dns_answer") as? [Any] ?? [] {
                let type = recordType(field(entry, "answer_type") ?? field(entry, "type"))
                let data = string(field(entry, "answer")) ?? ""
                let ttl = int(field(entry, "ttl")) ?? 0
                answers.append(DNSAnswer(name: RawText(owner), type: type, data: RawText(data),
                                         ttl: UInt32(truncatingIfNeeded: max(0, min(Int64(UInt32.max), ttl)))))
                if type == "CNAME" { owner = data }
            }
            return observation(query, answers: answers)
        }
    }

    static func recordType(_ value: Any?) -> String {
        if let text = string(value), !text.isEmpty { return text.uppercased() }
        if let number = int(value) {
            let names: [Int64: String] = [1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT",
                                          28: "AAAA", 33: "SRV", 64: "SVCB", 65: "HTTPS", 255: "ANY"]
            return names[number] ?? "TYPE\(number)"
        }
        return "UNKNOWN"
    }

    static func normalizeRcode(_ text: String) -> String {
        switch text.lowercased().replacingOccurrences(of: " ", with: "") {
        case "noerror", "0": return "NOERROR"
        case "nxdomain", "non-existentdomain", "3": return "NXDOMAIN"
        case "serverfailure", "servfail", "2": return "SERVFAIL"
        case "refused", "queryrefused", "5": return "REFUSED"
        case "formaterror", "formerr", "1": return "FORMERR"
        case "": return ""
        default: return text.uppercased()
        }
    }

    // MARK: tolerant accessors

    /// A field by its snake_case name, also found as camelCase or in another letter case (protojson and
    /// Tracee's Go structs differ: `response_code`, `responseCode`, `TTL`).
    static func field(_ object: Any?, _ name: String) -> Any? {
        guard let map = object as? [String: Any] else { return nil }
        if let value = map[name] { return value }
        let wanted = name.lowercased().replacingOccurrences(of: "_", with: "")
        for (key, value) in map where key.lowercased().replacingOccurrences(of: "_", with: "") == wanted {
            return value
        }
        return nil
    }

    /// `{value: x}` (a protobuf wrapper or array message) -> x.
    static func unwrap(_ value: Any?) -> Any? {
        if let map = value as? [String: Any], map.count == 1, let inner = map["value"] { return inner }
        return value
    }

    /// A list that may come bare or wrapped in a message with one repeated field.
    static func unwrapList(_ value: Any?, _ name: String) -> [Any] {
        let value = unwrap(value)
        if let list = value as? [Any] { return list }
        return field(value, name) as? [Any] ?? []
    }

    static func string(_ value: Any?) -> String? { unwrap(value) as? String }

    static func strings(_ value: Any?) -> [String] {
        let value = unwrap(value)
        if let list = value as? [Any] { return list.compactMap { $0 as? String } }
        return []
    }

    /// An integer from a JSON number or a decimal string; nil for anything else (fractions, overflow).
    static func int(_ value: Any?) -> Int64? {
        let value = unwrap(value)
        if let text = value as? String { return Int64(text) }
        guard let number = value as? NSNumber else { return nil }
        // Check the magnitude as a double first: bridging a huge or fractional number to Int64 is not
        // something hostile input should get to try.
        let double = number.doubleValue
        guard double.isFinite, double.rounded() == double, abs(double) < 9.2e18 else { return nil }
        if abs(double) < 9.0e15 { return Int64(double) }
        return number.int64Value
    }

    static func int32(_ value: Any?) -> Int32? {
        guard let number = int(value), let small = Int32(exactly: number) else { return nil }
        return small
    }

    static func timestamp(_ value: Any?) -> Nanoseconds? {
        if let map = value as? [String: Any] {
            let seconds = int(map["seconds"]) ?? 0
            let nanos = int(map["nanos"]) ?? 0
            let (product, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
            return overflow ? nil : product &+ nanos
        }
        if let text = value as? String, let parsed = rfc3339(text) { return parsed }
        return int(value)
    }

    /// "2024-05-01T12:34:56.123456789Z" (UTC only, as protojson writes it).
    static func rfc3339(_ text: String) -> Nanoseconds? {
        let bytes = Array(text.utf8)
        guard bytes.count >= 20, bytes.last == UInt8(ascii: "Z") else { return nil }
        func number(_ range: Range<Int>) -> Int64? {
            guard range.upperBound <= bytes.count else { return nil }
            var value: Int64 = 0
            for byte in bytes[range] {
                guard byte >= 0x30, byte <= 0x39 else { return nil }
                value = value * 10 + Int64(byte - 0x30)
            }
            return value
        }
        guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
              let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19),
              (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61,
              // Int64 nanoseconds span 1677..2262; outside it the arithmetic below would overflow (a fuzz find).
              (1678...2261).contains(year) else { return nil }
        var nanos: Int64 = 0
        if bytes.count > 21, bytes[19] == UInt8(ascii: ".") {
            let digits = bytes[20..<(bytes.count - 1)]
            guard digits.count <= 9, let fraction = number(20..<(bytes.count - 1)) else { return nil }
            nanos = fraction
            for _ in digits.count..<9 { nanos *= 10 }
        }
        // Days from civil (proleptic Gregorian), after Howard Hinnant's algorithm.
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        return ((days * 86400 + hour * 3600 + minute * 60 + second) * 1_000_000_000) + nanos
    }
}
