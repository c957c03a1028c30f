import CagentCore
import CagentProfile

// The one place `cagent enforce` gets its profile from: the profile resolver (names, paths, `extends`,
// trust of workspace profiles). `default` is built in when no profile of that name exists: no extra
// paths, the built-in hide list, nothing passed from the environment beyond the fixed names.
// `environment` decides whose profile directories and trust store (InvokingUser.placesEnvironment).
package func loadProfileForEnforce(nameOrPath: String, workspace: String,
                                  environment: [String: String] = ProcessEnvironment.current) throws -> Profile {
    let resolver = ProfileResolver.standard(workspace: workspace, environment: environment)
    do {
        return try resolver.resolve(nameOrPath).profile
    } catch {
        if nameOrPath == "default" { return Profile(agent: "default") }
        throw error
    }
}
