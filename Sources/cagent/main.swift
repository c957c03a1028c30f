import CagentCLI

// The whole program lives in CagentCLI; this stays tiny so the command tree is testable as a library.
await CagentCommand.entry()
