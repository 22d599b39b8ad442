#!/usr/bin/env python3
"""Offline checks of Odradek's Kubernetes manifests that no off-the-shelf validator does.

kubernetes-validate checks built-in kinds against the Kubernetes OpenAPI schemas but only warns on custom
resources, and nothing checks that the chart's RBAC matches what the operator uses. This module does both:

* ``crs``: every ``odradek.dev`` object in the given files is validated against the openAPIV3Schema of
  its CRD (from ``manifests/crds/``), as the API server would: schema defaults applied, unknown fields
  rejected (structural schemas prune or reject them), and the CEL rules (``x-kubernetes-validations``)
  evaluated with cel-python. Transition rules (those that read ``oldSelf``) only run on updates and are
  skipped; a rule cel-python cannot compile (a Kubernetes-only CEL library function) is reported as a
  warning, because the CRD types' own unit tests evaluate every rule with the real library.
* ``expect``: the given objects (``Kind/name``) are each defined exactly once in the given files.
* ``rbac``: the Roles and ClusterRoles bound to the operator's ServiceAccount in a rendered chart grant
  every (apiGroup, resource, verb) in ``operator/rbac-requirements.yaml``, in the right scope, and
  nothing more (least privilege, no wildcards).

Both print one line per problem and exit non-zero if there is any.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import celpy
import jsonschema
import yaml

CR_GROUP = "odradek.dev"

# A Kubernetes object name (RFC 1123 subdomain), as the API server requires for these kinds.
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def load_documents(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yields (index, document) for every non-empty YAML document in a file."""
    with path.open(encoding="utf-8") as f:
        for index, doc in enumerate(yaml.safe_load_all(f)):
            if doc is None:
                continue
            if not isinstance(doc, dict):
                raise ValueError(f"{path}: document {index} is a {type(doc).__name__}, not an object")
            if doc.get("kind") == "List":
                for item in doc.get("items") or []:
                    yield index, item
            else:
                yield index, doc


def describe(path: Path, index: int, doc: dict[str, Any]) -> str:
    meta = doc.get("metadata") or {}
    name = meta.get("name", "<no name>")
    ns = meta.get("namespace")
    where = f"{ns}/{name}" if ns else name
    return f"{path}#{index} {doc.get('kind')} {where}"


# ---------------------------------------------------------------------------------------------------
# Custom resources against their CRDs
# ---------------------------------------------------------------------------------------------------


def structural_to_jsonschema(schema: dict[str, Any], *, embedded: bool = False) -> dict[str, Any]:
    """Turns a CRD structural schema (OpenAPI v3 subset) into a JSON Schema draft 4 document.

    OpenAPI's ``nullable`` becomes a ``null`` type, ``x-kubernetes-int-or-string`` an anyOf, and every
    object with ``properties`` and neither ``additionalProperties`` nor
    ``x-kubernetes-preserve-unknown-fields`` rejects unknown fields, as ``kubectl apply`` does with
    server-side field validation in strict mode.
    """
    out = copy.deepcopy(schema)
    for key in ("properties",):
        if key in out:
            out[key] = {k: structural_to_jsonschema(v) for k, v in out[key].items()}
    if isinstance(out.get("items"), dict):
        out["items"] = structural_to_jsonschema(out["items"])
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = structural_to_jsonschema(out["additionalProperties"])
    for key in ("allOf", "anyOf", "oneOf"):
        if key in out:
            out[key] = [structural_to_jsonschema(s) for s in out[key]]
    if out.pop("x-kubernetes-int-or-string", False):
        for key in ("type", "format"):
            out.pop(key, None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    preserve = out.get("x-kubernetes-preserve-unknown-fields", False)
    embedded = embedded or out.get("x-kubernetes-embedded-resource", False)
    if out.get("type") == "object" and "properties" in out and not preserve:
        out.setdefault("additionalProperties", False)
        if embedded:
            # An embedded object carries apiVersion, kind and metadata even when the schema lists none.
            for implicit in ("apiVersion", "kind", "metadata"):
                out["properties"].setdefault(implicit, {})
    return out


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """Fills in the schema's `default`s where the value leaves a field out, as the API server does."""
    if isinstance(value, dict):
        for name, prop in (schema.get("properties") or {}).items():
            if name not in value and "default" in prop:
                value[name] = copy.deepcopy(prop["default"])
            if name in value:
                value[name] = apply_defaults(prop, value[name])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            known = schema.get("properties") or {}
            for name in value:
                if name not in known:
                    value[name] = apply_defaults(extra, value[name])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(schema["items"], item) for item in value]
    return value


