import ArgumentParser
import CagentCore

// Commands planned in docs/architecture.md whose implementation lands with later work. Each lives in its
// own file once built; until then it parses its arguments and says it is not built.
