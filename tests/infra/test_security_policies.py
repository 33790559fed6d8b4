"""The root template's access control, evaluated rather than string-matched: its policies
are rendered as CloudFormation would render them for a stack (parameters, conditions,
Fn::Sub, Fn::If, AWS::NoValue), then a small IAM evaluator answers "is this principal
allowed, or explicitly denied, this action on this resource with this request context?".

What it proves: the model bucket's policy lets only retrain (and the optional operator
role) change models/, only retrain history/ and proposals/, and only predict state/; with
the shop's promotions on (off by default, adding nothing), retrain reads that one secret;
predict cannot write models nor retrain state in either layer; the customer managed key lets CloudWatch alarms
of this account use it, rotates, and encrypts the topic and the failure queues; predict
tags only its own tag key; ListBucket is limited to each function's prefixes; the model
bucket's requests are logged to a bucket that is itself locked down.

moto evaluates none of this (bucket policies, key policies and condition keys are not
enforced by the emulator), hence the evaluator. It implements the subset of IAM policy
evaluation these templates use; an operator or construct it does not know fails the test
instead of being guessed at."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.conftest import REPO_ROOT
from tests.infra.cfn import load, template
from tests.infra.test_tier_options import failed_rules

ACCOUNT = "123456789012"
REGION = "eu-central-1"
STACK = "saleor-scaling"
BUCKET = "saleor-scaling-modelbucket-1a2b3c"
BUCKET_ARN = f"arn:aws:s3:::{BUCKET}"
LOG_BUCKET = "saleor-scaling-modelaccesslogbucket-4d5e6f"
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{KEY_ID}"
TOPIC_ARN = f"arn:aws:sns:{REGION}:{ACCOUNT}:saleor-scaling-AlarmTopic-XYZ"
GROUP = "saleor-scaling-AppStack-1-AutoScalingGroup-ABC"


def role(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/{name}"


PREDICT_ROLE = role("saleor-scaling-PredictFunctionRole-AAAA")
RETRAIN_ROLE = role("saleor-scaling-RetrainFunctionRole-BBBB")
WATCHDOG_ROLE = role("saleor-scaling-WatchdogFunctionRole-CCCC")
OPERATOR_ROLE = role("operators/model-operator")
ADMIN_ROLE = role("AdministratorAccess")
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
LEASE_TAG = "saleor-predictive-scaling:lease"
BASE_MIN_SIZE_TAG = "saleor-predictive-scaling:base-min-size"
APPLIED_MIN_SIZE_TAG = "saleor-predictive-scaling:applied-min-size"

# What Ref and Fn::GetAtt of the root's resources return in the rendered stack (the SAM
# transform's generated roles included).
RESOURCE_REFS = {
    "ModelBucket": BUCKET,
    "ModelAccessLogBucket": LOG_BUCKET,
    "NoticesKey": KEY_ID,
    "AlarmTopic": TOPIC_ARN,
    "PredictFailureQueue": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/predict-failures",
    "RetrainFailureQueue": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/retrain-failures",
    "PredictFunction": "saleor-scaling-PredictFunction-CCCC",
    "RetrainFunction": "saleor-scaling-RetrainFunction-DDDD",
    "PredictLogGroup": "/saleor-scaling/saleor-scaling/predict",
    "RetrainLogGroup": "/saleor-scaling/saleor-scaling/retrain",
}
RESOURCE_ATTRIBUTES = {
    "ModelBucket.Arn": BUCKET_ARN,
    "ModelAccessLogBucket.Arn": f"arn:aws:s3:::{LOG_BUCKET}",
    "NoticesKey.Arn": KEY_ARN,
    "PredictFailureQueue.Arn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:predict-failures",
    "RetrainFailureQueue.Arn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:retrain-failures",
    "PredictFunctionRole.Arn": PREDICT_ROLE,
    "RetrainFunctionRole.Arn": RETRAIN_ROLE,
    "RetrainFunction.Arn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:saleor-scaling-RetrainFunction-DDDD",
    "AppStack.Outputs.AutoScalingGroupName": GROUP,
    "AppStack.Outputs.LoadBalancerFullName": "app/saleor/0123456789abcdef",
    "AppStack.Outputs.TargetGroupFullName": "targetgroup/saleor/0123456789abcdef",
}
_NO_VALUE = object()


@functools.cache
def root_template() -> dict[str, Any]:
    return load(REPO_ROOT / "template.yaml")


class RenderedStack:
    """The root template's values for one set of parameters."""

    def __init__(self, **parameters: str) -> None:
        self.template = root_template()
        declared = self.template["Parameters"]
        unknown = set(parameters) - set(declared)
        assert not unknown, f"parameters {unknown} are not in template.yaml"
        self.parameters = {name: str(spec.get("Default", "")) for name, spec in declared.items()}
        self.parameters.update(parameters)
        self.refs: dict[str, str] = {
            **self.parameters,
            **RESOURCE_REFS,
            "AWS::AccountId": ACCOUNT,
            "AWS::Region": REGION,
            "AWS::Partition": "aws",
            "AWS::StackName": STACK,
            "AWS::URLSuffix": "amazonaws.com",
        }

    def condition(self, name: str) -> bool:
        return bool(self.render(self.template["Conditions"][name]))

    def resource(self, logical_id: str) -> dict[str, Any]:
        resource: dict[str, Any] = self.template["Resources"][logical_id]
        return resource

    def properties(self, logical_id: str) -> Any:
        return self.render(self.resource(logical_id)["Properties"])

    def render(self, node: Any) -> Any:
        """Intrinsic functions resolved; AWS::NoValue removed from lists and mappings."""
        if isinstance(node, list):
            return [value for value in (self.render(item) for item in node) if value is not _NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (function, argument), *_ = node.items()
            if function == "Ref":
                if argument == "AWS::NoValue":
                    return _NO_VALUE
                return self.refs[argument]
            if function == "Fn::GetAtt":
                name = argument if isinstance(argument, str) else ".".join(argument)
                return RESOURCE_ATTRIBUTES[name]
            if function == "Fn::Sub":
                return self._sub(argument)
            if function == "Fn::If":
                name, when_true, when_false = argument
                return self.render(when_true if self.condition(name) else when_false)
            if function == "Fn::Equals":
                left, right = (self.render(value) for value in argument)
                return str(left) == str(right)
            if function == "Fn::Not":
                return not self.render(argument[0])
            if function == "Fn::And":
                return all(self.render(value) for value in argument)
            if function == "Fn::Or":
                return any(self.render(value) for value in argument)
            if function == "Condition":
                return self.condition(argument)
            assert not function.startswith("Fn::"), f"the test renderer does not know {function}"
        rendered = {key: self.render(value) for key, value in node.items()}
        return {key: value for key, value in rendered.items() if value is not _NO_VALUE}

    def _sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        values = {name: str(self.render(value)) for name, value in variables.items()}

        def replace(match: re.Match[str]) -> str:
            literal, name = match.groups()
            if literal:
                return "${" + name + "}"
            if name in values:
                return values[name]
            if "." in name and not name.startswith("AWS::"):
                return RESOURCE_ATTRIBUTES[name]
            return self.refs[name]

        return re.sub(r"\$\{(!?)([^}]+)\}", replace, text)

    def identity_statements(self, function: str) -> list[dict[str, Any]]:
        """The inline statements of a SAM function's generated role."""
        policies = self.render(self.resource(function)["Properties"]["Policies"])
        return [
            statement for policy in policies if isinstance(policy, dict) for statement in policy["Statement"]
        ]

    def bucket_policy(self) -> list[dict[str, Any]]:
        statements: list[dict[str, Any]] = self.properties("ModelBucketPolicy")["PolicyDocument"]["Statement"]
        return statements


# ---------------------------------------------------------------- a small IAM evaluator


@dataclass(frozen=True)
class Request:
    action: str
    resource: str
    principal: str = ""
    """An IAM principal's ARN (its role ARN for a role session), or empty for a service."""
    service: str = ""
    """The calling service principal, e.g. cloudwatch.amazonaws.com."""
    context: Mapping[str, str | list[str]] = field(default_factory=dict)

    def keys(self) -> dict[str, list[str]]:
        keys = {
            name.lower(): value if isinstance(value, list) else [value]
            for name, value in self.context.items()
        }
        if self.principal:
            keys.setdefault("aws:principalarn", [self.principal])
            keys.setdefault("aws:principalaccount", [self.principal.split(":")[4]])
        keys.setdefault("aws:securetransport", ["true"])
        return keys


_NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotLike": "StringLike",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
}
_POSITIVE = {"StringEquals", "StringLike", "ArnEquals", "ArnLike", "Bool"}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _glob(pattern: str, value: str, *, case_sensitive: bool = True) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, 0 if case_sensitive else re.IGNORECASE) is not None


