import CShim
import CagentCore
#if canImport(Glibc)
import Glibc
#endif

extension ShadowHome {
    /// An earlier session may have left a symlink where cagent mounts in the shadow home (`ln -s /root
    /// ~/.ssh`, a replaced `~/.gitconfig`): cagent-init refuses to follow it (H11), which would stop every
    /// later session. cagent owns the shadow home, so such links are removed before the start (the mount
    /// point is then created afresh); anything else in the way is reported with the fix. Returns notices.
    ///
    /// `root` is the shadow home's root directory (the bounded volume's mount, DiskVolume.mountFD; never a
    /// path: nothing here is resolved through a link); `shadowHome` only names it in messages.
    package static func repair(root: Int32, shadowHome: String, home: String, steps: [SandboxPlan.Step]) throws -> [String] {
        var targets: [String] = []
        for step in steps {
            switch step.operation {
            case let .bind(_, target, _, _) where target.hasPrefix(home + "/"): targets.append(String(target.dropFirst(home.count + 1)))
            case let .hide(path) where path.hasPrefix(home + "/"): targets.append(String(path.dropFirst(home.count + 1)))
            default: break
            }
        }
        var notices: [String] = []
        for target in targets {
            var directory = openat(root, ".", O_RDONLY | CG_O_DIRECTORY | CG_O_CLOEXEC)
            guard directory >= 0 else { throw CagentError.system("shadow home", "cannot open \(TerminalEscape.escape(shadowHome))") }
            let parts = target.split(separator: "/").map(String.init)
            var walked = "~"
            for (index, part) in parts.enumerated() {
                walked += "/" + part
                var info = stat()
                guard fstatat(directory, part, &info, AT_SYMLINK_NOFOLLOW) == 0 else { break }
                if (info.st_mode & S_IFMT) == S_IFLNK {
                    let link = RiskyChanges.readLink(directory, part)
                    guard unlinkat(directory, part, 0) == 0 else {
                        close(directory)
                        throw CagentError.system("shadow home", "cannot remove the symlink \(TerminalEscape.escape(walked))",
                                                 hint: "remove \(TerminalEscape.escape(shadowHome + String(walked.dropFirst()))) by hand")
                    }
                    notices.append("shadow home repaired: removed the symlink \(TerminalEscape.escape(walked)) -> \(TerminalEscape.escape(link)) an earlier session left where cagent mounts")
                    break
                }
                if index == parts.count - 1 { break }
                guard (info.st_mode & S_IFMT) == S_IFDIR else {
                    close(directory)
                    throw CagentError(stage: "shadow home", "\(TerminalEscape.escape(walked)) is not a directory, but cagent mounts below it",
                                      hint: "remove \(TerminalEscape.escape(shadowHome + String(walked.dropFirst()))) (the agent's own home) and start again")
                }
                let next = openat(directory, part, O_RDONLY | CG_O_DIRECTORY | CG_O_NOFOLLOW | CG_O_CLOEXEC)
                close(directory)
                guard next >= 0 else { throw CagentError.system("shadow home", "cannot open \(TerminalEscape.escape(walked))") }
                directory = next
            }
            close(directory)
        }
        return notices
    }
}
