"""The optional warm pool of the Saleor tier (issue 25): off by default; with a pool state,
an AWS::AutoScaling::WarmPool, a launch lifecycle hook that holds every instance until
Saleor answers its health check (entering the pool and again entering service), and the
instance's permission to complete that hook on its own group only. moto's CloudFormation
creates neither a warm pool nor a lifecycle hook: those are asserted on the template, with
the template's Rules evaluated as CloudFormation evaluates them; what moto does create (the
launch template, the instance role's policies) is deployed. The hook's completion itself
runs for real under bash (bin/ready, written by the user data) with AWS stubbed."""

from __future__ import annotations

import base64
import json
import sys
import textwrap
from typing import Any

import pytest

from tests.conftest import REPO_ROOT
from tests.infra.cfn import load, nested_stacks, template
from tests.infra.test_bootstrap import STUB_COMMON, Instance, boot, calls, user_data, world  # noqa: F401 (fixture)
from tests.infra.test_security_policies import (
    ACCOUNT,
    GROUP,
    PREDICT_ROLE,
    REGION,
    RenderedStack,
    Request,
    allows,
)
from tests.infra.test_tier_options import _app_only, _value, failed_rules, parameter_values

pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse .* but it's not supported:UserWarning")

APP = template("app")
ROOT = load(REPO_ROOT / "template.yaml")
GROUP_ARN_PREFIX = (
    f"arn:aws:autoscaling:{REGION}:{ACCOUNT}:autoScalingGroup:0f1e2d3c-4b5a-6978-8091-a2b3c4d5e6f7"
    ":autoScalingGroupName"
)
WARM_POOL_PARAMETERS = (
    "WarmPoolState",
    "WarmPoolMinSize",
    "WarmPoolMaxPreparedCapacity",
    "WarmPoolReuseOnScaleIn",
)
WARM_POOL_RESOURCES = ("WarmPool", "ReadyHook", "ReadyHookPolicy")


def _evaluate(node: Any, parameters: dict[str, Any]) -> Any:
    """A condition's value: the rule functions, plus the ones the app's conditions use."""
    if isinstance(node, list):
        return [_evaluate(item, parameters) for item in node]
    if not isinstance(node, dict):
        return node
    ((function, argument),) = node.items()
    if function == "Condition":
        return _evaluate(APP["Conditions"][argument], parameters)
    if function == "Fn::Or":
        return any(_evaluate(item, parameters) for item in argument)
    if function == "Fn::Not":
        return not _evaluate(argument[0], parameters)
    if function == "Fn::Equals":
        return _evaluate(argument[0], parameters) == _evaluate(argument[1], parameters)
    if function == "Fn::Join":
        separator, items = argument[0], _evaluate(argument[1], parameters)
        flat = [part for item in items for part in (item if isinstance(item, list) else [item])]
        return separator.join(flat)
    if function == "Fn::Split":
        return _evaluate(argument[1], parameters).split(argument[0])
    if function == "Fn::Select":
        return _evaluate(argument[1], parameters)[int(argument[0])]
    return _value(node, parameters)


def _condition(name: str, **given: str) -> bool:
    return bool(_evaluate(APP["Conditions"][name], parameter_values(APP, **given)))


# ---------------------------------------------------------------- off by default


def test_no_warm_pool_by_default():
    parameters = APP["Parameters"]
    assert parameters["WarmPoolState"]["Default"] == "Disabled"
    assert parameters["WarmPoolState"]["AllowedValues"] == ["Disabled", "Stopped", "Hibernated", "Running"]
    assert _condition("UseWarmPool") is False
    for state in ("Stopped", "Hibernated", "Running"):
        assert _condition("UseWarmPool", WarmPoolState=state) is True
    for name in WARM_POOL_RESOURCES:
        assert APP["Resources"][name]["Condition"] == "UseWarmPool", name
    # Nothing else is conditioned on it, so a stack without a pool is today's stack.
    others = [n for n, r in APP["Resources"].items() if r.get("Condition") == "UseWarmPool"]
    assert sorted(others) == sorted(WARM_POOL_RESOURCES)
    assert failed_rules(APP) == []


