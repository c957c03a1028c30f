import Logging

/// swift-log set-up for the command line: warnings by default, `--verbose` for info, `--debug` for debug.
/// Log lines go to standard error so that standard output stays machine-readable (`--json`).
package enum CagentLog {
    package static func bootstrap(verbose: Bool, debug: Bool) {
        let level: Logger.Level = debug ? .debug : (verbose ? .info : .warning)
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }

    package static func logger(_ label: String) -> Logger {
        Logger(label: "cagent.\(label)")
    }
}
