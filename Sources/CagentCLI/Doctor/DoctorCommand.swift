import ArgumentParser
import CagentCore
import CagentLaunch
#if canImport(Glibc)
import Glibc
#endif

/// `cagent doctor`: can this machine run cagent, and did anything of cagent's stay behind?
struct DoctorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Check what this machine supports and find (or --clean) leftover cagent state.",
        discussion: "Exits non-zero when something cagent requires is missing.")

    @OptionGroup var logging: LoggingOptions
    @Flag(help: "Remove leftover cagent state that no live session holds.") var clean = false
    @Flag(help: "Print JSON instead of a table.") var json = false
    @Flag(help: "Only what dead sessions' leases in this runtime directory (CAGENT_RUNTIME_DIR) name: nothing found by its name alone.")
    var leasedOnly = false

    func run() async throws {
        logging.bootstrap()
        let environment = ProcessEnvironment.current
        let user = InvokingUser.current(environment: environment)
        var paths = CagentPaths.standard(user: user, environment: environment)
        // A plain user's sessions are rootless: their runtime state is the user's, never /run.
        if geteuid() != 0 { paths.runtime = RootlessMode.runtimeDirectory(data: paths.data, environment: environment) }
        var checks = SystemChecks.all(environment: environment, paths: paths)

        var cleaned: [String] = []
        if geteuid() == 0 {
            // Under the setup lock, so a session that is starting cannot lose objects it is creating.
            let lock = try SetupLock(paths: paths)
            var (leftovers, liveSessions, keptTable) = Leftovers.scan(paths: paths, leasedOnly: leasedOnly)
            // The kept table is not a leftover, but --clean leaves a machine with nothing of cagent on it.
            if clean { leftovers += Leftovers.keptTableToClean(keptTable: keptTable, liveSessions: liveSessions, leasedOnly: leasedOnly) }
            let kept = keptTable && !leftovers.contains(Leftover(kind: .nftTable, name: "inet cagent"))
                ? "; nft-table inet cagent: kept, empty" : ""
            if clean && !leftovers.isEmpty {
                let (removed, failed) = Leftovers.clean(leftovers, paths: paths)
                cleaned = removed
                checks.append(failed.isEmpty
                    ? DoctorCheck("leftovers", .ok, "removed \(removed.count): \(removed.joined(separator: ", ")); live sessions: \(liveSessions)\(kept)")
                    : DoctorCheck("leftovers", .fail, "could not remove: \(failed.joined(separator: "; "))",
                                  remedy: "remove by hand, then run `cagent doctor` again"))
            } else if leftovers.isEmpty {
                checks.append(DoctorCheck("leftovers", .ok, "none; live sessions: \(liveSessions)\(kept)"))
            } else {
                checks.append(DoctorCheck("leftovers", .warn,
                                          leftovers.map(\.description).joined(separator: ", ") + kept,
                                          remedy: "cagent doctor --clean"))
            }
            lock.release()
        }

        FileDescriptorStream.standardOutput.write(json ? DoctorRenderer.json(checks, cleaned: cleaned)
                                                       : DoctorRenderer.table(checks))
        if checks.contains(where: { $0.required && $0.status == .fail }) { throw CagentExit(status: 1) }
    }
}
