import CShim
import CagentCore
#if canImport(Glibc)
import Glibc
#endif

/// What the view prevents of threat H13 (RiskyChanges detects the rest): the workspace's `.git` becomes a
/// mount point of its own, so the agent cannot rename, remove or replace it (a symlink, a `gitdir:` file)
/// — the kernel answers EBUSY — and `.git/hooks` is read-only. A `gitdir:` file is bound read-only onto
/// itself. Paths are looked at without following links; a symlinked `.git` or hooks directory is left as
/// it is (cagent-init would refuse to mount on it and the session would not start) and noticed: the end
/// check sees the link, not what is behind it. With `linkedHidden` (enforce: the hidden paths), a
/// `gitdir:` file's git directory outside the workspace is mapped too (LinkedGitDirectory).
package enum GitProtection {
    package static func steps(workspace: String, user: InvokingUser, linkedHidden: [String]? = nil) -> (steps: [SandboxPlan.Step], notices: [String]) {
        let root = open(workspace, CG_O_PATH | CG_O_DIRECTORY | CG_O_CLOEXEC)
        guard root >= 0 else { return ([], []) }
        defer { close(root) }
        var info = stat()
        guard fstatat(root, ".git", &info, AT_SYMLINK_NOFOLLOW) == 0 else { return ([], []) }
        let git = workspace + "/.git"
        switch info.st_mode & S_IFMT {
        case S_IFDIR:
            var steps = [SandboxPlan.Step(.bind(source: git, target: git, mode: .readWrite),
                                          ".git a mount point: the agent cannot rename or replace it (H13)")]
            var notices: [String] = []
            if let gitFd = RiskyChanges.openBeneath(root, ".git", directory: true) {
                // Absent hooks: made (the user's) so that the agent cannot add them either.
                if mkdirat(gitFd, "hooks", 0o755) == 0 { _ = fchownat(gitFd, "hooks", user.uid, user.gid, AT_SYMLINK_NOFOLLOW) }
                close(gitFd)
            }
            if let hooks = RiskyChanges.openBeneath(root, ".git/hooks", directory: true) {
                close(hooks)
                steps.append(.init(.bind(source: git + "/hooks", target: git + "/hooks", mode: .readOnly), ".git/hooks read-only (H13)"))
            } else {
                notices.append("the workspace's .git/hooks is not a directory (a symlink?): it stays writable; cagent reports changes after the session")
            }
            return (steps, notices)
        case S_IFREG:
            var steps: [SandboxPlan.Step] = [.init(.bind(source: git, target: git, mode: .readOnly), "the .git gitdir file read-only (H13)")]
            guard let hidden = linkedHidden else { return (steps, []) }
            let (mapping, notice) = LinkedGitDirectory.resolve(workspaceFD: root, workspace: workspace, user: user, hidden: hidden)
            if let mapping { steps += LinkedGitDirectory.steps(mapping) }
            return (steps, notice.map { [$0] } ?? [])
        default:
            // Refusing would lock out such setups; mounting on it would follow the link. The end check reports
            // a change of the link itself but does not follow it: what changes behind it goes unreported.
            return ([], ["the workspace's .git is a symlink: cagent cannot pin it in the view, and changes behind it (config, hooks) are not checked after the session"])
        }
    }
}
