/// The record: sessions, DNS, flows, files, processes, findings in SQLite (store issue).
public enum StoreModule {}
