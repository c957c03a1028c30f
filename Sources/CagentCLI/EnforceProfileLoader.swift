import CagentCore
import CagentProfile

// TEMPORARY: the one place `cagent enforce` gets its profile from. The profile work (branch `profile`)
// brings the real resolver (YAML files, bundled names, `extends`, trust); at merge this function's body
// is replaced by a call to it. Until then only the built-in `default` profile exists: no extra paths,
// the built-in hide list, nothing passed from the environment beyond the fixed names.
func loadProfileForEnforce(nameOrPath: String, workspace: String) throws -> Profile {
    if nameOrPath == "default" { return Profile(agent: "default") }
    throw CagentError(stage: "profile", "cannot load \(TerminalEscape.escape(nameOrPath)): only the built-in `default` profile exists in this build",
                      hint: "use --profile default")
}
