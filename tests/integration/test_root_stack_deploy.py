"""The whole application deployed as a user deploys it: `template.yaml` packaged by SAM
CLI's packager, expanded by the SAM translator SAM CLI ships, and created with one
CreateStack (root plus its nested stacks) in emulated AWS, with the default parameters
and with those of an existing shop (docs/infrastructure.md). Then the real retrain and
predict handlers run against that deployment, configured only from its outputs and the
deployed functions' environment.

moto's gaps are patched inside the test only (tests/integration/root_stack.py names each).
The resource types moto cannot create are recorded by stand-ins and checked here twice:
their settings on the expanded templates, their wiring (what CloudFormation resolved their
Refs to) against the deployed resources. `test_no_resource_type_goes_unchecked` fails for
a resource type that is neither."""

from __future__ import annotations

import ast
import fnmatch
import inspect
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import numpy as np
import pytest
from moto import mock_aws
from moto.cloudformation import parsing

from saleor_scaling import settings as settings_module
from saleor_scaling.adapters.s3_store import S3ModelRegistry
from saleor_scaling.lease import LEASE_TAG, PROJECT_TAG_KEYS, Lease
from saleor_scaling.local.emulator import (
    EmulatedShop,
    LocalLambdaContext,
    create_shop,
    load_balancer_full_name,
    publish_history,
    scheduled_event,
    set_function_clock,
)
from saleor_scaling.settings import ModelLocation
from tests.conftest import REPO_ROOT, load_handler, synthetic_history
from tests.infra.cfn import load
from tests.infra.test_tier_options import failed_rules
from tests.integration.cfn_response import ResponseCatcher
from tests.integration.conftest import MONDAY, emitted_metrics, iso
from tests.integration.root_stack import (
    ACCOUNT,
    ARTIFACT_BUCKET,
    REGION,
    ROOT_TEMPLATE,
    Deployment,
    Recorded,
    Stack,
    child_templates,
    default_stack_name,
    deploy_root_stack,
    expand,
    missing_types,
    package,
    read_policy_document,
    samconfig,
)

pytestmark = pytest.mark.filterwarnings(
    "ignore:Tried to parse .* but it's not supported:UserWarning",
)

EXISTING_GROUP = "saleor-shop-asg"
NO_PHYSICAL_ID_IN_MOTO = {
    "AWS::Lambda::LayerVersion",
    "AWS::Lambda::Permission",
    "AWS::EC2::SecurityGroupIngress",
    "AWS::RDS::DBSubnetGroup",
}
ALARM_EMAIL = "ops@example.com"
SALEOR_API_URL = "https://shop.example.com/graphql/"
PROMOTIONS_TOKEN_SECRET = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:saleor/promotions-token-AbCdEf"


def existing_shop_parameters(session: boto3.session.Session) -> dict[str, str]:
    """An existing shop's group, load balancer and target group, made before the deploy, and
    the parameters that point the stack at them (docs/infrastructure.md)."""
    shop = create_shop(session, group_name=EXISTING_GROUP, desired=2, max_size=20, bucket="shop-unrelated")
    elbv2 = session.client("elbv2")
    vpc = session.client("ec2").describe_vpcs(Filters=[{"Name": "cidr", "Values": ["10.0.0.0/16"]}])["Vpcs"][
        0
    ]
    target_group = elbv2.create_target_group(
        Name="saleor-api", Protocol="HTTP", Port=8000, VpcId=vpc["VpcId"]
    )["TargetGroups"][0]["TargetGroupArn"]
    return {
        "ExistingAutoScalingGroupName": shop.group_name,
        "ExistingLoadBalancerFullName": shop.load_balancer_full_name,
        "ExistingTargetGroupFullName": target_group.rsplit(":", 1)[1],
        # The existing shop lets predict scale, and a bigger retrain: parameters flow through.
        "ScalingMode": "forecast-and-scale",
        "RetrainMemorySize": "2048",
        "AlarmEmail": ALARM_EMAIL,
        # Predict sizes the shop's own warm pool (issue 25): its role gains the two actions.
        "WarmPoolMaxSizeByPredict": "2",
        # Retrain proposes events from the shop's promotions (off by default).
        "SaleorApiUrl": SALEOR_API_URL,
        "SaleorPromotionsTokenSecretArn": PROMOTIONS_TOKEN_SECRET,
    }


def tier_options_parameters(session: boto3.session.Session) -> dict[str, str]:
    """The Saleor tier's optional parts at once (docs/infrastructure.md), given to the root:
    Spot and mixed instance types, a Multi-AZ read replica, a Route 53 alias record."""
    zone = session.client("route53").create_hosted_zone(Name="example.com", CallerReference="shop")
    return {
        "InstanceType": "c6i.large",
        "AdditionalInstanceTypes": "c7i.large,c6a.large",
        "OnDemandBaseCapacity": "1",
        "OnDemandPercentageAboveBaseCapacity": "25",
        "DatabaseReadReplica": "multi-az",
        "DbConnMaxAgeSeconds": "60",
        "HostedZoneId": zone["HostedZone"]["Id"].rsplit("/", 1)[1],
        "ShopDomainName": "shop.example.com",
    }


CASES: dict[str, Callable[[boto3.session.Session], dict[str, str]]] = {
    "defaults": lambda session: {},
    "existing-shop": existing_shop_parameters,
    "tier-options": tier_options_parameters,
}


@dataclass
class Deployed:
    case: str
    parameters: dict[str, str]
    deployment: Deployment

    @property
    def session(self) -> boto3.session.Session:
        return self.deployment.session

    @property
    def root(self) -> Stack:
        return self.deployment.root

    def parameter(self, name: str) -> str:
        """The parameter as deployed: the override, else the template's default."""
        if name in self.parameters:
            return self.parameters[name]
        return str(self.root.template["Parameters"][name].get("Default", ""))

    @property
    def creates_tier(self) -> bool:
        return not self.parameter("ExistingAutoScalingGroupName")

    def function(self, logical_id: str) -> dict[str, Any]:
        return dict(
            self.session.client("lambda").get_function_configuration(
                FunctionName=self.root.resources[logical_id]
            )
        )

    def group_name(self) -> str:
        """The group the deployment scales: the app stack's own, or the existing one."""
        if self.creates_tier:
            return self.deployment.nested["AppStack"].resources["AutoScalingGroup"]
        return self.parameters["ExistingAutoScalingGroupName"]

    def load_balancer_full_name(self) -> str:
        if self.creates_tier:
            arn = self.deployment.nested["AppStack"].resources["LoadBalancer"]
            return load_balancer_full_name(arn)
        return self.parameters["ExistingLoadBalancerFullName"]

    def stand_in(self, stack: Stack, logical_id: str) -> Recorded:
        return self.deployment.recorded(stack, logical_id)


