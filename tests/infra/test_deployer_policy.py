"""The IAM policies a deployer needs (docs/deployer-policy.json for the scaler, and
docs/deployer-policy-saleor-tier.json as well for the default deploy that creates the
Saleor tier), held to the templates they deploy.

Every resource the stacks create is read from the templates themselves: template.yaml
expanded by the SAM translator (as CloudFormation's AWS::Serverless-2016-10-31 transform
expands it: the functions' roles, rules, permissions and invoke configs), and each
infra-cfn/*.yaml. Each resource type must have its entry in NEEDS, the actions
CloudFormation calls with the deployer's credentials to create, update, delete and read
it; each resource's ARN is built from its real name (its name property rendered for the
stack, or the name CloudFormation generates: stack name, logical id, suffix), and the
policies must allow every one of those actions on it. A resource type added to a
template without an entry here fails, and so does a name that leaves the policies'
prefixes. The other side: the same actions on another stack's resources, IAM beyond the
stacks' own roles, direct calls that only CloudFormation may make, are refused.

The policies are evaluated by the evaluator of test_security_policies (IAM's matching
of actions, resources and the condition operators these policies use). What no test
here can show is whether AWS asks for an action not listed: that needs a deploy with
these policies in a real account (docs/security.md, "Deploying with least privilege")."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from samtranslator.parser.parser import Parser  # type: ignore[import-untyped]
from samtranslator.translator.translator import Translator  # type: ignore[import-untyped]

from tests.conftest import REPO_ROOT
from tests.infra.cfn import INFRA, load, nested_stacks, references, render_sub
from tests.infra.test_security_policies import Request, allows

SCALER_POLICY = REPO_ROOT / "docs" / "deployer-policy.json"
TIER_POLICY = REPO_ROOT / "docs" / "deployer-policy-saleor-tier.json"
ROOT = "saleor-predictive-scaling"
"""The stack name the policies are written for: samconfig.toml's."""
OTHER = "payments-prod"
"""Someone else's stack in the same account."""
ACCOUNT = "123456789012"
REGION = "eu-central-1"
SUFFIX = "1A2B3C4D5E6F"
"""The random part CloudFormation appends to the names it generates."""
UUID = "0f1e2d3c-4b5a-6978-8091-a2b3c4d5e6f7"
VIA_CLOUDFORMATION = {"aws:CalledVia": ["cloudformation.amazonaws.com"]}
"""CloudFormation creates a stack's resources with the deployer's credentials (forward
access sessions): every such request carries it in aws:CalledVia."""
MANAGED_POLICY_MAP = {
    "AWSLambdaBasicExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "AWSXrayWriteOnlyAccess": "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
}
MANAGED_POLICY_SIZE_LIMIT = 6144
"""IAM quota: characters of a managed policy document, white space not counted."""


