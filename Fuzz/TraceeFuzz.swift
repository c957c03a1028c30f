// libFuzzer target for the Tracee parser: arbitrary bytes, split into lines as the importer does, each
// parsed; every mapped event is then run through the finding rules the Recorder applies. Built by
// scripts/fuzz.sh with `swiftc -sanitize=fuzzer,address` from the parser's and the rules' sources (no GRDB; the
// event model and CagentCore linked from the debug build).
import CagentEvents

let rules = FindingRules(secretPaths: ["~/.ssh", "~/.config/gh", "/etc/shadow"], gateAddress: "10.0.0.1")

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTraceeLine(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    for line in bytes.split(separator: 0x0A, omittingEmptySubsequences: false) {
        guard case .events(_, let events) = TraceeParser.parse(line: line) else { continue }
        for event in events {
            switch event {
            case .file(let file): _ = rules.secret(file.path); _ = OpenFlags.names(file.flags ?? 0)
            case .exec(let exec): _ = rules.secret(exec.executable)
            case .dns(let dns):
                _ = FindingRules.exfiltrationParent(dns.question)
                _ = rules.isDoHName(dns.question)
                for answer in dns.answers { _ = answer.data.validString }
            case .flow(let flow): _ = rules.isDoHFlow(address: flow.address, port: flow.port)
            case .exit: break
            case .bind(let bind): _ = FlowObservation.canonicalAddress(bind.address)
            }
        }
    }
    return 0
}