@pytest.fixture(scope="module", params=sorted(CASES))
def deployed(request: pytest.FixtureRequest) -> Iterator[Deployed]:
    """One deployment per case, shared by the module's tests (a deploy takes seconds)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": REGION,
        }.items():
            monkeypatch.setenv(name, value)
        with mock_aws():
            session = boto3.session.Session(region_name=REGION)
            # What `sam deploy` sends: samconfig.toml's overrides, the case's on top.
            parameters = {**samconfig().parameter_overrides, **CASES[request.param](session)}
            yield Deployed(request.param, parameters, deploy_root_stack(session, monkeypatch, parameters))


# ---------------------------------------------------------------- conditions, as CloudFormation


def evaluate(node: Any, parameters: dict[str, str], conditions: dict[str, Any]) -> Any:
    """A condition or value of a template: Ref to a parameter, Fn::Equals/Not/And/Or,
    Condition. Anything else is an error, so a new construct cannot pass unseen."""
    if isinstance(node, dict):
        ((key, value),) = node.items()
        if key == "Ref":
            return parameters[value]
        if key == "Condition":
            return evaluate(conditions[value], parameters, conditions)
        if key == "Fn::Equals":
            left, right = (evaluate(v, parameters, conditions) for v in value)
            return str(left) == str(right)
        if key == "Fn::Not":
            return not evaluate(value[0], parameters, conditions)
        if key == "Fn::And":
            return all(evaluate(v, parameters, conditions) for v in value)
        if key == "Fn::Or":
            return any(evaluate(v, parameters, conditions) for v in value)
        raise ValueError(f"cannot evaluate {key}")
    return node


def holds(template: dict[str, Any], declared: dict[str, Any], parameters: dict[str, str]) -> bool:
    """Whether a resource or output with a Condition is created with these parameters."""
    condition = declared.get("Condition")
    if condition is None:
        return True
    conditions = template.get("Conditions", {})
    values = {name: str(spec.get("Default", "")) for name, spec in template.get("Parameters", {}).items()}
    values.update(parameters)
    return bool(evaluate(conditions[condition], values, conditions))


def created(stack: Stack) -> dict[str, str]:
    """Logical id -> type of every resource the stack's template creates with its parameters."""
    return {
        logical_id: resource["Type"]
        for logical_id, resource in stack.template["Resources"].items()
        if holds(stack.template, resource, stack.parameters)
    }


# ---------------------------------------------------------------- every stack, every resource


def test_every_stack_is_created_complete_with_every_resource(deployed):
    root = deployed.root
    assert root.name == default_stack_name() == "saleor-predictive-scaling"
    assert root.status == "CREATE_COMPLETE"
    # The stack runs with samconfig.toml's and the case's overrides, every other at its default.
    reported = dict(root.parameters)
    for name, spec in root.template["Parameters"].items():
        if spec["Type"] == "CommaDelimitedList" and reported[name].startswith("["):
            # moto reports a list given as the Python repr of the list
            reported[name] = ",".join(ast.literal_eval(reported[name]))
    assert reported == {name: deployed.parameter(name) for name in root.template["Parameters"]}
    # moto ignores Rules; CloudFormation refuses a stack whose parameters fail one (the
    # root repeats the app stack's own rules, tests/infra/test_tier_options.py).
    assert failed_rules(load(ROOT_TEMPLATE), **deployed.parameters) == []
    nested = {
        logical_id
        for logical_id, resource in root.template["Resources"].items()
        if resource["Type"] == "AWS::CloudFormation::Stack"
        and holds(root.template, resource, deployed.parameters)
    }
    assert set(deployed.deployment.nested) == nested
    if deployed.creates_tier:
        assert nested == {"NetworkStack", "SecurityStack", "DataStack", "AppStack", "MonitoringStack"}
    else:
        assert nested == {"MonitoringStack"}  # the existing shop brings its own tier
    for stack in deployed.deployment.stacks():
        assert stack.status == "CREATE_COMPLETE", stack.name
        expected = created(stack)
        # moto's null models (a WaitConditionHandle) create nothing; checked on the template.
        expected = {k: t for k, t in expected.items() if t not in parsing.NULL_MODELS}
        assert stack.resource_types == expected, stack.name
        # moto gap: its LayerVersion, Permission, SecurityGroupIngress and DBSubnetGroup
        # models report no physical id; each is checked through its own API below
        # (list_layers, get_policy, describe_security_groups, describe_db_instances).
        missing_id = {k for k, v in stack.resources.items() if not v}
        assert {stack.resource_types[k] for k in missing_id} <= NO_PHYSICAL_ID_IN_MOTO, stack.name
    for logical_id in nested:
        child = deployed.deployment.nested[logical_id]
        assert child.name.startswith(f"{root.name}-{logical_id}-")
        assert root.resources[logical_id] == child.name


def test_outputs_name_the_deployed_resources(deployed):
    root = deployed.root
    outputs = root.outputs
    declared = {
        name
        for name, output in root.template["Outputs"].items()
        if holds(root.template, output, deployed.parameters)
    }
    assert set(outputs) == declared
    group = deployed.group_name()
    assert outputs["AutoScalingGroupName"] == group
    assert outputs["LoadBalancerFullName"] == deployed.load_balancer_full_name()
    described = deployed.session.client("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[group]
    )
    (described_group,) = described["AutoScalingGroups"]
    if deployed.creates_tier:
        assert outputs["AutoScalingGroupArn"] == described_group["AutoScalingGroupARN"]
        host = deployed.parameter("ShopDomainName") or outputs["LoadBalancerDnsName"]
        assert outputs["ShopUrl"] == f"http://{host}/graphql/"
    else:
        assert fnmatch.fnmatchcase(described_group["AutoScalingGroupARN"], outputs["AutoScalingGroupArn"])
        assert outputs["TargetGroupFullName"] == deployed.parameters["ExistingTargetGroupFullName"]
    if deployed.parameter("HostedZoneId"):
        # The alias record in the given zone points at the deployed load balancer.
        route53 = deployed.session.client("route53")
        records = route53.list_resource_record_sets(HostedZoneId=deployed.parameter("HostedZoneId"))
        (alias,) = [r for r in records["ResourceRecordSets"] if r["Type"] == "A"]
        assert alias["Name"].rstrip(".") == deployed.parameter("ShopDomainName")
        assert alias["AliasTarget"]["DNSName"].rstrip(".") == outputs["LoadBalancerDnsName"]
        assert "ResourceRecords" not in alias  # an alias, not a CNAME
    assert outputs["ModelBucketName"] == root.resources["ModelBucket"]
    assert outputs["AlarmTopicArn"] == root.resources["AlarmTopic"]
    assert outputs["PredictFunctionName"] == root.resources["PredictFunction"]
    assert outputs["RetrainFunctionName"] == root.resources["RetrainFunction"]
    assert outputs["ScalingMode"] == deployed.parameter("ScalingMode")
    s3 = deployed.session.client("s3")
    assert s3.get_bucket_versioning(Bucket=outputs["ModelBucketName"])["Status"] == "Enabled"
    topics = [t["TopicArn"] for t in deployed.session.client("sns").list_topics()["Topics"]]
    assert outputs["AlarmTopicArn"] in topics


# ---------------------------------------------------------------- the functions


