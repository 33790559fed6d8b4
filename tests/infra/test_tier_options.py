"""The Saleor tier's optional parts (issue 17), each off or at today's behaviour by default:
Spot and mixed instance types of one size, an RDS read replica for Saleor's
DATABASE_URL_REPLICA, Saleor's DB_CONN_MAX_AGE, and a Route 53 alias record for the shop's
name. Deployed into moto where it emulates the part; otherwise asserted on the templates,
with AWS's own facts (instance sizes from the DescribeInstanceTypes data moto ships, not
from moto's leniency) and the templates' Rules evaluated as CloudFormation evaluates them."""

from __future__ import annotations

import base64
import gzip
import json
from functools import cache
from pathlib import Path
from typing import Any

import moto
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import REPO_ROOT
from tests.infra.cfn import load, nested_stacks, template
from tests.infra.test_bootstrap import SECRETS, boot, user_data, world  # noqa: F401 (fixture)
from tests.infra.test_nested_stacks import deploy, deploy_data_tier, placement_for_app

pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse .* but it's not supported:UserWarning")

# ---------------------------------------------------------------- CloudFormation's Rules


def _value(node: Any, parameters: dict[str, Any]) -> Any:
    """A rule function's value, as CloudFormation's rule functions define it."""
    if isinstance(node, list):
        return [_value(item, parameters) for item in node]
    if not isinstance(node, dict):
        return node
    ((function, argument),) = node.items()
    if function == "Ref":
        return parameters[argument]
    if function == "Fn::Not":
        return not _value(argument[0], parameters)
    if function == "Fn::And":
        return all(_value(condition, parameters) for condition in argument)
    if function == "Fn::Equals":
        return _value(argument[0], parameters) == _value(argument[1], parameters)
    if function == "Fn::Contains":  # a string matches at least one value of a list
        return _value(argument[1], parameters) in _value(argument[0], parameters)
    if function == "Fn::EachMemberIn":  # every member of the first list is in the second
        allowed = _value(argument[1], parameters)
        return all(member in allowed for member in _value(argument[0], parameters))
    raise AssertionError(f"rule function {function} is not modelled here")


def parameter_values(body: dict[str, Any], **given_values: str) -> dict[str, Any]:
    """Parameter values as rules see them: defaults filled in, a CommaDelimitedList split
    (its empty default is the list [""])."""
    values: dict[str, Any] = {}
    for name, spec in body["Parameters"].items():
        raw = given_values.get(name, spec.get("Default"))
        if raw is None:
            continue
        raw = str(raw)
        values[name] = raw.split(",") if spec["Type"] == "CommaDelimitedList" else raw
    return values


def failed_rules(body: dict[str, Any], **given_values: str) -> list[str]:
    """The rules whose assertions fail for these parameters (CloudFormation then refuses
    to create or update the stack)."""
    parameters = parameter_values(body, **given_values)
    failed = []
    for name, rule in body.get("Rules", {}).items():
        if "RuleCondition" in rule and not _value(rule["RuleCondition"], parameters):
            continue
        if not all(_value(assertion["Assert"], parameters) for assertion in rule["Assertions"]):
            failed.append(name)
    return failed


# ---------------------------------------------------------------- instance sizes (AWS data)


@cache
def instance_types() -> dict[str, Any]:
    """DescribeInstanceTypes as AWS answers it, the copy moto ships (not moto behaviour)."""
    path = Path(moto.__file__).parent / "ec2" / "resources" / "instance_types.json.gz"
    with gzip.open(path) as data:
        loaded: dict[str, Any] = json.load(data)
    return loaded


def size(instance_type: str) -> tuple[int, int, int, bool]:
    """What one instance serves depends on: vCPUs, threads per core (a vCPU is a
    hyperthread or a whole core), memory, burstable CPU credits or not."""
    facts = instance_types()[instance_type]
    assert "x86_64" in facts["ProcessorInfo"]["SupportedArchitectures"], instance_type  # the AMI's
    return (
        facts["VCpuInfo"]["DefaultVCpus"],
        facts["VCpuInfo"]["DefaultThreadsPerCore"],
        facts["MemoryInfo"]["SizeInMiB"],
        bool(facts["BurstablePerformanceSupported"]),
    )