def _compare(operator: str, value: str, expected: Any) -> bool:
    wanted = str(expected)
    if operator == "StringEquals":
        return value == wanted
    if operator == "Bool":
        return value.lower() == wanted.lower()
    # StringLike globs; IAM's ArnEquals and ArnLike both accept wildcards.
    return _glob(wanted, value)


def _condition_test(operator: str, key: str, expected: list[Any], context: dict[str, list[str]]) -> bool:
    qualifier, _, base = operator.rpartition(":")
    if_exists = base.endswith("IfExists")
    base = base.removesuffix("IfExists")
    values = context.get(key.lower())
    if base == "Null":
        return (str(expected[0]).lower() == "true") == (values is None)
    assert base in _NEGATED or base in _POSITIVE, f"the test evaluator does not know {operator}"
    assert qualifier in ("", "ForAllValues", "ForAnyValue"), f"the test evaluator does not know {operator}"
    if values is None:
        if qualifier == "ForAllValues" or if_exists:
            return True
        if qualifier == "ForAnyValue":
            return False
        return base in _NEGATED  # a negated operator matches a missing key
    positive = _NEGATED.get(base, base)

    def holds(value: str) -> bool:
        matched = any(_compare(positive, value, each) for each in expected)
        return not matched if base in _NEGATED else matched

    if qualifier == "ForAllValues":
        return all(holds(value) for value in values)
    if qualifier == "ForAnyValue":
        return any(holds(value) for value in values)
    assert len(values) == 1, f"{key} is multivalued: use ForAllValues or ForAnyValue"
    return holds(values[0])