class CelRules:
    """Evaluates a structural schema's `x-kubernetes-validations` on a new object (no `oldSelf`)."""

    def __init__(self) -> None:
        self.env = celpy.Environment()
        self.programs: dict[str, Any] = {}
        self.warnings: set[str] = set()

    def _program(self, rule: str) -> Any:
        if rule not in self.programs:
            try:
                self.programs[rule] = self.env.program(self.env.compile(rule))
            except Exception as e:  # noqa: BLE001 - any compile failure means "cannot check here"
                self.warnings.add(f"cannot evaluate CEL rule {rule!r} here: {e}")
                self.programs[rule] = None
        return self.programs[rule]

    def errors(self, schema: dict[str, Any], value: Any, path: str = "") -> list[str]:
        problems: list[str] = []
        if value is None:
            # The API server does not run a field's rules on a null value.
            return problems
        for validation in schema.get("x-kubernetes-validations") or []:
            rule = validation["rule"]
            if re.search(r"\boldSelf\b", rule):
                continue
            program = self._program(rule)
            if program is None:
                continue
            message = validation.get("message") or f"failed rule: {rule}"
            try:
                result = program.evaluate({"self": celpy.json_to_cel(value)})
            except Exception as e:  # noqa: BLE001 - the API server rejects on evaluation errors too
                result = e
            if isinstance(result, Exception):
                text = str(result.args[0] if result.args else result)
                unknown = re.match(r"undeclared reference to '(\w+)'", text)
                if unknown and re.search(rf"\b{unknown.group(1)}\s*\(", rule):
                    # A function of Kubernetes' CEL libraries that cel-python lacks.
                    self.warnings.add(f"cannot evaluate CEL rule {rule!r} here: no function {unknown.group(1)}")
                else:
                    problems.append(f"{path or '<root>'}: CEL rule {rule!r} failed to evaluate: {text[:200]}")
            elif not bool(result):
                problems.append(f"{path or '<root>'}: {message}")
        if isinstance(value, dict):
            properties = schema.get("properties") or {}
            extra = schema.get("additionalProperties")
            for name, item in value.items():
                sub = properties.get(name, extra if isinstance(extra, dict) else None)
                if sub is not None:
                    problems += self.errors(sub, item, f"{path}.{name}" if path else name)
        elif isinstance(value, list) and isinstance(schema.get("items"), dict):
            for i, item in enumerate(value):
                problems += self.errors(schema["items"], item, f"{path}[{i}]")
        return problems