def test_the_pool_resource_carries_the_parameters():
    pool = APP["Resources"]["WarmPool"]
    assert pool["Type"] == "AWS::AutoScaling::WarmPool"
    assert pool["Properties"] == {
        "AutoScalingGroupName": {"Ref": "AutoScalingGroup"},
        "PoolState": {"Ref": "WarmPoolState"},
        "MinSize": {"Ref": "WarmPoolMinSize"},
        "MaxGroupPreparedCapacity": {"Ref": "WarmPoolMaxPreparedCapacity"},
        "InstanceReusePolicy": {"ReuseOnScaleIn": {"Fn::If": ["ReuseOnScaleIn", True, False]}},
    }
    # Its instances launch only once the hook and the permission to complete it exist.
    assert sorted(pool["DependsOn"]) == ["ReadyHook", "ReadyHookPolicy"]
    parameters = APP["Parameters"]
    assert (parameters["WarmPoolMinSize"]["MinValue"], parameters["WarmPoolMinSize"]["MaxValue"]) == (0, 100)
    # -1 is AWS's own default (MaxSize minus the desired capacity); the API's minimum.
    assert parameters["WarmPoolMaxPreparedCapacity"]["Default"] == -1
    assert parameters["WarmPoolMaxPreparedCapacity"]["MinValue"] == -1
    assert parameters["WarmPoolReuseOnScaleIn"]["AllowedValues"] == ["true", "false"]
    assert _condition("ReuseOnScaleIn") is False
    assert _condition("ReuseOnScaleIn", WarmPoolReuseOnScaleIn="true") is True


# ---------------------------------------------------------------- the rule


@pytest.mark.parametrize("state", ["Stopped", "Hibernated", "Running"])
@pytest.mark.parametrize(
    "mixed",
    [
        {"OnDemandPercentageAboveBaseCapacity": "0"},
        {"OnDemandPercentageAboveBaseCapacity": "99"},
        {"AdditionalInstanceTypes": "t3a.medium"},
        {
            "OnDemandBaseCapacity": "1",
            "OnDemandPercentageAboveBaseCapacity": "50",
            "AdditionalInstanceTypes": "t3a.medium",
        },
    ],
)
def test_the_rule_refuses_a_warm_pool_with_spot_or_more_types(state, mixed):
    for body in (APP, ROOT):
        assert failed_rules(body, WarmPoolState=state, **mixed) == ["WarmPoolExcludesSpotAndMoreTypes"]
        # The same mix without a pool is fine, and so is the pool alone.
        assert failed_rules(body, **mixed) == []
        assert failed_rules(body, WarmPoolState=state) == []
        # An on-demand base alone is no mixed instances policy: the pool is allowed.
        assert failed_rules(body, WarmPoolState=state, OnDemandBaseCapacity="2") == []


def test_the_rule_says_what_to_change():
    descriptions = [
        a["AssertDescription"] for a in APP["Rules"]["WarmPoolExcludesSpotAndMoreTypes"]["Assertions"]
    ]
    assert any("OnDemandPercentageAboveBaseCapacity to 100" in d for d in descriptions)
    assert any("Leave AdditionalInstanceTypes empty" in d for d in descriptions)
    assert all("WarmPoolState to Disabled" in d for d in descriptions)


def test_the_rule_matches_the_condition_that_makes_a_mixed_instances_policy():
    """Whenever the group would get a mixed instances policy, a pool is refused, and the other way round."""
    for spot in ("100", "0", "40"):
        for more in ("", "t3a.medium"):
            given = {"OnDemandPercentageAboveBaseCapacity": spot, "AdditionalInstanceTypes": more}
            mixed = _condition("UseSpot", **given) or _condition("HasAdditionalType1", **given)
            refused = failed_rules(APP, WarmPoolState="Stopped", **given) != []
            assert refused == mixed, given


# ---------------------------------------------------------------- root passes it through


def test_the_root_passes_the_parameters_and_repeats_the_rule():
    passed = nested_stacks(ROOT)["AppStack"]["Properties"]["Parameters"]
    for name in WARM_POOL_PARAMETERS:
        assert passed[name] == {"Ref": name}, name
        assert ROOT["Parameters"][name] == APP["Parameters"][name], name
    assert (
        ROOT["Rules"]["WarmPoolExcludesSpotAndMoreTypes"] == APP["Rules"]["WarmPoolExcludesSpotAndMoreTypes"]
    )
    assert failed_rules(ROOT) == []