APP = template("app")
PRIMARY_TYPES = APP["Parameters"]["InstanceType"]["AllowedValues"]
MORE_TYPES = [t for t in APP["Parameters"]["AdditionalInstanceTypes"]["AllowedValues"] if t]


def test_every_type_offered_has_a_one_size_class_and_every_class_is_one_size():
    classes = {
        name: rule["RuleCondition"]["Fn::Contains"][0]
        for name, rule in APP["Rules"].items()
        if name.startswith("OneSize")
    }
    assert classes
    for name, members in classes.items():
        assert len({size(member) for member in members}) == 1, (name, {m: size(m) for m in members})
        allowed = APP["Rules"][name]["Assertions"][0]["Assert"]["Fn::EachMemberIn"][1]
        assert sorted(allowed) == sorted(["", *members]), name
        # InstanceType and at most 3 more: the group's 4 override slots hold any class.
        assert len(members) <= 4, name
    for instance_type in [*PRIMARY_TYPES, *MORE_TYPES]:
        homes = [name for name, members in classes.items() if instance_type in members]
        assert len(homes) == 1, (instance_type, homes)
    assert sorted(MORE_TYPES) == sorted(m for members in classes.values() for m in members)
    # Equal sizes share a class: nothing of one size is split over two classes.
    sizes = [size(members[0]) for members in classes.values()]
    assert len(sizes) == len(set(sizes))


@settings(max_examples=300, deadline=None)
@given(
    first=st.sampled_from(PRIMARY_TYPES),
    more=st.lists(st.sampled_from(MORE_TYPES), max_size=3, unique=True),
)
def test_the_rules_accept_exactly_more_types_of_the_first_ones_size(first, more):
    failed = failed_rules(APP, InstanceType=first, AdditionalInstanceTypes=",".join(more))
    one_size = all(size(t) == size(first) for t in more) and first not in more
    assert (not failed) == one_size, (first, more, failed)


def test_the_root_repeats_the_app_stacks_rules_so_a_wrong_mix_fails_before_any_stack():
    root = load(REPO_ROOT / "template.yaml")
    ours = [name for name in APP["Rules"] if name.startswith("OneSize")]
    ours += ["AdditionalTypesAreNotTheFirstAgain", "HostedZoneNeedsTheShopsDomain"]
    for name in ours:
        assert root["Rules"].get(name) == APP["Rules"][name], name
    for parameter in ("AdditionalInstanceTypes", "HostedZoneId"):
        assert root["Parameters"][parameter] == APP["Parameters"][parameter], parameter
    assert root["Parameters"]["InstanceType"]["AllowedValues"] == PRIMARY_TYPES
    assert failed_rules(root, InstanceType="m6i.large", AdditionalInstanceTypes="c6i.large") == [
        "OneSizeGeneralLarge"
    ]
    assert failed_rules(root) == []  # the defaults pass


def test_spot_parameters_default_to_all_on_demand_of_one_type():
    parameters = APP["Parameters"]
    assert parameters["AdditionalInstanceTypes"]["Default"] == ""
    assert parameters["OnDemandPercentageAboveBaseCapacity"]["Default"] == 100
    assert parameters["OnDemandBaseCapacity"]["Default"] == 0
    root = load(REPO_ROOT / "template.yaml")
    passed = nested_stacks(root)["AppStack"]["Properties"]["Parameters"]
    assert passed["AdditionalInstanceTypes"] == {"Fn::Join": [",", {"Ref": "AdditionalInstanceTypes"}]}
    for name in ("OnDemandBaseCapacity", "OnDemandPercentageAboveBaseCapacity"):
        assert passed[name] == {"Ref": name}
        assert root["Parameters"][name] == parameters[name]