@dataclass
class CrdIndex:
    """The schemas of every served version of every CRD, by (group, version, kind)."""

    schemas: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    raw: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    cel: CelRules = field(default_factory=CelRules)

    @classmethod
    def load(cls, crd_files: Iterable[Path]) -> "CrdIndex":
        index = cls()
        for path in crd_files:
            for _, doc in load_documents(path):
                if doc.get("kind") != "CustomResourceDefinition":
                    raise ValueError(f"{path}: expected a CustomResourceDefinition, found {doc.get('kind')}")
                spec = doc["spec"]
                for version in spec["versions"]:
                    if not version.get("served", False):
                        continue
                    raw = (version.get("schema") or {}).get("openAPIV3Schema")
                    if raw is None:
                        raise ValueError(f"{path}: version {version['name']} has no openAPIV3Schema")
                    converted = structural_to_jsonschema(raw)
                    # The API server validates apiVersion, kind and metadata itself; allow them here.
                    props = converted.setdefault("properties", {})
                    props["apiVersion"] = {"type": "string"}
                    props["kind"] = {"type": "string"}
                    props["metadata"] = {"type": "object"}
                    key = (spec["group"], version["name"], spec["names"]["kind"])
                    index.schemas[key] = converted
                    index.raw[key] = raw
        return index

    def errors(self, doc: dict[str, Any]) -> list[str]:
        """Every way `doc` would be rejected; empty when the API server would accept it."""
        api_version = str(doc.get("apiVersion", ""))
        group, _, version = api_version.partition("/")
        kind = doc.get("kind", "")
        schema = self.schemas.get((group, version, kind))
        if schema is None:
            return [f"no CRD serves {kind} in {api_version}"]
        problems = []
        name = (doc.get("metadata") or {}).get("name")
        if not name:
            problems.append("metadata.name is missing")
        elif len(name) > 253 or not DNS_SUBDOMAIN.match(name):
            problems.append(f"metadata.name {name!r} is not a valid Kubernetes name")
        raw = self.raw[(group, version, kind)]
        doc = apply_defaults(raw, copy.deepcopy(doc))
        validator = jsonschema.Draft4Validator(schema)
        schema_errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
        for error in schema_errors:
            path = ".".join(str(p) for p in error.absolute_path) or "<root>"
            problems.append(f"{path}: {error.message}")
        if not schema_errors:
            # As in the API server, CEL rules run only on objects that pass the schema.
            problems += self.cel.errors(raw, doc)
        return problems


def check_crs(crd_files: list[Path], files: list[Path], *, require: bool) -> int:
    index = CrdIndex.load(crd_files)
    if not index.schemas:
        print("FAIL no CRD schemas loaded", file=sys.stderr)
        return 1
    failures = checked = 0
    for path in files:
        for i, doc in load_documents(path):
            group = str(doc.get("apiVersion", "")).partition("/")[0]
            if group != CR_GROUP:
                continue
            checked += 1
            for problem in index.errors(doc):
                failures += 1
                print(f"FAIL {describe(path, i, doc)}: {problem}", file=sys.stderr)
    if require and checked == 0:
        print(f"FAIL no {CR_GROUP} objects found in {', '.join(map(str, files))}", file=sys.stderr)
        return 1
    for warning in sorted(index.cel.warnings):
        print(f"WARN {warning}", file=sys.stderr)
    print(f"checked {checked} {CR_GROUP} objects against {len(index.schemas)} CRD schemas and "
          f"{len(index.cel.programs)} CEL rules: {failures} problems")
    return 1 if failures else 0


# ---------------------------------------------------------------------------------------------------
# RBAC coverage
# ---------------------------------------------------------------------------------------------------

SCOPES = ("watched", "operator", "cluster")


@dataclass(frozen=True)
class Requirement:
    group: str
    resource: str
    verb: str
    scope: str


def load_requirements(path: Path) -> list[Requirement]:
    """Reads operator/rbac-requirements.yaml: `rules:` of apiGroup/resources/verbs[/scope] entries."""
    with path.open(encoding="utf-8") as f:
        data = yaml.safe_load(f)
    entries = data.get("rules") if isinstance(data, dict) else data
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{path}: expected a non-empty list under `rules:`")
    out = []
    for n, entry in enumerate(entries):
        groups = entry.get("apiGroups", entry.get("apiGroup", entry.get("group")))
        if groups is None:
            raise ValueError(f"{path}: rule {n} has no apiGroup")
        groups = groups if isinstance(groups, list) else [groups]
        resources = entry.get("resources", entry.get("resource"))
        resources = resources if isinstance(resources, list) else [resources]
        verbs = entry.get("verbs")
        if not resources or None in resources or not verbs:
            raise ValueError(f"{path}: rule {n} needs resources and verbs")
        for group in groups:
            for resource in resources:
                # The leader-election Lease lives in the operator's own namespace unless said otherwise.
                default_scope = "operator" if (group, resource) == ("coordination.k8s.io", "leases") else "watched"
                scope = entry.get("scope", default_scope)
                if scope not in SCOPES:
                    raise ValueError(f"{path}: rule {n} has scope {scope!r}, expected one of {SCOPES}")
                for verb in verbs:
                    out.append(Requirement(str(group), str(resource), str(verb), scope))
    return out