def test_the_warm_pools_lead_time_reaches_predict_and_retrain_and_needs_a_pool():
    """WarmPoolLeadTimeMinutes (issue 25, "predict uses it"): retrain trains for it, predict
    checks its model against it; off (0) by default, and refused on a tier without a pool,
    where every instance is a fresh launch. An existing shop's own group may have a pool
    the template cannot see: allowed there."""
    functions = ROOT["Resources"]
    for function in ("PredictFunction", "RetrainFunction"):
        variables = functions[function]["Properties"]["Environment"]["Variables"]
        assert variables["WARM_POOL_LEAD_TIME_MINUTES"] == {"Ref": "WarmPoolLeadTimeMinutes"}, function
        assert variables["LEAD_TIME_MINUTES"] == {"Ref": "LeadTimeMinutes"}, function
    spec = ROOT["Parameters"]["WarmPoolLeadTimeMinutes"]
    assert (spec["Default"], spec["MinValue"], spec["MaxValue"]) == (0, 0, 120)
    assert failed_rules(ROOT, WarmPoolLeadTimeMinutes="3") == ["WarmPoolLeadTimeNeedsAWarmPool"]
    assert failed_rules(ROOT, WarmPoolLeadTimeMinutes="3", WarmPoolState="Stopped") == []
    assert failed_rules(ROOT, WarmPoolLeadTimeMinutes="0", WarmPoolState="Disabled") == []
    existing = {"ExistingAutoScalingGroupName": "shop", "ExistingLoadBalancerFullName": "app/shop/1"}
    assert failed_rules(ROOT, WarmPoolLeadTimeMinutes="3", **existing) == []
    description = ROOT["Rules"]["WarmPoolLeadTimeNeedsAWarmPool"]["Assertions"][0]["AssertDescription"]
    assert "Set WarmPoolState, or WarmPoolLeadTimeMinutes to 0." in description


# ---------------------------------------------------------------- the hook and its permission


def test_the_launch_hook_holds_instances_until_saleor_answers():
    hook = APP["Resources"]["ReadyHook"]["Properties"]
    assert hook["LifecycleTransition"] == "autoscaling:EC2_INSTANCE_LAUNCHING"
    assert hook["AutoScalingGroupName"] == {"Ref": "AutoScalingGroup"}
    # Not ready in time: abandoned (terminated), never put in the pool or in service.
    assert hook["DefaultResult"] == "ABANDON"
    assert hook["HeartbeatTimeout"] == {"Ref": "HealthCheckGracePeriodSeconds"}
    grace = APP["Parameters"]["HealthCheckGracePeriodSeconds"]
    # AWS's heartbeat bounds: 30 to 7200 seconds.
    assert grace["MinValue"] >= 30
    assert grace["MaxValue"] <= 7200
    # The name the instances complete is the hook's.
    script = user_data(WarmPool="true")
    assert f"--lifecycle-hook-name {hook['LifecycleHookName']} " in script


def test_instances_may_complete_the_hook_on_their_own_group_only():
    policy = APP["Resources"]["ReadyHookPolicy"]["Properties"]
    assert policy["Roles"] == [{"Ref": "InstanceRole"}]
    statements = {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}
    complete = statements["CompleteItsOwnGroupsLaunchHook"]
    assert complete["Action"] == "autoscaling:CompleteLifecycleAction"
    assert complete["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:autoscaling:${AWS::Region}:${AWS::AccountId}:autoScalingGroup:*:"
        "autoScalingGroupName/${AutoScalingGroup}"
    }
    # Only a read without resource-level permissions is on "*".
    assert statements["FindItsGroup"]["Action"] == "autoscaling:DescribeAutoScalingInstances"
    for statement in statements.values():
        assert statement["Effect"] == "Allow"
        assert (
            statement["Resource"] != "*" or statement["Action"] == "autoscaling:DescribeAutoScalingInstances"
        )
    # The role's own inline policies gain nothing of Auto Scaling.
    inline = json.dumps(APP["Resources"]["InstanceRole"]["Properties"]["Policies"])
    assert "autoscaling:" not in inline


def test_a_hibernated_pool_enables_hibernation_at_launch():
    data = APP["Resources"]["LaunchTemplate"]["Properties"]["LaunchTemplateData"]
    assert data["HibernationOptions"] == {
        "Fn::If": ["HibernatedWarmPool", {"Configured": True}, {"Ref": "AWS::NoValue"}]
    }
    assert _condition("HibernatedWarmPool", WarmPoolState="Hibernated") is True
    assert _condition("HibernatedWarmPool", WarmPoolState="Stopped") is False
    # Hibernation keeps RAM on an encrypted root volume larger than the RAM.
    (root_volume,) = data["BlockDeviceMappings"]
    assert root_volume["Ebs"]["Encrypted"] is True
    assert root_volume["Ebs"]["VolumeSize"] == 30  # GB; the largest type offered has 16 GiB