def _principal_matches(principal: Any, request: Request) -> bool:
    if principal == "*":
        return True
    if request.service:
        return request.service in _as_list(principal.get("Service", []))
    for arn in _as_list(principal.get("AWS", [])):
        if arn in ("*", request.principal):
            return True
        # An account principal delegates to that account's own IAM policies.
        if arn.endswith(":root") and request.principal.split(":")[4] == arn.split(":")[4]:
            return True
    return False


def matches(statement: dict[str, Any], request: Request, *, resource_policy: bool) -> bool:
    unsupported = {"NotAction", "NotResource", "NotPrincipal"} & set(statement)
    assert not unsupported, f"the test evaluator does not know {unsupported}"
    if not any(
        _glob(action, request.action, case_sensitive=False) for action in _as_list(statement["Action"])
    ):
        return False
    if not any(_glob(resource, request.resource) for resource in _as_list(statement["Resource"])):
        return False
    if resource_policy and not _principal_matches(statement["Principal"], request):
        return False
    context = request.keys()
    return all(
        _condition_test(operator, key, _as_list(expected), context)
        for operator, tests in statement.get("Condition", {}).items()
        for key, expected in tests.items()
    )


def denying(statements: list[dict[str, Any]], request: Request) -> list[str]:
    """Sids of the resource policy's Deny statements that match."""
    return [
        statement.get("Sid", "?")
        for statement in statements
        if statement["Effect"] == "Deny" and matches(statement, request, resource_policy=True)
    ]


def allows(statements: list[dict[str, Any]], request: Request, *, resource_policy: bool = False) -> bool:
    """Some Allow matches and no Deny does (one policy on its own)."""
    found = [s for s in statements if matches(s, request, resource_policy=resource_policy)]
    return any(s["Effect"] == "Allow" for s in found) and not any(s["Effect"] == "Deny" for s in found)


def can_write(stack: RenderedStack, function: str, key: str, action: str = "s3:PutObject") -> bool:
    """Same account: the role's policy must allow and the bucket policy must not deny."""
    principal = {"PredictFunction": PREDICT_ROLE, "RetrainFunction": RETRAIN_ROLE}[function]
    request = Request(action, f"{BUCKET_ARN}/{key}", principal)
    return allows(stack.identity_statements(function), request) and not denying(
        stack.bucket_policy(), request
    )


# ---------------------------------------------------------------- the evaluator itself


def test_the_evaluator_reads_conditions_as_iam_does():
    context = {"aws:principalarn": [PREDICT_ROLE], "aws:tagkeys": ["a", "b"]}
    assert _condition_test("ArnNotEquals", "aws:PrincipalArn", [RETRAIN_ROLE, OPERATOR_ROLE], context)
    assert not _condition_test("ArnNotEquals", "aws:PrincipalArn", [RETRAIN_ROLE, PREDICT_ROLE], context)
    assert _condition_test("ArnNotEquals", "aws:SourceArn", ["x"], context)  # missing: negated is true
    assert not _condition_test("StringLike", "s3:prefix", ["state/*"], context)  # missing: false
    assert _condition_test("StringLikeIfExists", "s3:prefix", ["state/*"], context)
    assert _condition_test("ForAllValues:StringEquals", "aws:TagKeys", ["a", "b", "c"], context)
    assert not _condition_test("ForAllValues:StringEquals", "aws:TagKeys", ["a"], context)
    assert _condition_test("ForAllValues:StringEquals", "aws:RequestTag/x", ["a"], context)  # missing: true
    assert _condition_test("Null", "aws:TagKeys", ["false"], context)
    assert _glob("arn:aws:cloudwatch:*:123:alarm:*", "arn:aws:cloudwatch:eu-central-1:123:alarm:High CPU")
    with pytest.raises(AssertionError):
        _condition_test("DateGreaterThan", "aws:CurrentTime", ["2020-01-01"], context)


# ---------------------------------------------------------------- item 3: who writes which prefix

WRITES = ("s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion")
PREFIX_WRITERS = {
    "models/manifest.json": {RETRAIN_ROLE},
    "models/model.joblib": {RETRAIN_ROLE},
    f"history/{GROUP}/2025/01/31.json.gz": {RETRAIN_ROLE},
    f"state/{GROUP}/predict-state.json": {PREDICT_ROLE},
    "proposals/events.json": {RETRAIN_ROLE},
}
EVERYONE = (PREDICT_ROLE, RETRAIN_ROLE, OPERATOR_ROLE, ADMIN_ROLE, ROOT)