@dataclass
class Grant:
    """One (group, resource, verb) granted to the operator, cluster-wide (namespace None) or in one namespace."""

    group: str
    resource: str
    verb: str
    namespace: str | None
    source: str


@dataclass
class OperatorRbac:
    namespace: str
    service_account: str
    watch_namespaces: list[str]
    grants: list[Grant]
    problems: list[str]

    @classmethod
    def from_rendered(cls, docs: list[dict[str, Any]]) -> "OperatorRbac":
        problems: list[str] = []
        deployments = [d for d in docs if d.get("kind") == "Deployment"
                       and any((c.get("args") or [None])[0] == "operator"
                               for c in d["spec"]["template"]["spec"]["containers"])]
        if len(deployments) != 1:
            raise ValueError(f"expected one operator Deployment, found {len(deployments)}")
        deployment = deployments[0]
        namespace = deployment["metadata"].get("namespace")
        if not namespace:
            raise ValueError("the operator Deployment has no namespace")
        pod = deployment["spec"]["template"]["spec"]
        sa = pod.get("serviceAccountName", "default")
        env = {e["name"]: e.get("value") for c in pod["containers"] for e in c.get("env", [])}
        watch = [ns for ns in (env.get("ODRADEK_WATCH_NAMESPACES") or "").split(",") if ns]

        roles = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d
                 for d in docs if d.get("kind") in ("Role", "ClusterRole")}
        grants: list[Grant] = []
        for binding in docs:
            kind = binding.get("kind")
            if kind not in ("RoleBinding", "ClusterRoleBinding"):
                continue
            subjects = binding.get("subjects") or []
            if not any(s.get("kind") == "ServiceAccount" and s.get("name") == sa
                       and s.get("namespace") == namespace for s in subjects):
                continue
            bns = binding["metadata"].get("namespace") if kind == "RoleBinding" else None
            ref = binding["roleRef"]
            role_key = (ref["kind"], bns if ref["kind"] == "Role" else None, ref["name"])
            role = roles.get(role_key)
            source = f"{kind} {bns + '/' if bns else ''}{binding['metadata']['name']}"
            if role is None:
                problems.append(f"{source} refers to {ref['kind']} {ref['name']}, which the chart does not render")
                continue
            for rule in role.get("rules") or []:
                if rule.get("resourceNames"):
                    # Limited to named objects: grants none of the list/watch/create the operator needs.
                    continue
                if rule.get("nonResourceURLs"):
                    problems.append(f"{source}: grants nonResourceURLs {rule['nonResourceURLs']}")
                for key in ("apiGroups", "resources", "verbs"):
                    if "*" in (rule.get(key) or []):
                        problems.append(f"{source}: wildcard in {key} is not least privilege")
                for group in rule.get("apiGroups") or []:
                    for resource in rule.get("resources") or []:
                        for verb in rule.get("verbs") or []:
                            grants.append(Grant(group, resource, verb, bns, source))
        return cls(namespace, sa, watch, grants, problems)

    def _granted(self, group: str, resource: str, verb: str, namespace: str | None) -> bool:
        """Whether the request is allowed: a cluster-wide grant covers every namespace."""
        return any(g.group == group and g.resource == resource and g.verb == verb
                   and (g.namespace is None or g.namespace == namespace) for g in self.grants)

    def missing(self, requirements: list[Requirement]) -> list[str]:
        out = []
        for req in requirements:
            if req.scope == "cluster":
                places: list[str | None] = [None]
            elif req.scope == "operator":
                places = [self.namespace]
            else:
                places = list(self.watch_namespaces) or [None]
            for ns in places:
                if not self._granted(req.group, req.resource, req.verb, ns):
                    where = f"namespace {ns}" if ns else "cluster-wide"
                    out.append(f"missing {req.verb} on {req.group or 'core'}/{req.resource} ({where})")
        return out

    def excess(self, requirements: list[Requirement]) -> list[str]:
        """Grants that no requirement needs, or that reach further than the requirement's scope."""
        scope_of = {(r.group, r.resource, r.verb): r.scope for r in requirements}
        out = []
        for g in self.grants:
            scope = scope_of.get((g.group, g.resource, g.verb))
            what = f"{g.verb} on {g.group or 'core'}/{g.resource} by {g.source}"
            if scope is None:
                out.append(f"excess: {what} is not in the operator's requirements")
            elif g.namespace is None and scope == "operator":
                out.append(f"excess: {what} is cluster-wide but only needed in namespace {self.namespace}")
            elif g.namespace is None and scope == "watched" and self.watch_namespaces:
                out.append(f"excess: {what} is cluster-wide but only namespaces "
                           f"{','.join(self.watch_namespaces)} are watched")
            elif g.namespace is not None and scope == "operator" and g.namespace != self.namespace:
                out.append(f"excess: {what} is outside the operator's namespace {self.namespace}")
            elif (g.namespace is not None and scope == "watched" and self.watch_namespaces
                  and g.namespace not in self.watch_namespaces):
                out.append(f"excess: {what} is in an unwatched namespace")
        return out


