"""The Saleor tier's nested stacks: each deploys into emulated CloudFormation with its
outputs chained network -> security -> data -> app -> monitoring, and what moto cannot
emulate (ElastiCache, alarms, scaling policies, RDS-managed secrets) is checked in the
templates themselves, so that no real limit is learned from the emulator."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode.cfn_yaml import load as load_cfn_yaml

from tests.conftest import REPO_ROOT

INFRA = REPO_ROOT / "infra-cfn"
CHILDREN = ["network", "security", "data", "app", "monitoring"]
# moto silently skips these types; their outputs get stand-ins, named here so nothing
# else can slip through.
NOT_EMULATED = {
    "AWS::ElastiCache::ReplicationGroup",
    "AWS::ElastiCache::SubnetGroup",
    "AWS::SecretsManager::Secret",
}
STAND_IN_OUTPUTS = {
    "data": {
        "CacheEndpoint": "master.saleor-cache.emulated.use1.cache.amazonaws.com",
        "DatabaseSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!db-emulated",
        "CacheAuthTokenArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:cache-token-emulated",
        "SaleorSecretKeyArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:saleor-key-emulated",
    }
}


def template(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(json.dumps(load_cfn_yaml(str(INFRA / f"{name}.yaml"))))
    return loaded


# moto has no LoadBalancerFullName / TargetGroupFullName attributes (and then drops every
# output); the test derives them from the created resources' ARNs, as CloudWatch does.
DERIVED_OUTPUTS = {"app": ("LoadBalancerFullName", "TargetGroupFullName")}


def for_moto(name: str) -> str:
    body = template(name)
    for logical_id, resource in list(body["Resources"].items()):
        if resource["Type"] in NOT_EMULATED:
            del body["Resources"][logical_id]
    for output in (*STAND_IN_OUTPUTS.get(name, {}), *DERIVED_OUTPUTS.get(name, ())):
        del body["Outputs"][output]
    return json.dumps(body)


def full_names(session: Any) -> dict[str, str]:
    elbv2 = session.client("elbv2")
    balancer = elbv2.describe_load_balancers()["LoadBalancers"][0]["LoadBalancerArn"]
    group = elbv2.describe_target_groups()["TargetGroups"][0]["TargetGroupArn"]
    return {
        "LoadBalancerFullName": balancer.split(":loadbalancer/", 1)[1],
        "TargetGroupFullName": group.rsplit(":", 1)[1],
    }


def deploy(cloudformation: Any, name: str, parameters: dict[str, str], stack: str = "") -> dict[str, str]:
    stack = stack or f"saleor-{name}"
    cloudformation.create_stack(
        StackName=stack,
        TemplateBody=for_moto(name),
        Parameters=[{"ParameterKey": key, "ParameterValue": value} for key, value in parameters.items()],
        Capabilities=["CAPABILITY_IAM"],
    )
    described = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
    assert described["StackStatus"] == "CREATE_COMPLETE", described.get("StackStatusReason")
    outputs = {output["OutputKey"]: output["OutputValue"] for output in described.get("Outputs", [])}
    return {**outputs, **STAND_IN_OUTPUTS.get(name, {})}


@pytest.fixture
def tier(aws) -> dict[str, Any]:
    """The whole tier, chained as the root template chains it (3 AZs, NAT per AZ)."""
    cloudformation = aws.client("cloudformation")
    network = deploy(cloudformation, "network", {"AzCount": "3", "NatGatewayMode": "one-per-az"})
    security = deploy(cloudformation, "security", {"VpcId": network["VpcId"]})
    data = deploy(
        cloudformation,
        "data",
        {
            "DatabaseSubnetIds": network["DatabaseSubnetIds"],
            "DatabaseSecurityGroupId": security["DatabaseSecurityGroupId"],
            "CacheSecurityGroupId": security["CacheSecurityGroupId"],
        },
    )
    app = deploy(
        cloudformation,
        "app",
        {
            "VpcId": network["VpcId"],
            "PublicSubnetIds": network["PublicSubnetIds"],
            "PrivateSubnetIds": network["PrivateSubnetIds"],
            "LoadBalancerSecurityGroupId": security["LoadBalancerSecurityGroupId"],
            "InstanceSecurityGroupId": security["InstanceSecurityGroupId"],
            "DatabaseEndpoint": data["DatabaseEndpoint"],
            "DatabaseSecretArn": data["DatabaseSecretArn"],
            "CacheEndpoint": data["CacheEndpoint"],
            "CacheAuthTokenArn": data["CacheAuthTokenArn"],
            "SaleorSecretKeyArn": data["SaleorSecretKeyArn"],
        },
    )
    app.update(full_names(aws))
    topic = aws.client("sns").create_topic(Name="alarms")["TopicArn"]
    monitoring = deploy(
        cloudformation,
        "monitoring",
        {
            "AutoScalingGroupName": app["AutoScalingGroupName"],
            "LoadBalancerFullName": app["LoadBalancerFullName"],
            "TargetGroupFullName": app["TargetGroupFullName"],
            "AlarmTopicArn": topic,
            "PredictFunctionName": "predict",
            "RetrainFunctionName": "retrain",
        },
    )
    return {
        "session": aws,
        "network": network,
        "security": security,
        "data": data,
        "app": app,
        "monitoring": monitoring,
    }


def test_tier_deploys_with_outputs_chained(tier):
    app = tier["app"]
    assert app["ShopUrl"].startswith("http://")
    assert app["ShopUrl"].endswith("/graphql/")
    assert app["LoadBalancerFullName"].startswith("app/")
    assert app["TargetGroupFullName"].startswith("targetgroup/")
    assert "dashboards:name=" in tier["monitoring"]["DashboardUrl"]
    groups = (
        tier["session"]
        .client("autoscaling")
        .describe_auto_scaling_groups(AutoScalingGroupNames=[app["AutoScalingGroupName"]])[
            "AutoScalingGroups"
        ]
    )
    assert (groups[0]["MinSize"], groups[0]["MaxSize"]) == (1, 10)
    assert len(groups[0]["VPCZoneIdentifier"].split(",")) == 3
    private = set(tier["network"]["PrivateSubnetIds"].split(","))
    assert set(groups[0]["VPCZoneIdentifier"].split(",")) == private  # instances only in private subnets
    assert tier["data"]["DatabaseEndpoint"]


def test_network_has_three_subnet_tiers_per_az_and_nat_per_mode(aws):
    cloudformation, ec2 = aws.client("cloudformation"), aws.client("ec2")
    for azs, mode, nats in (("2", "one-per-az", 2), ("3", "one-per-az", 3), ("3", "single", 1)):
        outputs = deploy(
            cloudformation, "network", {"AzCount": azs, "NatGatewayMode": mode}, f"net-{azs}-{mode}"
        )
        for tier_name in ("PublicSubnetIds", "PrivateSubnetIds", "DatabaseSubnetIds"):
            assert len(outputs[tier_name].split(",")) == int(azs)
        gateways = ec2.describe_nat_gateways(Filters=[{"Name": "vpc-id", "Values": [outputs["VpcId"]]}])
        assert len(gateways["NatGateways"]) == nats, (azs, mode)
        endpoints = ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [outputs["VpcId"]]}])
        assert any(e["ServiceName"].endswith(".s3") for e in endpoints["VpcEndpoints"])


def test_security_groups_are_exactly_as_designed(tier):
    ec2 = tier["session"].client("ec2")
    security = tier["security"]

    def ingress(group_id: str) -> list[tuple[int, str]]:
        rules = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]["IpPermissions"]
        found = []
        for rule in rules:
            for source in rule.get("IpRanges", []):
                found.append((rule["FromPort"], source["CidrIp"]))
            for source in rule.get("UserIdGroupPairs", []):
                found.append((rule["FromPort"], source["GroupId"]))
        return sorted(found)

    alb, instance = security["LoadBalancerSecurityGroupId"], security["InstanceSecurityGroupId"]
    assert ingress(alb) == [(80, "0.0.0.0/0"), (443, "0.0.0.0/0")]
    assert ingress(instance) == [(8000, alb)]  # no SSH by default
    assert ingress(security["DatabaseSecurityGroupId"]) == [(5432, instance)]
    assert ingress(security["CacheSecurityGroupId"]) == [(6379, instance)]


def test_ssh_opens_only_for_a_given_cidr():
    resource = template("security")["Resources"]["InstanceSsh"]
    assert resource["Condition"] == "AllowSsh"
    assert resource["Properties"]["CidrIp"] == {"Ref": "SshCidr"}
    assert template("security")["Parameters"]["SshCidr"]["Default"] == ""


def test_launch_template_requires_imdsv2_and_encrypts_its_volume(tier):
    ec2 = tier["session"].client("ec2")
    versions = ec2.describe_launch_template_versions(
        LaunchTemplateId=ec2.describe_launch_templates()["LaunchTemplates"][0]["LaunchTemplateId"]
    )["LaunchTemplateVersions"]
    data = versions[0]["LaunchTemplateData"]
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    assert data["BlockDeviceMappings"][0]["Ebs"]["Encrypted"] is True


def test_health_check_is_the_one_that_passes_for_saleor():
    resources = template("app")["Resources"]
    group = resources["TargetGroup"]["Properties"]
    assert (group["Port"], group["HealthCheckPath"], group["Matcher"]["HttpCode"]) == (
        8000,
        "/graphql/",
        "200",
    )
    user_data = json.dumps(resources["LaunchTemplate"]["Properties"]["LaunchTemplateData"]["UserData"])
    # GET /graphql/ answers 200 only with the playground on; the health check's Host is
    # the private IP, which ALLOWED_HOSTS must list.
    assert "PLAYGROUND_ENABLED=True" in user_data
    assert "ALLOWED_HOSTS=${LoadBalancer.DNSName},$PRIVATE_IP" in user_data
    assert "pg_advisory_lock" in user_data  # migrations serialized across instances


def test_what_moto_skips_is_right_in_the_templates():
    app = template("app")["Resources"]
    policies = {
        res["Properties"]["TargetTrackingConfiguration"]["PredefinedMetricSpecification"][
            "PredefinedMetricType"
        ]: res["Properties"]["TargetTrackingConfiguration"]["TargetValue"]
        for res in app.values()
        if res["Type"] == "AWS::AutoScaling::ScalingPolicy"
    }
    assert policies == {
        "ASGAverageCPUUtilization": {"Ref": "TargetCpuPercent"},
        "ALBRequestCountPerTarget": {"Ref": "TargetRequestsPerInstance"},
    }
    params = template("app")["Parameters"]
    assert (params["TargetCpuPercent"]["Default"], params["TargetRequestsPerInstance"]["Default"]) == (
        70,
        1000,
    )
    metrics = app["AutoScalingGroup"]["Properties"]["MetricsCollection"][0]["Metrics"]
    assert {"GroupDesiredCapacity", "GroupInServiceInstances"} <= set(metrics)

    cache = template("data")["Resources"]["Cache"]["Properties"]
    assert cache["TransitEncryptionEnabled"] is True
    assert cache["AtRestEncryptionEnabled"] is True
    database = template("data")["Resources"]["Database"]["Properties"]
    assert database["MultiAZ"] is True
    assert database["ManageMasterUserPassword"] is True
    assert database["BackupRetentionPeriod"] == 7
    assert database["PubliclyAccessible"] is False

    alarms = [
        r for r in template("monitoring")["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm"
    ]
    assert len(alarms) >= 5
    for alarm in alarms:
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopicArn"}]
    not_running = template("monitoring")["Resources"]["PredictNotRunningAlarm"]["Properties"]
    assert not_running["TreatMissingData"] == "breaching"


def test_root_template_wires_every_child_output_that_exists():
    root = json.loads(json.dumps(load_cfn_yaml(str(REPO_ROOT / "template.yaml"))))
    outputs = {name: set(template(name).get("Outputs", {})) for name in CHILDREN}
    stacks = {
        logical_id: Path(res["Properties"]["TemplateURL"]).stem
        for logical_id, res in root["Resources"].items()
        if res["Type"] == "AWS::CloudFormation::Stack"
    }
    assert sorted(stacks.values()) == sorted(CHILDREN)

    def references(node: Any) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        if isinstance(node, dict):
            attribute = node.get("Fn::GetAtt")
            if isinstance(attribute, list) and attribute[0] in stacks and attribute[1].startswith("Outputs."):
                found.append((attribute[0], attribute[1].removeprefix("Outputs.")))
            for value in node.values():
                found.extend(references(value))
        elif isinstance(node, list):
            for value in node:
                found.extend(references(value))
        return found

    used = references(root)
    assert used
    for stack, output in used:
        assert output in outputs[stacks[stack]], f"{stack} has no output {output}"
    for logical_id, child in stacks.items():
        given = set(root["Resources"][logical_id]["Properties"].get("Parameters", {}))
        declared = template(child)["Parameters"]
        required = {name for name, spec in declared.items() if "Default" not in spec}
        assert required <= given, (child, required - given)
        assert given <= set(declared), (child, given - set(declared))


@pytest.mark.parametrize("name", CHILDREN)
def test_cfn_lint_is_clean(name):
    linter = shutil.which("cfn-lint") or str(Path(sys.executable).with_name("cfn-lint"))
    completed = subprocess.run(
        [linter, str(INFRA / f"{name}.yaml")], capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