@pytest.mark.parametrize("operator", ["", OPERATOR_ROLE])
def test_bucket_policy_lets_only_the_owner_of_each_prefix_change_it(operator):
    stack = RenderedStack(**({"ModelOperatorRoleArn": operator} if operator else {}))
    policy = stack.bucket_policy()
    for key, writers in PREFIX_WRITERS.items():
        allowed = writers | ({operator} if operator and key.startswith("models/") else set())
        for principal in EVERYONE:
            for action in WRITES:
                request = Request(action, f"{BUCKET_ARN}/{key}", principal)
                denied = bool(denying(policy, request))
                assert denied is (principal not in allowed), (
                    principal,
                    action,
                    key,
                    denying(policy, request),
                )
        # Anonymous requests carry no aws:PrincipalArn: the negated condition denies them.
        assert denying(policy, Request("s3:PutObject", f"{BUCKET_ARN}/{key}"))

    # Nothing that must keep working is caught: reads, listings, the 404 check, the
    # bucket's own configuration (an administrator can still change this policy), and
    # CopyObject's read of an older manifest version.
    for principal in EVERYONE:
        for action, resource in [
            ("s3:GetObject", f"{BUCKET_ARN}/models/manifest.json"),
            ("s3:GetObjectVersion", f"{BUCKET_ARN}/models/manifest.json"),
            ("s3:GetObject", f"{BUCKET_ARN}/state/{GROUP}/predict-state.json"),
            ("s3:ListBucket", BUCKET_ARN),
            ("s3:ListBucketVersions", BUCKET_ARN),
            ("s3:PutBucketPolicy", BUCKET_ARN),
            ("s3:PutLifecycleConfiguration", BUCKET_ARN),
        ]:
            assert not denying(policy, Request(action, resource, principal)), (principal, action)
    # Plain HTTP stays refused to everyone.
    insecure = Request(
        "s3:PutObject",
        f"{BUCKET_ARN}/models/model.joblib",
        RETRAIN_ROLE,
        context={"aws:SecureTransport": "false"},
    )
    assert "DenyInsecureTransport" in denying(policy, insecure)


def test_the_operator_role_parameter_takes_a_role_arn_or_nothing():
    parameter = root_template()["Parameters"]["ModelOperatorRoleArn"]
    assert parameter["Default"] == ""
    assert "rollback" in parameter["Description"]
    pattern = parameter["AllowedPattern"]
    for accepted in ("", OPERATOR_ROLE, ADMIN_ROLE, "arn:aws-cn:iam::123456789012:role/a/b/c"):
        assert re.fullmatch(pattern, accepted), accepted
    for rejected in (
        # A session ARN never equals aws:PrincipalArn (the role ARN).
        f"arn:aws:sts::{ACCOUNT}:assumed-role/model-operator/alice",
        f"arn:aws:iam::{ACCOUNT}:user/alice",
        ROOT,
        "model-operator",
    ):
        assert not re.fullmatch(pattern, rejected), rejected
    assert root_template()["Conditions"]["HasModelOperator"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "ModelOperatorRoleArn"}, ""]}]
    }


def test_predict_cannot_write_models_nor_retrain_state_in_either_layer():
    stack = RenderedStack()
    # The functions do what they must ...
    assert can_write(stack, "PredictFunction", f"state/{GROUP}/predict-state.json")
    for key in ("models/model.joblib", "models/manifest.json", f"history/{GROUP}/2025/01/31.json.gz"):
        assert can_write(stack, "RetrainFunction", key)
    # ... and no more: neither their role policies nor the bucket policy would let them.
    for function, key in [
        ("PredictFunction", "models/manifest.json"),
        ("PredictFunction", "models/model.joblib"),
        ("PredictFunction", f"history/{GROUP}/2025/01/31.json.gz"),
        ("RetrainFunction", f"state/{GROUP}/predict-state.json"),
    ]:
        principal = PREDICT_ROLE if function == "PredictFunction" else RETRAIN_ROLE
        for action in WRITES:
            request = Request(action, f"{BUCKET_ARN}/{key}", principal)
            assert not allows(stack.identity_statements(function), request), (function, action, key)
            assert denying(stack.bucket_policy(), request), (function, action, key)
    # Predict still reads what retrain writes.
    for key in ("models/manifest.json", f"history/{GROUP}/2025/01/30.json.gz"):
        assert allows(
            stack.identity_statements("PredictFunction"),
            Request("s3:GetObject", f"{BUCKET_ARN}/{key}", PREDICT_ROLE),
        )


def test_only_predict_reads_the_on_demand_quota_and_no_other():
    stack = RenderedStack()
    quota = f"arn:aws:servicequotas:{REGION}:{ACCOUNT}:ec2/L-1216C47A"
    predict = stack.identity_statements("PredictFunction")
    assert allows(predict, Request("servicequotas:GetServiceQuota", quota, PREDICT_ROLE))
    assert allows(predict, Request("ec2:DescribeInstanceTypes", "*", PREDICT_ROLE))
    for other in (
        f"arn:aws:servicequotas:{REGION}:{ACCOUNT}:ec2/L-34B43A08",
        f"arn:aws:servicequotas:{REGION}:{ACCOUNT}:vpc/L-F678F1CE",
    ):
        assert not allows(predict, Request("servicequotas:GetServiceQuota", other, PREDICT_ROLE))
    assert not allows(predict, Request("servicequotas:RequestServiceQuotaIncrease", quota, PREDICT_ROLE))
    retrain = stack.identity_statements("RetrainFunction")
    assert not allows(retrain, Request("servicequotas:GetServiceQuota", quota, RETRAIN_ROLE))


