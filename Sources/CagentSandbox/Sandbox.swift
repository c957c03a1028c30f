/// Plan and launcher: profile + mode -> one SandboxPlan -> clone in C -> cagent-init (sandbox-core issue).
public enum SandboxModule {}