def test_a_hibernated_pool_deploys_with_its_permission_and_hibernation(aws):
    tier = _app_only(aws, WarmPoolState="Hibernated", WarmPoolMinSize="2")
    group = tier["app"]["AutoScalingGroupName"]
    ec2 = aws.client("ec2")
    (launch,) = ec2.describe_launch_templates()["LaunchTemplates"]
    (version,) = ec2.describe_launch_template_versions(LaunchTemplateId=launch["LaunchTemplateId"])[
        "LaunchTemplateVersions"
    ]
    assert version["LaunchTemplateData"]["HibernationOptions"] == {"Configured": True}
    script = base64.b64decode(version["LaunchTemplateData"]["UserData"]).decode()
    assert 'if [ "true" = true ]; then' in script  # WarmPool rendered true
    iam = aws.client("iam")
    (role,) = [r["RoleName"] for r in iam.list_roles()["Roles"] if "InstanceRole" in r["RoleName"]]
    document = iam.get_role_policy(RoleName=role, PolicyName="saleor-ready-hook")["PolicyDocument"]
    (complete,) = [s for s in document["Statement"] if s["Action"] == "autoscaling:CompleteLifecycleAction"]
    assert (
        complete["Resource"]
        == f"arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:*:autoScalingGroupName/{group}"
    )


def test_by_default_no_hook_permission_and_no_hibernation(aws):
    _app_only(aws)
    ec2 = aws.client("ec2")
    (launch,) = ec2.describe_launch_templates()["LaunchTemplates"]
    (version,) = ec2.describe_launch_template_versions(LaunchTemplateId=launch["LaunchTemplateId"])[
        "LaunchTemplateVersions"
    ]
    assert "HibernationOptions" not in version["LaunchTemplateData"]
    iam = aws.client("iam")
    (role,) = [r["RoleName"] for r in iam.list_roles()["Roles"] if "InstanceRole" in r["RoleName"]]
    assert "saleor-ready-hook" not in iam.list_role_policies(RoleName=role)["PolicyNames"]


# ---------------------------------------------------------------- the instance's side, under bash

# Stubs added to test_bootstrap's world: the target lifecycle state from instance metadata
# (a queue of answers, one per poll), the Auto Scaling calls, and a sleep that ends the loop.
READY_STUBS = {
    "curl": """
args = sys.argv[1:]
url = next(a for a in args if a.startswith("http"))
if url.endswith("/autoscaling/target-lifecycle-state"):
    log()
    queue = os.path.join(STATE, "targets.json")
    targets = json.load(open(queue))
    print(targets.pop(0) if len(targets) > 1 else targets[0], end="")
    json.dump(targets, open(queue, "w"))
else:
    os.execv(os.environ["REAL_CURL"], [sys.argv[0], *args])
""",
    "aws": """
args = sys.argv[1:]
if args[:2] == ["autoscaling", "describe-auto-scaling-instances"]:
    log()
    print("saleor-app-AutoScalingGroup-ABC")
elif args[:2] == ["autoscaling", "complete-lifecycle-action"]:
    log()
    if os.environ.get("NO_ACTION"):
        sys.stderr.write("An error occurred (ValidationError): No active Lifecycle Action found\\n")
        sys.exit(254)
else:
    os.execv(os.environ["REAL_AWS"], [sys.argv[0], *args])
""",
    "sleep": """
log()
count = os.path.join(STATE, "sleeps")
n = int(open(count).read()) + 1 if os.path.exists(count) else 1
open(count, "w").write(str(n))
if n >= int(os.environ.get("POLLS", "3")):
    import signal
    os.kill(os.getppid(), signal.SIGTERM)
""",
}


def _ready(
    tmp_path: Any, state: Any, targets: list[str], **env: str
) -> tuple[Instance, list[dict[str, Any]]]:
    """Boot an instance with a warm pool, then run its bin/ready for a few polls."""
    instance, (completed, made) = boot(tmp_path, state, "warm", user_data(WarmPool="true"))
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert [c for c in made if c["argv"][0] == "cfn-signal"] == []  # the service signals, not the user data
    assert ["systemctl", "enable", "--now", "saleor-ready.service"] in [c["argv"] for c in made]
    for name, body in READY_STUBS.items():
        (instance.stubs / "real").mkdir(exist_ok=True)
        real = instance.stubs / "real" / name  # the same name: calls are logged by it
        (instance.stubs / name).rename(real)
        env[f"REAL_{name.upper()}"] = str(real)
        path = instance.stubs / name
        path.write_text(f"#!{sys.executable}\n{STUB_COMMON}\n{textwrap.dedent(body)}")
        path.chmod(0o755)
    (state / "targets.json").write_text(json.dumps(targets))
    before = len(calls(state))
    script = instance.localize((instance.saleor / "bin" / "ready").read_text())
    (instance.saleor / "bin" / "ready").write_text(script)
    instance.bash(str(instance.saleor / "bin" / "ready"), **env)
    return instance, calls(state)[before:]


