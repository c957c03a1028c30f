import CagentCore
import CagentProfile

/// The last steps both planners add over the view, in this order: the agent's own tree when it lives outside
/// the view (AgentBootstrap: resolved as the user, never under a hidden path), then the hide list (after
/// every bind, because it covers what those binds exposed), then the workspace's secret patterns
/// (WorkspaceSecrets: matched host-side now, each match covered).
enum CoveredView {
    static func add(to steps: inout [SandboxPlan.Step], profile: Profile, command: [String], path: String?,
                    home: String, workspace: String, user: InvokingUser,
                    shadowHomeTarget: String?) throws -> (agent: AgentBootstrap.Resolution, secrets: WorkspaceSecrets.Scan) {
        var hidden: [String] = []
        for entry in LearnPlanner.hiddenEntries(profile) {
            let path = try EnforcePlanner.viewPath(entry, home: home)
            if !hidden.contains(path) { hidden.append(path) }
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
}
