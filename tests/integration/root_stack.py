"""The root stack deployed into emulated AWS as `sam deploy` deploys it: packaged by SAM
CLI's own packager, expanded by the SAM translator SAM CLI ships, created with one
CreateStack (root plus its nested stacks) in moto.

`sam deploy` uploads the code and the nested templates (`sam package`), then asks
CloudFormation for a change set of the packaged template; CloudFormation runs the
`AWS::Serverless-2016-10-31` transform and creates the stacks. moto has no transform, so
the test runs the translator itself, offline, before its one CreateStack. What else moto
lacks is patched here, inside the test only, each patch named after the gap it covers
(`patch_moto_gaps`); none of our templates is changed to suit moto.

What moto's CloudFormation cannot create at all is replaced by a `StandIn` that creates
nothing but records the properties CloudFormation resolved for it (Refs to the deployed
group, function, topic...), so that the tests can check those resources' wiring and, on
the expanded templates, their settings: nothing is silently skipped.

What the patches make moto do is what AWS documents (CloudFormation Template Reference,
"Return values" of each type, unless named otherwise):

- AWS::CloudFormation::Stack, `Fn::GetAtt` `Outputs.NestedStackOutputName`: "Returns the
  output value from the specified nested stack".
- AWS::ElasticLoadBalancingV2::LoadBalancer `LoadBalancerFullName`: "The full name of the
  load balancer. For example, app/my-load-balancer/50dc6c495c0c9188"; ::TargetGroup
  `TargetGroupFullName`: "The full name of the target group. For example,
  targetgroup/my-target-group/cbf133c568e0d028"; `CanonicalHostedZoneID`: "The ID of the
  Amazon Route 53 hosted zone associated with the load balancer"; AWS::AutoScaling::AutoScalingGroup
  `AutoScalingGroupARN`: the group's ARN.
- AWS::RDS::DBInstance `MasterUserSecret.SecretArn`: "The Amazon Resource Name (ARN) of
  the secret" RDS manages for the master user (RDS names it `rds!db-<uuid>`). Its
  `DBInstanceIdentifier`: "If you don't specify a name, AWS CloudFormation generates a
  unique physical ID and uses that ID for the DB instance"; the identifier "Must contain
  from 1 to 63 letters, numbers, or hyphens" (RDS API, CreateDBInstance).
- `Ref` of AWS::SecretsManager::Secret, AWS::AutoScaling::ScalingPolicy and
  AWS::SNS::Subscription returns the resource's ARN; of the other stand-in types, its
  name or id.
- `AWS::NoValue` (pseudo parameters reference): "Removes the corresponding resource
  property when specified as a return value in the Fn::If intrinsic function."
- S3 `VersioningConfiguration` of AWS::S3::Bucket: "Enables multiple versions of all
  objects in this bucket."
"""

from __future__ import annotations

import json
import tomllib
import uuid
from dataclasses import dataclass, field
from typing import Any, ClassVar

import boto3
import pytest
from moto.autoscaling.models import FakeAutoScalingGroup
from moto.cloudformation import models as cloudformation_models
from moto.cloudformation import parsing
from moto.elbv2.models import FakeLoadBalancer, FakeTargetGroup
from moto.rds.models import DBInstance
from moto.s3.models import FakeBucket, s3_backends
from samcli.cli.types import CfnParameterOverridesType  # type: ignore[import-untyped]
from samcli.lib.package.artifact_exporter import Template  # type: ignore[import-untyped]
from samcli.lib.package.code_signer import CodeSigner  # type: ignore[import-untyped]
from samcli.lib.package.ecr_uploader import ECRUploader  # type: ignore[import-untyped]
from samcli.lib.package.s3_uploader import S3Uploader  # type: ignore[import-untyped]
from samcli.lib.package.uploaders import Uploaders  # type: ignore[import-untyped]
from samtranslator.parser.parser import Parser  # type: ignore[import-untyped]
from samtranslator.translator.translator import Translator  # type: ignore[import-untyped]

from tests.conftest import REPO_ROOT
from tests.infra.cfn import load

ROOT_TEMPLATE = REPO_ROOT / "template.yaml"
ACCOUNT = "123456789012"
REGION = "us-east-1"
# `resolve_s3 = true` in samconfig.toml: SAM CLI's managed bucket holds the artifacts.
ARTIFACT_BUCKET = "aws-sam-cli-managed-default-samclisourcebucket-emulated"
# AWS managed policies the translator may add by name. CloudFormation's transform knows
# every one; offline the map is given (sam validate asks IAM for it, ManagedPolicyLoader).
MANAGED_POLICY_MAP = {
    "AWSLambdaBasicExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "AWSXrayWriteOnlyAccess": "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
}