CALENDAR = "calendar/events.json"


@pytest.mark.parametrize("operator", ["", OPERATOR_ROLE])
def test_only_the_operator_writes_the_calendar_the_functions_only_read_it(operator):
    stack = RenderedStack(**({"ModelOperatorRoleArn": operator} if operator else {}))
    policy = stack.bucket_policy()
    for action in WRITES:
        for principal in (PREDICT_ROLE, RETRAIN_ROLE):
            request = Request(action, f"{BUCKET_ARN}/{CALENDAR}", principal)
            assert "CalendarNotByTheFunctions" in denying(policy, request), (principal, action)
        function = {"PredictFunction": PREDICT_ROLE, "RetrainFunction": RETRAIN_ROLE}
        for name, principal in function.items():
            assert not allows(
                stack.identity_statements(name), Request(action, f"{BUCKET_ARN}/{CALENDAR}", principal)
            )
        # The operator (and an administrator) writes it with their own policies.
        for principal in (OPERATOR_ROLE, ADMIN_ROLE):
            assert not denying(policy, Request(action, f"{BUCKET_ARN}/{CALENDAR}", principal)), principal
    # Both read it: predict to honour the events, retrain to learn from the past ones.
    for name, principal in (("PredictFunction", PREDICT_ROLE), ("RetrainFunction", RETRAIN_ROLE)):
        read = Request("s3:GetObject", f"{BUCKET_ARN}/{CALENDAR}", principal)
        assert allows(stack.identity_statements(name), read), name
        assert not denying(policy, read)
        # Only the calendar prefix: the read does not reach other keys through it.
        assert not allows(
            stack.identity_statements(name),
            Request("s3:GetObject", f"{BUCKET_ARN}/other/events.json", principal),
        )


PROPOSALS = "proposals/events.json"
TOKEN_SECRET = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:saleor/promotions-token-AbCdEf"
PROMOTIONS = {
    "SaleorApiUrl": "https://shop.example.com/graphql/",
    "SaleorPromotionsTokenSecretArn": TOKEN_SECRET,
}


def test_promotions_off_by_default_add_no_statement_and_no_variable():
    stack = RenderedStack()
    assert not stack.condition("ProposesFromShopPromotions")
    retrain = stack.identity_statements("RetrainFunction")
    assert not any("secretsmanager" in str(statement["Action"]) for statement in retrain)
    assert not allows(retrain, Request("s3:PutObject", f"{BUCKET_ARN}/{PROPOSALS}", RETRAIN_ROLE))
    variables = stack.render(stack.resource("RetrainFunction")["Properties"]["Environment"])["Variables"]
    assert "SALEOR_API_URL" not in variables
    assert "SALEOR_PROMOTIONS_TOKEN_SECRET_ARN" not in variables
    # One without the other is off too (and refused by the template's rule at deploy).
    for half in (
        {"SaleorApiUrl": PROMOTIONS["SaleorApiUrl"]},
        {"SaleorPromotionsTokenSecretArn": TOKEN_SECRET},
    ):
        assert not RenderedStack(**half).condition("ProposesFromShopPromotions")
    assert failed_rules(root_template()) == []
    assert failed_rules(root_template(), **PROMOTIONS) == []
    assert failed_rules(root_template(), SaleorApiUrl=PROMOTIONS["SaleorApiUrl"]) == [
        "ShopApiNeedsThePromotionsToken"
    ]
    assert failed_rules(root_template(), SaleorPromotionsTokenSecretArn=TOKEN_SECRET) == [
        "PromotionsTokenNeedsTheShopApi"
    ]


