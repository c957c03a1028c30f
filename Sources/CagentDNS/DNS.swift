/// The DNS gate: wire parser/builder and the sandbox's only resolver (DNS gate issue).
public enum DNSModule {}