@dataclass(frozen=True)
class SamConfig:
    """What `sam deploy` reads from samconfig.toml's default environment."""

    stack_name: str
    capabilities: list[str]
    parameter_overrides: dict[str, str]


def samconfig() -> SamConfig:
    with (REPO_ROOT / "samconfig.toml").open("rb") as handle:
        config = tomllib.load(handle)["default"]
    deploy = {**config.get("global", {}).get("parameters", {}), **config["deploy"]["parameters"]}
    # SAM CLI's own parser of --parameter-overrides (Key="value" pairs, or ParameterKey=...).
    overrides: dict[str, str] = CfnParameterOverridesType().convert(
        deploy.get("parameter_overrides", ""), None, None
    )
    return SamConfig(deploy["stack_name"], deploy["capabilities"].split(), overrides)


def default_stack_name() -> str:
    """The stack name `sam deploy` uses: samconfig.toml's."""
    return samconfig().stack_name


def package(session: boto3.session.Session, bucket: str = ARTIFACT_BUCKET) -> dict[str, Any]:
    """`sam package`: SAM CLI's own exporter zips each CodeUri/ContentUri folder and uploads
    it, exports and uploads each nested template, and rewrites the references to S3
    (PackageContext._export_without_language_extensions, with the same options). It packs
    the source folders, not `sam build`'s output: moto never runs the code, and the test
    runs the handlers from the repository (tests/build/ checks the built artifact)."""
    s3 = session.client("s3")
    s3.create_bucket(Bucket=bucket)
    uploader = S3Uploader(s3, bucket, None, None, False, True)
    exported: dict[str, Any] = Template(
        str(ROOT_TEMPLATE.name),
        str(ROOT_TEMPLATE.parent),
        Uploaders(uploader, ECRUploader(None, None, None, None)),
        CodeSigner(None, None),
        normalize_template=True,
        normalize_parameters=True,
    ).export()
    return exported


def expand(
    packaged: dict[str, Any], parameters: dict[str, str], session: boto3.session.Session
) -> dict[str, Any]:
    """CloudFormation's AWS::Serverless-2016-10-31 transform, run with the translator SAM
    CLI ships (as `sam validate` runs it, SamTemplateValidator), offline."""
    translator = Translator(managed_policy_map=None, sam_parser=Parser(), plugins=[], boto_session=session)
    expanded: dict[str, Any] = translator.translate(
        sam_template=json.loads(json.dumps(packaged)),
        parameter_values=dict(parameters),
        get_managed_policy_map=lambda: MANAGED_POLICY_MAP,
    )
    return expanded


# ---------------------------------------------------------------- what moto lacks

# Resource types moto's CloudFormation has no model for (5.2.5): it would skip each with a
# warning, and every Ref or GetAtt to it would resolve to nothing.
STAND_IN_REFS_ARE_ARNS = {
    # Ref of a secret is its ARN; of a scaling policy, its ARN; of a subscription, its ARN.
    "AWS::SecretsManager::Secret": "arn:aws:secretsmanager:{region}:{account}:secret:{name}-{suffix}",
    "AWS::AutoScaling::ScalingPolicy": (
        "arn:aws:autoscaling:{region}:{account}:scalingPolicy:{uuid}:autoScalingGroupName/"
        "{group}:policyName/{name}"
    ),
    "AWS::SNS::Subscription": "{topic}:{uuid}",
}


@dataclass
class Recorded:
    """A resource moto could not create: where it was declared and what CloudFormation
    resolved its properties to."""

    stack_id: str
    logical_id: str
    resource_type: str
    physical_id: str
    properties: dict[str, Any]


@dataclass
class StandIns:
    """Every resource created by a stand-in, by (stack id, logical id)."""

    recorded: dict[tuple[str, str], Recorded] = field(default_factory=dict)

    def of_type(self, resource_type: str) -> list[Recorded]:
        return [r for r in self.recorded.values() if r.resource_type == resource_type]


