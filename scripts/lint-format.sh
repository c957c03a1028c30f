#!/usr/bin/env bash
# The formatter half of the style gate (`make test`, CI; docs/testing.md "Style gate"): `swift format lint`
# with the repository's .swift-format, failing on a finding of any rule the configuration enables. The rules
# enabled are those the code already follows. swift-format's layout findings (indentation, line breaks,
# spacing, trailing commas) are not checked: the code predates the formatter, and meeting its layout would
# rewrite nearly every file at once.
set -uo pipefail
cd "$(dirname "$0")/.."
rules=$(grep -E '^ *"[A-Za-z]+" *: *true,?$' .swift-format | sed -E 's/^ *"([A-Za-z]+)".*/\1/' | paste -sd '|')
if [ -z "$rules" ]; then echo "lint-format: no rule enabled in .swift-format" >&2; exit 1; fi
output=$(swift format lint --configuration .swift-format --recursive --parallel Sources Tests Package.swift 2>&1)
findings=$(grep -E "\[($rules)\]" <<<"$output")
if [ -n "$findings" ]; then
  echo "lint-format: FAILED: $(grep -c . <<<"$findings") findings of the enabled rules (.swift-format):" >&2
  echo "$findings" >&2
  exit 1
fi
# swift-format itself failing (a file it cannot parse) is a failure too.
if grep -qE '^error:|: error:' <<<"$output"; then
  echo "lint-format: FAILED: swift format reported errors:" >&2
  grep -E '^error:|: error:' <<<"$output" >&2
  exit 1
fi
echo "lint-format: no findings of the enabled rules"