def check_rbac(requirements_path: Path, rendered: list[Path]) -> int:
    requirements = load_requirements(requirements_path)
    failures = 0
    for path in rendered:
        docs = [doc for _, doc in load_documents(path)]
        rbac = OperatorRbac.from_rendered(docs)
        problems = rbac.problems + rbac.missing(requirements) + rbac.excess(requirements)
        for problem in problems:
            print(f"FAIL {path}: {problem}", file=sys.stderr)
        failures += len(problems)
        mode = ",".join(rbac.watch_namespaces) or "all namespaces"
        print(f"{path}: operator {rbac.namespace}/{rbac.service_account} watching {mode}: "
              f"{len(requirements)} required permissions, {len(rbac.grants)} grants, {len(problems)} problems")
    return 1 if failures else 0


def check_expect(files: list[Path], expected: list[str]) -> int:
    """Fails unless every `Kind/name` in `expected` is defined in exactly one of `files`."""
    found: dict[str, list[str]] = {}
    for path in files:
        for i, doc in load_documents(path):
            key = f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
            found.setdefault(key, []).append(f"{path}#{i}")
    failures = 0
    for key in expected:
        places = found.get(key, [])
        if len(places) != 1:
            failures += 1
            print(f"FAIL {key} is defined {len(places)} times, expected once {places}", file=sys.stderr)
    print(f"{len(expected) - failures} of {len(expected)} expected objects found once")
    return 1 if failures else 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    crs = sub.add_parser("crs", help="validate odradek.dev objects against their CRDs")
    crs.add_argument("--crd", type=Path, action="append", required=True, help="a CRD file (repeatable)")
    crs.add_argument("--require", action="store_true", help="fail when the files hold no odradek.dev object")
    crs.add_argument("files", type=Path, nargs="+")
    rbac = sub.add_parser("rbac", help="check the rendered chart's RBAC against the operator's needs")
    rbac.add_argument("--requirements", type=Path, required=True)
    rbac.add_argument("rendered", type=Path, nargs="+")
    expect = sub.add_parser("expect", help="check that the files define the given objects")
    expect.add_argument("--object", action="append", required=True, help="Kind/name (repeatable)")
    expect.add_argument("files", type=Path, nargs="+")
    args = parser.parse_args(argv)
    try:
        if args.command == "crs":
            return check_crs(args.crd, args.files, require=args.require)
        if args.command == "expect":
            return check_expect(args.files, args.object)
        return check_rbac(args.requirements, args.rendered)
    except (OSError, ValueError, KeyError, yaml.YAMLError) as e:
        print(f"FAIL {args.command}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
