// libyaml (the C library PyYAML and Yams wrap) for reading profiles: Sources/CagentProfile/YAMLDocument.swift.
#include <yaml.h>