class StandIn:
    """moto's CloudFormation model interface (create_from_cloudformation_json,
    physical_resource_id, get_cfn_attribute, is_created), duck-typed: not a subclass of
    CloudFormationModel, so moto's cached model list never sees it outside the patch."""

    log: StandIns
    resource_type: str
    # GetAtt attributes of the type that our templates read, as AWS documents them.
    attributes: ClassVar[dict[str, str]] = {}

    def __init__(self, physical_id: str, attributes: dict[str, Any]) -> None:
        self.physical_resource_id = physical_id
        self._attributes = attributes

    @classmethod
    def cloudformation_type(cls) -> str:
        return cls.resource_type

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in cls.attributes

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> StandIn:
        properties = without_no_value(cloudformation_json.get("Properties", {}))
        values = {
            "region": region_name,
            "account": account_id,
            "name": resource_name,
            "suffix": uuid.uuid4().hex[:6],
            "uuid": str(uuid.uuid4()),
            "group": properties.get("AutoScalingGroupName", ""),
            "topic": properties.get("TopicArn", ""),
        }
        physical_id = STAND_IN_REFS_ARE_ARNS.get(cls.resource_type, "{name}").format(**values)
        attributes = {name: template.format(**values) for name, template in cls.attributes.items()}
        cls.log.recorded[(kwargs["StackId"], kwargs["LogicalId"])] = Recorded(
            kwargs["StackId"], kwargs["LogicalId"], cls.resource_type, physical_id, properties
        )
        return cls(physical_id, attributes)

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        return self._attributes[attribute_name]

    def is_created(self) -> bool:
        return True


def without_no_value(node: Any) -> Any:
    """moto resolves `!Ref AWS::NoValue` to None and drops it from objects but keeps it in
    lists; CloudFormation removes it from both."""
    if isinstance(node, dict):
        return {key: without_no_value(value) for key, value in node.items() if value is not None}
    if isinstance(node, list):
        return [without_no_value(value) for value in node if value is not None]
    return node


STAND_IN_ATTRIBUTES: dict[str, dict[str, str]] = {
    # PrimaryEndPoint.Address: "master.<id>.<hash>.<region short>.cache.amazonaws.com" for a
    # replication group with TLS.
    "AWS::ElastiCache::ReplicationGroup": {
        "PrimaryEndPoint.Address": "master.{name}.emulated.use1.cache.amazonaws.com",
        "PrimaryEndPoint.Port": "6379",
    },
    "AWS::CloudWatch::Alarm": {"Arn": "arn:aws:cloudwatch:{region}:{account}:alarm:{name}"},
}


def missing_types(templates: list[dict[str, Any]]) -> set[str]:
    """The resource types of these templates moto's CloudFormation has no model for."""
    supported = {
        resource_type
        for resource_type, model in parsing.get_model_map().items()
        if not (isinstance(model, type) and issubclass(model, StandIn))
    }
    return {
        resource["Type"]
        for body in templates
        for resource in body.get("Resources", {}).values()
        if resource["Type"] not in supported and resource["Type"] not in parsing.NULL_MODELS
    }


def _nested_stack_output(self: Any, attribute_name: str) -> Any:
    # moto gap: its Stack model has no get_cfn_attribute, so `!GetAtt <NestedStack>.Outputs.X`
    # raises AttributeError. CloudFormation returns the nested stack's output X.
    if attribute_name.startswith("Outputs."):
        output = self.output_map[attribute_name.removeprefix("Outputs.")]
        if output is None:
            raise KeyError(f"nested stack {self.name} has no output {attribute_name}")
        return output.value
    raise NotImplementedError(attribute_name)


def _with_attributes(cls: type, derived: dict[str, Any]) -> Any:
    """get_cfn_attribute of `cls` with the attributes moto does not return derived from
    the created resource as AWS defines them; every other attribute as moto returns it."""
    original = getattr(cls, "get_cfn_attribute", None)

    def get_cfn_attribute(self: Any, attribute_name: str) -> Any:
        if attribute_name in derived:
            return derived[attribute_name](self)
        if original is None:
            raise NotImplementedError(attribute_name)
        return original(self, attribute_name)

    return get_cfn_attribute


_RDS_MASTER_SECRET = "arn:aws:secretsmanager:{region}:{account}:secret:rds!db-{uuid}-{suffix}"


