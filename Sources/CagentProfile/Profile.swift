/// Profiles: load, validate, resolve `extends` (the sandbox-core issue builds this module).
public enum ProfileModule {}