def test_functions_run_as_declared_on_the_deployed_names(deployed):
    root = deployed.root
    globals_ = root.template.get("Globals")  # the translator has merged them away
    assert globals_ is None
    expected = {
        # logical id: (service, memory, timeout)
        "PredictFunction": ("predict", 512, 300),
        "RetrainFunction": ("retrain", int(deployed.parameter("RetrainMemorySize")), 600),
    }
    lambda_client = deployed.session.client("lambda")
    # The translator gives each layer version a content-hashed logical id: SklearnLayer<hash>.
    layers = [
        next(
            lid
            for lid, kind in root.resource_types.items()
            if kind == "AWS::Lambda::LayerVersion" and lid.startswith(name)
        )
        for name in ("SklearnLayer", "DomainLayer")
    ]
    for logical_id, (service, memory, timeout) in expected.items():
        function = deployed.function(logical_id)
        declared = root.template["Resources"][logical_id]["Properties"]
        assert function["Runtime"] == declared["Runtime"] == "python3.13", logical_id
        assert function["Handler"] == "app.lambda_handler"
        assert (function["MemorySize"], function["Timeout"]) == (memory, timeout), logical_id
        concurrency = lambda_client.get_function_concurrency(FunctionName=function["FunctionName"])
        assert concurrency["ReservedConcurrentExecutions"] == 1, logical_id  # never two runs at once
        environment = function["Environment"]["Variables"]
        assert environment["AUTO_SCALING_GROUP_NAME"] == deployed.group_name()
        assert environment["LOAD_BALANCER_FULL_NAME"] == deployed.load_balancer_full_name()
        assert environment["MODEL_BUCKET"] == root.resources["ModelBucket"]
        assert environment["NOTIFICATION_TOPIC_ARN"] == root.resources["AlarmTopic"]
        assert environment["POWERTOOLS_SERVICE_NAME"] == service
        # Every variable the template declares for these parameters arrived, and no other.
        assert set(environment) == declared_variables(deployed, declared), logical_id
        role = function["Role"].rsplit("/", 1)[1]
        assert role == root.resources[f"{logical_id}Role"]
        # moto's CloudFormation drops Layers, TracingConfig and LoggingConfig: on the template.
        assert [layer["Ref"] for layer in declared["Layers"]] == layers
        assert declared["TracingConfig"] == {"Mode": "Active"}
        assert declared["LoggingConfig"]["LogGroup"] == {"Ref": logical_id.replace("Function", "LogGroup")}
        assert declared["Architectures"] == ["x86_64"]
        assert declared["Code"]["S3Bucket"] == ARTIFACT_BUCKET  # packaged, not a local path
        assert declared["Code"]["S3Key"]
    predict = deployed.function("PredictFunction")["Environment"]["Variables"]
    assert predict["SCALING_MODE"] == deployed.parameter("ScalingMode")
    assert predict["EVENT_CLOCK_CHECK"] == "on"
    # The watchdog: no layers (what breaks predict's cannot stop it), the deployed group.
    watchdog = deployed.function("WatchdogFunction")
    declared = root.template["Resources"]["WatchdogFunction"]["Properties"]
    assert "Layers" not in declared
    assert (watchdog["Runtime"], watchdog["MemorySize"], watchdog["Timeout"]) == ("python3.13", 128, 30)
    concurrency = lambda_client.get_function_concurrency(FunctionName=watchdog["FunctionName"])
    assert concurrency["ReservedConcurrentExecutions"] == 1
    environment = watchdog["Environment"]["Variables"]
    assert environment["AUTO_SCALING_GROUP_NAME"] == deployed.group_name()
    assert environment["FALLBACK_RELEASE_MINUTES"] == predict["FALLBACK_RELEASE_MINUTES"]
    published = sorted(layer["LayerName"] for layer in lambda_client.list_layers()["Layers"])
    assert [name.rsplit("-", 1)[0] for name in published] == sorted(f"{root.name}-{lid}" for lid in layers)


def declared_variables(deployed: Deployed, declared: dict[str, Any]) -> set[str]:
    """The environment variables a function's template gives it with the deployed
    parameters: a variable whose Fn::If falls to AWS::NoValue is not one."""
    template = deployed.root.template
    conditions = template.get("Conditions", {})
    values = {name: deployed.parameter(name) for name in template["Parameters"]}
    names = set()
    for name, value in declared["Environment"]["Variables"].items():
        if isinstance(value, dict) and "Fn::If" in value:
            condition, _, otherwise = value["Fn::If"]
            dropped = otherwise == {"Ref": "AWS::NoValue"}
            if dropped and not evaluate(conditions[condition], values, conditions):
                continue
        names.add(name)
    return names


def test_promotions_from_the_shop_only_where_asked_for(deployed):
    """Off by default: no variable and no statement; on (the existing shop): retrain gets the
    URL and the secret's ARN, may read that secret and write the proposals, nothing more."""
    retrain = deployed.function("RetrainFunction")["Environment"]["Variables"]
    statements = _statements(deployed.session, deployed.root.resources["RetrainFunctionRole"])
    bucket = f"arn:aws:s3:::{deployed.root.resources['ModelBucket']}"
    if deployed.case == "existing-shop":
        assert retrain["SALEOR_API_URL"] == SALEOR_API_URL
        assert retrain["SALEOR_PROMOTIONS_TOKEN_SECRET_ARN"] == PROMOTIONS_TOKEN_SECRET
        assert statements["ReadShopPromotionsToken"]["Action"] == "secretsmanager:GetSecretValue"
        assert statements["ReadShopPromotionsToken"]["Resource"] == PROMOTIONS_TOKEN_SECRET
        assert statements["WriteProposedEvents"]["Resource"] == f"{bucket}/proposals/events.json"
    else:
        assert "SALEOR_API_URL" not in retrain
        assert "SALEOR_PROMOTIONS_TOKEN_SECRET_ARN" not in retrain
        assert "ReadShopPromotionsToken" not in statements
        assert "WriteProposedEvents" not in statements
    secret_actions = [s for s in statements.values() if "secretsmanager" in str(s["Action"])]
    assert len(secret_actions) == (1 if deployed.case == "existing-shop" else 0)


def test_schedules_target_the_right_functions(deployed):
    root = deployed.root
    events = deployed.session.client("events")
    lambda_client = deployed.session.client("lambda")
    schedules = {
        "PredictFunction": "rate(5 minutes)",
        "RetrainFunction": deployed.parameter("RetrainSchedule"),
        "WatchdogFunction": "rate(5 minutes)",
    }
    rules = {lid for lid, kind in root.resource_types.items() if kind == "AWS::Events::Rule"}
    assert len(rules) == len(schedules)
    targeted: dict[str, str] = {}
    for logical_id in rules:
        rule = events.describe_rule(Name=root.resources[logical_id])
        assert rule["State"] == "ENABLED"
        (target,) = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
        function_name = target["Arn"].rsplit(":", 1)[1]
        targeted[function_name] = rule["ScheduleExpression"]
        # Lambda lets exactly this rule invoke the function.
        statements = read_policy_document(lambda_client.get_policy(FunctionName=function_name)["Policy"])[
            "Statement"
        ]
        sources = [
            s["Condition"]["ArnLike"]["AWS:SourceArn"]
            for s in statements
            if s["Principal"] == {"Service": "events.amazonaws.com"}
        ]
        assert sources == [rule["Arn"]]
    assert targeted == {root.resources[fn]: expression for fn, expression in schedules.items()}


