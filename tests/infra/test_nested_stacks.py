"""The Saleor tier's nested stacks deploy into emulated CloudFormation (moto) with their
outputs chained network -> security -> data -> app -> monitoring, as the root template
chains them. What moto skips (ElastiCache, Secrets Manager secrets, alarms, scaling
policies, security group egress resources, bucket policies) is checked in the templates
themselves, so that no real limit is learned from the emulator."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.infra.cfn import (
    CHILDREN,
    INFRA,
    load,
    nested_stacks,
    references,
    render_sub,
    sub_variables,
    template,
)

pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse .* but it's not supported:UserWarning")

# Resource types moto's CloudFormation cannot create. They are removed before deploying;
# the outputs that read them get stand-ins, named here, so nothing else slips through.
NOT_EMULATED = {
    "AWS::ElastiCache::ReplicationGroup",
    "AWS::ElastiCache::SubnetGroup",
    "AWS::SecretsManager::Secret",
}
ACCOUNT = "123456789012"
STAND_IN_OUTPUTS = {
    "data": {
        "CacheEndpoint": "master.saleor-cache.emulated.use1.cache.amazonaws.com",
        "DatabaseSecretArn": f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:rds!db-emulated",
        "CacheAuthTokenArn": f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:cache-token-emulated",
        "SaleorSecretKeyArn": f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:saleor-key-emulated",
        "JwtSigningKeyArn": f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:jwt-key-emulated",
    }
}
# Attributes moto does not return (it then drops every output): derived from the created
# resources, as CloudWatch and IAM name them.
DERIVED_OUTPUTS = {"app": ("LoadBalancerFullName", "TargetGroupFullName", "AutoScalingGroupArn")}


def for_moto(name: str) -> str:
    body = template(name)
    for logical_id, resource in list(body["Resources"].items()):
        if resource["Type"] in NOT_EMULATED:
            del body["Resources"][logical_id]
    for output in (*STAND_IN_OUTPUTS.get(name, {}), *DERIVED_OUTPUTS.get(name, ())):
        del body["Outputs"][output]
    return json.dumps(body)


def derived_app_outputs(session: Any, group_name: str) -> dict[str, str]:
    elbv2 = session.client("elbv2")
    balancer = elbv2.describe_load_balancers()["LoadBalancers"][-1]["LoadBalancerArn"]
    group = elbv2.describe_target_groups(LoadBalancerArn=balancer)["TargetGroups"][0]["TargetGroupArn"]
    asg = session.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[group_name])
    return {
        "LoadBalancerFullName": balancer.split(":loadbalancer/", 1)[1],
        "TargetGroupFullName": group.rsplit(":", 1)[1],
        "AutoScalingGroupArn": asg["AutoScalingGroups"][0]["AutoScalingGroupARN"],
    }


def deploy(session: Any, name: str, parameters: dict[str, str], stack: str = "") -> dict[str, str]:
    cloudformation = session.client("cloudformation")
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
    outputs.update(STAND_IN_OUTPUTS.get(name, {}))
    if name == "app":
        outputs.update(derived_app_outputs(session, outputs["AutoScalingGroupName"]))
    declared = set(template(name).get("Outputs", {}))
    assert set(outputs) == declared, f"{name}: outputs {set(outputs) ^ declared} differ from the template"
    return outputs


def deploy_data_tier(
    session: Any, network_parameters: dict[str, str], data_parameters: dict[str, str] | None = None
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """network, security and data, each fed the outputs of the ones before it."""
    network = deploy(session, "network", network_parameters)
    security = deploy(session, "security", {"VpcId": network["VpcId"], "VpcCidr": network["VpcCidr"]})
    data = deploy(
        session,
        "data",
        {
            "DatabaseSubnetIds": network["DatabaseSubnetIds"],
            "DatabaseSecurityGroupId": security["DatabaseSecurityGroupId"],
            "CacheSecurityGroupId": security["CacheSecurityGroupId"],
            **(data_parameters or {}),
        },
    )
    return network, security, data


def placement_for_app(network: dict[str, Any], security: dict[str, Any]) -> dict[str, str]:
    """The app stack's parameters from the network and security stacks' outputs."""
    return {
        "VpcId": network["VpcId"],
        "PublicSubnetIds": network["PublicSubnetIds"],
        "PrivateSubnetIds": network["PrivateSubnetIds"],
        "LoadBalancerSecurityGroupId": security["LoadBalancerSecurityGroupId"],
        "InstanceSecurityGroupId": security["InstanceSecurityGroupId"],
    }


def deploy_tier(
    session: Any, *, azs: str = "3", app_parameters: dict[str, str] | None = None
) -> dict[str, Any]:
    """The whole tier, each child fed the outputs of the ones before it."""
    network, security, data = deploy_data_tier(session, {"AzCount": azs, "NatGatewayMode": "one-per-az"})
    app = deploy(
        session,
        "app",
        {
            **placement_for_app(network, security),
            "DatabaseEndpoint": data["DatabaseEndpoint"],
            "DatabaseSecretArn": data["DatabaseSecretArn"],
            "CacheEndpoint": data["CacheEndpoint"],
            "CacheAuthTokenArn": data["CacheAuthTokenArn"],
            "SaleorSecretKeyArn": data["SaleorSecretKeyArn"],
            "JwtSigningKeyArn": data["JwtSigningKeyArn"],
            **(app_parameters or {}),
        },
    )
    topic = session.client("sns").create_topic(Name="alarms")["TopicArn"]
    monitoring = deploy(
        session,
        "monitoring",
        {
            "AutoScalingGroupName": app["AutoScalingGroupName"],
            "LoadBalancerFullName": app["LoadBalancerFullName"],
            "TargetGroupFullName": app["TargetGroupFullName"],
            "AlarmTopicArn": topic,
            "PredictFunctionName": "saleor-predict",
            "PredictLogGroupName": "/saleor-scaling/shop/predict",
            "RetrainFunctionName": "saleor-retrain",
            "RetrainLogGroupName": "/saleor-scaling/shop/retrain",
        },
    )
    return {"network": network, "security": security, "data": data, "app": app, "monitoring": monitoring}


@pytest.fixture
def tier(aws) -> dict[str, Any]:
    return {"session": aws, **deploy_tier(aws)}


# ---------------------------------------------------------------- deployed (moto)


def test_tier_deploys_with_outputs_chained(tier):
    session, app = tier["session"], tier["app"]
    assert app["ShopUrl"] == f"http://{app['LoadBalancerDnsName']}/graphql/"
    assert app["LoadBalancerFullName"].startswith("app/")
    assert app["TargetGroupFullName"].startswith("targetgroup/")
    assert app["AutoScalingGroupArn"].startswith("arn:aws:autoscaling:")
    assert app["AutoScalingGroupArn"].endswith(f"autoScalingGroupName/{app['AutoScalingGroupName']}")
    assert "dashboards:name=" in tier["monitoring"]["DashboardUrl"]

    group = session.client("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[app["AutoScalingGroupName"]]
    )["AutoScalingGroups"][0]
    assert (group["MinSize"], group["MaxSize"]) == (1, 10)
    assert group["HealthCheckType"] == "ELB"
    private = set(tier["network"]["PrivateSubnetIds"].split(","))
    assert set(group["VPCZoneIdentifier"].split(",")) == private  # instances only in private subnets

    elbv2 = session.client("elbv2")
    balancer = elbv2.describe_load_balancers()["LoadBalancers"][0]
    assert balancer["Scheme"] == "internet-facing"
    assert {zone["SubnetId"] for zone in balancer["AvailabilityZones"]} == set(
        tier["network"]["PublicSubnetIds"].split(",")
    )
    target_group = elbv2.describe_target_groups()["TargetGroups"][0]
    assert (target_group["Port"], target_group["HealthCheckPath"], target_group["Matcher"]["HttpCode"]) == (
        8000,
        "/graphql/",
        "200",
    )
    listeners = elbv2.describe_listeners(LoadBalancerArn=balancer["LoadBalancerArn"])["Listeners"]
    assert [(listener["Port"], listener["DefaultActions"][0]["Type"]) for listener in listeners] == [
        (80, "forward")
    ]

    database = session.client("rds").describe_db_instances()["DBInstances"][0]
    assert database["Endpoint"]["Address"] == tier["data"]["DatabaseEndpoint"]
    assert database["MultiAZ"]
    assert database["StorageEncrypted"]
    assert not database["PubliclyAccessible"]
    assert database["BackupRetentionPeriod"] == 7  # (moto drops DeletionProtection: checked in the template)
    assert {subnet["SubnetIdentifier"] for subnet in database["DBSubnetGroup"]["Subnets"]} == set(
        tier["network"]["DatabaseSubnetIds"].split(",")
    )

    dashboard = session.client("cloudwatch").get_dashboard(DashboardName=tier["monitoring"]["DashboardName"])
    body = json.loads(dashboard["DashboardBody"])
    assert app["AutoScalingGroupName"] in json.dumps(body)


def test_launch_template_and_instance_role(tier):
    session = tier["session"]
    ec2, iam = session.client("ec2"), session.client("iam")
    templates = ec2.describe_launch_templates()["LaunchTemplates"]
    data = ec2.describe_launch_template_versions(LaunchTemplateId=templates[0]["LaunchTemplateId"])[
        "LaunchTemplateVersions"
    ][0]["LaunchTemplateData"]
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    assert data["MetadataOptions"]["HttpPutResponseHopLimit"] == 1
    volume = data["BlockDeviceMappings"][0]["Ebs"]
    assert volume["Encrypted"] is True
    assert volume["VolumeType"] == "gp3"
    assert data["InstanceType"] == "t3.medium"
    assert data["SecurityGroupIds"] == [tier["security"]["InstanceSecurityGroupId"]]

    roles = [role for role in iam.list_roles()["Roles"] if "InstanceRole" in role["RoleName"]]
    assert len(roles) == 1
    name = roles[0]["RoleName"]
    # (moto does not attach ManagedPolicyArns: read from the template.)
    managed = template("app")["Resources"]["InstanceRole"]["Properties"]["ManagedPolicyArns"]
    assert [arn["Fn::Sub"].rsplit("/", 1)[1] for arn in managed] == [
        "CloudWatchAgentServerPolicy",
        "AmazonSSMManagedInstanceCore",
    ]
    (policy_name,) = iam.list_role_policies(RoleName=name)["PolicyNames"]
    document = iam.get_role_policy(RoleName=name, PolicyName=policy_name)["PolicyDocument"]
    if isinstance(document, str):  # moto keeps a CloudFormation-made policy as the dict's repr
        document = ast.literal_eval(document)
    statements = {statement["Sid"]: statement for statement in document["Statement"]}
    data_outputs = tier["data"]
    assert statements["ReadItsOwnSecretsOnly"]["Action"] == "secretsmanager:GetSecretValue"
    assert sorted(statements["ReadItsOwnSecretsOnly"]["Resource"]) == sorted(
        data_outputs[key]
        for key in ("DatabaseSecretArn", "CacheAuthTokenArn", "SaleorSecretKeyArn", "JwtSigningKeyArn")
    )
    assert statements["StoreTheJwtKeyOnce"]["Resource"] == data_outputs["JwtSigningKeyArn"]
    assert len(statements) == 2


def test_security_groups_are_exactly_as_specified(tier):
    ec2 = tier["session"].client("ec2")
    security = tier["security"]

    def ingress(group_id: str) -> list[tuple[int, int, str]]:
        rules = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]["IpPermissions"]
        found = []
        for rule in rules:
            sources = [r["CidrIp"] for r in rule.get("IpRanges", [])]
            sources += [r["GroupId"] for r in rule.get("UserIdGroupPairs", [])]
            found += [(rule["FromPort"], rule["ToPort"], source) for source in sources]
            assert not rule.get("Ipv6Ranges")
            assert not rule.get("PrefixListIds")
        return sorted(found)

    alb, instances = security["LoadBalancerSecurityGroupId"], security["InstanceSecurityGroupId"]
    assert ingress(alb) == [(80, 80, "0.0.0.0/0"), (443, 443, "0.0.0.0/0")]
    assert ingress(instances) == [(8000, 8000, alb)]  # no SSH: SshCidr is empty by default
    assert ingress(security["DatabaseSecurityGroupId"]) == [(5432, 5432, instances)]
    assert ingress(security["CacheSecurityGroupId"]) == [(6379, 6379, instances)]


def test_ssh_opens_only_to_the_given_cidr(aws):
    network = deploy(aws, "network", {"AzCount": "2", "NatGatewayMode": "single"})
    security = deploy(aws, "security", {"VpcId": network["VpcId"], "SshCidr": "203.0.113.0/24"})
    rules = aws.client("ec2").describe_security_groups(GroupIds=[security["InstanceSecurityGroupId"]])[
        "SecurityGroups"
    ][0]["IpPermissions"]
    ssh = [rule for rule in rules if rule["FromPort"] == 22]
    assert len(ssh) == 1
    assert [r["CidrIp"] for r in ssh[0]["IpRanges"]] == ["203.0.113.0/24"]


@pytest.mark.parametrize(
    ("azs", "mode", "nat_gateways"), [("2", "one-per-az", 2), ("3", "one-per-az", 3), ("2", "single", 1)]
)
def test_network_subnets_and_routes_per_az(aws, azs, mode, nat_gateways):
    outputs = deploy(aws, "network", {"AzCount": azs, "NatGatewayMode": mode})
    ec2 = aws.client("ec2")
    vpc = ec2.describe_vpcs(VpcIds=[outputs["VpcId"]])["Vpcs"][0]
    assert vpc["CidrBlock"] == outputs["VpcCidr"] == "10.0.0.0/16"
    by_vpc = [{"Name": "vpc-id", "Values": [outputs["VpcId"]]}]
    tiers = {
        key: outputs[key].split(",") for key in ("PublicSubnetIds", "PrivateSubnetIds", "DatabaseSubnetIds")
    }
    for subnets in tiers.values():
        assert len(subnets) == int(azs)
        zones = {s["AvailabilityZone"] for s in ec2.describe_subnets(SubnetIds=subnets)["Subnets"]}
        assert len(zones) == int(azs)  # one subnet of each tier per AZ
    assert len(ec2.describe_subnets(Filters=by_vpc)["Subnets"]) == 3 * int(azs)
    gateways = ec2.describe_nat_gateways(Filters=by_vpc)["NatGateways"]
    assert len(gateways) == nat_gateways
    assert {gateway["SubnetId"] for gateway in gateways} <= set(tiers["PublicSubnetIds"])
    assert ec2.describe_internet_gateways(
        Filters=[{"Name": "attachment.vpc-id", "Values": [outputs["VpcId"]]}]
    )["InternetGateways"]

    def default_route(table: dict[str, Any]) -> dict[str, str]:
        return next((r for r in table["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0"), {})

    tables = ec2.describe_route_tables(Filters=by_vpc)["RouteTables"]
    public = [t for t in tables if default_route(t).get("GatewayId", "").startswith("igw-")]
    private = [t for t in tables if default_route(t).get("NatGatewayId", "").startswith("nat-")]
    assert len(public) == 1
    assert len(private) == int(azs)  # one per AZ, each through its own NAT or the single one
    assert len({default_route(t)["NatGatewayId"] for t in private}) == nat_gateways
    # (moto does not report subnet associations: test_route_table_associations reads them.)
    endpoints = ec2.describe_vpc_endpoints(Filters=by_vpc)["VpcEndpoints"]
    (s3,) = [e for e in endpoints if e["ServiceName"].endswith(".s3")]
    assert s3["VpcEndpointType"] == "Gateway"
    assert set(s3["RouteTableIds"]) == {t["RouteTableId"] for t in private}


def test_route_table_associations():
    resources = template("network")["Resources"]
    associations = {
        r["Properties"]["SubnetId"]["Ref"]: r["Properties"]["RouteTableId"]["Ref"]
        for r in resources.values()
        if r["Type"] == "AWS::EC2::SubnetRouteTableAssociation"
    }
    assert associations == {
        **{f"PublicSubnet{az}": "PublicRouteTable" for az in "ABC"},
        **{f"PrivateSubnet{az}": f"PrivateRouteTable{az}" for az in "ABC"},
        **{f"DatabaseSubnet{az}": "DatabaseRouteTable" for az in "ABC"},
    }
    routes = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::EC2::Route"]
    assert not [r for r in routes if r["RouteTableId"] == {"Ref": "DatabaseRouteTable"}]  # no way out
    for az in "ABC":  # subnets of the third AZ exist only with AzCount 3
        for kind in ("Public", "Private", "Database"):
            assert resources[f"{kind}Subnet{az}"].get("Condition") == ("ThreeAzs" if az == "C" else None)


def test_https_with_a_certificate_redirects_http(aws):
    certificate = aws.client("acm").request_certificate(DomainName="shop.example.com")["CertificateArn"]
    outputs = deploy_tier(
        aws,
        azs="2",
        app_parameters={"CertificateArn": certificate, "ShopDomainName": "shop.example.com"},
    )
    assert outputs["app"]["ShopUrl"] == "https://shop.example.com/graphql/"
    elbv2 = aws.client("elbv2")
    balancer = elbv2.describe_load_balancers()["LoadBalancers"][0]["LoadBalancerArn"]
    listeners = {
        listener["Port"]: listener
        for listener in elbv2.describe_listeners(LoadBalancerArn=balancer)["Listeners"]
    }
    assert set(listeners) == {80, 443}
    redirect = listeners[80]["DefaultActions"][0]
    assert redirect["Type"] == "redirect"
    assert redirect["RedirectConfig"]["Protocol"] == "HTTPS"
    assert listeners[443]["Protocol"] == "HTTPS"
    assert listeners[443]["Certificates"][0]["CertificateArn"] == certificate
    assert listeners[443]["DefaultActions"][0]["Type"] == "forward"


# ---------------------------------------------------------------- what moto skips, in the templates


def test_scaling_group_and_target_tracking():
    app = template("app")
    resources, parameters = app["Resources"], app["Parameters"]
    policies = {
        res["Properties"]["TargetTrackingConfiguration"]["PredefinedMetricSpecification"][
            "PredefinedMetricType"
        ]: res
        for res in resources.values()
        if res["Type"] == "AWS::AutoScaling::ScalingPolicy"
    }
    assert set(policies) == {"ASGAverageCPUUtilization", "ALBRequestCountPerTarget"}
    cpu = policies["ASGAverageCPUUtilization"]["Properties"]["TargetTrackingConfiguration"]
    requests = policies["ALBRequestCountPerTarget"]["Properties"]["TargetTrackingConfiguration"]
    assert cpu["TargetValue"] == {"Ref": "TargetCpuPercent"}
    assert requests["TargetValue"] == {"Ref": "TargetRequestsPerInstance"}
    assert (
        parameters["TargetCpuPercent"]["Default"],
        parameters["TargetRequestsPerInstance"]["Default"],
    ) == (
        70,
        1000,
    )
    assert requests["PredefinedMetricSpecification"]["ResourceLabel"] == {
        "Fn::Join": [
            "/",
            [
                {"Fn::GetAtt": ["LoadBalancer", "LoadBalancerFullName"]},
                {"Fn::GetAtt": ["TargetGroup", "TargetGroupFullName"]},
            ],
        ]
    }
    # The request policy needs the target group behind a listener first.
    assert policies["ALBRequestCountPerTarget"]["DependsOn"] == "ListenersReady"

    group = resources["AutoScalingGroup"]
    properties = group["Properties"]
    assert (parameters["MinSize"]["Default"], parameters["MaxSize"]["Default"]) == (1, 10)
    assert properties["HealthCheckType"] == "ELB"  # EC2 status checks plus the target group's
    assert properties["DefaultInstanceWarmup"] == {"Ref": "InstanceWarmupSeconds"}
    assert "DesiredCapacity" not in properties  # a stack update must not undo predictive scaling
    metrics = properties["MetricsCollection"][0]
    assert metrics["Granularity"] == "1Minute"
    assert {"GroupDesiredCapacity", "GroupInServiceInstances"} <= set(metrics["Metrics"])
    assert group["CreationPolicy"]["ResourceSignal"]["Count"] == {"Ref": "MinSize"}
    assert group["UpdatePolicy"]["AutoScalingRollingUpdate"]["WaitOnResourceSignals"] is True

    image = parameters["ImageId"]
    assert image["Type"] == "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>"
    assert image["Default"] == "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
    assert parameters["InstanceType"]["Default"] == "t3.medium"


def _iso_minutes(duration: str) -> int:
    match = re.fullmatch(r"PT(?:(\d+)H)?(?:(\d+)M)?", duration)
    assert match, duration
    return int(match.group(1) or 0) * 60 + int(match.group(2) or 0)


def test_the_grace_period_outlasts_a_first_migration_and_the_waits_outlast_it():
    """The first migrate of an empty database took 7.5 minutes on a real Saleor; every
    instance launched meanwhile waits for it under the advisory lock, and all of them are
    registered (and failing the health check) from launch. The group must not replace
    them for it, and CloudFormation must not give up on an instance the group still
    tolerates."""
    app = template("app")
    group = app["Resources"]["AutoScalingGroup"]
    grace = app["Parameters"]["HealthCheckGracePeriodSeconds"]
    assert group["Properties"]["HealthCheckGracePeriod"] == {"Ref": "HealthCheckGracePeriodSeconds"}
    boot, first_migrate, start_and_two_checks = 4 * 60, 450, 60 + 2 * 15
    assert grace["Default"] >= boot + first_migrate + start_and_two_checks + 5 * 60  # 5 min of slack
    assert grace["MinValue"] >= 300
    creation = _iso_minutes(group["CreationPolicy"]["ResourceSignal"]["Timeout"]) * 60
    rolling = _iso_minutes(group["UpdatePolicy"]["AutoScalingRollingUpdate"]["PauseTime"]) * 60
    assert min(creation, rolling) >= grace["MaxValue"] + 5 * 60
    # the root template lets the operator choose it, within the same bounds
    from tests.conftest import REPO_ROOT

    root = load(REPO_ROOT / "template.yaml")
    exposed = root["Parameters"]["HealthCheckGracePeriodSeconds"]
    assert {k: exposed[k] for k in ("Default", "MinValue", "MaxValue")} == {
        k: grace[k] for k in ("Default", "MinValue", "MaxValue")
    }
    passed = nested_stacks(root)["AppStack"]["Properties"]["Parameters"]
    assert passed["HealthCheckGracePeriodSeconds"] == {"Ref": "HealthCheckGracePeriodSeconds"}


def test_saleor_usage_telemetry_is_a_parameter_off_by_default():
    app = template("app")
    parameter = app["Parameters"]["SaleorUsageTelemetry"]
    assert (parameter["Default"], parameter["AllowedValues"]) == ("false", ["true", "false"])
    text, variables = app["Resources"]["LaunchTemplate"]["Properties"]["LaunchTemplateData"]["UserData"][
        "Fn::Base64"
    ]["Fn::Sub"]
    assert "SEND_USAGE_TELEMETRY=${UsageTelemetry}" in [line.strip() for line in text.splitlines()]
    # Saleor parses the value with ast.literal_eval: it must be True or False, capitalised
    assert variables["UsageTelemetry"] == {"Fn::If": ["SendUsageTelemetry", "True", "False"]}
    condition = app["Conditions"]["SendUsageTelemetry"]
    assert condition == {"Fn::Equals": [{"Ref": "SaleorUsageTelemetry"}, "true"]}
    from tests.conftest import REPO_ROOT

    root = load(REPO_ROOT / "template.yaml")
    assert root["Parameters"]["SaleorUsageTelemetry"]["Default"] == "false"
    passed = nested_stacks(root)["AppStack"]["Properties"]["Parameters"]
    assert passed["SaleorUsageTelemetry"] == {"Ref": "SaleorUsageTelemetry"}


def test_health_check_and_load_balancer_settings():
    resources = template("app")["Resources"]
    group = resources["TargetGroup"]["Properties"]
    assert (group["Port"], group["HealthCheckPath"], group["Matcher"]["HttpCode"]) == (
        8000,
        "/graphql/",
        "200",
    )
    attributes = {
        a["Key"]: a["Value"] for a in resources["LoadBalancer"]["Properties"]["LoadBalancerAttributes"]
    }
    # Shorter than uvicorn's 35 s keep-alive in Saleor's image (else sporadic 502s).
    assert int(attributes["idle_timeout.timeout_seconds"]) < 35
    assert attributes["routing.http.drop_invalid_header_fields.enabled"] == "true"
    https = resources["HttpsListener"]
    assert https["Condition"] == "HasCertificate"
    assert https["Properties"]["SslPolicy"].startswith("ELBSecurityPolicy-TLS13")
    assert resources["AccessLogBucket"]["DeletionPolicy"] == "Retain"


def test_data_tier_settings():
    resources = template("data")["Resources"]
    cache = resources["Cache"]
    assert cache["Type"] == "AWS::ElastiCache::ReplicationGroup"
    properties = cache["Properties"]
    assert properties["TransitEncryptionEnabled"] is True
    assert properties["AtRestEncryptionEnabled"] is True
    assert properties["NumCacheClusters"] == {"Fn::If": ["Replicated", 2, 1]}
    assert properties["AutomaticFailoverEnabled"] == {"Fn::If": ["Replicated", True, False]}
    assert properties["CacheNodeType"] == {"Ref": "CacheNodeType"}
    assert properties["CacheSubnetGroupName"] == {"Ref": "CacheSubnetGroup"}
    assert "resolve:secretsmanager" in json.dumps(properties["AuthToken"])

    database = resources["Database"]
    assert database["DeletionPolicy"] == "Snapshot"
    settings = database["Properties"]
    assert settings["ManageMasterUserPassword"] is True
    assert "MasterUserPassword" not in settings
    assert settings["MultiAZ"] is True
    assert settings["StorageEncrypted"] is True
    assert settings["PubliclyAccessible"] is False
    assert settings["BackupRetentionPeriod"] == 7
    assert settings["DeletionProtection"] == {"Ref": "DatabaseDeletionProtection"}
    assert settings["DBSubnetGroupName"] == {"Ref": "DatabaseSubnetGroup"}
    assert resources["DatabaseSubnetGroup"]["Properties"]["SubnetIds"] == {"Ref": "DatabaseSubnetIds"}
    assert "GenerateSecretString" in resources["SaleorSecretKey"]["Properties"]


def test_security_group_egress_reaches_only_the_data_tier():
    resources = template("security")["Resources"]
    egress = {
        (
            r["Properties"]["GroupId"]["Ref"],
            r["Properties"]["FromPort"],
            r["Properties"]["DestinationSecurityGroupId"]["Ref"],
        )
        for r in resources.values()
        if r["Type"] == "AWS::EC2::SecurityGroupEgress"
    }
    assert egress == {
        ("InstanceSecurityGroup", 5432, "DatabaseSecurityGroup"),
        ("InstanceSecurityGroup", 6379, "CacheSecurityGroup"),
    }
    ssh = resources["InstanceSsh"]
    assert ssh["Condition"] == "AllowSsh"
    assert ssh["Properties"]["CidrIp"] == {"Ref": "SshCidr"}
    assert template("security")["Parameters"]["SshCidr"]["Default"] == ""


def test_alarms_go_to_the_topic_and_missing_invocations_breach():
    monitoring = template("monitoring")
    alarms = {k: r for k, r in monitoring["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    assert {"HighCpuAlarm", "UnhealthyHostsAlarm", "PredictErrorsAlarm", "PredictNotRunningAlarm"} <= set(
        alarms
    )
    for name, alarm in alarms.items():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopicArn"}], name
    not_running = alarms["PredictNotRunningAlarm"]["Properties"]
    assert (not_running["Namespace"], not_running["MetricName"]) == ("AWS/Lambda", "Invocations")
    assert not_running["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "PredictFunctionName"}}]
    assert not_running["TreatMissingData"] == "breaching"
    assert alarms["PredictNoDecisionAlarm"]["Properties"]["TreatMissingData"] == "breaching"
    errors = alarms["PredictErrorsAlarm"]["Properties"]
    assert (errors["MetricName"], errors["Dimensions"][0]["Value"]) == (
        "Errors",
        {"Ref": "PredictFunctionName"},
    )
    subscription = monitoring["Resources"]["EmailSubscription"]
    assert subscription["Condition"] == "HasEmail"
    assert subscription["Properties"]["Protocol"] == "email"


def test_dashboard_is_valid_json_with_the_scaling_metrics():
    monitoring = template("monitoring")
    text = monitoring["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    values = {
        "AWS::Region": "us-east-1",
        "LoadBalancerFullName": "app/shop/0123456789abcdef",
        "AutoScalingGroupName": "shop-asg",
        "PredictFunctionName": "predict",
        "PredictLogGroupName": "/saleor-scaling/shop/predict",
        "RetrainFunctionName": "retrain",
        "RetrainLogGroupName": "/saleor-scaling/shop/retrain",
        "TargetCpuPercent": "70",
        "TargetShortfallPercent": "1",
    }
    assert sub_variables(text) <= set(values) | set(monitoring["Parameters"])
    body = json.loads(render_sub(text, values))
    metrics = [m for w in body["widgets"] for m in w["properties"].get("metrics", [])]
    # The forecast error is read from the decision log lines (no custom metric for it).
    (log_widget,) = [
        w for w in body["widgets"] if w["type"] == "log" and "Forecast error" in w["properties"]["title"]
    ]
    assert log_widget["properties"]["query"].startswith("SOURCE '/saleor-scaling/shop/predict' |")
    assert "decision.forecast_error" in log_widget["properties"]["query"]
    names = {name for metric in metrics for name in metric if isinstance(name, str)}
    for required in (
        "RequestCount", "TargetResponseTime", "HTTPCode_Target_5XX_Count", "CPUUtilization",
        "GroupDesiredCapacity", "GroupInServiceInstances", "PredictedCapacity", "RecommendedCapacity",
    ):  # fmt: skip
        assert required in names, required
    custom = [m for m in metrics if m[0] == "SaleorPredictiveScaling"]
    assert custom
    assert all(m[2:6] == ["AutoScalingGroupName", "shop-asg", "service", m[5]] for m in custom)
    assert {m[5] for m in custom} == {"predict", "retrain"}


def test_every_parameter_is_described_and_constrained_where_it_can_be():
    for name in CHILDREN:
        for parameter, spec in template(name)["Parameters"].items():
            assert spec.get("Description"), (name, parameter)
            if spec["Type"] == "String":
                assert {"AllowedValues", "AllowedPattern"} & set(spec), (name, parameter)


# ---------------------------------------------------------------- the root's wiring


def _check_wiring(root: dict[str, Any], source: str) -> None:
    stacks = nested_stacks(root)
    files = {
        logical_id: Path(resource["Properties"]["TemplateURL"]) for logical_id, resource in stacks.items()
    }
    assert sorted(path.stem for path in files.values()) == sorted(CHILDREN), source
    assert all(path.parent == Path("infra-cfn") for path in files.values()), source  # local, packaged by sam
    children = {logical_id: template(path.stem) for logical_id, path in files.items()}
    for kind, target in references(root):
        if kind == "GetAtt" and target.split(".", 1)[0] in stacks:
            stack, attribute = target.split(".", 1)
            assert attribute.startswith("Outputs."), (source, target)
            output = attribute.removeprefix("Outputs.")
            assert output in children[stack].get("Outputs", {}), f"{source}: {stack} has no output {output}"
    for logical_id, child in children.items():
        given = set(stacks[logical_id]["Properties"].get("Parameters", {}))
        declared = child["Parameters"]
        required = {name for name, spec in declared.items() if "Default" not in spec}
        assert required <= given, f"{source}: {logical_id} lacks {required - given}"
        assert given <= set(declared), f"{source}: {logical_id} has no parameters {given - set(declared)}"
        if logical_id != "MonitoringStack":  # it also watches an existing shop
            assert stacks[logical_id].get("Condition") == "CreateSaleorTier", (source, logical_id)


def test_root_template_wires_every_stack_and_exposes_what_users_need():
    from tests.conftest import REPO_ROOT

    root = load(REPO_ROOT / "template.yaml")
    _check_wiring(root, "template.yaml")
    outputs = root["Outputs"]
    for required in (
        "ShopUrl", "AutoScalingGroupName", "AutoScalingGroupArn", "LoadBalancerFullName",
        "TargetGroupFullName", "LoadBalancerDnsName", "DashboardUrl", "ModelBucketName",
    ):  # fmt: skip
        assert required in outputs, required
    monitoring = nested_stacks(root)["MonitoringStack"]["Properties"]["Parameters"]
    assert monitoring["AlarmTopicArn"] == {"Ref": "AlarmTopic"}
    assert monitoring["PredictFunctionName"] == {"Ref": "PredictFunction"}
    assert monitoring["PredictLogGroupName"] == {"Ref": "PredictLogGroup"}  # the dashboard's log widget
    assert monitoring["RetrainFunctionName"] == {"Ref": "RetrainFunction"}


# ---------------------------------------------------------------- cfn-lint


def _cfn_lint() -> str:
    linter = shutil.which("cfn-lint") or str(Path(sys.executable).with_name("cfn-lint"))
    if not Path(linter).exists() and not shutil.which(linter):
        pytest.skip("cfn-lint is not installed")
    return linter


@pytest.mark.parametrize("name", CHILDREN)
def test_cfn_lint_is_clean(name):
    completed = subprocess.run(
        [_cfn_lint(), "--", str(INFRA / f"{name}.yaml")], capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