def test_with_promotions_retrain_reads_that_one_secret_and_alone_writes_the_proposals():
    stack = RenderedStack(**PROMOTIONS)
    retrain = stack.identity_statements("RetrainFunction")
    read = Request("secretsmanager:GetSecretValue", TOKEN_SECRET, RETRAIN_ROLE)
    assert allows(retrain, read)
    for other in (
        f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:rds!db-1234-AbCdEf",
        f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:saleor/promotions-token-XyZ123",
    ):
        assert not allows(retrain, Request("secretsmanager:GetSecretValue", other, RETRAIN_ROLE)), other
    for action in ("secretsmanager:PutSecretValue", "secretsmanager:DescribeSecret"):
        assert not allows(retrain, Request(action, TOKEN_SECRET, RETRAIN_ROLE)), action
    predict = stack.identity_statements("PredictFunction")
    assert not allows(predict, Request("secretsmanager:GetSecretValue", TOKEN_SECRET, PREDICT_ROLE))
    variables = stack.render(stack.resource("RetrainFunction")["Properties"]["Environment"])["Variables"]
    assert variables["SALEOR_API_URL"] == "https://shop.example.com/graphql/"
    assert variables["SALEOR_PROMOTIONS_TOKEN_SECRET_ARN"] == TOKEN_SECRET
    assert can_write(stack, "RetrainFunction", PROPOSALS)
    assert not can_write(stack, "RetrainFunction", "proposals/other.json")
    assert not can_write(stack, "RetrainFunction", CALENDAR)  # accepting is the operator's
    assert not can_write(stack, "PredictFunction", PROPOSALS)
    for principal in (PREDICT_ROLE, OPERATOR_ROLE, ADMIN_ROLE):
        request = Request("s3:PutObject", f"{BUCKET_ARN}/{PROPOSALS}", principal)
        assert denying(stack.bucket_policy(), request) == ["ProposalsOnlyByRetrain"], principal
    # The operator reads them (with their own policies): the bucket policy does not deny it.
    assert not denying(
        stack.bucket_policy(), Request("s3:GetObject", f"{BUCKET_ARN}/{PROPOSALS}", OPERATOR_ROLE)
    )


