import CagentLaunch

// `cagent`: the lean front (CagentLaunch.CagentFront). `cagent enforce` runs in this process; every other
// command execs `cagent-full`, the whole command tree of CagentCLI.
CagentFront.main()