def test_capacity_rebalancing_and_the_allocation_strategies_in_the_template():
    """moto drops CapacityRebalance: read from the template."""
    group = APP["Resources"]["AutoScalingGroup"]["Properties"]
    assert group["CapacityRebalance"] == {"Fn::If": ["UseSpot", True, {"Ref": "AWS::NoValue"}]}
    assert APP["Conditions"]["UseSpot"] == {
        "Fn::Not": [
            {"Fn::Equals": [{"Fn::Join": ["", [{"Ref": "OnDemandPercentageAboveBaseCapacity"}]]}, "100"]}
        ]
    }
    policy = group["MixedInstancesPolicy"]["Fn::If"]
    assert policy[0] == "UseMixedInstances"
    assert policy[2] == {"Ref": "AWS::NoValue"}
    distribution = policy[1]["InstancesDistribution"]
    assert distribution["SpotAllocationStrategy"] == "capacity-optimized"
    assert distribution["OnDemandAllocationStrategy"] == "prioritized"  # InstanceType first
    # A group has a launch template or a mixed instances policy, never both.
    assert group["LaunchTemplate"]["Fn::If"][0] == "UseMixedInstances"
    assert group["LaunchTemplate"]["Fn::If"][1] == {"Ref": "AWS::NoValue"}


TWO_AZS_ONE_NAT = {"AzCount": "2", "NatGatewayMode": "single"}

DATA_OUTPUTS_FOR_APP = (
    "DatabaseEndpoint", "DatabaseSecretArn", "DatabaseReplicaEndpoint", "CacheEndpoint",
    "CacheAuthTokenArn", "SaleorSecretKeyArn", "JwtSigningKeyArn",
)  # fmt: skip


def _app_only(
    session: Any, data_parameters: dict[str, str] | None = None, **app_parameters: str
) -> dict[str, Any]:
    """network, security, data and app, chained as the root chains them (monitoring is not
    what these tests look at)."""
    network, security, data = deploy_data_tier(session, TWO_AZS_ONE_NAT, data_parameters)
    app = deploy(
        session,
        "app",
        {
            **placement_for_app(network, security),
            **{key: data[key] for key in DATA_OUTPUTS_FOR_APP},
            **app_parameters,
        },
    )
    return {"network": network, "data": data, "app": app}


def _group(session: Any, name: str) -> dict[str, Any]:
    groups = session.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[name])
    group: dict[str, Any] = groups["AutoScalingGroups"][0]
    return group


def test_by_default_the_group_keeps_its_plain_launch_template(aws):
    tier = _app_only(aws)
    group = _group(aws, tier["app"]["AutoScalingGroupName"])
    assert not group.get("MixedInstancesPolicy")  # (moto answers {} for none)
    assert group["LaunchTemplate"]["LaunchTemplateId"].startswith("lt-")


@pytest.mark.parametrize(
    ("parameters", "types", "base", "on_demand_percent"),
    [
        # Spot above one on-demand instance, of the one type
        ({"OnDemandBaseCapacity": "1", "OnDemandPercentageAboveBaseCapacity": "0"}, ["t3.medium"], 1, 0),
        # more pools of one size, still all on demand
        ({"AdditionalInstanceTypes": "t3a.medium"}, ["t3.medium", "t3a.medium"], 0, 100),
        # the largest class, half Spot, in the order given
        (
            {
                "InstanceType": "m6i.large",
                "AdditionalInstanceTypes": "m7i.large,m5.large,m6a.large",
                "OnDemandBaseCapacity": "2",
                "OnDemandPercentageAboveBaseCapacity": "50",
            },
            ["m6i.large", "m7i.large", "m5.large", "m6a.large"],
            2,
            50,
        ),
    ],
)
def test_spot_and_more_types_deploy_as_a_mixed_instances_policy(
    aws, parameters, types, base, on_demand_percent
):
    assert failed_rules(APP, **parameters) == []
    tier = _app_only(aws, **parameters)
    group = _group(aws, tier["app"]["AutoScalingGroupName"])
    policy = group["MixedInstancesPolicy"]
    assert "LaunchTemplate" not in group  # the policy's launch template only
    launch = policy["LaunchTemplate"]
    assert launch["LaunchTemplateSpecification"]["LaunchTemplateId"].startswith("lt-")
    assert [override["InstanceType"] for override in launch["Overrides"]] == types
    distribution = policy["InstancesDistribution"]
    assert distribution["OnDemandBaseCapacity"] == base
    assert distribution["OnDemandPercentageAboveBaseCapacity"] == on_demand_percent
    assert distribution["SpotAllocationStrategy"] == "capacity-optimized"
    assert distribution["OnDemandAllocationStrategy"] == "prioritized"
    assert (group["MinSize"], group["MaxSize"]) == (1, 10)  # the floor predict manages is unchanged