@pytest.mark.parametrize(
    ("parameter", "accepted", "rejected"),
    [
        (
            "SaleorApiUrl",
            ["", "https://shop.example.com/graphql/", "https://api.shop.example.com:8443/graphql/"],
            ["http://shop.example.com/graphql/", "https://user:pw@shop.example.com/", "shop.example.com",
             "https://shop.example.com/graphql/?x=1"],
        ),
        (
            "SaleorPromotionsTokenSecretArn",
            ["", TOKEN_SECRET, "arn:aws-cn:secretsmanager:cn-north-1:123456789012:secret:t-AbCdEf"],
            [f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:*", "saleor/promotions-token",
             f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/token"],
        ),
    ],
)  # fmt: skip
def test_the_promotions_parameters_take_what_they_say(parameter, accepted, rejected):
    spec = root_template()["Parameters"][parameter]
    assert spec["Default"] == ""
    for value in accepted:
        assert re.fullmatch(spec["AllowedPattern"], value), value
    for value in rejected:
        assert not re.fullmatch(spec["AllowedPattern"], value), value


# ---------------------------------------------------------------- item 4: a topic alarms can use


def _key(stack: RenderedStack) -> dict[str, Any]:
    keys = [name for name, r in stack.template["Resources"].items() if r["Type"] == "AWS::KMS::Key"]
    assert keys == ["NoticesKey"]
    properties: dict[str, Any] = stack.properties("NoticesKey")
    return properties


def test_key_rotates_and_lets_cloudwatch_alarms_of_this_account_use_it():
    stack = RenderedStack()
    key = _key(stack)
    assert key["EnableKeyRotation"] is True
    policy = key["KeyPolicy"]["Statement"]
    alarm = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:saleor-scaling-MonitoringStack-PredictErrors"
    for action in ("kms:Decrypt", "kms:GenerateDataKey"):
        ours = Request(
            action,
            KEY_ARN,
            service="cloudwatch.amazonaws.com",
            context={"aws:SourceAccount": ACCOUNT, "aws:SourceArn": alarm},
        )
        assert allows(policy, ours, resource_policy=True), action
        # The confused deputy: CloudWatch acting for an alarm of another account.
        other_alarm = alarm.replace(ACCOUNT, "999999999999")
        theirs = Request(
            action,
            KEY_ARN,
            service="cloudwatch.amazonaws.com",
            context={"aws:SourceAccount": "999999999999", "aws:SourceArn": other_alarm},
        )
        assert not allows(policy, theirs, resource_policy=True), action
    statement = next(s for s in policy if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"})
    assert sorted(_as_list(statement["Action"])) == ["kms:Decrypt", "kms:GenerateDataKey*"]
    assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": ACCOUNT}
    # CloudWatch may only use the key, never manage it.
    cloudwatch = Request(
        "kms:ScheduleKeyDeletion",
        KEY_ARN,
        service="cloudwatch.amazonaws.com",
        context={"aws:SourceAccount": ACCOUNT, "aws:SourceArn": alarm},
    )
    assert not allows(policy, cloudwatch, resource_policy=True)
    # The account administers it (and so can never lock itself out).
    for action in ("kms:PutKeyPolicy", "kms:ScheduleKeyDeletion", "kms:DescribeKey"):
        assert allows(policy, Request(action, KEY_ARN, ADMIN_ROLE), resource_policy=True), action
    assert stack.properties("NoticesKeyAlias") == {
        "AliasName": f"alias/{STACK}/notices",
        "TargetKeyId": KEY_ID,
    }


def test_topic_and_failure_queues_are_encrypted_with_the_key_and_alarms_reach_the_topic():
    stack = RenderedStack()
    _key(stack)
    assert stack.properties("AlarmTopic")["KmsMasterKeyId"] == KEY_ID
    queues = [name for name, r in stack.template["Resources"].items() if r["Type"] == "AWS::SQS::Queue"]
    assert sorted(queues) == ["PredictFailureQueue", "RetrainFailureQueue"]
    for queue in queues:
        properties = stack.properties(queue)
        assert properties["KmsMasterKeyId"] == KEY_ID, queue
        assert "SqsManagedSseEnabled" not in properties, queue
        skipped = {
            s["id"] for s in stack.resource(queue).get("Metadata", {}).get("checkov", {}).get("skip", [])
        }
        assert "CKV_AWS_27" not in skipped, queue
    # The topic policy lets this account's alarms publish, and the monitoring stack's
    # alarms are given this topic.
    topic_policy = stack.properties("AlarmTopicPolicy")["PolicyDocument"]["Statement"]
    alarm = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:saleor-scaling-MonitoringStack-HighCpu"
    publish = Request(
        "sns:Publish",
        TOPIC_ARN,
        service="cloudwatch.amazonaws.com",
        context={"aws:SourceAccount": ACCOUNT, "aws:SourceArn": alarm},
    )
    assert allows(topic_policy, publish, resource_policy=True)
    assert stack.properties("MonitoringStack")["Parameters"]["AlarmTopicArn"] == TOPIC_ARN
    monitoring = template("monitoring")
    actions = [
        r["Properties"]["AlarmActions"]
        for r in monitoring["Resources"].values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
    ]
    assert actions
    assert all(a == [{"Ref": "AlarmTopicArn"}] for a in actions)


@pytest.mark.parametrize("function", ["PredictFunction", "RetrainFunction"])
def test_functions_may_publish_to_the_encrypted_topic_and_queue(function):
    stack = RenderedStack()
    statements = stack.identity_statements(function)
    principal = PREDICT_ROLE if function == "PredictFunction" else RETRAIN_ROLE
    queue = RESOURCE_ATTRIBUTES[function.replace("Function", "FailureQueue") + ".Arn"]
    assert allows(statements, Request("sns:Publish", TOPIC_ARN, principal))
    assert allows(statements, Request("sqs:SendMessage", queue, principal))
    for action in ("kms:GenerateDataKey", "kms:Decrypt"):
        assert allows(statements, Request(action, KEY_ARN, principal)), action
        # Only this key.
        other = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/ffffffff-0000-0000-0000-000000000000"
        assert not allows(statements, Request(action, other, principal)), action
    # Using a key is not managing it.
    assert not allows(statements, Request("kms:ScheduleKeyDeletion", KEY_ARN, principal))
    # The key policy delegates to IAM policies of this account: together they allow.
    key_policy = _key(stack)["KeyPolicy"]["Statement"]
    assert allows(key_policy, Request("kms:GenerateDataKey", KEY_ARN, principal), resource_policy=True)


# ---------------------------------------------------------------- item 5: IAM tightened


@pytest.mark.parametrize(
    ("function", "role", "writable", "deletable"),
    [
        (
            "PredictFunction",
            PREDICT_ROLE,
            (LEASE_TAG,),
            (BASE_MIN_SIZE_TAG, APPLIED_MIN_SIZE_TAG),
        ),
        (
            "WatchdogFunction",
            WATCHDOG_ROLE,
            (LEASE_TAG,),
            (LEASE_TAG, BASE_MIN_SIZE_TAG, APPLIED_MIN_SIZE_TAG),
        ),
    ],
)
def test_functions_tag_only_the_floor_lease(function, role, writable, deletable):
    stack = RenderedStack()
    statements = stack.identity_statements(function)
    group_arn = (
        f"arn:aws:autoscaling:{REGION}:{ACCOUNT}:autoScalingGroup:0f1e2d3c-uuid:autoScalingGroupName/{GROUP}"
    )

    def tag(*keys: str, action: str = "autoscaling:CreateOrUpdateTags", arn: str = group_arn) -> Request:
        return Request(action, arn, role, context={"aws:TagKeys": list(keys)})

    for key in writable:
        assert allows(statements, tag(key))
    assert not allows(statements, tag("Name"))
    assert not allows(statements, tag(LEASE_TAG, "environment"))
    assert not allows(statements, Request("autoscaling:CreateOrUpdateTags", group_arn, role))  # no keys
    for key in (LEASE_TAG, BASE_MIN_SIZE_TAG, APPLIED_MIN_SIZE_TAG, "Name"):
        assert allows(statements, tag(key, action="autoscaling:DeleteTags")) == (key in deletable), key
    # The capacity call itself, only on the shop's group.
    assert allows(statements, Request("autoscaling:UpdateAutoScalingGroup", group_arn, role))
    another_group = group_arn.replace(GROUP, "another-group")
    assert not allows(statements, tag(LEASE_TAG, arn=another_group))
    assert not allows(statements, Request("autoscaling:UpdateAutoScalingGroup", another_group, role))


@pytest.mark.parametrize(
    ("function", "readable"),
    [
        ("PredictFunction", ("models/", "history/", "state/", "calendar/")),
        ("RetrainFunction", ("models/", "history/", "calendar/")),
    ],
)
def test_list_bucket_only_under_the_prefixes_each_function_reads(function, readable):
    stack = RenderedStack()
    statements = stack.identity_statements(function)
    principal = PREDICT_ROLE if function == "PredictFunction" else RETRAIN_ROLE

    def listing(prefix: str | None) -> Request:
        context = {} if prefix is None else {"s3:prefix": prefix}
        return Request("s3:ListBucket", BUCKET_ARN, principal, context=context)

    for prefix in (
        "models/",
        "history/",
        "state/",
        f"state/{GROUP}/",
        "calendar/",
        "models/manifest.json",
        "other/",
        "",
        "mod",
    ):
        expected = any(prefix.startswith(own) for own in readable)
        assert allows(statements, listing(prefix)) is expected, (function, prefix)
    # S3's own ListBucket check for a GetObject of a missing key carries no prefix; it
    # must pass, or a missing state, model or history day reads as 403, not 404.
    assert allows(statements, listing(None))
    listed = [s for s in statements if "s3:ListBucket" in _as_list(s["Action"])]
    assert listed
    assert all("Condition" in s for s in listed)


def test_model_bucket_access_is_logged_to_a_locked_down_bucket():
    stack = RenderedStack()
    model_bucket = stack.resource("ModelBucket")
    skipped = {s["id"] for s in model_bucket.get("Metadata", {}).get("checkov", {}).get("skip", [])}
    assert "CKV_AWS_18" not in skipped
    logging = stack.properties("ModelBucket")["LoggingConfiguration"]
    assert logging["DestinationBucketName"] == LOG_BUCKET
    prefix = logging["LogFilePrefix"]
    assert prefix.endswith("/")

    log_bucket = stack.resource("ModelAccessLogBucket")
    assert log_bucket["DeletionPolicy"] == "Retain"
    properties = stack.properties("ModelAccessLogBucket")
    # Server access logs are delivered only to SSE-S3 buckets.
    (rule,) = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    assert all(properties["PublicAccessBlockConfiguration"].values())
    assert len(properties["PublicAccessBlockConfiguration"]) == 4
    assert properties["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    (expiry,) = properties["LifecycleConfiguration"]["Rules"]
    assert expiry["Status"] == "Enabled"
    assert int(expiry["ExpirationInDays"]) == 90
    assert (
        int(
            RenderedStack(ModelAccessLogRetentionDays="365").properties("ModelAccessLogBucket")[
                "LifecycleConfiguration"
            ]["Rules"][0]["ExpirationInDays"]
        )
        == 365
    )

    policy = stack.properties("ModelAccessLogBucketPolicy")
    assert policy["Bucket"] == LOG_BUCKET
    statements = policy["PolicyDocument"]["Statement"]
    log_object = f"arn:aws:s3:::{LOG_BUCKET}/{prefix}2025/01/31/log-object"
    delivery = {"aws:SourceArn": BUCKET_ARN, "aws:SourceAccount": ACCOUNT}
    assert allows(
        statements,
        Request("s3:PutObject", log_object, service="logging.s3.amazonaws.com", context=delivery),
        resource_policy=True,
    )
    # Only for the model bucket's logs, and only under its prefix.
    elsewhere = {"aws:SourceArn": "arn:aws:s3:::somebody-elses-bucket", "aws:SourceAccount": "999999999999"}
    assert not allows(
        statements,
        Request("s3:PutObject", log_object, service="logging.s3.amazonaws.com", context=elsewhere),
        resource_policy=True,
    )
    outside = f"arn:aws:s3:::{LOG_BUCKET}/other/object"
    assert not allows(
        statements,
        Request("s3:PutObject", outside, service="logging.s3.amazonaws.com", context=delivery),
        resource_policy=True,
    )
    insecure = Request("s3:GetObject", log_object, ADMIN_ROLE, context={"aws:SecureTransport": "false"})
    assert denying(statements, insecure)


def test_the_tag_keys_allowed_are_the_ones_the_code_writes():
    from saleor_scaling.lease import PROJECT_TAG_KEYS

    assert (LEASE_TAG, BASE_MIN_SIZE_TAG, APPLIED_MIN_SIZE_TAG) == PROJECT_TAG_KEYS


def test_retrain_may_read_the_group_for_the_replay_and_change_nothing_on_it():
    retrain = RenderedStack().identity_statements("RetrainFunction")
    group_arn = f"arn:aws:autoscaling:{REGION}:{ACCOUNT}:autoScalingGroup:uuid:autoScalingGroupName/{GROUP}"
    assert allows(retrain, Request("autoscaling:DescribeAutoScalingGroups", "*", RETRAIN_ROLE))
    for action in (
        "autoscaling:UpdateAutoScalingGroup",
        "autoscaling:SetDesiredCapacity",
        "autoscaling:CreateOrUpdateTags",
        "autoscaling:DeleteTags",
        "autoscaling:PutScalingPolicy",
        "autoscaling:PutWarmPool",
    ):
        assert not allows(retrain, Request(action, group_arn, RETRAIN_ROLE)), action