def _statements(session: boto3.session.Session, role: str) -> dict[str, dict[str, Any]]:
    iam = session.client("iam")
    statements: dict[str, dict[str, Any]] = {}
    for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        document = read_policy_document(iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"])
        # SAM's own statements (the failure destination's) carry no Sid.
        statements.update({s.get("Sid", f"{name}-{i}"): s for i, s in enumerate(document["Statement"])})
    return statements


def test_predict_role_scales_only_the_deployed_group(deployed):
    root, group = deployed.root, deployed.group_name()
    predict = _statements(deployed.session, root.resources["PredictFunctionRole"])
    pattern = f"arn:aws:autoscaling:{REGION}:{ACCOUNT}:autoScalingGroup:*:autoScalingGroupName/{group}"
    assert predict["ScaleTheShopGroupOnly"]["Action"] == "autoscaling:UpdateAutoScalingGroup"
    assert predict["ScaleTheShopGroupOnly"]["Resource"] == pattern
    assert predict["TagOnlyTheFloorLease"]["Resource"] == pattern
    assert predict["TagOnlyTheFloorLease"]["Action"] == "autoscaling:CreateOrUpdateTags"
    # Only with WarmPoolMaxSizeByPredict above 0 (tests/infra/test_warm_pool.py).
    if deployed.case == "existing-shop":
        assert predict["SizeTheShopGroupsWarmPool"]["Action"] == "autoscaling:PutWarmPool"
        assert predict["SizeTheShopGroupsWarmPool"]["Resource"] == pattern
        assert predict["ReadTheWarmPool"]["Action"] == "autoscaling:DescribeWarmPool"
    else:
        assert not any("WarmPool" in str(statement["Action"]) for statement in predict.values())
    watchdog = _statements(deployed.session, root.resources["WatchdogFunctionRole"])
    assert watchdog["LowerTheFloorOfTheShopGroupOnly"]["Resource"] == pattern
    assert watchdog["TagOnlyTheFloorLease"]["Resource"] == pattern
    arn = deployed.session.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[group])[
        "AutoScalingGroups"
    ][0]["AutoScalingGroupARN"]
    assert fnmatch.fnmatchcase(arn, pattern)  # IAM's * matches the group's id
    bucket = f"arn:aws:s3:::{root.resources['ModelBucket']}"
    assert predict["KeepDecisionState"]["Resource"] == f"{bucket}/state/*"
    assert predict["Notify"]["Resource"] == root.resources["AlarmTopic"]
    retrain = _statements(deployed.session, root.resources["RetrainFunctionRole"])
    # Retrain never scales: it reads the group's bounds for the shortfall goal's replay only.
    assert retrain["ReadTheGroupBounds"]["Action"] == "autoscaling:DescribeAutoScalingGroups"
    others = [s for sid, s in retrain.items() if sid != "ReadTheGroupBounds"]
    assert not any("autoscaling" in str(s["Action"]) for s in others)
    assert retrain["ModelsAndHistory"]["Resource"] == [f"{bucket}/models/*", f"{bucket}/history/*"]


# ---------------------------------------------------------------- what moto skips


def _queue_arn(deployed: Deployed, logical_id: str) -> str:
    url = deployed.root.resources[logical_id]
    attributes = deployed.session.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["QueueArn"]
    )
    arn: str = attributes["Attributes"]["QueueArn"]
    return arn


def check_event_invoke_configs(deployed: Deployed) -> None:
    root = deployed.root
    limits = {
        "PredictFunction": (1, 240),
        "RetrainFunction": (2, 3600),
        "WatchdogFunction": (0, 240),  # the next scheduled run does the same
    }  # predict never acts on a stale event
    configs = {lid: r for lid, r in root.resource_types.items() if r == "AWS::Lambda::EventInvokeConfig"}
    assert len(configs) == len(limits)
    for logical_id in configs:
        recorded = deployed.stand_in(root, logical_id).properties
        function = next(f for f in limits if recorded["FunctionName"] == root.resources[f])
        assert recorded["Qualifier"] == "$LATEST"
        assert (recorded["MaximumRetryAttempts"], recorded["MaximumEventAgeInSeconds"]) == limits[function]
        if function == "WatchdogFunction":
            assert not recorded.get("DestinationConfig")  # SAM writes an empty one
            continue
        queue = function.replace("Function", "FailureQueue")
        assert recorded["DestinationConfig"]["OnFailure"]["Destination"] == _queue_arn(deployed, queue)


def check_bucket_policies(deployed: Deployed) -> None:
    root = deployed.root
    iam = deployed.session.client("iam")

    def role_arn(logical_id: str) -> str:
        arn: str = iam.get_role(RoleName=root.resources[logical_id])["Role"]["Arn"]
        return arn

    model = deployed.stand_in(root, "ModelBucketPolicy").properties
    assert model["Bucket"] == root.resources["ModelBucket"]
    statements = {s["Sid"]: s for s in model["PolicyDocument"]["Statement"]}
    bucket = f"arn:aws:s3:::{root.resources['ModelBucket']}"
    writers = {
        "ModelsOnlyByRetrainOrOperator": ("models", [role_arn("RetrainFunctionRole")]),
        "HistoryOnlyByRetrain": ("history", role_arn("RetrainFunctionRole")),
        "StateOnlyByPredict": ("state", role_arn("PredictFunctionRole")),
    }
    for sid, (prefix, principal) in writers.items():
        statement = statements[sid]
        assert statement["Effect"] == "Deny"
        assert statement["Resource"] == f"{bucket}/{prefix}/*"
        assert statement["Condition"]["ArnNotEquals"]["aws:PrincipalArn"] == principal, sid
    assert statements["DenyInsecureTransport"]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    logs = deployed.stand_in(root, "ModelAccessLogBucketPolicy").properties
    assert logs["Bucket"] == root.resources["ModelAccessLogBucket"]
    delivery = next(s for s in logs["PolicyDocument"]["Statement"] if s["Sid"] == "ServerAccessLogDelivery")
    assert delivery["Condition"]["ArnLike"]["aws:SourceArn"] == bucket
    if deployed.creates_tier:
        app = deployed.deployment.nested["AppStack"]
        for logical_id, kind in app.resource_types.items():
            if kind == "AWS::S3::BucketPolicy":
                recorded = deployed.stand_in(app, logical_id).properties
                assert recorded["Bucket"] in app.resources.values()