# ---------------------------------------------------------------- read replica


def test_no_read_replica_by_default(aws):
    tier = _app_only(aws)
    assert tier["data"]["DatabaseReplicaEndpoint"] == ""
    databases = aws.client("rds").describe_db_instances()["DBInstances"]
    assert len(databases) == 1


@pytest.mark.parametrize(("mode", "multi_az"), [("single-az", False), ("multi-az", True)])
def test_a_read_replica_of_the_primary_in_its_subnets(aws, mode, multi_az):
    _, _, data = deploy_data_tier(aws, TWO_AZS_ONE_NAT, {"DatabaseReadReplica": mode})
    databases = {
        db["Endpoint"]["Address"]: db for db in aws.client("rds").describe_db_instances()["DBInstances"]
    }
    assert set(databases) == {data["DatabaseEndpoint"], data["DatabaseReplicaEndpoint"]}
    primary, replica = databases[data["DatabaseEndpoint"]], databases[data["DatabaseReplicaEndpoint"]]
    assert replica["ReadReplicaSourceDBInstanceIdentifier"] == primary["DBInstanceIdentifier"]
    assert primary["ReadReplicaDBInstanceIdentifiers"] == [replica["DBInstanceIdentifier"]]
    assert replica["DBInstanceClass"] == primary["DBInstanceClass"]
    assert replica["MultiAZ"] is multi_az
    assert not replica["PubliclyAccessible"]
    assert replica["DBSubnetGroup"]["DBSubnetGroupName"] == primary["DBSubnetGroup"]["DBSubnetGroupName"]


def test_the_replica_inherits_what_rds_lets_it_inherit_only():
    """AWS rules moto does not enforce: a same-Region replica takes the primary's
    encryption and KMS key (a KmsKeyId may not be given), its engine, storage size, users
    and password; the primary must keep automated backups for a replica to exist."""
    data = template("data")
    replica = data["Resources"]["DatabaseReplica"]
    primary = data["Resources"]["Database"]["Properties"]
    assert replica["Condition"] == "HasReadReplica"
    properties = replica["Properties"]
    assert properties["SourceDBInstanceIdentifier"] == {"Ref": "Database"}
    for inherited in (
        "StorageEncrypted", "KmsKeyId", "Engine", "EngineVersion", "AllocatedStorage", "MasterUsername",
        "ManageMasterUserPassword", "MasterUserPassword", "DBName", "BackupRetentionPeriod",
    ):  # fmt: skip
        assert inherited not in properties, inherited
    assert primary["StorageEncrypted"] is True
    assert primary["BackupRetentionPeriod"] >= 1
    # the primary's subnets and security group: the rules that reach 5432 reach it too
    for same in ("DBSubnetGroupName", "VPCSecurityGroups", "DBInstanceClass", "PubliclyAccessible"):
        assert properties[same] == primary[same], same
    assert properties["MultiAZ"] == {"Fn::If": ["ReadReplicaMultiAz", True, False]}
    assert data["Parameters"]["DatabaseReadReplica"]["Default"] == "none"
    assert data["Outputs"]["DatabaseReplicaEndpoint"]["Value"] == {
        "Fn::If": ["HasReadReplica", {"Fn::GetAtt": ["DatabaseReplica", "Endpoint.Address"]}, ""]
    }
    root = load(REPO_ROOT / "template.yaml")
    stacks = nested_stacks(root)
    assert stacks["DataStack"]["Properties"]["Parameters"]["DatabaseReadReplica"] == {
        "Ref": "DatabaseReadReplica"
    }
    assert stacks["AppStack"]["Properties"]["Parameters"]["DatabaseReplicaEndpoint"] == {
        "Fn::GetAtt": ["DataStack", "Outputs.DatabaseReplicaEndpoint"]
    }
    assert root["Parameters"]["DatabaseReadReplica"] == data["Parameters"]["DatabaseReadReplica"]


REPLICA = "db-replica.abc.us-east-1.rds.amazonaws.com"


