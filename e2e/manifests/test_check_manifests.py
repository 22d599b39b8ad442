"""Tests of check_manifests.py: each check must fail on the mistakes it exists to catch."""

from __future__ import annotations

import copy
import tempfile
import textwrap
import unittest
from pathlib import Path

import yaml

from check_manifests import CrdIndex, OperatorRbac, load_requirements, structural_to_jsonschema

CRD = yaml.safe_load(textwrap.dedent("""
    apiVersion: apiextensions.k8s.io/v1
    kind: CustomResourceDefinition
    metadata:
      name: topics.odradek.dev
    spec:
      group: odradek.dev
      names: {kind: Topic, plural: topics, singular: topic}
      scope: Namespaced
      versions:
        - name: v1alpha1
          served: true
          storage: true
          schema:
            openAPIV3Schema:
              type: object
              required: [spec]
              properties:
                spec:
                  type: object
                  required: [cluster, partitions]
                  x-kubernetes-validations:
                    - {rule: "self.partitions >= oldSelf.partitions", message: "partitions may not decrease"}
                    - {rule: "has(self.replicationFactor)", message: "replicationFactor is defaulted"}
                    - {rule: "self.cluster.isFancy()", message: "a Kubernetes-only function"}
                  properties:
                    cluster: {type: string}
                    partitions:
                      type: integer
                      format: int32
                      x-kubernetes-validations:
                        - {rule: "self >= 1", message: "partitions must be at least 1"}
                    replicationFactor: {type: integer, default: 1}
                    topicName:
                      type: string
                      nullable: true
                      x-kubernetes-validations:
                        - {rule: "self.matches('^[a-zA-Z0-9._-]{1,249}$')", message: "bad topicName"}
                    retention: {x-kubernetes-int-or-string: true}
                    deletionPolicy: {type: string, enum: [Delete, Retain]}
                    config:
                      type: object
                      additionalProperties: {type: string}
                    template:
                      type: object
                      x-kubernetes-preserve-unknown-fields: true
                      properties:
                        labels: {type: object, additionalProperties: {type: string}}
                status:
                  type: object
                  nullable: true
                  properties:
                    partitions: {type: integer}
"""))

TOPIC = {
    "apiVersion": "odradek.dev/v1alpha1",
    "kind": "Topic",
    "metadata": {"name": "page-views", "labels": {"app": "x"}},
    "spec": {"cluster": "odradek", "partitions": 6, "config": {"retention.ms": "1000"}},
}


def index() -> CrdIndex:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "topic.yaml"
        path.write_text(yaml.safe_dump(CRD))
        return CrdIndex.load([path])


def topic(**spec) -> dict:
    doc = copy.deepcopy(TOPIC)
    doc["spec"].update(spec)
    return doc


class StructuralSchemaTest(unittest.TestCase):
    def test_nullable_becomes_a_null_type(self):
        self.assertEqual(structural_to_jsonschema({"type": "string", "nullable": True})["type"], ["string", "null"])

    def test_int_or_string_accepts_both(self):
        converted = structural_to_jsonschema({"x-kubernetes-int-or-string": True})
        self.assertEqual(converted["anyOf"], [{"type": "integer"}, {"type": "string"}])

    def test_objects_with_properties_reject_unknown_fields_unless_preserved(self):
        closed = structural_to_jsonschema({"type": "object", "properties": {"a": {"type": "string"}}})
        self.assertIs(closed["additionalProperties"], False)
        preserved = structural_to_jsonschema(
            {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {}})
        self.assertNotIn("additionalProperties", preserved)


class CustomResourceTest(unittest.TestCase):
    def setUp(self):
        self.crds = index()

    def test_a_valid_topic_passes(self):
        self.assertEqual(self.crds.errors(topic()), [])
        self.assertEqual(self.crds.errors(topic(topicName=None, retention="7d", template={"any": 1})), [])

    def test_an_unknown_field_is_rejected(self):
        errors = self.crds.errors(topic(partition=3))
        self.assertTrue(any("partition" in e for e in errors), errors)

    def test_a_wrong_type_is_rejected(self):
        errors = self.crds.errors(topic(partitions="six"))
        self.assertTrue(any(e.startswith("spec.partitions") for e in errors), errors)

    def test_a_missing_required_field_is_rejected(self):
        doc = topic()
        del doc["spec"]["cluster"]
        self.assertTrue(any("'cluster' is a required property" in e for e in self.crds.errors(doc)))

    def test_a_value_outside_the_enum_is_rejected(self):
        self.assertTrue(self.crds.errors(topic(deletionPolicy="Orphan")))

    def test_an_invalid_object_name_is_rejected(self):
        doc = topic()
        doc["metadata"]["name"] = "Page_Views"
        self.assertTrue(any("not a valid Kubernetes name" in e for e in self.crds.errors(doc)))

    def test_a_cel_rule_on_a_field_rejects(self):
        self.assertEqual(self.crds.errors(topic(partitions=0)), ["spec.partitions: partitions must be at least 1"])

    def test_a_cel_rule_with_a_regex_rejects(self):
        self.assertEqual(self.crds.errors(topic(topicName="a b")), ["spec.topicName: bad topicName"])
        self.assertEqual(self.crds.errors(topic(topicName="Page_Views.v2")), [])

    def test_transition_rules_are_skipped_and_uncompilable_rules_only_warn(self):
        self.assertEqual(self.crds.errors(topic()), [])
        self.assertTrue(any("isFancy" in w for w in self.crds.cel.warnings), self.crds.cel.warnings)

    def test_schema_defaults_are_applied_before_the_rules(self):
        self.assertEqual(self.crds.errors(topic()), [])
        self.assertNotIn("replicationFactor", topic()["spec"])

    def test_a_kind_without_crd_is_rejected(self):
        doc = topic()
        doc["kind"] = "Topics"
        self.assertEqual(self.crds.errors(doc), ["no CRD serves Topics in odradek.dev/v1alpha1"])


