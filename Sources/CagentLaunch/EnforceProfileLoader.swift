import CagentCore
import CagentProfile

// The one place `cagent enforce` gets its profile from: the profile resolver (names, paths, `extends`,
// trust of workspace profiles). `default` is built in when no profile of that name exists: no extra
// paths, the built-in hide list, nothing passed from the environment beyond the fixed names.
public func loadProfileForEnforce(nameOrPath: String, workspace: String) throws -> Profile {
    let resolver = ProfileResolver.standard(workspace: workspace)
    do {
        return try resolver.resolve(nameOrPath).profile
    } catch {
        if nameOrPath == "default" { return Profile(agent: "default") }
        throw error
    }
}
