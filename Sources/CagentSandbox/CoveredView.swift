import CagentCore
import CagentProfile

/// The last steps both planners add over the view, in this order: the agent's own tree when it lives outside
/// the view (AgentBootstrap: resolved as the user, never under a hidden path), then the hide list (after
/// every bind, because it covers what those binds exposed), then the workspace's secret patterns
/// (WorkspaceSecrets: matched host-side now, each match covered).
enum CoveredView {
    static func add(to steps: inout [SandboxPlan.Step], profile: Profile, command: [String], path: String?,
                    home: String, workspace: String, user: InvokingUser, own: [String],
                    shadowHomeTarget: String?) throws -> (agent: AgentBootstrap.Resolution, secrets: WorkspaceSecrets.Scan) {
        var hidden: [String] = []
        for entry in LearnPlanner.hiddenEntries(profile) {
            let path = try EnforcePlanner.viewPath(entry, home: home)
            if !hidden.contains(path) { hidden.append(path) }
        }
        // cagent's own places (H22): its configuration (trust store, the user's profiles) and its state (the
        // database, session lists, images) are never part of the view, even when the profile opens a tree that
        // holds them (`write: [~/.config]`). A place holding the workspace or the home is left alone (hiding it
        // would hide them); such a layout is the user's explicit choice (`--state-dir` on the workspace).
        for place in own {
            guard let path = try? EnforcePlanner.viewPath(place, home: home), !hidden.contains(path),
                  !isSameOrAncestor(path, of: workspace), !isSameOrAncestor(path, of: home) else { continue }
            hidden.append(path)
        }
        let agent = try AgentBootstrap.resolve(command: command, path: path, home: home,
                                               view: AgentBootstrap.view(of: steps, shadowHomeTarget: shadowHomeTarget),
                                               hidden: hidden, identity: FileIdentity(invokingUnderRoot: user))
        for root in agent.mapped { steps.append(.init(.bind(source: root, target: root, mode: .readOnly), "the agent's own tree, read-only")) }
        for path in hidden { steps.append(.init(.hide(path), "hidden: \(AgentBootstrap.display(path, home: home))")) }
        let secrets = try WorkspaceSecrets.scan(workspace: workspace, profile: profile, user: user)
        steps += WorkspaceSecrets.steps(secrets, workspace: workspace)
        return (agent, secrets)
    }

    /// cagent's configuration and state directories for `paths`, and the user's default ones (a `--state-dir`
    /// session must not expose the user's real store either).
    static func ownPlaces(_ paths: CagentPaths, user: InvokingUser) -> [String] {
        [paths.config, paths.data, user.home + "/.config/cagent", user.home + "/.local/share/cagent"]
    }

    static func isSameOrAncestor(_ path: String, of other: String) -> Bool {
        path == other || path == "/" || other.hasPrefix(path.hasSuffix("/") ? path : path + "/")
    }
}
