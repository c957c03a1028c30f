#!/usr/bin/env python3
"""Validates exported policies against the upstream schemas in Fixtures/.

usage: validate-policies.py cilium|kubernetes FILE...   (each FILE one JSON or YAML document)
Prints "ok FILE" or "invalid FILE: PATH: MESSAGE" per file; exits 1 when any is invalid, 2 on a usage or
schema problem. Needs python3-jsonschema and python3-yaml (scripts/install-deps.sh).
"""
import json
import os
import sys

import jsonschema
import yaml

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "Fixtures")


def closed(schema):
    """Makes every object schema that lists its properties refuse others (the upstream schemas leave most
    open, so a misplaced key, such as labels written without matchLabels, would pass). Only nodes typed
    "object": the property-only branches of oneOf name one property each and must stay open."""
    if isinstance(schema, dict):
        if (schema.get("type") == "object" and "properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            schema["additionalProperties"] = False
        for value in schema.values():
            closed(value)
    elif isinstance(schema, list):
        for value in schema:
            closed(value)
    return schema


def cilium_schema():
    with open(os.path.join(FIXTURES, "cilium-ciliumnetworkpolicies-crd.yaml")) as f:
        crd = yaml.safe_load(f)
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v2")
    schema = version["schema"]["openAPIV3Schema"]
    # spec.log.value's pattern uses \PC, which Python's re cannot compile; exports never set log.
    schema["properties"]["spec"]["properties"].pop("log", None)
    schema["properties"]["specs"]["items"]["properties"].pop("log", None)
    return schema, ("cilium.io/v2", "CiliumNetworkPolicy")


def kubernetes_schema():
    with open(os.path.join(FIXTURES, "kubernetes-networking-v1-openapi-v3.json")) as f:
        doc = json.load(f)
    schema = {"$ref": "#/components/schemas/io.k8s.api.networking.v1.NetworkPolicy",
              "components": doc["components"]}
    return schema, ("networking.k8s.io/v1", "NetworkPolicy")


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in ("cilium", "kubernetes"):
        print(__doc__, file=sys.stderr)
        return 2
    schema, (api_version, kind) = cilium_schema() if sys.argv[1] == "cilium" else kubernetes_schema()
    validator = jsonschema.Draft7Validator(closed(schema))
    failed = 0
    for path in sys.argv[2:]:
        with open(path) as f:
            document = yaml.safe_load(f)  # YAML is a superset of JSON: one loader for both outputs
        errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
        # The schemas leave apiVersion and kind free: check them here.
        if not isinstance(document, dict) or document.get("apiVersion") != api_version or document.get("kind") != kind:
            errors.append(jsonschema.ValidationError(f"expected apiVersion {api_version} and kind {kind}"))
        if errors:
            failed += 1
            first = errors[0]
            where = "/".join(str(p) for p in first.absolute_path) or "(document)"
            print(f"invalid {path}: {where}: {first.message}")
        else:
            print(f"ok {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