def policy(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def statements(*paths: Path) -> list[dict[str, Any]]:
    return [statement for path in paths for statement in policy(path)["Statement"]]


# ---------------------------------------------------------------- the stacks' resources


def expanded_root() -> dict[str, Any]:
    """template.yaml as the SAM transform expands it. The code is not packaged here: a
    placeholder S3 location stands in for each CodeUri and ContentUri."""
    root = load(REPO_ROOT / "template.yaml")
    for logical_id, resource in root["Resources"].items():
        for key in ("CodeUri", "ContentUri"):
            if key in resource.get("Properties", {}):
                resource["Properties"][key] = f"s3://artifacts/{logical_id}.zip"
    session = boto3.session.Session(
        region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    translator = Translator(managed_policy_map=None, sam_parser=Parser(), plugins=[], boto_session=session)
    expanded: dict[str, Any] = translator.translate(
        sam_template=root, parameter_values={}, get_managed_policy_map=lambda: MANAGED_POLICY_MAP
    )
    return expanded


@dataclass(frozen=True)
class Stack:
    root: str
    """The name of the deployment's root stack."""
    logical_id: str
    """Its logical id in the root template ('' for the root itself)."""
    template: dict[str, Any]
    always: bool
    """Deployed with an existing shop too: the scaler's policy alone must cover it."""

    @property
    def name(self) -> str:
        """A nested stack's name is generated from the root's and its logical id."""
        return f"{self.root}-{self.logical_id}-{SUFFIX}" if self.logical_id else self.root


def stacks(root_name: str) -> list[Stack]:
    found = [Stack(root_name, "", expanded_root(), True)]
    for logical_id, resource in nested_stacks(load(REPO_ROOT / "template.yaml")).items():
        child = Path(resource["Properties"]["TemplateURL"]).stem
        found.append(Stack(root_name, logical_id, load(INFRA / f"{child}.yaml"), "Condition" not in resource))
    return found


def stack_id(stack: Stack) -> str:
    return stack.logical_id or "root"


NAME_PROPERTIES = {
    "AWS::AutoScaling::AutoScalingGroup": "AutoScalingGroupName",
    "AWS::CloudWatch::Alarm": "AlarmName",
    "AWS::CloudWatch::Dashboard": "DashboardName",
    "AWS::Events::Rule": "Name",
    "AWS::IAM::InstanceProfile": "InstanceProfileName",
    "AWS::IAM::Role": "RoleName",
    "AWS::KMS::Alias": "AliasName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::Lambda::LayerVersion": "LayerName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::S3::Bucket": "BucketName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::SecretsManager::Secret": "Name",
}


def name_of(stack: Stack, logical_id: str) -> str:
    """The resource's physical name: its name property rendered for the stack, or the
    one CloudFormation generates (a secret's has no stack name; a bucket's is lower case)."""
    resource = stack.template["Resources"][logical_id]
    given = resource.get("Properties", {}).get(NAME_PROPERTIES.get(resource["Type"], ""))
    pseudo = {"AWS::StackName": stack.name, "AWS::Region": REGION, "AWS::AccountId": ACCOUNT}
    if isinstance(given, str):
        return given
    if isinstance(given, dict) and isinstance(given.get("Fn::Sub"), str):
        return render_sub(given["Fn::Sub"], pseudo)
    assert given is None, f"{logical_id}: a name the test cannot render: {given!r}"
    if resource["Type"] == "AWS::SecretsManager::Secret":
        return f"{logical_id}-{SUFFIX}"
    if resource["Type"] == "AWS::S3::Bucket":
        return f"{stack.name}-{logical_id}-{SUFFIX}".lower()
    return f"{stack.name}-{logical_id}-{SUFFIX}"


def target_of(stack: Stack, node: Any) -> str:
    """The name of the resource a property refers to (Ref or GetAtt); a parameter of a
    nested stack stands for the root's resource it is given (the alarm topic)."""
    for _, target in references(node):
        logical_id = target.split(".")[0]
        if logical_id in stack.template["Resources"]:
            return name_of(stack, logical_id)
        if logical_id == "AlarmTopicArn":
            return f"{stack.root}-AlarmTopic-{SUFFIX}"
    raise AssertionError(f"no resource referred to in {node!r}")


# ---------------------------------------------------------------- what each type needs


@dataclass(frozen=True)
class Need:
    actions: tuple[str, ...]
    arn: Callable[[Stack, str, dict[str, Any]], str]
    """The resource the actions are asked on, from (stack, logical id, properties)."""
    scoped: bool = True
    """The ARN carries a name from the stack (False: an id AWS assigns, or '*')."""
    context: dict[str, Any] = field(default_factory=dict)


def own(pattern: str) -> Callable[[Stack, str, dict[str, Any]], str]:
    return lambda stack, logical_id, _: pattern.format(name=name_of(stack, logical_id), r=REGION, a=ACCOUNT)


def referred(prop: str, pattern: str) -> Callable[[Stack, str, dict[str, Any]], str]:
    return lambda stack, _, properties: pattern.format(
        name=target_of(stack, properties[prop]), r=REGION, a=ACCOUNT
    )


def fixed(arn: str) -> Callable[[Stack, str, dict[str, Any]], str]:
    return lambda *_: arn


FUNCTION = "arn:aws:lambda:{r}:{a}:function:{name}"
GROUP = "arn:aws:autoscaling:{r}:{a}:autoScalingGroup:" + UUID + ":autoScalingGroupName/{name}"
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{UUID}"
ARTIFACT = f"arn:aws:s3:::aws-sam-cli-managed-default-samclisourcebucket-{SUFFIX.lower()}/0123abcd"
EC2 = fixed(f"arn:aws:ec2:{REGION}:{ACCOUNT}:vpc/vpc-0a1b2c3d4e5f67890")
ELB = fixed(
    f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:loadbalancer/app/saleor-LoadB-{SUFFIX}/0a1b2c3d"
)
RDS = fixed(f"arn:aws:rds:{REGION}:{ACCOUNT}:db:s1a2b3c4d5e6f7")
CACHE = fixed(f"arn:aws:elasticache:{REGION}:{ACCOUNT}:replicationgroup:s1a2b3c4d5e6f7")


def unscoped(*actions: str, resource: Callable[[Stack, str, dict[str, Any]], str] = EC2) -> Need:
    return Need(actions, resource, scoped=False)


NEEDS: dict[str, list[Need]] = {
    # ------------------------------------------------ the scaler (template.yaml, monitoring)
    "AWS::CloudFormation::Stack": [
        Need(
            (
                "cloudformation:CreateStack",
                "cloudformation:UpdateStack",
                "cloudformation:DeleteStack",
                "cloudformation:DescribeStacks",
                "cloudformation:DescribeStackEvents",
            ),
            lambda stack, logical_id, _: (
                f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{stack.root}-{logical_id}-{SUFFIX}/{UUID}"
            ),
        ),
        # Its TemplateURL, uploaded by `sam deploy` to SAM CLI's managed bucket.
        Need(("s3:GetObject",), fixed(ARTIFACT)),
    ],
    "AWS::Events::Rule": [
        Need(
            (
                "events:PutRule",
                "events:DescribeRule",
                "events:DeleteRule",
                "events:DisableRule",
                "events:PutTargets",
                "events:RemoveTargets",
                "events:ListTargetsByRule",
            ),
            own("arn:aws:events:{r}:{a}:rule/{name}"),
        )
    ],
    "AWS::IAM::Role": [
        Need(
            (
                "iam:CreateRole",
                "iam:GetRole",
                "iam:DeleteRole",
                "iam:UpdateAssumeRolePolicy",
                "iam:TagRole",
                "iam:PutRolePolicy",
                "iam:GetRolePolicy",
                "iam:DeleteRolePolicy",
                "iam:ListRolePolicies",
            ),
            own("arn:aws:iam::{a}:role/{name}"),
        )
        # Attaching its managed policies and passing it to its service: test_roles_...
    ],
    "AWS::IAM::InstanceProfile": [
        Need(
            (
                "iam:CreateInstanceProfile",
                "iam:GetInstanceProfile",
                "iam:DeleteInstanceProfile",
                "iam:AddRoleToInstanceProfile",
                "iam:RemoveRoleFromInstanceProfile",
            ),
            own("arn:aws:iam::{a}:instance-profile/{name}"),
        )
    ],
    "AWS::KMS::Key": [
        Need(("kms:CreateKey",), fixed("*"), scoped=False),
        Need(
            (
                "kms:DescribeKey",
                "kms:PutKeyPolicy",
                "kms:GetKeyPolicy",
                "kms:EnableKeyRotation",
                "kms:GetKeyRotationStatus",
                "kms:TagResource",
                "kms:ScheduleKeyDeletion",
            ),
            fixed(KEY),
            scoped=False,
        ),
    ],
    "AWS::KMS::Alias": [
        Need(("kms:CreateAlias", "kms:UpdateAlias", "kms:DeleteAlias"), own("arn:aws:kms:{r}:{a}:{name}")),
        unscoped("kms:ListAliases", resource=fixed("*")),
        # An alias is created, moved and deleted with permission on its key too.
        Need(("kms:CreateAlias", "kms:UpdateAlias", "kms:DeleteAlias"), fixed(KEY), scoped=False),
    ],
    "AWS::Lambda::Function": [
        Need(
            (
                "lambda:CreateFunction",
                "lambda:GetFunction",
                "lambda:GetFunctionConfiguration",
                "lambda:UpdateFunctionCode",
                "lambda:UpdateFunctionConfiguration",
                "lambda:DeleteFunction",
                "lambda:PutFunctionConcurrency",
                "lambda:DeleteFunctionConcurrency",
                "lambda:TagResource",
                "lambda:GetFunctionCodeSigningConfig",
                "lambda:GetRuntimeManagementConfig",
            ),
            own(FUNCTION),
        ),
        Need(("s3:GetObject", "s3:GetObjectVersion"), fixed(ARTIFACT)),
    ],
    "AWS::Lambda::LayerVersion": [
        Need(("lambda:PublishLayerVersion",), own("arn:aws:lambda:{r}:{a}:layer:{name}")),
        Need(
            ("lambda:GetLayerVersion", "lambda:DeleteLayerVersion"),
            own("arn:aws:lambda:{r}:{a}:layer:{name}:7"),
        ),
        Need(("s3:GetObject",), fixed(ARTIFACT)),
    ],
    "AWS::Lambda::EventInvokeConfig": [
        Need(
            (
                "lambda:PutFunctionEventInvokeConfig",
                "lambda:UpdateFunctionEventInvokeConfig",
                "lambda:GetFunctionEventInvokeConfig",
                "lambda:DeleteFunctionEventInvokeConfig",
            ),
            referred("FunctionName", FUNCTION),
        )
    ],
    "AWS::Lambda::Permission": [
        Need(
            ("lambda:AddPermission", "lambda:RemovePermission", "lambda:GetPolicy"),
            referred("FunctionName", FUNCTION),
        )
    ],
    "AWS::Logs::LogGroup": [
        Need(
            (
                "logs:CreateLogGroup",
                "logs:PutRetentionPolicy",
                "logs:DeleteRetentionPolicy",
                "logs:DeleteLogGroup",
                "logs:TagResource",
                "logs:ListTagsForResource",
            ),
            own("arn:aws:logs:{r}:{a}:log-group:{name}"),
        ),
        unscoped("logs:DescribeLogGroups", resource=fixed("*")),
    ],
    "AWS::S3::Bucket": [
        Need(
            (
                "s3:CreateBucket",
                "s3:DeleteBucket",
                "s3:ListBucket",
                "s3:GetBucketLocation",
                "s3:PutBucketVersioning",
                "s3:GetBucketVersioning",
                "s3:PutEncryptionConfiguration",
                "s3:PutBucketPublicAccessBlock",
                "s3:PutBucketOwnershipControls",
                "s3:PutBucketTagging",
                "s3:PutLifecycleConfiguration",
                "s3:GetLifecycleConfiguration",
                "s3:PutBucketLogging",
            ),
            own("arn:aws:s3:::{name}"),
        )
    ],
    "AWS::S3::BucketPolicy": [
        Need(
            ("s3:PutBucketPolicy", "s3:GetBucketPolicy", "s3:DeleteBucketPolicy"),
            referred("Bucket", "arn:aws:s3:::{name}"),
        )
    ],
    "AWS::SNS::Topic": [
        Need(
            (
                "sns:CreateTopic",
                "sns:GetTopicAttributes",
                "sns:SetTopicAttributes",
                "sns:DeleteTopic",
                "sns:TagResource",
                "sns:ListTagsForResource",
            ),
            own("arn:aws:sns:{r}:{a}:{name}"),
        )
    ],
    "AWS::SNS::TopicPolicy": [
        Need(
            ("sns:SetTopicAttributes", "sns:GetTopicAttributes"),
            referred("Topics", "arn:aws:sns:{r}:{a}:{name}"),
        )
    ],
    "AWS::SNS::Subscription": [
        Need(
            ("sns:Subscribe", "sns:ListSubscriptionsByTopic"),
            referred("TopicArn", "arn:aws:sns:{r}:{a}:{name}"),
        ),
        Need(
            ("sns:Unsubscribe", "sns:GetSubscriptionAttributes", "sns:SetSubscriptionAttributes"),
            referred("TopicArn", "arn:aws:sns:{r}:{a}:{name}:" + UUID),
        ),
    ],
    "AWS::SQS::Queue": [
        Need(
            (
                "sqs:CreateQueue",
                "sqs:GetQueueUrl",
                "sqs:GetQueueAttributes",
                "sqs:SetQueueAttributes",
                "sqs:DeleteQueue",
                "sqs:TagQueue",
                "sqs:ListQueueTags",
            ),
            own("arn:aws:sqs:{r}:{a}:{name}"),
        )
    ],
    "AWS::CloudWatch::Alarm": [
        Need(
            ("cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms"),
            own("arn:aws:cloudwatch:{r}:{a}:alarm:{name}"),
        ),
        unscoped("cloudwatch:DescribeAlarms", resource=fixed("*")),
    ],
    "AWS::CloudWatch::Dashboard": [
        Need(
            ("cloudwatch:PutDashboard", "cloudwatch:GetDashboard", "cloudwatch:DeleteDashboards"),
            own("arn:aws:cloudwatch::{a}:dashboard/{name}"),
        )
    ],
    # CloudFormation invokes a custom resource's function with the deployer's credentials.
    "Custom::FloorLeaseRelease": [Need(("lambda:InvokeFunction",), referred("ServiceToken", FUNCTION))],
    "Custom::FirstRetrain": [Need(("lambda:InvokeFunction",), referred("ServiceToken", FUNCTION))],
    # ------------------------------------------------ the Saleor tier (infra-cfn/)
    "AWS::AutoScaling::AutoScalingGroup": [
        Need(
            (
                "autoscaling:CreateAutoScalingGroup",
                "autoscaling:UpdateAutoScalingGroup",
                "autoscaling:DeleteAutoScalingGroup",
                "autoscaling:EnableMetricsCollection",
                "autoscaling:CreateOrUpdateTags",
                "autoscaling:DeleteTags",
                # A rolling update suspends processes and replaces instances one by one.
                "autoscaling:SuspendProcesses",
                "autoscaling:ResumeProcesses",
                "autoscaling:TerminateInstanceInAutoScalingGroup",
            ),
            own(GROUP),
        ),
        unscoped("autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeScalingActivities"),
        # Auto Scaling checks that whoever creates a group may launch its launch template.
        unscoped("ec2:RunInstances", "ec2:CreateTags", "ec2:DescribeLaunchTemplateVersions"),
    ],
    "AWS::AutoScaling::ScalingPolicy": [
        Need(
            ("autoscaling:PutScalingPolicy", "autoscaling:DeletePolicy"),
            referred("AutoScalingGroupName", GROUP),
        ),
        unscoped("autoscaling:DescribePolicies"),
    ],
    # The optional warm pool (WarmPoolState): a pool, the launch hook its instances wait
    # on, and the instance role's inline permission to complete that hook.
    "AWS::AutoScaling::WarmPool": [
        Need(
            ("autoscaling:PutWarmPool", "autoscaling:DeleteWarmPool"),
            referred("AutoScalingGroupName", GROUP),
        ),
        unscoped("autoscaling:DescribeWarmPool"),
    ],
    "AWS::AutoScaling::LifecycleHook": [
        Need(
            ("autoscaling:PutLifecycleHook", "autoscaling:DeleteLifecycleHook"),
            referred("AutoScalingGroupName", GROUP),
        ),
        unscoped("autoscaling:DescribeLifecycleHooks"),
    ],
    "AWS::IAM::Policy": [
        Need(
            ("iam:PutRolePolicy", "iam:GetRolePolicy", "iam:DeleteRolePolicy"),
            referred("Roles", "arn:aws:iam::{a}:role/{name}"),
        )
    ],
    # A wait condition handle is a pre-signed URL CloudFormation makes itself: no call.
    "AWS::CloudFormation::WaitConditionHandle": [],
    "AWS::EC2::VPC": [unscoped("ec2:CreateVpc", "ec2:ModifyVpcAttribute", "ec2:DeleteVpc", "ec2:CreateTags")],
    "AWS::EC2::Subnet": [unscoped("ec2:CreateSubnet", "ec2:ModifySubnetAttribute", "ec2:DeleteSubnet")],
    "AWS::EC2::RouteTable": [
        unscoped("ec2:CreateRouteTable", "ec2:DeleteRouteTable", "ec2:DescribeRouteTables")
    ],
    "AWS::EC2::Route": [unscoped("ec2:CreateRoute", "ec2:ReplaceRoute", "ec2:DeleteRoute")],
    "AWS::EC2::SubnetRouteTableAssociation": [
        unscoped("ec2:AssociateRouteTable", "ec2:DisassociateRouteTable")
    ],
    "AWS::EC2::InternetGateway": [unscoped("ec2:CreateInternetGateway", "ec2:DeleteInternetGateway")],
    "AWS::EC2::VPCGatewayAttachment": [unscoped("ec2:AttachInternetGateway", "ec2:DetachInternetGateway")],
    "AWS::EC2::EIP": [unscoped("ec2:AllocateAddress", "ec2:ReleaseAddress", "ec2:DescribeAddresses")],
    "AWS::EC2::NatGateway": [
        unscoped("ec2:CreateNatGateway", "ec2:DeleteNatGateway", "ec2:DescribeNatGateways")
    ],
    "AWS::EC2::VPCEndpoint": [
        unscoped("ec2:CreateVpcEndpoint", "ec2:ModifyVpcEndpoint", "ec2:DeleteVpcEndpoints")
    ],
    "AWS::EC2::FlowLog": [unscoped("ec2:CreateFlowLogs", "ec2:DeleteFlowLogs", "ec2:DescribeFlowLogs")],
    "AWS::EC2::SecurityGroup": [
        unscoped("ec2:CreateSecurityGroup", "ec2:DeleteSecurityGroup", "ec2:DescribeSecurityGroups"),
        # CloudFormation replaces a new group's default egress rule with the template's.
        unscoped("ec2:AuthorizeSecurityGroupEgress", "ec2:RevokeSecurityGroupEgress"),
    ],
    "AWS::EC2::SecurityGroupIngress": [
        unscoped("ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress")
    ],
    "AWS::EC2::SecurityGroupEgress": [
        unscoped("ec2:AuthorizeSecurityGroupEgress", "ec2:RevokeSecurityGroupEgress")
    ],
    "AWS::EC2::LaunchTemplate": [
        unscoped("ec2:CreateLaunchTemplate", "ec2:CreateLaunchTemplateVersion", "ec2:ModifyLaunchTemplate"),
        unscoped(
            "ec2:DeleteLaunchTemplate", "ec2:DeleteLaunchTemplateVersions", "ec2:DescribeLaunchTemplates"
        ),
    ],
    "AWS::ElasticLoadBalancingV2::LoadBalancer": [
        unscoped(
            "elasticloadbalancing:CreateLoadBalancer",
            "elasticloadbalancing:ModifyLoadBalancerAttributes",
            "elasticloadbalancing:SetSecurityGroups",
            "elasticloadbalancing:SetSubnets",
            "elasticloadbalancing:AddTags",
            "elasticloadbalancing:DeleteLoadBalancer",
            "elasticloadbalancing:DescribeLoadBalancers",
            resource=ELB,
        )
    ],
    "AWS::ElasticLoadBalancingV2::TargetGroup": [
        unscoped(
            "elasticloadbalancing:CreateTargetGroup",
            "elasticloadbalancing:ModifyTargetGroup",
            "elasticloadbalancing:ModifyTargetGroupAttributes",
            "elasticloadbalancing:DeleteTargetGroup",
            "elasticloadbalancing:DescribeTargetGroups",
            resource=ELB,
        )
    ],
    "AWS::ElasticLoadBalancingV2::Listener": [
        unscoped(
            "elasticloadbalancing:CreateListener",
            "elasticloadbalancing:ModifyListener",
            "elasticloadbalancing:DeleteListener",
            "elasticloadbalancing:DescribeListeners",
            resource=ELB,
        )
    ],
    "AWS::RDS::DBSubnetGroup": [
        unscoped(
            "rds:CreateDBSubnetGroup", "rds:ModifyDBSubnetGroup", "rds:DeleteDBSubnetGroup", resource=RDS
        )
    ],
    "AWS::RDS::DBInstance": [
        unscoped(
            "rds:CreateDBInstance",
            "rds:CreateDBInstanceReadReplica",
            "rds:ModifyDBInstance",
            "rds:DescribeDBInstances",
            "rds:AddTagsToResource",
            "rds:DeleteDBInstance",
            # DeletionPolicy: Snapshot (the final snapshot).
            "rds:CreateDBSnapshot",
            resource=RDS,
        ),
        # ManageMasterUserPassword: RDS creates and rotates the secret as the deployer.
        Need(
            ("secretsmanager:CreateSecret", "secretsmanager:TagResource", "secretsmanager:DeleteSecret"),
            fixed(f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:rds!db-{UUID}-AbCdEf"),
            scoped=False,
        ),
        Need(
            ("kms:DescribeKey", "kms:CreateGrant", "kms:GenerateDataKey", "kms:Decrypt"),
            fixed(KEY),
            scoped=False,
            context={"kms:ViaService": f"rds.{REGION}.amazonaws.com"},
        ),
        Need(
            ("kms:DescribeKey", "kms:GenerateDataKey", "kms:Decrypt"),
            fixed(KEY),
            scoped=False,
            context={"kms:ViaService": f"secretsmanager.{REGION}.amazonaws.com"},
        ),
    ],
    "AWS::ElastiCache::SubnetGroup": [
        unscoped(
            "elasticache:CreateCacheSubnetGroup",
            "elasticache:ModifyCacheSubnetGroup",
            "elasticache:DeleteCacheSubnetGroup",
            resource=CACHE,
        )
    ],
    "AWS::ElastiCache::ReplicationGroup": [
        unscoped(
            "elasticache:CreateReplicationGroup",
            "elasticache:CreateCacheCluster",
            "elasticache:ModifyReplicationGroup",
            "elasticache:DescribeReplicationGroups",
            "elasticache:AddTagsToResource",
            "elasticache:DeleteReplicationGroup",
            resource=CACHE,
        )
    ],
    "AWS::SecretsManager::Secret": [
        Need(
            (
                "secretsmanager:CreateSecret",
                "secretsmanager:DescribeSecret",
                "secretsmanager:UpdateSecret",
                "secretsmanager:TagResource",
                "secretsmanager:DeleteSecret",
            ),
            own("arn:aws:secretsmanager:{r}:{a}:secret:{name}-AbCdEf"),
        ),
        unscoped("secretsmanager:GetRandomPassword", resource=fixed("*")),
    ],
    "AWS::Route53::RecordSet": [
        unscoped(
            "route53:ChangeResourceRecordSets",
            "route53:ListResourceRecordSets",
            resource=fixed("arn:aws:route53:::hostedzone/Z0123456789ABCDEFGHIJ"),
        ),
        unscoped("route53:GetChange", resource=fixed("arn:aws:route53:::change/C0123456789ABCDEFGHIJ")),
    ],
}


def resources(all_stacks: list[Stack]) -> list[tuple[Stack, str, dict[str, Any]]]:
    return [
        (stack, logical_id, resource)
        for stack in all_stacks
        for logical_id, resource in stack.template["Resources"].items()
    ]


def missing_types(types: set[str]) -> set[str]:
    return types - set(NEEDS)


def requests(
    stack: Stack, logical_id: str, resource: dict[str, Any], need: Need, **context: Any
) -> list[Request]:
    arn = need.arn(stack, logical_id, resource.get("Properties", {}))
    return [
        Request(action, arn, context={**VIA_CLOUDFORMATION, **need.context, **context})
        for action in need.actions
    ]


ALL_STACKS = stacks(ROOT)
OTHER_STACKS = {stack.logical_id: stack for stack in stacks(OTHER)}


# ---------------------------------------------------------------- the tests


def test_every_resource_type_of_the_templates_has_its_needs_written_here():
    types = {resource["Type"] for _, _, resource in resources(ALL_STACKS)}
    assert missing_types(types) == set(), "add the type's actions to NEEDS and to the deployer policy"
    assert set(NEEDS) - types == set(), "NEEDS names a type no template uses any more"
    # The expansion is the transform's: the resources SAM generates are there too.
    assert {"AWS::IAM::Role", "AWS::Events::Rule", "AWS::Lambda::Permission"} <= types
    assert len(ALL_STACKS) == 6


def test_the_check_reports_a_type_it_does_not_know():
    """A new type in a template (here a table) is reported, not skipped."""
    assert missing_types({"AWS::SQS::Queue", "AWS::DynamoDB::Table"}) == {"AWS::DynamoDB::Table"}


@pytest.mark.parametrize("stack", ALL_STACKS, ids=stack_id)
def test_the_policies_allow_what_cloudformation_asks_for_each_resource(stack):
    """The scaler's policy alone for the stacks an existing shop deploys too; with the
    tier's policy for the Saleor tier."""
    granted = statements(SCALER_POLICY) if stack.always else statements(SCALER_POLICY, TIER_POLICY)
    refused = [
        f"{logical_id}: {request.action} on {request.resource}"
        for logical_id, resource in stack.template["Resources"].items()
        for need in NEEDS.get(resource["Type"], [])
        for request in requests(stack, logical_id, resource, need)
        if not allows(granted, request)
    ]
    assert refused == []


@pytest.mark.parametrize("stack", ALL_STACKS, ids=stack_id)
def test_the_same_actions_on_another_stacks_resources_are_refused(stack):
    """The stacks of a deployment named otherwise (another team's) are out of reach."""
    other = OTHER_STACKS[stack.logical_id]
    granted = statements(SCALER_POLICY, TIER_POLICY)
    asked = [
        (logical_id, request)
        for logical_id, resource in other.template["Resources"].items()
        for need in NEEDS.get(resource["Type"], [])
        if need.scoped and OTHER in need.arn(other, logical_id, resource.get("Properties", {}))
        for request in requests(other, logical_id, resource, need)
    ]
    allowed = [f"{logical_id}: {r.action} on {r.resource}" for logical_id, r in asked if allows(granted, r)]
    assert allowed == []
    # The security groups, the database and the cache carry no stack name (ids AWS
    # assigns, secrets named after their logical ids): the next test covers them.
    assert bool(asked) is (stack_id(stack) not in {"SecurityStack", "DataStack"})


def test_what_only_cloudformation_may_do_is_refused_when_asked_directly():
    """Resources with ids AWS assigns (a VPC, a database, the key) cannot be scoped by
    name: the deployer may create and change them only through CloudFormation."""
    granted = statements(SCALER_POLICY, TIER_POLICY)
    direct = [
        request
        for stack, logical_id, resource in resources(ALL_STACKS)
        for need in NEEDS.get(resource["Type"], [])
        if not need.scoped and not need.context
        for request in requests(stack, logical_id, resource, need)
        if not re.match(r"^[a-z0-9]+:(Describe|Get|List)", request.action)
    ]
    assert len(direct) > 60
    allowed = [
        f"{r.action} on {r.resource}"
        for r in direct
        if allows(granted, Request(r.action, r.resource, context={}))
        # Secrets RDS manages are named rds!db-<id>: scoped by that prefix instead.
        and not r.resource.startswith(f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:rds!db-")
        and r.action != "secretsmanager:GetRandomPassword"
    ]
    assert allowed == []


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def role_statements(stack: Stack) -> list[tuple[str, dict[str, Any]]]:
    return [
        (logical_id, resource["Properties"])
        for logical_id, resource in stack.template["Resources"].items()
        if resource["Type"] == "AWS::IAM::Role"
    ]


def test_roles_get_their_managed_policies_and_go_only_to_their_own_service():
    """Each role's managed policies may be attached (and no other), and the role passed
    to the service its trust policy names (and to no other)."""
    checked = 0
    for stack in ALL_STACKS:
        granted = statements(SCALER_POLICY) if stack.always else statements(SCALER_POLICY, TIER_POLICY)
        for logical_id, properties in role_statements(stack):
            arn = f"arn:aws:iam::{ACCOUNT}:role/{name_of(stack, logical_id)}"
            for managed in properties.get("ManagedPolicyArns", []):
                managed_arn = (
                    managed
                    if isinstance(managed, str)
                    else render_sub(managed["Fn::Sub"], {"AWS::Partition": "aws"})
                )
                for action in ("iam:AttachRolePolicy", "iam:DetachRolePolicy"):
                    assert allows(granted, Request(action, arn, context={"iam:PolicyARN": managed_arn})), (
                        managed_arn
                    )
            services = [
                service
                for statement in properties["AssumeRolePolicyDocument"]["Statement"]
                for service in as_list(statement["Principal"]["Service"])
            ]
            for service in services:
                assert allows(granted, Request("iam:PassRole", arn, context={"iam:PassedToService": service}))
            assert not allows(
                granted,
                Request("iam:PassRole", arn, context={"iam:PassedToService": "ecs-tasks.amazonaws.com"}),
            )
            checked += 1
    assert checked == 5


@pytest.mark.parametrize(
    ("action", "resource", "context"),
    [
        # A role or user outside the stacks: no way to an administrator.
        ("iam:CreateRole", f"arn:aws:iam::{ACCOUNT}:role/Administrator", {}),
        ("iam:PutRolePolicy", f"arn:aws:iam::{ACCOUNT}:role/Administrator", {}),
        (
            "iam:PassRole",
            f"arn:aws:iam::{ACCOUNT}:role/Administrator",
            {"iam:PassedToService": "lambda.amazonaws.com"},
        ),
        ("iam:CreateUser", f"arn:aws:iam::{ACCOUNT}:user/{ROOT}-deployer", {}),
        ("iam:PutUserPolicy", f"arn:aws:iam::{ACCOUNT}:user/{ROOT}-deployer", {}),
        ("iam:CreatePolicyVersion", f"arn:aws:iam::{ACCOUNT}:policy/{ROOT}-deployer", {}),
        ("iam:AttachUserPolicy", f"arn:aws:iam::{ACCOUNT}:user/alice", {}),
        # The stacks' own roles: only the managed policies the templates attach.
        (
            "iam:AttachRolePolicy",
            f"arn:aws:iam::{ACCOUNT}:role/{ROOT}-PredictFunctionRole-{SUFFIX}",
            {"iam:PolicyARN": "arn:aws:iam::aws:policy/AdministratorAccess"},
        ),
        (
            "iam:CreateServiceLinkedRole",
            f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/x",
            {"iam:AWSServiceName": "ecs.amazonaws.com"},
        ),
        # Data and code outside the stacks.
        ("s3:GetObject", "arn:aws:s3:::payments-exports/2026/12/ledger.csv", {}),
        ("s3:PutBucketPolicy", "arn:aws:s3:::payments-exports", {}),
        ("s3:GetObject", f"arn:aws:s3:::{ROOT}-modelbucket-{SUFFIX.lower()}/models/manifest.json", {}),
        ("lambda:UpdateFunctionCode", f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:payments-api", {}),
        ("lambda:InvokeFunction", f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:payments-api", {}),
        (
            "secretsmanager:GetSecretValue",
            f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:prod/payments-AbCdEf",
            {},
        ),
        (
            "cloudformation:DeleteStack",
            f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/payments/{UUID}",
            {},
        ),
        (
            "autoscaling:UpdateAutoScalingGroup",
            f"arn:aws:autoscaling:{REGION}:{ACCOUNT}:autoScalingGroup:{UUID}:autoScalingGroupName/payments",
            {},
        ),
        # Keys: used only by RDS and Secrets Manager for the database, changed only by CloudFormation.
        ("kms:Decrypt", KEY, {}),
        ("kms:Decrypt", KEY, {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}),
        ("kms:PutKeyPolicy", KEY, {}),
        ("kms:ScheduleKeyDeletion", KEY, {}),
        (
            "ec2:TerminateInstances",
            f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/i-0a1b2c3d4e5f67890",
            VIA_CLOUDFORMATION,
        ),
        ("ec2:RunInstances", f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/*", {}),
        ("rds:DeleteDBInstance", f"arn:aws:rds:{REGION}:{ACCOUNT}:db:payments", {}),
        # The warm pool's calls: on the stacks' group only, and never completing a launch
        # hook (only the instances do, with their own role).
        (
            "autoscaling:PutWarmPool",
            f"arn:aws:autoscaling:{REGION}:{ACCOUNT}:autoScalingGroup:{UUID}:autoScalingGroupName/payments",
            VIA_CLOUDFORMATION,
        ),
        (
            "autoscaling:CompleteLifecycleAction",
            f"arn:aws:autoscaling:{REGION}:{ACCOUNT}:autoScalingGroup:{UUID}"
            f":autoScalingGroupName/{ROOT}-AppStack-{SUFFIX}-AutoScalingGroup-{SUFFIX}",
            {},
        ),
    ],
)
def test_what_the_deployer_may_not_do(action, resource, context):
    assert not allows(statements(SCALER_POLICY, TIER_POLICY), Request(action, resource, context=context))


def test_the_transform_and_the_artifact_bucket_sam_deploy_uses():
    granted = statements(SCALER_POLICY)
    transform = f"arn:aws:cloudformation:{REGION}:aws:transform/Serverless-2016-10-31"
    assert allows(granted, Request("cloudformation:CreateChangeSet", transform))
    assert not allows(
        granted,
        Request("cloudformation:CreateChangeSet", f"arn:aws:cloudformation:{REGION}:aws:transform/Include"),
    )
    stack = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{ROOT}/{UUID}"
    for action in (
        "CreateChangeSet",
        "DescribeChangeSet",
        "ExecuteChangeSet",
        "DescribeStacks",
        "DescribeStackEvents",
        "GetTemplate",
        "DeleteStack",
        "RollbackStack",
    ):
        assert allows(granted, Request(f"cloudformation:{action}", stack)), action
    managed = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/aws-sam-cli-managed-default/{UUID}"
    assert allows(granted, Request("cloudformation:CreateChangeSet", managed))
    assert allows(granted, Request("cloudformation:GetTemplateSummary", "*"))
    for action in ("s3:PutObject", "s3:GetObject", "s3:DeleteObject"):
        assert allows(granted, Request(action, ARTIFACT)), action
    # SAM CLI creates the bucket through its own stack; CloudFormation reads it back.
    bucket = f"arn:aws:s3:::aws-sam-cli-managed-default-samclisourcebucket-{SUFFIX.lower()}"
    for action in (
        "s3:CreateBucket",
        "s3:PutBucketPolicy",
        "s3:GetBucketTagging",
        "s3:GetEncryptionConfiguration",
    ):
        assert allows(granted, Request(action, bucket, context=VIA_CLOUDFORMATION)), action


def test_parameters_cloudformation_resolves_and_secrets_it_reads():
    """SSM parameter types are read by CloudFormation as the deployer; so is every
    {{resolve:secretsmanager:...}} dynamic reference."""
    granted = statements(SCALER_POLICY, TIER_POLICY)
    resolved = 0
    for stack in ALL_STACKS:
        for parameter in stack.template.get("Parameters", {}).values():
            if parameter["Type"].startswith("AWS::SSM::Parameter::Value"):
                arn = f"arn:aws:ssm:{REGION}::parameter{parameter['Default']}"
                assert allows(granted, Request("ssm:GetParameters", arn)), arn
                resolved += 1
        text = json.dumps(stack.template)
        for logical_id in re.findall(r"\{\{resolve:secretsmanager:\$\{(\w+)\}", text):
            arn = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{name_of(stack, logical_id)}-AbCdEf"
            assert allows(
                granted, Request("secretsmanager:GetSecretValue", arn, context=VIA_CLOUDFORMATION)
            ), arn
            resolved += 1
    assert resolved == 2
    other = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/payments/db-password"
    assert not allows(granted, Request("ssm:GetParameters", other))


@pytest.mark.parametrize("path", [SCALER_POLICY, TIER_POLICY], ids=lambda path: path.stem)
def test_each_policy_is_a_valid_least_privilege_document(path):
    document = policy(path)
    assert set(document) == {"Version", "Statement"}
    assert document["Version"] == "2012-10-17"
    sids = [statement["Sid"] for statement in document["Statement"]]
    assert len(sids) == len(set(sids))
    for statement in document["Statement"]:
        assert set(statement) <= {"Sid", "Effect", "Action", "Resource", "Condition"}, statement["Sid"]
        assert statement["Effect"] == "Allow"
        actions = as_list(statement["Action"])
        for action in actions:
            service, _, name = action.partition(":")
            assert re.fullmatch(r"[a-z0-9-]+", service), action
            assert name, action
            assert not name.startswith("*"), f"{statement['Sid']}: {action} grants a whole service"
        if "*" in as_list(statement["Resource"]):
            writes_iam = [a for a in actions if a.startswith("iam:")]
            assert writes_iam == [], f"{statement['Sid']}: IAM on every resource"
            reads_only = all(re.match(r"^[a-z0-9-]+:(Describe|Get|List|Validate)", a) for a in actions)
            assert (
                reads_only or "Condition" in statement or actions == ["secretsmanager:GetRandomPassword"]
            ), f"{statement['Sid']}: writes on every resource without a condition"
    # IAM's quota on a managed policy: both documents fit, hence two.
    assert len(re.sub(r"\s", "", path.read_text())) <= MANAGED_POLICY_SIZE_LIMIT


def test_the_policies_are_written_for_the_stack_name_sam_deploy_uses():
    with (REPO_ROOT / "samconfig.toml").open("rb") as handle:
        assert tomllib.load(handle)["default"]["global"]["parameters"]["stack_name"] == ROOT
    assert f"stack/{ROOT}/*" in SCALER_POLICY.read_text()