def patch_moto_gaps(monkeypatch: pytest.MonkeyPatch, templates: list[dict[str, Any]]) -> StandIns:
    """Patch moto, until the test ends, where it lacks what CloudFormation does (moto
    resolves outputs lazily, at DescribeStacks, so the patches outlive the CreateStack)."""
    stand_ins = StandIns()
    model_map = parsing.get_model_map()
    for resource_type in sorted(missing_types(templates)):
        # moto gap: no CloudFormation model for these types (ElastiCache, Secrets Manager
        # secrets, alarms, scaling policies, bucket and topic policies, EventInvokeConfig,
        # security group egress, SNS subscriptions): a recording stand-in instead.
        model = type(
            f"StandIn_{resource_type.replace('::', '_')}",
            (StandIn,),
            {
                "log": stand_ins,
                "resource_type": resource_type,
                "attributes": STAND_IN_ATTRIBUTES.get(resource_type, {}),
            },
        )
        monkeypatch.setitem(model_map, resource_type, model)

    original_class_from_type = parsing.resource_class_from_type

    def resource_class_from_type(resource_type: str) -> Any:
        # moto gap: for a custom resource moto invokes the function in Docker and waits for
        # its answer. CloudFormation invokes it and waits too; here a recording stand-in
        # answers at once, and the test invokes the real handler with the request
        # CloudFormation would send (check_floor_lease_release).
        stand_in = model_map.get(resource_type)
        if resource_type.startswith("Custom::") and stand_in is not None:
            return stand_in
        return original_class_from_type(resource_type)

    monkeypatch.setattr(parsing, "resource_class_from_type", resource_class_from_type)
    monkeypatch.setattr(cloudformation_models.Stack, "get_cfn_attribute", _nested_stack_output, raising=False)
    # moto gap: these GetAtt attributes raise NotImplementedError or AttributeError in moto
    # (LoadBalancerFullName and CanonicalHostedZoneID are "not implemented yet"; target
    # groups and groups have no get_cfn_attribute). AWS: LoadBalancerFullName is
    # app/<name>/<id>, the ARN's end; TargetGroupFullName is targetgroup/<name>/<id>;
    # AutoScalingGroupARN the group's ARN.
    monkeypatch.setattr(
        FakeLoadBalancer,
        "get_cfn_attribute",
        _with_attributes(
            FakeLoadBalancer,
            {
                "LoadBalancerFullName": lambda lb: lb.arn.split(":loadbalancer/", 1)[1],
                # the zone the load balancer's DNS name lives in (moto keeps one on the model)
                "CanonicalHostedZoneID": lambda lb: lb.canonical_hosted_zone_id,
            },
        ),
    )
    monkeypatch.setattr(
        FakeTargetGroup,
        "get_cfn_attribute",
        _with_attributes(FakeTargetGroup, {"TargetGroupFullName": lambda tg: tg.arn.rsplit(":", 1)[1]}),
        raising=False,
    )
    monkeypatch.setattr(
        FakeAutoScalingGroup,
        "get_cfn_attribute",
        _with_attributes(FakeAutoScalingGroup, {"AutoScalingGroupARN": lambda group: group.arn}),
        raising=False,
    )
    # moto gap: moto's CloudFormation ignores ManageMasterUserPassword, so the instance has
    # no managed secret and MasterUserSecret.SecretArn is unsupported: an ARN in the form
    # of RDS's managed secrets instead.
    monkeypatch.setattr(
        DBInstance,
        "has_cfn_attr",
        classmethod(
            lambda cls, attr: attr in ("Endpoint.Address", "Endpoint.Port", "MasterUserSecret.SecretArn")
        ),
    )
    monkeypatch.setattr(
        DBInstance,
        "get_cfn_attribute",
        _with_attributes(
            DBInstance,
            {
                "MasterUserSecret.SecretArn": lambda db: _RDS_MASTER_SECRET.format(
                    region=db.region,
                    account=db.account_id,
                    uuid=uuid.uuid5(uuid.NAMESPACE_URL, db.arn),
                    suffix="AbCdEf",
                )
            },
        ),
    )
    # moto gap: moto names a resource without a name property "<stack>-<logical id>-<12
    # random>", however long; a nested stack's own name is built the same way, so with the
    # default stack name the database identifier exceeds RDS's 63 characters and moto's
    # own RDS refuses it. CloudFormation keeps generated names within the service's limit.
    original_name = parsing.generate_resource_name

    def generate_resource_name(resource_type: str, stack_name: str, logical_id: str) -> str:
        name: str = original_name(resource_type, stack_name, logical_id)
        if resource_type == "AWS::RDS::DBInstance" and len(name) > 63:
            suffix = name.rsplit("-", 1)[1]
            name = f"{name[: 63 - len(suffix) - 1].rstrip('-')}-{suffix}".lower()
        return name

    monkeypatch.setattr(parsing, "generate_resource_name", generate_resource_name)

    # moto gap: moto's CloudFormation creates a bucket with only its BucketEncryption and
    # Tags; VersioningConfiguration is dropped. The model registry relies on versions (a
    # manifest points at its model's exact version id), so it is applied here; the other
    # bucket settings are checked on the expanded template.
    create_bucket = FakeBucket.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]

    def create_versioned_bucket(
        cls: type,
        /,
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> Any:
        bucket = create_bucket(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        versioning = cloudformation_json.get("Properties", {}).get("VersioningConfiguration")
        if versioning:
            backend = s3_backends[account_id]["aws"]
            backend.put_bucket_versioning(bucket.name, versioning["Status"])
        return bucket

    monkeypatch.setattr(FakeBucket, "create_from_cloudformation_json", classmethod(create_versioned_bucket))
    return stand_ins


# ---------------------------------------------------------------- the deployment


@dataclass
class Stack:
    """One deployed stack: its name, id, template and resources (logical -> physical)."""

    name: str
    stack_id: str
    status: str
    template: dict[str, Any]
    parameters: dict[str, str]
    outputs: dict[str, str]
    resources: dict[str, str]
    resource_types: dict[str, str]


@dataclass
class Deployment:
    session: boto3.session.Session
    root: Stack
    nested: dict[str, Stack]  # by the root's logical id
    expanded: dict[str, Any]
    stand_ins: StandIns

    @property
    def outputs(self) -> dict[str, str]:
        return self.root.outputs

    def recorded(self, stack: Stack, logical_id: str) -> Recorded:
        return self.stand_ins.recorded[(stack.stack_id, logical_id)]

    def stacks(self) -> list[Stack]:
        return [self.root, *self.nested.values()]


def describe(session: boto3.session.Session, name: str, template: dict[str, Any]) -> Stack:
    cloudformation = session.client("cloudformation")
    described = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
    # moto lists each resource whose Condition is false as a summary with empty ids (AWS
    # lists only what it created): those are dropped here.
    summaries = [
        summary
        for summary in cloudformation.list_stack_resources(StackName=name)["StackResourceSummaries"]
        if summary["LogicalResourceId"]
    ]
    return Stack(
        name=described["StackName"],
        stack_id=described["StackId"],
        status=described["StackStatus"],
        template=template,
        parameters={p["ParameterKey"]: p["ParameterValue"] for p in described.get("Parameters", [])},
        outputs={o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])},
        resources={s["LogicalResourceId"]: s["PhysicalResourceId"] for s in summaries},
        resource_types={s["LogicalResourceId"]: s["ResourceType"] for s in summaries},
    )