def test_saleor_gets_the_replica_url_with_the_primarys_credentials(tmp_path, world):  # noqa: F811
    instance, (completed, _) = boot(tmp_path, world, "replica", user_data(DatabaseReplicaEndpoint=REPLICA))
    assert completed.returncode == 0, completed.stdout + completed.stderr
    env = instance.env_file()
    assert env["DATABASE_URL_REPLICA"] == (
        f"postgres://saleor:p%40ss%2Fw%3Ard%25@{REPLICA}:5432/saleor?sslmode=require"
    )
    assert (
        env["DATABASE_URL"].replace("db.abc.us-east-1.rds.amazonaws.com", REPLICA)
        == env["DATABASE_URL_REPLICA"]
    )

    # RDS rotates the password on the primary; the replica has it too, and so gets it here.
    state = json.loads((world / "secrets.json").read_text())
    state[SECRETS["db"]]["value"] = json.dumps({"username": "saleor", "password": "rotated"})
    (world / "secrets.json").write_text(json.dumps(state))
    assert instance.bash(str(instance.saleor / "bin" / "refresh")).returncode == 0
    assert (
        instance.env_file()["DATABASE_URL_REPLICA"]
        == f"postgres://saleor:rotated@{REPLICA}:5432/saleor?sslmode=require"
    )


def test_without_a_replica_saleor_reads_from_the_primary(tmp_path, world):  # noqa: F811
    # Saleor's settings: without DATABASE_URL_REPLICA its replica connection is DATABASE_URL.
    instance, (completed, _) = boot(tmp_path, world, "primary", user_data())
    assert completed.returncode == 0, completed.stderr
    assert "DATABASE_URL_REPLICA" not in instance.env_file()


# ---------------------------------------------------------------- DB_CONN_MAX_AGE


@pytest.mark.parametrize(("given_value", "expected"), [(None, "0"), ("60", "60")])
def test_db_conn_max_age_reaches_saleor(tmp_path, world, given_value, expected):  # noqa: F811
    overrides = {} if given_value is None else {"DbConnMaxAgeSeconds": given_value}
    instance, (completed, _) = boot(tmp_path, world, "conn", user_data(**overrides))
    assert completed.returncode == 0, completed.stderr
    value = instance.env_file()["DB_CONN_MAX_AGE"]
    assert value == expected
    assert int(value) >= 0  # Saleor reads int(os.environ.get("DB_CONN_MAX_AGE", 0))


def test_db_conn_max_age_defaults_to_no_persistent_connections_under_asgi():
    spec = APP["Parameters"]["DbConnMaxAgeSeconds"]
    assert (spec["Type"], spec["Default"], spec["MinValue"]) == ("Number", 0, 0)
    root = load(REPO_ROOT / "template.yaml")
    assert root["Parameters"]["DbConnMaxAgeSeconds"] == spec
    passed = nested_stacks(root)["AppStack"]["Properties"]["Parameters"]
    assert passed["DbConnMaxAgeSeconds"] == {"Ref": "DbConnMaxAgeSeconds"}


# ---------------------------------------------------------------- Route 53


def test_an_alias_record_for_the_shop_when_a_hosted_zone_is_given(aws):
    route53 = aws.client("route53")
    zone = route53.create_hosted_zone(Name="example.com", CallerReference="shop")["HostedZone"]["Id"]
    zone_id = zone.rsplit("/", 1)[-1]
    tier = _app_only(aws, HostedZoneId=zone_id, ShopDomainName="shop.example.com")
    records = route53.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    (alias,) = [r for r in records if r["Type"] not in ("NS", "SOA")]
    assert (alias["Name"].rstrip("."), alias["Type"]) == ("shop.example.com", "A")
    balancer = aws.client("elbv2").describe_load_balancers()["LoadBalancers"][0]
    assert (
        alias["AliasTarget"]["DNSName"].rstrip(".")
        == balancer["DNSName"]
        == tier["app"]["LoadBalancerDnsName"]
    )
    # (moto does not resolve the load balancer's CanonicalHostedZoneID: its use is
    # asserted on the template below.)
    assert "ResourceRecords" not in alias  # an alias, not a CNAME
    assert "TTL" not in alias