def _steps(made: list[dict[str, Any]]) -> list[str]:
    steps = []
    for call in made:
        argv = call["argv"]
        if argv[0] == "curl" and any(a.endswith("/graphql/") for a in argv):
            steps.append("health")
        elif argv[:3] == ["aws", "autoscaling", "complete-lifecycle-action"]:
            steps.append("complete " + argv[argv.index("--lifecycle-action-result") + 1])
        elif argv[0] == "cfn-signal":
            steps.append("signal " + argv[argv.index("--exit-code") + 1])
        elif argv[0] == "docker":
            steps.append("docker " + " ".join(argv[1:3]))
    return steps


def test_into_the_pool_then_into_service_each_completed_once_healthy(tmp_path, world):  # noqa: F811
    _, made = _ready(tmp_path, world, ["Warmed:Stopped", "Warmed:Stopped", "InService"], POLLS="4")
    completions = [c for c in made if c["argv"][1:3] == ["autoscaling", "complete-lifecycle-action"]]
    assert len(completions) == 2  # once per target state, not once per poll
    for call in completions:
        argv = call["argv"]
        assert argv[argv.index("--auto-scaling-group-name") + 1] == "saleor-app-AutoScalingGroup-ABC"
        assert argv[argv.index("--lifecycle-hook-name") + 1] == "saleor-ready"
        assert argv[argv.index("--instance-id") + 1] == "i-0123456789abcdef0"
    # Health checked before each completion; the success signal only once in service,
    # after the secrets were re-read (docker compose up only if they changed: not here).
    assert _steps(made) == ["health", "complete CONTINUE", "health", "complete CONTINUE", "signal 0"]


def test_never_completed_while_saleor_does_not_answer(tmp_path, world):  # noqa: F811
    _, made = _ready(tmp_path, world, ["InService"], POLLS="3", HEALTH_STATUS="502")
    assert _steps(made) == ["health", "health", "health"]


def test_launched_before_the_hook_existed_still_signals_once(tmp_path, world):  # noqa: F811
    """The stack's first instances never wait on the hook (it is made after the group); the
    creation still needs their success signal."""
    _, made = _ready(tmp_path, world, ["InService"], POLLS="3", NO_ACTION="1")
    assert _steps(made) == ["health", "complete CONTINUE", "signal 0"]


# ---------------------------------------------------------------- predict sizing the pool


def test_predict_may_size_the_pool_of_its_own_group_only_and_only_when_asked():
    """WarmPoolMaxSizeByPredict above 0 gives predict PutWarmPool on the shop's group (and
    DescribeWarmPool, which has no resource-level permission); 0 gives it neither."""
    group_arn = f"{GROUP_ARN_PREFIX}/{GROUP}"
    other_arn = f"{GROUP_ARN_PREFIX}/payments"
    sized = RenderedStack(WarmPoolState="Stopped", WarmPoolMaxSizeByPredict="4").identity_statements(
        "PredictFunction"
    )
    assert allows(sized, Request("autoscaling:PutWarmPool", group_arn, principal=PREDICT_ROLE))
    assert allows(sized, Request("autoscaling:DescribeWarmPool", "*", principal=PREDICT_ROLE))
    assert not allows(sized, Request("autoscaling:PutWarmPool", other_arn, principal=PREDICT_ROLE))
    assert not allows(sized, Request("autoscaling:DeleteWarmPool", group_arn, principal=PREDICT_ROLE))
    unsized = RenderedStack(WarmPoolState="Stopped").identity_statements("PredictFunction")
    assert not allows(unsized, Request("autoscaling:PutWarmPool", group_arn, principal=PREDICT_ROLE))
    assert not allows(unsized, Request("autoscaling:DescribeWarmPool", "*", principal=PREDICT_ROLE))
    variables = ROOT["Resources"]["PredictFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["WARM_POOL_MAX_SIZE"] == {"Ref": "WarmPoolMaxSizeByPredict"}
    assert variables["WARM_POOL_MIN_SIZE"] == {"Ref": "WarmPoolMinSize"}


def test_predict_sizing_needs_a_pool_on_the_tier():
    assert failed_rules(ROOT, WarmPoolMaxSizeByPredict="4") == ["WarmPoolLeadTimeNeedsAWarmPool"]
    assert failed_rules(ROOT, WarmPoolMaxSizeByPredict="4", WarmPoolState="Hibernated") == []
    existing = {"ExistingAutoScalingGroupName": "shop", "ExistingLoadBalancerFullName": "app/shop/1"}
    assert failed_rules(ROOT, WarmPoolMaxSizeByPredict="4", **existing) == []