def check_topic_policy(deployed: Deployed) -> None:
    root = deployed.root
    recorded = deployed.stand_in(root, "AlarmTopicPolicy").properties
    assert recorded["Topics"] == [root.resources["AlarmTopic"]]
    (statement,) = recorded["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert statement["Resource"] == root.resources["AlarmTopic"]
    assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == ACCOUNT


def check_alarms(deployed: Deployed) -> None:
    monitoring = deployed.deployment.nested["MonitoringStack"]
    alarms = [lid for lid, kind in monitoring.resource_types.items() if kind == "AWS::CloudWatch::Alarm"]
    assert len(alarms) >= 4
    named = set()
    for logical_id in alarms:
        recorded = deployed.stand_in(monitoring, logical_id).properties
        assert recorded["AlarmActions"] == [deployed.root.resources["AlarmTopic"]], logical_id
        for dimension in recorded.get("Dimensions", []):
            value = dimension["Value"]
            named.add(dimension["Name"])
            if dimension["Name"] == "FunctionName":
                # PredictErrorsAlarm watches predict, RetrainErrorsAlarm retrain.
                owner = next((f for f in ("Predict", "Retrain") if logical_id.startswith(f)), None)
                assert owner, logical_id
                assert value == deployed.root.resources[f"{owner}Function"], logical_id
            elif dimension["Name"] == "AutoScalingGroupName":
                assert value == deployed.group_name(), logical_id
            elif dimension["Name"] == "LoadBalancer":
                assert value == deployed.load_balancer_full_name(), logical_id
            elif dimension["Name"] == "TargetGroup":
                assert value == deployed.root.outputs["TargetGroupFullName"], logical_id
        for query in recorded.get("Metrics", []):
            for dimension in query.get("MetricStat", {}).get("Metric", {}).get("Dimensions", []):
                if dimension["Name"] == "AutoScalingGroupName":
                    assert dimension["Value"] == deployed.group_name(), logical_id
    assert {"FunctionName", "AutoScalingGroupName"} <= named


def check_subscriptions(deployed: Deployed) -> None:
    monitoring = deployed.deployment.nested["MonitoringStack"]
    subscriptions = [
        lid for lid, kind in monitoring.resource_types.items() if kind == "AWS::SNS::Subscription"
    ]
    if not deployed.parameter("AlarmEmail"):
        assert subscriptions == []
        return
    (logical_id,) = subscriptions
    recorded = deployed.stand_in(monitoring, logical_id).properties
    assert recorded == {
        "Protocol": "email",
        "Endpoint": ALARM_EMAIL,
        "TopicArn": deployed.root.resources["AlarmTopic"],
    }


def check_scaling_policies(deployed: Deployed) -> None:
    if not deployed.creates_tier:
        return
    app = deployed.deployment.nested["AppStack"]
    policies = [
        deployed.stand_in(app, lid).properties
        for lid, k in app.resource_types.items()
        if k == "AWS::AutoScaling::ScalingPolicy"
    ]
    by_metric = {
        p["TargetTrackingConfiguration"]["PredefinedMetricSpecification"]["PredefinedMetricType"]: p
        for p in policies
    }
    assert set(by_metric) == {"ASGAverageCPUUtilization", "ALBRequestCountPerTarget"}
    for policy in policies:
        assert policy["AutoScalingGroupName"] == deployed.group_name()
        assert policy["PolicyType"] == "TargetTrackingScaling"
    cpu = by_metric["ASGAverageCPUUtilization"]["TargetTrackingConfiguration"]
    requests = by_metric["ALBRequestCountPerTarget"]["TargetTrackingConfiguration"]
    assert str(cpu["TargetValue"]) == deployed.parameter("TargetCpuPercent")
    assert str(requests["TargetValue"]) == deployed.parameter("CapacityPerInstance")
    # The request policy watches the deployed load balancer's deployed target group.
    label = requests["PredefinedMetricSpecification"]["ResourceLabel"]
    assert label == f"{deployed.load_balancer_full_name()}/{deployed.root.outputs['TargetGroupFullName']}"


def check_security_groups(deployed: Deployed) -> None:
    """Egress (a stand-in) and ingress (deployed, without a physical id in moto): the
    instances reach only the data tier; only the load balancer reaches the instances."""
    if not deployed.creates_tier:
        return
    security = deployed.deployment.nested["SecurityStack"]
    outputs = security.outputs
    ec2 = deployed.session.client("ec2")

    def sources(group: str, port: int) -> set[str]:
        rules = ec2.describe_security_groups(GroupIds=[outputs[group]])["SecurityGroups"][0]["IpPermissions"]
        return {
            pair["GroupId"] for rule in rules if rule["FromPort"] == port for pair in rule["UserIdGroupPairs"]
        }

    instances = outputs["InstanceSecurityGroupId"]
    assert sources("InstanceSecurityGroupId", 8000) == {outputs["LoadBalancerSecurityGroupId"]}
    assert sources("DatabaseSecurityGroupId", 5432) == {instances}
    assert sources("CacheSecurityGroupId", 6379) == {instances}
    egress = {
        (r["GroupId"], r["FromPort"], r["DestinationSecurityGroupId"])
        for lid, kind in security.resource_types.items()
        if kind == "AWS::EC2::SecurityGroupEgress"
        for r in [deployed.stand_in(security, lid).properties]
    }
    assert egress == {
        (outputs["InstanceSecurityGroupId"], 5432, outputs["DatabaseSecurityGroupId"]),
        (outputs["InstanceSecurityGroupId"], 6379, outputs["CacheSecurityGroupId"]),
    }


def check_data_tier_stand_ins(deployed: Deployed) -> None:
    """ElastiCache and Secrets Manager: the cache in the database subnets behind its own
    group; the app stack receives exactly the data stack's endpoints and secrets."""
    if not deployed.creates_tier:
        return
    nested = deployed.deployment.nested
    data, app = nested["DataStack"], nested["AppStack"]
    subnet_group = deployed.stand_in(data, "CacheSubnetGroup")
    assert subnet_group.properties["SubnetIds"] == nested["NetworkStack"].outputs["DatabaseSubnetIds"].split(
        ","
    )
    cache = deployed.stand_in(data, "Cache").properties
    assert cache["CacheSubnetGroupName"] == subnet_group.physical_id
    assert cache["SecurityGroupIds"] == [nested["SecurityStack"].outputs["CacheSecurityGroupId"]]
    assert cache["CacheNodeType"] == deployed.parameter("CacheNodeType")
    assert (cache["TransitEncryptionEnabled"], cache["AtRestEncryptionEnabled"]) == (True, True)
    secrets = {lid: r for lid, r in data.resource_types.items() if r == "AWS::SecretsManager::Secret"}
    assert secrets
    for logical_id in secrets:
        recorded = deployed.stand_in(data, logical_id)
        assert "SecretString" not in recorded.properties  # generated by Secrets Manager, or written later
        assert recorded.physical_id in data.outputs.values()
    database = deployed.session.client("rds").describe_db_instances(
        DBInstanceIdentifier=data.resources["Database"]
    )["DBInstances"][0]
    assert (
        database["Endpoint"]["Address"]
        == data.outputs["DatabaseEndpoint"]
        == app.parameters["DatabaseEndpoint"]
    )
    assert len(database["DBInstanceIdentifier"]) <= 63  # RDS's limit, kept by CloudFormation's generated name
    assert {subnet["SubnetIdentifier"] for subnet in database["DBSubnetGroup"]["Subnets"]} == set(
        nested["NetworkStack"].outputs["DatabaseSubnetIds"].split(",")
    )
    for name in (
        "CacheEndpoint",
        "CacheAuthTokenArn",
        "SaleorSecretKeyArn",
        "JwtSigningKeyArn",
        "DatabaseSecretArn",
    ):
        assert app.parameters[name] == data.outputs[name], name


def check_floor_lease_release(deployed: Deployed) -> None:
    """`sam delete` gives the floor back: the custom resource names the watchdog and the
    deployed group, predict is deleted before it, and the real watchdog handler, sent the
    Delete request CloudFormation sends, gives MinSize back and removes the lease."""
    root = deployed.root
    recorded = deployed.stand_in(root, "FloorLeaseRelease").properties
    watchdog = deployed.function("WatchdogFunction")
    group = deployed.group_name()
    assert recorded == {"ServiceToken": watchdog["FunctionArn"], "AutoScalingGroupName": group}
    assert root.template["Resources"]["PredictFunction"]["DependsOn"] == "FloorLeaseRelease"
    autoscaling = deployed.session.client("autoscaling")
    before = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"][0]
    operator_min = before["MinSize"]
    autoscaling.update_auto_scaling_group(AutoScalingGroupName=group, MinSize=operator_min + 3)
    autoscaling.create_or_update_tags(
        Tags=[
            {
                "ResourceId": group,
                "ResourceType": "auto-scaling-group",
                "Key": LEASE_TAG,
                "Value": Lease(operator_min + 3, operator_min + 3, operator_min, 10**10, 0).encode(),
                "PropagateAtLaunch": False,
            }
        ]
    )
    catcher = ResponseCatcher()
    try:
        handler = load_handler("watchdog")
        handler.custom_resource(
            {
                "RequestType": "Delete",
                "ResponseURL": catcher.url,
                "StackId": root.stack_id,
                "RequestId": "delete-1",
                "LogicalResourceId": "FloorLeaseRelease",
                "PhysicalResourceId": f"floor-lease-{group}",
                "ResourceType": "Custom::FloorLeaseRelease",
                "ResourceProperties": recorded,
            },
            autoscaling,
        )
    finally:
        catcher.close()
    assert [body["Status"] for body in catcher.bodies] == ["SUCCESS"]
    after = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"][0]
    assert after["MinSize"] == operator_min
    assert not {tag["Key"] for tag in after.get("Tags", [])} & set(PROJECT_TAG_KEYS)
    # The deployment is shared with the other tests: the capacity the raised MinSize
    # brought goes back as it was (an instance target tracking would have removed).
    autoscaling.set_desired_capacity(AutoScalingGroupName=group, DesiredCapacity=before["DesiredCapacity"])


def check_warm_pool(deployed: Deployed) -> None:
    """The warm pool is off unless asked for: none of its resources exists in a tier deployed
    without WarmPoolState. Its resources with a pool: tests/infra/test_warm_pool.py."""
    if not deployed.creates_tier:
        return
    assert deployed.parameter("WarmPoolState") == "Disabled"
    kinds = set(deployed.deployment.nested["AppStack"].resource_types.values())
    assert not kinds & {"AWS::AutoScaling::WarmPool", "AWS::AutoScaling::LifecycleHook", "AWS::IAM::Policy"}
    hooks = deployed.session.client("autoscaling").describe_lifecycle_hooks(
        AutoScalingGroupName=deployed.group_name()
    )
    assert hooks["LifecycleHooks"] == []


def check_first_retrain(deployed: Deployed) -> None:
    """The custom resource names the watchdog and the deployed retrain function, and only
    the watchdog's role may invoke it (the run itself: the tests below)."""
    recorded = deployed.stand_in(deployed.root, "FirstRetrain").properties
    assert recorded == {
        "ServiceToken": deployed.function("WatchdogFunction")["FunctionArn"],
        "RetrainFunctionArn": deployed.function("RetrainFunction")["FunctionArn"],
    }
    statements = _statements(deployed.session, deployed.root.resources["WatchdogFunctionRole"])
    assert statements["StartTheFirstRetrain"]["Action"] == "lambda:InvokeFunction"
    assert statements["StartTheFirstRetrain"]["Resource"] == recorded["RetrainFunctionArn"]


# Every resource type moto's CloudFormation cannot create, and what checks it instead.
SKIPPED_BY_MOTO: dict[str, Callable[[Deployed], None]] = {
    "AWS::Lambda::EventInvokeConfig": check_event_invoke_configs,
    "AWS::S3::BucketPolicy": check_bucket_policies,
    "AWS::SNS::TopicPolicy": check_topic_policy,
    "AWS::CloudWatch::Alarm": check_alarms,
    "AWS::SNS::Subscription": check_subscriptions,
    "AWS::AutoScaling::ScalingPolicy": check_scaling_policies,
    "AWS::EC2::SecurityGroupEgress": check_security_groups,
    "AWS::ElastiCache::ReplicationGroup": check_data_tier_stand_ins,
    "AWS::ElastiCache::SubnetGroup": check_data_tier_stand_ins,
    "AWS::SecretsManager::Secret": check_data_tier_stand_ins,
    "Custom::FloorLeaseRelease": check_floor_lease_release,
    "AWS::AutoScaling::WarmPool": check_warm_pool,
    "AWS::AutoScaling::LifecycleHook": check_warm_pool,
    "Custom::FirstRetrain": check_first_retrain,
}
# moto's null models: accepted, nothing created (AWS creates nothing for them either).
NULL_IN_MOTO = {
    "AWS::CloudFormation::WaitConditionHandle": "tests/infra/test_nested_stacks.py (ListenersReady ordering)",
}
# Types moto creates, and where the deployed resource is checked beyond "it exists".
DEPLOYED_AND_CHECKED = {
    "AWS::CloudFormation::Stack": "test_every_stack_is_created_complete_with_every_resource",
    "AWS::Lambda::Function": "test_functions_run_as_declared_on_the_deployed_names",
    "AWS::Lambda::LayerVersion": "test_functions_run_as_declared_on_the_deployed_names",
    "AWS::Lambda::Permission": "test_schedules_target_the_right_functions",
    "AWS::Events::Rule": "test_schedules_target_the_right_functions",
    "AWS::IAM::Role": "test_predict_role_scales_only_the_deployed_group; test_nested_stacks (instance role)",
    "AWS::S3::Bucket": "test_outputs_name_the_deployed_resources; the handlers' run",
    "AWS::SNS::Topic": "test_outputs_name_the_deployed_resources",
    "AWS::SQS::Queue": "check_event_invoke_configs",
    "AWS::KMS::Key": "test_security_policies",
    "AWS::KMS::Alias": "test_security_policies",
    "AWS::Logs::LogGroup": "test_functions_run_as_declared_on_the_deployed_names (LoggingConfig)",
    "AWS::AutoScaling::AutoScalingGroup": "test_outputs_name_the_deployed_resources; the handlers' run",
    "AWS::EC2::LaunchTemplate": "test_nested_stacks",
    "AWS::ElasticLoadBalancingV2::LoadBalancer": "test_outputs_name_the_deployed_resources",
    "AWS::ElasticLoadBalancingV2::TargetGroup": "check_scaling_policies",
    "AWS::ElasticLoadBalancingV2::Listener": "test_nested_stacks",
    "AWS::IAM::InstanceProfile": "test_nested_stacks",
    "AWS::EC2::VPC": "test_nested_stacks",
    "AWS::EC2::Subnet": "check_data_tier_stand_ins; test_nested_stacks",
    "AWS::EC2::InternetGateway": "test_nested_stacks",
    "AWS::EC2::VPCGatewayAttachment": "test_nested_stacks",
    "AWS::EC2::EIP": "test_nested_stacks",
    "AWS::EC2::NatGateway": "test_nested_stacks",
    "AWS::EC2::RouteTable": "test_nested_stacks",
    "AWS::EC2::Route": "test_nested_stacks",
    "AWS::EC2::SubnetRouteTableAssociation": "test_nested_stacks",
    "AWS::EC2::VPCEndpoint": "test_nested_stacks",
    "AWS::EC2::FlowLog": "test_nested_stacks",
    "AWS::EC2::SecurityGroup": "check_security_groups; test_nested_stacks",
    "AWS::EC2::SecurityGroupIngress": "check_security_groups; test_nested_stacks",
    "AWS::RDS::DBInstance": "check_data_tier_stand_ins; test_nested_stacks",
    "AWS::RDS::DBSubnetGroup": "check_data_tier_stand_ins; test_nested_stacks",
    "AWS::CloudWatch::Dashboard": "test_nested_stacks",
    "AWS::Route53::RecordSet": "test_outputs_name_the_deployed_resources (tier-options); test_tier_options",
    "AWS::IAM::Policy": "tests/infra/test_warm_pool.py (the warm pool's hook permission, deployed)",
}


def test_what_moto_skips_is_wired_to_the_deployment(deployed):
    checks = {check for kind, check in SKIPPED_BY_MOTO.items()}
    for check in sorted(checks, key=lambda c: c.__name__):
        check(deployed)
    # Every stand-in the deployment created is one of the types checked above.
    assert {r.resource_type for r in deployed.deployment.stand_ins.recorded.values()} <= set(SKIPPED_BY_MOTO)


def test_no_resource_type_goes_unchecked():
    """Every resource type of the expanded root (either case) and of each nested template
    is either created by moto and checked, or skipped by moto and checked on the templates
    and its stand-in. A new type fails here until it is listed with its check."""
    with mock_aws():
        session = boto3.session.Session(region_name=REGION)
        packaged = package(session)
        templates = [
            expand(packaged, {}, session),
            expand(
                packaged,
                {"ExistingAutoScalingGroupName": "g", "ExistingLoadBalancerFullName": "app/a/0"},
                session,
            ),
            *child_templates().values(),
        ]
    types = {r["Type"] for body in templates for r in body["Resources"].values()}
    unchecked = types - set(SKIPPED_BY_MOTO) - set(NULL_IN_MOTO) - set(DEPLOYED_AND_CHECKED)
    assert not unchecked, (
        f"resource types neither deployed and checked nor checked on the template: {unchecked}"
    )
    # The lists match moto: a type moto gains (or loses) support for moves between them.
    assert missing_types(templates) == set(SKIPPED_BY_MOTO) & types
    assert set(NULL_IN_MOTO) & types <= set(parsing.NULL_MODELS)
    assert not set(DEPLOYED_AND_CHECKED) & (set(SKIPPED_BY_MOTO) | set(NULL_IN_MOTO))


def test_samconfig_grants_the_capabilities_the_templates_need():
    """moto creates any stack; CloudFormation refuses one without the capabilities it
    needs (InsufficientCapabilities): CAPABILITY_IAM for IAM resources (NAMED_IAM if they
    carry custom names), CAPABILITY_AUTO_EXPAND for a template with a transform and nested
    stacks."""
    root = load(ROOT_TEMPLATE)
    templates = [root, *child_templates().values()]
    needed = set()
    iam = [
        resource
        for body in templates
        for resource in body["Resources"].values()
        if resource["Type"].startswith("AWS::IAM::") or resource["Type"] == "AWS::Serverless::Function"
    ]
    if iam:
        needed.add("CAPABILITY_IAM")
    custom_names = {"RoleName", "UserName", "GroupName", "InstanceProfileName", "ManagedPolicyName"}
    if any(custom_names & set(r.get("Properties", {})) for r in iam):
        needed.add("CAPABILITY_NAMED_IAM")
    if "Transform" in root:
        needed.add("CAPABILITY_AUTO_EXPAND")
    assert needed == {"CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"}
    assert needed <= set(samconfig().capabilities)
    # Each override in samconfig.toml names a template parameter, with a value it allows.
    for name, value in samconfig().parameter_overrides.items():
        allowed = root["Parameters"][name].get("AllowedValues")
        assert allowed is None or value in allowed, name


# ---------------------------------------------------------------- the handlers on the deployment

HISTORY_DAYS = 11
DEPLOYED_AT = MONDAY + HISTORY_DAYS * 86400 + 12 * 3600 + 5 * 60  # 12:05 UTC, 11 days of metrics
PREDICT_AT = DEPLOYED_AT + 10 * 60 + 17  # 12:15:17, load rising: the first run after the deploy


def configure_from_function(deployed: Deployed, monkeypatch: pytest.MonkeyPatch, logical_id: str) -> None:
    """The handler's environment: exactly the deployed function's, plus what Lambda itself
    sets (the region). X-Ray is off: no daemon runs here."""
    # Nothing the settings could read may come from the test process instead: every name
    # settings.py reads, and Powertools', unless the deployed function sets it.
    read = set(re.findall(r'"([A-Z][A-Z0-9_]{2,})"', inspect.getsource(settings_module)))
    for name in list(os.environ):
        if name in read or name.startswith("POWERTOOLS_"):
            monkeypatch.delenv(name)
    # Lambda holds environment values as strings; moto keeps a Number parameter's integer.
    for name, value in deployed.function(logical_id)["Environment"]["Variables"].items():
        monkeypatch.setenv(name, str(value))
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")


class DeployedLambda:
    """What Lambda does with the watchdog's asynchronous Invoke of the retrain function:
    runs the real retrain handler, configured exactly as the deployed function, with the
    payload the watchdog sent."""

    def __init__(self, deployed: Deployed, monkeypatch: pytest.MonkeyPatch) -> None:
        self.deployed, self.monkeypatch = deployed, monkeypatch
        self.results: list[dict[str, Any]] = []

    def invoke(self, FunctionName: str, InvocationType: str, Payload: bytes) -> dict[str, Any]:  # noqa: N803
        retrain = self.deployed.function("RetrainFunction")
        assert FunctionName == retrain["FunctionArn"]
        assert InvocationType == "Event"
        configure_from_function(self.deployed, self.monkeypatch, "RetrainFunction")
        handler = load_handler("retrain")
        self.results.append(
            handler.lambda_handler(json.loads(Payload), LocalLambdaContext(retrain["FunctionName"]))
        )
        return {"StatusCode": 202}


def first_retrain_at_deploy(deployed: Deployed, monkeypatch: pytest.MonkeyPatch, now: int) -> dict[str, Any]:
    """CloudFormation's Create of FirstRetrain, sent to the real watchdog handler with the
    properties CloudFormation resolved: the retraining it starts, and its outcome."""
    recorded = deployed.stand_in(deployed.root, "FirstRetrain").properties
    lambda_client = DeployedLambda(deployed, monkeypatch)
    catcher = ResponseCatcher()
    try:
        load_handler("watchdog").first_retrain(
            {
                "RequestType": "Create",
                "ResponseURL": catcher.url,
                "StackId": deployed.root.stack_id,
                "RequestId": "create-1",
                "LogicalResourceId": "FirstRetrain",
                "ResourceType": "Custom::FirstRetrain",
                "ResourceProperties": recorded,
            },
            lambda_client,
            now,
        )
    finally:
        catcher.close()
    assert [body["Status"] for body in catcher.bodies] == ["SUCCESS"]
    (result,) = lambda_client.results
    return result


def shop_of(deployed: Deployed) -> EmulatedShop:
    outputs = deployed.root.outputs
    return EmulatedShop(
        group_name=outputs["AutoScalingGroupName"],
        load_balancer_full_name=outputs["LoadBalancerFullName"],
        bucket=outputs["ModelBucketName"],
        topic_arn=outputs["AlarmTopicArn"],
        region=REGION,
    )


def run_predict(deployed: Deployed, monkeypatch: pytest.MonkeyPatch, now: int) -> dict[str, Any]:
    configure_from_function(deployed, monkeypatch, "PredictFunction")
    predict = load_handler("predict")
    predict.reset_dependencies()
    set_function_clock(predict, lambda: now + 3.0)
    decision: dict[str, Any] = predict.lambda_handler(
        scheduled_event(iso(now)), LocalLambdaContext(deployed.root.outputs["PredictFunctionName"])
    )
    return decision


def test_a_shop_with_history_forecasts_the_hour_it_is_deployed(deployed, monkeypatch):
    """An existing shop's metrics are already in CloudWatch (11 days, no backup yet): the
    retraining the deploy starts promotes a full model, and the first predict run after
    the deploy forecasts with it, configured only from the stack's outputs and the
    deployed functions' environment."""
    if deployed.case == "tier-options":
        pytest.skip("the tier's options change nothing the handlers read: the defaults' run covers it")
    shop = shop_of(deployed)
    session = deployed.session
    history = synthetic_history(MONDAY, HISTORY_DAYS + 1, peak_per_minute=6_000.0, seed=5)
    publish_history(session, shop, history.window(MONDAY, DEPLOYED_AT - DEPLOYED_AT % 300), DEPLOYED_AT)

    result = first_retrain_at_deploy(deployed, monkeypatch, DEPLOYED_AT)

    assert result["status"] == "promoted", result.get("reason")
    assert result["stage"] == "full"
    registry = S3ModelRegistry(session.client("s3"), ModelLocation(bucket=shop.bucket))
    promoted = registry.current()
    assert promoted.model_version_id == result["model"]["model_version_id"]
    environment = deployed.function("RetrainFunction")["Environment"]["Variables"]
    assert promoted.timezone == environment["SHOP_TIMEZONE"]
    # The newest complete bucket is 10 minutes old; the deployed lead time comes on top.
    assert promoted.horizon_steps * 5 == 10 + int(environment["LEAD_TIME_MINUTES"])
    assert promoted.model_key.startswith("models/")
    # The deploy-time run backed the CloudWatch days up, as a nightly run does.
    assert result["history"]["days_backed_up"] >= HISTORY_DAYS

    publish_history(
        session,
        shop,
        history.window(DEPLOYED_AT - DEPLOYED_AT % 300, PREDICT_AT - PREDICT_AT % 300),
        PREDICT_AT,
    )
    group_before = _group(session, shop.group_name)
    decision = run_predict(deployed, monkeypatch, PREDICT_AT)
    assert decision["model"]["model_version_id"] == promoted.model_version_id
    assert decision["mode"] == deployed.parameter("ScalingMode")
    actual = float(history.demand_per_minute()[(PREDICT_AT - PREDICT_AT % 300 + 600 - MONDAY) // 300])
    assert decision["forecast"]["demand_mean_per_minute"] == pytest.approx(actual, rel=0.15)
    group_after = _group(session, shop.group_name)
    target = decision["decision"]["target"]
    assert target > group_before["DesiredCapacity"]  # the midday rise needs more than the group has
    if deployed.parameter("ScalingMode") == "forecast-only":
        assert decision["status"] == "decided"
        assert (group_after["DesiredCapacity"], group_after["MinSize"]) == (
            group_before["DesiredCapacity"],
            group_before["MinSize"],
        )
    else:
        assert decision["status"] == "scaled"
        assert group_after["DesiredCapacity"] == target
        assert group_after["MinSize"] == decision["decision"]["floor"] > group_before["MinSize"]
        tags = {t["Key"]: t["Value"] for t in group_after["Tags"]}
        assert f" base={group_before['MinSize']} " in tags["saleor-predictive-scaling:lease"]
    # The decision state lives in the deployed bucket, under the deployed group's name.
    state = session.client("s3").list_objects_v2(Bucket=shop.bucket, Prefix="state/")
    assert [o["Key"] for o in state.get("Contents", [])] == [f"state/{shop.group_name}/predict-state.json"]
    assert np.isfinite(decision["forecast"]["capacity_upper"])

    # The README's rehearsal, against this deployed stack with read-only credentials:
    # the same slot twice, decided, nothing written.
    rehearse_twice_read_only(deployed, monkeypatch, PREDICT_AT + 300)


def rehearse_twice_read_only(deployed: Deployed, monkeypatch: pytest.MonkeyPatch, now: int) -> None:
    from tests.integration.test_dry_run import ReadOnly

    session, group = deployed.session, deployed.group_name()
    bucket = deployed.root.outputs["ModelBucketName"]

    def snapshot() -> tuple[Any, ...]:
        described = _group(session, group)
        versions = session.client("s3").list_object_versions(Bucket=bucket)
        return (
            described["DesiredCapacity"],
            described["MinSize"],
            sorted((tag["Key"], tag["Value"]) for tag in described.get("Tags", [])),
            sorted(version["VersionId"] for version in versions.get("Versions", [])),
        )

    configure_from_function(deployed, monkeypatch, "PredictFunction")
    predict = load_handler("predict")
    predict.reset_dependencies()
    _, ports = predict.dependencies()
    for port in (ports.group, ports.state, ports.notifier, ports.metrics, ports.models, ports.archive):
        if hasattr(port, "_client"):
            monkeypatch.setattr(port, "_client", ReadOnly(port._client))
    set_function_clock(predict, lambda: now + 3.0)
    event = json.loads((REPO_ROOT / "events" / "dry-run.json").read_text())
    event["time"] = iso(now - now % 300)
    before = snapshot()
    for _ in range(2):
        result = predict.lambda_handler(
            event, LocalLambdaContext(deployed.root.outputs["PredictFunctionName"])
        )
        assert result["status"] == "dry-run", result["reason"]
        assert result["dry_run"]["would_be"] in ("scaled", "decided")
        assert result["dry_run"]["would"][0].startswith("record slot")
    assert snapshot() == before
    predict.reset_dependencies()


NEW_SHOP_OPENS = MONDAY + 100 * 86400  # far from the other test's days: its metrics are not in these windows


def test_a_new_shop_warms_up_without_a_fallback_and_forecasts_from_day_two(deployed, monkeypatch, capsys):
    """A new Saleor tier has no metrics when it is deployed: the first retraining leaves a
    warm-up notice, predict is "warming up" (never FallbackUsed, which the fallback alarm
    reads), and the nightly retraining two days on promotes a daily-stage model that the
    next predict run forecasts with."""
    if deployed.case != "defaults":
        pytest.skip("the new Saleor tier is the defaults' case")
    shop = shop_of(deployed)
    session = deployed.session
    # The shop before: the other test's model is removed, as a new bucket has none.
    s3 = session.client("s3")
    for key in ("models/manifest.json", "models/model.npz", "models/warm-up.json"):
        s3.delete_object(Bucket=shop.bucket, Key=key)
    history = synthetic_history(NEW_SHOP_OPENS, 3, peak_per_minute=6_000.0, seed=8)
    published = NEW_SHOP_OPENS

    def advance(now: int) -> None:
        nonlocal published
        until = now - now % 300
        publish_history(session, shop, history.window(published, until), now)
        published = until

    deployed_at = NEW_SHOP_OPENS + 5 * 60
    first = first_retrain_at_deploy(deployed, monkeypatch, deployed_at)
    assert first["status"] == "refused"
    assert first["warm_up"]["first_model_after"] == iso(deployed_at + 2 * 86400)  # no metric yet: from now

    statuses = []
    for day, hour in ((0, 12), (1, 12), (2, 12)):
        nightly = NEW_SHOP_OPENS + day * 86400 + 3 * 3600 + 15 * 60
        if day:
            advance(nightly)
            configure_from_function(deployed, monkeypatch, "RetrainFunction")
            nightly_result = load_handler("retrain").lambda_handler(
                scheduled_event(iso(nightly)), LocalLambdaContext("retrain")
            )
            assert nightly_result["status"] == ("refused" if day == 1 else "promoted"), nightly_result[
                "reason"
            ]
        now = NEW_SHOP_OPENS + day * 86400 + hour * 3600 + 17
        advance(now)
        capsys.readouterr()
        decision = run_predict(deployed, monkeypatch, now)
        metrics = emitted_metrics(capsys.readouterr().out)
        assert "FallbackUsed" not in metrics, decision["reason"]
        statuses.append(decision["status"])
        if decision["status"] == "warming-up":
            assert metrics["WarmingUp"] == 1
            assert metrics["HoursToFirstModel"] == decision["warm_up"]["hours_to_first_model"] > 0

    assert statuses[:2] == ["warming-up", "warming-up"]
    assert statuses[2] in ("decided", "scaled")
    manifest = S3ModelRegistry(s3, ModelLocation(bucket=shop.bucket)).current()
    assert manifest.stage == "daily"
    assert decision["model"]["stage"] == "daily"
    assert decision["forecast"]["demand_mean_per_minute"] > 0
    # Promoted: the notice is gone, so a manifest deleted from now on is a fallback.
    assert S3ModelRegistry(s3, ModelLocation(bucket=shop.bucket)).warm_up() is None


def _group(session: boto3.session.Session, name: str) -> dict[str, Any]:
    groups = session.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[name])
    return dict(groups["AutoScalingGroups"][0])