def test_no_record_without_a_hosted_zone(aws):
    route53 = aws.client("route53")
    zone_id = route53.create_hosted_zone(Name="example.com", CallerReference="shop")["HostedZone"]["Id"]
    _app_only(aws, ShopDomainName="shop.example.com")
    records = route53.list_resource_record_sets(HostedZoneId=zone_id.rsplit("/", 1)[-1])["ResourceRecordSets"]
    assert {r["Type"] for r in records} == {"NS", "SOA"}


def test_the_records_match_the_load_balancers_address_types_and_need_the_domain():
    resources = APP["Resources"]
    records = {
        r["Properties"]["Type"]: r for r in resources.values() if r["Type"] == "AWS::Route53::RecordSet"
    }
    dualstack = resources["LoadBalancer"]["Properties"].get("IpAddressType", "ipv4") != "ipv4"
    assert set(records) == ({"A", "AAAA"} if dualstack else {"A"})
    for record in records.values():
        assert record["Condition"] == "HasHostedZone"
        assert record["Properties"]["Name"] == {"Ref": "ShopDomainName"}
        target = record["Properties"]["AliasTarget"]
        assert target["DNSName"] == {"Fn::GetAtt": ["LoadBalancer", "DNSName"]}
        assert target["HostedZoneId"] == {"Fn::GetAtt": ["LoadBalancer", "CanonicalHostedZoneID"]}
    assert APP["Parameters"]["HostedZoneId"]["Default"] == ""
    assert failed_rules(APP, HostedZoneId="Z0123456789ABCDEFGHIJ") == ["HostedZoneNeedsTheShopsDomain"]
    assert failed_rules(APP, HostedZoneId="Z0123456789ABCDEFGHIJ", ShopDomainName="shop.example.com") == []
    root = load(REPO_ROOT / "template.yaml")
    passed = nested_stacks(root)["AppStack"]["Properties"]["Parameters"]
    assert passed["HostedZoneId"] == {"Ref": "HostedZoneId"}


# ---------------------------------------------------------------- all of them at once


def test_every_option_at_once_chained_as_the_root_chains_them(aws):
    """The replica's endpoint travels from the data stack's output into the instances'
    user data; the other options sit on the same group without getting in each other's way."""
    route53 = aws.client("route53")
    zone_id = route53.create_hosted_zone(Name="example.com", CallerReference="all")["HostedZone"]["Id"]
    zone_id = zone_id.rsplit("/", 1)[-1]
    parameters = {
        "InstanceType": "c6i.large",
        "AdditionalInstanceTypes": "c7i.large,c6a.large",
        "OnDemandBaseCapacity": "1",
        "OnDemandPercentageAboveBaseCapacity": "25",
        "DbConnMaxAgeSeconds": "0",
        "HostedZoneId": zone_id,
        "ShopDomainName": "shop.example.com",
    }
    assert failed_rules(APP, **parameters) == []
    tier = _app_only(aws, {"DatabaseReadReplica": "multi-az"}, **parameters)
    replica = tier["data"]["DatabaseReplicaEndpoint"]
    assert replica
    assert replica != tier["data"]["DatabaseEndpoint"]

    ec2 = aws.client("ec2")
    (launch,) = ec2.describe_launch_templates()["LaunchTemplates"]
    version = ec2.describe_launch_template_versions(LaunchTemplateId=launch["LaunchTemplateId"])
    script = base64.b64decode(version["LaunchTemplateVersions"][0]["LaunchTemplateData"]["UserData"]).decode()
    lines = [line.strip() for line in script.splitlines()]
    assert f"REPLICA_HOST={replica}" in lines
    assert "DB_CONN_MAX_AGE=0" in lines
    assert f"ALLOWED_HOSTS=shop.example.com,{tier['app']['LoadBalancerDnsName']},$PRIVATE_IP" in lines

    group = _group(aws, tier["app"]["AutoScalingGroupName"])
    overrides = group["MixedInstancesPolicy"]["LaunchTemplate"]["Overrides"]
    assert [o["InstanceType"] for o in overrides] == ["c6i.large", "c7i.large", "c6a.large"]
    assert (
        group["MixedInstancesPolicy"]["LaunchTemplate"]["LaunchTemplateSpecification"]["LaunchTemplateId"]
        == (launch["LaunchTemplateId"])
    )
    records = route53.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    assert [r["Name"].rstrip(".") for r in records if r["Type"] == "A"] == ["shop.example.com"]