def child_templates() -> dict[str, dict[str, Any]]:
    """The root's nested stacks' templates, by the root's logical id, as written."""
    root = load(ROOT_TEMPLATE)
    return {
        logical_id: load(REPO_ROOT / resource["Properties"]["TemplateURL"])
        for logical_id, resource in root["Resources"].items()
        if resource["Type"] == "AWS::CloudFormation::Stack"
    }


def deploy_root_stack(
    session: boto3.session.Session,
    monkeypatch: pytest.MonkeyPatch,
    parameters: dict[str, str] | None = None,
    stack_name: str | None = None,
) -> Deployment:
    """Package, expand and create the whole stack with one CreateStack, as `sam deploy`
    would with samconfig.toml's parameter overrides, these on top."""
    config = samconfig()
    parameters = {**config.parameter_overrides, **(parameters or {})}
    stack_name = stack_name or config.stack_name
    expanded = expand(package(session), parameters, session)
    children = child_templates()
    stand_ins = patch_moto_gaps(monkeypatch, [expanded, *children.values()])
    session.client("cloudformation").create_stack(
        StackName=stack_name,
        TemplateBody=json.dumps(expanded),
        Parameters=[{"ParameterKey": key, "ParameterValue": value} for key, value in parameters.items()],
        Capabilities=config.capabilities,  # type: ignore[arg-type]
    )
    root = describe(session, stack_name, expanded)
    nested = {
        logical_id: describe(session, physical_id, children[logical_id])
        for logical_id, physical_id in root.resources.items()
        if root.resource_types[logical_id] == "AWS::CloudFormation::Stack"
    }
    return Deployment(session, root, nested, expanded, stand_ins)


def read_policy_document(document: Any) -> dict[str, Any]:
    """An inline policy as IAM returns it (moto keeps a CloudFormation-made one as a
    JSON string or as the dict's repr). A statement made conditional with
    `!If [..., !Ref AWS::NoValue]` is removed from the list by CloudFormation; moto keeps
    it as null, dropped here."""
    if isinstance(document, str):
        import ast

        try:
            parsed: dict[str, Any] = json.loads(document)
        except json.JSONDecodeError:
            parsed = ast.literal_eval(document)
    else:
        parsed = dict(document)
    if isinstance(parsed.get("Statement"), list):
        parsed["Statement"] = [statement for statement in parsed["Statement"] if statement is not None]
    return parsed
