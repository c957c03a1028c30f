// cagent-bench: runs a workload under cagent and the reference command a user would pick instead, in
// alternating rounds (so drift and caches hit both alike), and prints medians, spread and the ratio.
//
//   cagent-bench --name NAME [--rounds N] [--warmup N] --subject 'CMD' --reference 'CMD'
//
// Commands run through /bin/sh -c. A failing round aborts the run: a benchmark of a broken command is noise.
#if canImport(Glibc)
import Glibc
#endif

struct Options {
    var name = "workload"
    var rounds = 20
    var warmup = 2
    var subject = ""
    var reference = ""
}

func fail(_ message: String) -> Never {
    let text = "cagent-bench: \(message)\n"
    _ = text.withCString { write(2, $0, strlen($0)) }
    exit(2)
}

func number(_ text: String, _ flag: String) -> Int {
    guard let value = Int(text), value >= 0 else { fail("\(flag) takes a number") }
    return value
}

func parse(_ arguments: [String]) -> Options {
    var options = Options()
    var index = 1
    func value() -> String {
        index += 1
        guard index < arguments.count else { fail("\(arguments[index - 1]) needs a value") }
        return arguments[index]
    }
    while index < arguments.count {
        switch arguments[index] {
        case "--name": options.name = value()
        case "--rounds": options.rounds = number(value(), "--rounds")
        case "--warmup": options.warmup = number(value(), "--warmup")
        case "--subject": options.subject = value()
        case "--reference": options.reference = value()
        default: fail("unknown argument \(arguments[index])")
        }
        index += 1
    }
    if options.subject.isEmpty || options.reference.isEmpty { fail("--subject and --reference are required") }
    return options
}

func now() -> Double {
    var spec = timespec()
    clock_gettime(CLOCK_MONOTONIC, &spec)
    return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
}

/// Runs `sh -c command` with output discarded; returns wall seconds.
func timed(_ command: String) -> Double {
    var pid: pid_t = 0
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
    defer { posix_spawn_file_actions_destroy(&actions) }
    var argv: [UnsafeMutablePointer<CChar>?] = [String]([ "/bin/sh", "-c", command ]).map { strdup($0) }
    argv.append(nil)
    defer { argv.forEach { free($0) } }
    let start = now()
    guard posix_spawn(&pid, "/bin/sh", &actions, nil, argv, environ) == 0 else { fail("cannot spawn /bin/sh") }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 { if errno != EINTR { fail("waitpid failed") } }
    let elapsed = now() - start
    if status != 0 { fail("command failed (status \(status)): \(command)") }
    return elapsed
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))]
}

func format(_ seconds: Double) -> String {
    seconds < 0.01 ? String(format3(seconds * 1000)) + " ms" : String(format3(seconds)) + " s"
}

func format3(_ value: Double) -> String {
    let scaled = (value * 1000).rounded() / 1000
    return "\(scaled)"
}

let options = parse(CommandLine.arguments)
for _ in 0..<options.warmup { _ = timed(options.subject); _ = timed(options.reference) }
var subject: [Double] = []
var reference: [Double] = []
for round in 0..<options.rounds {
    // Alternate which goes first, so neither always runs on a warmer machine.
    if round % 2 == 0 {
        subject.append(timed(options.subject)); reference.append(timed(options.reference))
    } else {
        reference.append(timed(options.reference)); subject.append(timed(options.subject))
    }
}
subject.sort(); reference.sort()
let subjectMedian = percentile(subject, 0.5)
let referenceMedian = percentile(reference, 0.5)
print("benchmark: \(options.name) (\(options.rounds) alternating rounds, \(options.warmup) warm-up)")
print("  subject:   median \(format(subjectMedian))  p10 \(format(percentile(subject, 0.1)))  p90 \(format(percentile(subject, 0.9)))  [\(options.subject)]")
print("  reference: median \(format(referenceMedian))  p10 \(format(percentile(reference, 0.1)))  p90 \(format(percentile(reference, 0.9)))  [\(options.reference)]")
print("  ratio subject/reference: \(format3(subjectMedian / referenceMedian))x")