REQUIREMENTS = textwrap.dedent("""
    rules:
      - apiGroup: odradek.dev
        resources: [topics, topics/status]
        verbs: [get, patch]
      - apiGroup: ""
        resources: [pods]
        verbs: [list]
      - apiGroup: coordination.k8s.io
        resources: [leases]
        verbs: [get, create]
""")

WATCHED_RULES = [
    {"apiGroups": ["odradek.dev"], "resources": ["topics", "topics/status"], "verbs": ["get", "patch"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
]
LEASE_RULES = [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create"]}]


def rendered(watch: list[str], watched_rules=None, lease_rules=None) -> list[dict]:
    """A minimal rendered chart: the operator Deployment, its roles and bindings."""
    watched_rules = WATCHED_RULES if watched_rules is None else watched_rules
    lease_rules = LEASE_RULES if lease_rules is None else lease_rules
    subject = [{"kind": "ServiceAccount", "name": "op", "namespace": "sys"}]
    docs = [{
        "kind": "Deployment",
        "metadata": {"name": "op", "namespace": "sys"},
        "spec": {"template": {"spec": {"serviceAccountName": "op", "containers": [{
            "args": ["operator"], "env": [{"name": "ODRADEK_WATCH_NAMESPACES", "value": ",".join(watch)}]}]}}},
    }, {
        "kind": "Role", "metadata": {"name": "lease", "namespace": "sys"}, "rules": lease_rules,
    }, {
        "kind": "RoleBinding", "metadata": {"name": "lease", "namespace": "sys"},
        "roleRef": {"kind": "Role", "name": "lease"}, "subjects": subject,
    }]
    if not watch:
        docs += [{"kind": "ClusterRole", "metadata": {"name": "op"}, "rules": watched_rules},
                 {"kind": "ClusterRoleBinding", "metadata": {"name": "op"},
                  "roleRef": {"kind": "ClusterRole", "name": "op"}, "subjects": subject}]
    for ns in watch:
        docs += [{"kind": "Role", "metadata": {"name": "op", "namespace": ns}, "rules": watched_rules},
                 {"kind": "RoleBinding", "metadata": {"name": "op", "namespace": ns},
                  "roleRef": {"kind": "Role", "name": "op"}, "subjects": subject}]
    return docs


class RbacTest(unittest.TestCase):
    def setUp(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "req.yaml"
            path.write_text(REQUIREMENTS)
            self.requirements = load_requirements(path)

    def problems(self, docs: list[dict]) -> list[str]:
        rbac = OperatorRbac.from_rendered(docs)
        return rbac.problems + rbac.missing(self.requirements) + rbac.excess(self.requirements)

    def test_leases_default_to_the_operator_namespace(self):
        scopes = {(r.resource, r.scope) for r in self.requirements}
        self.assertIn(("leases", "operator"), scopes)
        self.assertIn(("pods", "watched"), scopes)

    def test_exact_grants_pass_in_both_modes(self):
        self.assertEqual(self.problems(rendered([])), [])
        self.assertEqual(self.problems(rendered(["a", "b"])), [])

    def test_a_missing_verb_is_reported(self):
        rules = copy.deepcopy(WATCHED_RULES)
        rules[0]["verbs"] = ["get"]
        problems = self.problems(rendered(["a"], watched_rules=rules))
        self.assertIn("missing patch on odradek.dev/topics (namespace a)", problems)
        self.assertIn("missing patch on odradek.dev/topics/status (namespace a)", problems)

    def test_a_namespace_without_its_role_is_reported(self):
        docs = [d for d in rendered(["a", "b"]) if d["metadata"].get("namespace") != "b"]
        self.assertIn("missing list on core/pods (namespace b)", self.problems(docs))

    def test_a_grant_beyond_the_requirements_is_reported(self):
        rules = WATCHED_RULES + [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]
        problems = self.problems(rendered([], watched_rules=rules))
        self.assertTrue(any("get on core/secrets" in p for p in problems), problems)

    def test_a_cluster_wide_lease_grant_is_reported(self):
        rules = WATCHED_RULES + LEASE_RULES
        problems = self.problems(rendered([], watched_rules=rules))
        self.assertTrue(any("leases" in p and "cluster-wide" in p for p in problems), problems)

    def test_wildcards_are_reported(self):
        rules = [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]
        problems = self.problems(rendered([], watched_rules=rules))
        self.assertTrue(any("wildcard in verbs" in p for p in problems), problems)

    def test_a_binding_to_another_service_account_grants_nothing(self):
        docs = rendered([])
        for d in docs:
            if d["kind"] == "ClusterRoleBinding":
                d["subjects"][0]["name"] = "someone-else"
        self.assertIn("missing list on core/pods (cluster-wide)", self.problems(docs))

    def test_a_bad_scope_is_refused(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "req.yaml"
            path.write_text("rules: [{apiGroup: '', resources: [pods], verbs: [get], scope: galaxy}]")
            with self.assertRaises(ValueError):
                load_requirements(path)


if __name__ == "__main__":
    unittest.main()
