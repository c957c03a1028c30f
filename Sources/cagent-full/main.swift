import CagentCLI

// `cagent-full`: every cagent command (CagentCLI), started by `cagent` for everything but `enforce`. The
// program lives in CagentCLI so that the command tree is testable as a library.
await CagentCommand.entry()
