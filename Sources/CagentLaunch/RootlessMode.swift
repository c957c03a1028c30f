import CShim
import CagentCore
#if canImport(Glibc)
import Glibc
#endif

/// Rootless mode (issue #18): `cagent enforce` as the user it acts for, with no privilege of the host's. The
/// sandbox is the same (cg_spawn already maps only the agent's ids into a new user namespace and carries
/// that namespace's capabilities to cagent-init, which drops them before the agent); what differs is only
/// what needs the host's root:
/// - the gid map: an unprivileged writer must deny setgroups first (`SandboxPlan.rootless`);
/// - the shadow home: a directory of the user's instead of a loop-mounted image (`ShadowHome.prepareDirectory`);
/// - the limits: the rlimit fallback unless a cgroup is delegated (`SessionLimits`);
/// - runtime state: under `$XDG_RUNTIME_DIR/cagent` or the user's state directory, never /run;
/// - the network: a user-mode uplink (RootlessNetwork) instead of a veth into the host's namespace.
package enum RootlessMode {
    /// Chosen by itself when cagent is not root; `--rootless` forces it as root (tests, benchmarks).
    package static func isOn(requested: Bool) -> Bool { requested || geteuid() != 0 }

    /// As root with `--rootless`: become the agent's user for good (groups, gid, uid; no way back), so that
    /// everything after runs exactly as it would for that user. A plain user may only be itself.
    package static func enter(as user: InvokingUser) throws {
        if geteuid() != 0 {
            guard user.uid == geteuid() else {
                throw CagentError(stage: "user", "rootless mode runs the agent as you (uid \(geteuid())); --user \(user.uid) needs root",
                                  hint: "leave out --user")
            }
            return
        }
        var groups = [gid_t](repeating: 0, count: 256)
        var count = Int32(groups.count)
        if getgrouplist(user.name, user.gid, &groups, &count) < 0 { count = 1; groups[0] = user.gid }
        guard setgroups(Int(count), groups) == 0, setregid(user.gid, user.gid) == 0,
              setreuid(user.uid, user.uid) == 0 else {
            throw CagentError.system("rootless", "cannot become uid \(user.uid)")
        }
        guard setuid(0) != 0, seteuid(0) != 0 else {
            throw CagentError(stage: "rootless", "root could be regained after the switch to uid \(user.uid)")
        }
        // The dumpable flag is cleared by a uid change; restore it so that /proc/self/* (the id maps the
        // launcher writes into /proc/PID/) is ours as it would be for a process the user started.
        _ = cg_set_dumpable(1)
    }

    /// Runtime state (the setup lock, session leases) of a rootless session: the user's runtime directory
    /// (`$XDG_RUNTIME_DIR/cagent`, when it is an absolute path) or `<data>/run`.
    package static func runtimeDirectory(data: String, environment: [String: String]) -> String {
        if let explicit = environment["CAGENT_RUNTIME_DIR"], explicit.hasPrefix("/") { return explicit }
        if let runtime = environment["XDG_RUNTIME_DIR"], runtime.hasPrefix("/") { return runtime + "/cagent" }
        return data + "/run"
    }
}
