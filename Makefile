# The two commands of the README: `make demo` (install, build, run the main job) and `make test`.
SHELL := /bin/bash
export PATH := /opt/swift/usr/bin:$(PATH)

.PHONY: deps build demo test lint bench fuzz clean
deps:
	@scripts/install-deps.sh

build: deps
	swift build

# The main job: the loop learn -> propose -> enforce on a small agent in a simulated network, then the agent
# prompt-injected and stopped (scripts/demo.sh, docs/cli.md "Demo").
demo: build
	scripts/demo.sh

test: deps
	scripts/test.sh

# The style gate alone (make test runs it too): warnings as errors for the project's targets, the formatter's rules.
lint:
	CAGENT_STRICT=1 swift build --build-tests
	scripts/lint-format.sh
	scripts/module-graph.sh --check

bench: deps
	swift build -c release
	scripts/bench.sh

# Every libFuzzer target for FUZZ_SECONDS each (default 60; not in CI: docs/testing.md "Fuzzing").
fuzz: deps
	swift build
	scripts/fuzz.sh all $${FUZZ_SECONDS:-60}

clean:
	rm -rf .build
