"""The launch template's user data, run for real under bash with the outside world
stubbed: dnf, systemctl, curl (instance metadata, downloads, the local health check),
the AWS CLI (Secrets Manager, with state), docker and cfn-signal. Paths under /opt, /etc,
/var and /root are moved into a temporary directory. What it proves: the settings Saleor
gets (the health-check traps), the order bootstrap -> migrate -> start -> health ->
signal, one JWT key for every instance, the secret refresh, and the failure signal."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.infra.cfn import render_sub, sub_variables, template

pytestmark = pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("bash", "jq", "openssl", "sha256sum", "cmp", "shred")),
    reason="needs bash, jq, openssl and coreutils",
)

ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:"
SECRETS = {
    "db": ARN + "rds!db-1",
    "cache": ARN + "cache-token",
    "key": ARN + "saleor-key",
    "jwt": ARN + "jwt-key",
}
ALB = "saleor-alb-123.us-east-1.elb.amazonaws.com"
PRIVATE_IP = "10.0.10.25"
COMPOSE_BINARY = b"docker compose plugin\n"

# Stubs: each logs its argv (and what matters of its environment) to calls.jsonl.
STUB_COMMON = """\
import json, os, sys
STATE = os.environ["STUB_STATE"]
def log(**extra):
    with open(os.path.join(STATE, "calls.jsonl"), "a") as out:
        out.write(json.dumps({"argv": [os.path.basename(sys.argv[0]), *sys.argv[1:]], **extra}) + "\\n")
def secrets():
    path = os.path.join(STATE, "secrets.json")
    return json.load(open(path)) if os.path.exists(path) else {}
"""
STUBS = {
    "dnf": "log()",
    "systemctl": "log()",
    "sleep": "log()",
    "cfn-signal": "log()",
    "amazon-cloudwatch-agent-ctl": "log()",
    "docker": "log(rsa=os.environ.get('RSA_PRIVATE_KEY', ''))",
    "curl": f"""
args = sys.argv[1:]
url = next(a for a in args if a.startswith("http"))
log(headers=[args[i + 1] for i, a in enumerate(args) if a == "-H"])
if url.endswith("/api/token"):
    print("imds-token", end="")
elif url.endswith("/meta-data/local-ipv4"):
    print("{PRIVATE_IP}", end="")
elif url.endswith("/meta-data/instance-id"):
    print("i-0123456789abcdef0", end="")
elif "-w" in args:  # the health check: status code only
    print(os.environ.get("HEALTH_STATUS", "200"), end="")
else:
    import hashlib
    target = args[args.index("-o") + 1]
    binary = {COMPOSE_BINARY!r}
    if url.endswith(".sha256"):
        summed = os.environ.get("CHECKSUM_OF", "").encode() or binary
        open(target, "w").write(hashlib.sha256(summed).hexdigest() + " *docker-compose-linux-x86_64\\n")
    else:
        open(target, "wb").write(binary)
""",
    "aws": """
args = sys.argv[1:]
def option(name):
    return args[args.index(name) + 1]
store = secrets()
secret_id = option("--secret-id")
if args[:2] == ["secretsmanager", "get-secret-value"]:
    log()
    stale = os.path.join(STATE, "stale-once")  # a read that predates another's write
    if os.path.exists(stale) and open(stale).read() == secret_id:
        os.remove(stale)
        sys.stderr.write("ResourceNotFoundException: no value for AWSCURRENT\\n")
        sys.exit(254)
    if not store.get(secret_id):
        sys.stderr.write("ResourceNotFoundException: no value for AWSCURRENT\\n")
        sys.exit(254)
    print(store[secret_id]["value"])
elif args[:2] == ["secretsmanager", "put-secret-value"]:
    value = open(option("--secret-string").removeprefix("file://")).read()
    token = option("--client-request-token")
    log(token=token)
    versions = store.setdefault("_tokens", {})
    if token in versions and versions[token] != value:
        sys.stderr.write("ResourceExistsException: version exists with other content\\n")
        sys.exit(254)
    versions[token] = value
    store[secret_id] = {"value": value}
    json.dump(store, open(os.path.join(STATE, "secrets.json"), "w"))
else:
    sys.exit("unexpected aws call: %s" % args)
""",
}


def user_data(**parameters: str) -> str:
    """The user data as CloudFormation renders it, for a stack with these parameters."""
    app = template("app")
    text, variables = app["Resources"]["LaunchTemplate"]["Properties"]["LaunchTemplateData"]["UserData"][
        "Fn::Base64"
    ]["Fn::Sub"]
    domain = parameters.get("ShopDomainName", "")
    https = bool(parameters.get("CertificateArn"))
    host = domain or ALB
    values = {
        "AWS::StackName": "saleor-app",
        "AWS::Region": "us-east-1",
        "AppLogGroup": "/saleor/saleor-app",
        "DatabaseEndpoint": "db.abc.us-east-1.rds.amazonaws.com",
        "CacheEndpoint": "master.cache.abc.use1.cache.amazonaws.com",
        "DatabaseSecretArn": SECRETS["db"],
        "CacheAuthTokenArn": SECRETS["cache"],
        "SaleorSecretKeyArn": SECRETS["key"],
        "JwtSigningKeyArn": SECRETS["jwt"],
        "SaleorImageTag": "3.21",
        "PopulateDemoData": "false",
        "DatabaseReplicaEndpoint": "",  # no read replica (DatabaseReadReplica=none)
        "DbConnMaxAgeSeconds": "0",
        # The Fn::Sub map, as its Fn::If branches give them: UsageTelemetry (for
        # SaleorUsageTelemetry=false, the default), ShopHosts and PublicUrl.
        "UsageTelemetry": "False",
        "WarmPool": "false",  # WarmPoolState=Disabled, the default
        "ShopHosts": f"{domain},{ALB}" if domain else ALB,
        "PublicUrl": f"{'https' if https else 'http'}://{host}/",
        **parameters,
    }
    assert set(variables) == {"UsageTelemetry", "WarmPool", "ShopHosts", "PublicUrl"}
    assert sub_variables(text) <= set(values), sub_variables(text) - set(values)
    return render_sub(text, values)


class Instance:
    """One instance's file system and the stubbed world around it."""

    def __init__(self, base: Path, state: Path) -> None:
        self.root, self.state = base, state
        self.stubs = base / "stubs"
        self.stubs.mkdir(parents=True)
        for name, body in STUBS.items():
            path = self.stubs / name
            path.write_text(f"#!{sys.executable}\n{STUB_COMMON}\n{textwrap.dedent(body)}")
            path.chmod(path.stat().st_mode | stat.S_IXUSR)

    def localize(self, script: str) -> str:
        moves = [
            # First: the temporary directory this runs in is itself under /tmp.
            ("/tmp/docker-compose", f"{self.root}/downloads/docker-compose"),
            (
                "/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl",
                f"{self.stubs}/amazon-cloudwatch-agent-ctl",
            ),
            ("/opt/aws/amazon-cloudwatch-agent/etc", f"{self.root}/cwagent"),
            ("/opt/aws/bin/cfn-signal", f"{self.stubs}/cfn-signal"),
            ("/opt/saleor", f"{self.root}/opt/saleor"),
            ("/etc/systemd/system", f"{self.root}/systemd"),
            ("/usr/local/lib/docker/cli-plugins", f"{self.root}/plugins"),
            ("/var/log/", f"{self.root}/log/"),
            ("/root/", f"{self.root}/home/"),
        ]
        for old, new in moves:
            script = script.replace(old, new)
        return script

    def run(self, script: str, **env: str) -> subprocess.CompletedProcess[str]:
        for folder in ("cwagent", "systemd", "log", "home", "downloads"):
            (self.root / folder).mkdir(exist_ok=True)
        path = self.root / "user-data.sh"
        path.write_text(self.localize(script))
        return self.bash(str(path), **env)

    def bash(self, *command: str, **env: str) -> subprocess.CompletedProcess[str]:
        environment = {
            **os.environ,
            "PATH": f"{self.stubs}:{os.environ['PATH']}",
            "STUB_STATE": str(self.state),
            **env,
        }
        return subprocess.run(
            ["bash", *command], capture_output=True, text=True, env=environment, timeout=120
        )

    @property
    def saleor(self) -> Path:
        return self.root / "opt" / "saleor"

    def env_file(self) -> dict[str, str]:
        lines = (self.saleor / "saleor.env").read_text().splitlines()
        return dict(line.split("=", 1) for line in lines)


def calls(state: Path) -> list[dict[str, Any]]:
    path = state / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def world(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    state.mkdir()
    (state / "secrets.json").write_text(
        json.dumps(
            {
                # RDS-managed passwords hold punctuation: it must reach DATABASE_URL encoded.
                SECRETS["db"]: {"value": json.dumps({"username": "saleor", "password": "p@ss/w:rd%"})},
                SECRETS["cache"]: {"value": json.dumps({"token": "RedisToken123"})},
                SECRETS["key"]: {"value": "django-secret-key-64-chars"},
                SECRETS["jwt"]: {"value": ""},  # created empty by the data stack
            }
        )
    )
    return state


def boot(tmp_path: Path, world: Path, name: str, script: str, **env: str) -> tuple[Instance, Any]:
    instance = Instance(tmp_path / name, world)
    before = len(calls(world))
    completed = instance.run(script, **env)
    return instance, (completed, calls(world)[before:])


def test_first_instance_boots_saleor_and_signals_success(tmp_path, world):
    instance, (completed, made) = boot(tmp_path, world, "first", user_data())
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Saleor is up on 10.0.10.25:8000" in completed.stdout

    # The health-check traps: the private IP is an allowed host, the playground is on.
    env = instance.env_file()
    assert env["ALLOWED_HOSTS"] == f"{ALB},{PRIVATE_IP}"
    assert env["ALLOWED_CLIENT_HOSTS"] == ALB
    assert env["PLAYGROUND_ENABLED"] == "True"
    assert env["DEBUG"] == "False"
    assert env["SEND_USAGE_TELEMETRY"] == "False"  # Saleor's own default is True
    assert env["PUBLIC_URL"] == f"http://{ALB}/"
    assert env["DATABASE_URL"] == (
        "postgres://saleor:p%40ss%2Fw%3Ard%25@db.abc.us-east-1.rds.amazonaws.com:5432/saleor?sslmode=require"
    )
    redis = "rediss://:RedisToken123@master.cache.abc.use1.cache.amazonaws.com:6379"
    assert env["CACHE_URL"] == f"{redis}/0"
    assert env["CELERY_BROKER_URL"] == f"{redis}/1?ssl_cert_reqs=required"
    assert env["SECRET_KEY"] == "django-secret-key-64-chars"
    assert stat.S_IMODE((instance.saleor / "saleor.env").stat().st_mode) == 0o600

    # One JWT key, stored with the fixed version token, used by the containers.
    stored = json.loads((world / "secrets.json").read_text())[SECRETS["jwt"]]["value"]
    assert "PRIVATE KEY" in stored
    assert (instance.saleor / "jwt.pem").read_text().strip() == stored.strip()
    assert [c["token"] for c in made if c["argv"][:3] == ["aws", "secretsmanager", "put-secret-value"]] == [
        "saleor-jwt-signing-key-first-version"
    ]
    assert not list((instance.root / "home").iterdir())  # the generated key file is shredded

    # Order: image pulled, migrations (in a one-off container), containers up, the local
    # health check answered 200, then the success signal.
    steps = []
    for call in made:
        argv = call["argv"]
        if argv[0] == "docker":
            steps.append(" ".join(argv[1:4]))
            assert "PRIVATE KEY" in call["rsa"], argv  # every compose call has the key
        elif argv[0] == "curl" and any(a.endswith("/graphql/") for a in argv):
            steps.append("health " + " ".join(call["headers"]))
        elif argv[0] == "cfn-signal":
            steps.append("signal " + argv[argv.index("--exit-code") + 1])
    assert steps == [
        "compose pull --quiet",
        "compose run --rm",
        "compose up -d",
        f"health Host: {PRIVATE_IP}:8000",
        "signal 0",
    ]
    (run,) = [c["argv"] for c in made if c["argv"][:3] == ["docker", "compose", "run"]]
    assert run[run.index("-e") + 1] == "TASK=migrate"
    assert run[-4:-1] == ["task", "python3", "-c"]
    compile(run[-1], "once.py", "exec")

    compose = yaml.safe_load((instance.saleor / "compose.yaml").read_text())
    api, worker = compose["services"]["api"], compose["services"]["worker"]
    assert api["image"] == worker["image"] == "ghcr.io/saleor/saleor:3.21"
    assert api["ports"] == ["8000:8000"]
    assert "command" not in api
    assert worker["command"].startswith("celery --app saleor.celeryconf:app worker")
    assert api["environment"] == ["RSA_PRIVATE_KEY"]
    assert api["env_file"] == "saleor.env"
    beat, task = compose["services"]["beat"], compose["services"]["task"]
    assert api["restart"] == worker["restart"] == beat["restart"] == "always"
    # The one-off container: not started by "up", and no restart policy next to "run --rm".
    assert task["profiles"] == ["tasks"]
    assert "restart" not in task
    assert task["image"] == api["image"]
    assert task["env_file"] == "saleor.env"
    assert beat["command"] == "python3 /srv/saleor-beat.py"
    assert beat["volumes"] == [f"{instance.saleor}/bin/beat.py:/srv/saleor-beat.py:ro"]
    assert (
        stat.S_IMODE((instance.saleor / "bin" / "beat.py").stat().st_mode) == 0o644
    )  # readable in the container
    assert api["logging"]["options"]["awslogs-group"] == "/saleor/saleor-app"
    assert api["logging"]["options"]["tag"].startswith("i-0123456789abcdef0/")

    agent = json.loads((instance.root / "cwagent" / "amazon-cloudwatch-agent.json").read_text())
    collected = agent["metrics"]["metrics_collected"]
    assert collected["mem"]["measurement"] == ["mem_used_percent"]
    assert collected["disk"]["measurement"] == ["used_percent"]
    assert agent["metrics"]["append_dimensions"]["AutoScalingGroupName"] == "${aws:AutoScalingGroupName}"
    assert next(c["argv"][:3] for c in made if c["argv"][0] == "amazon-cloudwatch-agent-ctl") == [
        "amazon-cloudwatch-agent-ctl",
        "-a",
        "fetch-config",
    ]
    assert "OnUnitActiveSec=5min" in (instance.root / "systemd" / "saleor-refresh.timer").read_text()
    assert ["systemctl", "enable", "--now", "saleor-refresh.timer"] in [c["argv"] for c in made]
    assert (instance.root / "plugins" / "docker-compose").read_bytes() == COMPOSE_BINARY


def test_a_second_instance_uses_the_first_ones_jwt_key(tmp_path, world):
    script = user_data()
    first, _ = boot(tmp_path, world, "first", script)
    second, (completed, made) = boot(tmp_path, world, "second", script)
    assert completed.returncode == 0, completed.stderr
    assert not [c for c in made if c["argv"][:3] == ["aws", "secretsmanager", "put-secret-value"]]
    assert (second.saleor / "jwt.pem").read_text() == (first.saleor / "jwt.pem").read_text()


def test_a_racing_instance_loses_the_jwt_key_write_and_reads_the_winners(tmp_path, world):
    script = user_data()
    winner, _ = boot(tmp_path, world, "winner", script)
    # The loser looked before the winner wrote: it saw no key and generates its own.
    (world / "stale-once").write_text(SECRETS["jwt"])
    loser, (completed, made) = boot(tmp_path, world, "loser", script)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "another instance stored the key first" in completed.stdout
    assert [c["token"] for c in made if c["argv"][:3] == ["aws", "secretsmanager", "put-secret-value"]] == [
        "saleor-jwt-signing-key-first-version"
    ]
    assert (loser.saleor / "jwt.pem").read_text() == (winner.saleor / "jwt.pem").read_text()


def test_refresh_restarts_only_when_a_secret_changed(tmp_path, world):
    instance, (completed, _) = boot(tmp_path, world, "first", user_data())
    assert completed.returncode == 0, completed.stderr
    refresh = str(instance.saleor / "bin" / "refresh")

    before = len(calls(world))
    assert instance.bash(refresh).returncode == 0
    assert not [c for c in calls(world)[before:] if c["argv"][0] == "docker"]  # nothing changed

    state = json.loads((world / "secrets.json").read_text())
    state[SECRETS["db"]]["value"] = json.dumps({"username": "saleor", "password": "rotated"})
    (world / "secrets.json").write_text(json.dumps(state))
    before = len(calls(world))
    assert instance.bash(refresh).returncode == 0
    assert [c["argv"] for c in calls(world)[before:] if c["argv"][0] == "docker"] == [
        ["docker", "compose", "up", "-d"]
    ]
    assert ":rotated@" in instance.env_file()["DATABASE_URL"]


def test_a_failing_health_check_signals_failure(tmp_path, world):
    # Django answering 400 is what a missing ALLOWED_HOSTS entry looks like.
    _, (completed, made) = boot(tmp_path, world, "broken", user_data(), HEALTH_STATUS="400")
    assert completed.returncode != 0
    assert "Saleor answers 400 to the health check" in completed.stdout
    signals = [c["argv"][c["argv"].index("--exit-code") + 1] for c in made if c["argv"][0] == "cfn-signal"]
    assert signals == ["1"]
    assert not [
        c for c in made if c["argv"][:2] == ["systemctl", "enable"] and "saleor-refresh.timer" in c["argv"]
    ]


def test_https_domain_and_demo_data(tmp_path, world):
    script = user_data(
        CertificateArn="arn:aws:acm:us-east-1:123456789012:certificate/abc",
        ShopDomainName="shop.example.com",
        PopulateDemoData="true",
    )
    instance, (completed, _) = boot(tmp_path, world, "https", script)
    assert completed.returncode == 0, completed.stderr
    env = instance.env_file()
    assert env["ALLOWED_HOSTS"] == f"shop.example.com,{ALB},{PRIVATE_IP}"
    assert env["PUBLIC_URL"] == "https://shop.example.com/"
    deadline = time.monotonic() + 10  # populatedb runs in the background, after the signal
    while time.monotonic() < deadline:
        runs = [c["argv"] for c in calls(world) if c["argv"][:3] == ["docker", "compose", "run"]]
        if len(runs) == 2:
            break
        time.sleep(0.1)
    assert [run[run.index("-e") + 1] for run in runs] == ["TASK=migrate", "TASK=populatedb"]


# ---------------------------------------------------------------- the run-once logic

FAKE_DJANGO = {
    "django/__init__.py": "def setup():\n    pass\n",
    "django/core/__init__.py": "",
    "django/core/management/__init__.py": textwrap.dedent(
        """\
        import json, os
        def call_command(name, **options):
            with open(os.environ["RECORD"], "a") as out:
                out.write(json.dumps(["command", name, options]) + "\\n")
        """
    ),
    "django/db/__init__.py": textwrap.dedent(
        """\
        import json, os
        class _Cursor:
            def __enter__(self):
                return self
            def __exit__(self, *exc):
                return False
            def execute(self, sql, params):
                if sql == "SELECT 1" and os.environ.get("CONNECTION_LOST"):
                    raise OSError("server closed the connection unexpectedly")
                with open(os.environ["RECORD"], "a") as out:
                    out.write(json.dumps(["sql", sql, params]) + "\\n")
        class _Connection:
            def cursor(self):
                return _Cursor()
        connection = _Connection()
        """
    ),
    "django/db/migrations/__init__.py": "",
    "django/db/migrations/executor.py": textwrap.dedent(
        """\
        import os
        class _Graph:
            def leaf_nodes(self):
                return []
        class _Loader:
            graph = _Graph()
        class MigrationExecutor:
            loader = _Loader()
            def __init__(self, connection):
                pass
            def migration_plan(self, targets):
                return os.environ.get("PENDING", "").split()
        """
    ),
    "saleor/__init__.py": "",
    "saleor/product/__init__.py": "",
    "saleor/product/models.py": textwrap.dedent(
        """\
        import os
        class _Objects:
            def exists(self):
                return os.environ.get("PRODUCTS") == "yes"
        class Product:
            objects = _Objects()
        """
    ),
}


def python_file(name: str) -> str:
    """A Python file the user data writes with a quoted heredoc (bin/once.py, bin/beat.py)."""
    text = user_data()
    opening = f"cat > bin/{name} <<'PY'\n"
    start = text.index(opening) + len(opening)
    return text[start : text.index("\nPY\n", start)]


def fake_django(site: Path) -> None:
    for relative, text in FAKE_DJANGO.items():
        path = site / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


MIGRATE_LOCK = ["sql", "SELECT pg_advisory_lock(%s)", [7155170]]
POPULATE_LOCK = ["sql", "SELECT pg_advisory_lock(%s)", [7155171]]


@pytest.mark.parametrize(
    ("task", "pending", "products", "expected"),
    [
        ("migrate", "", "no", []),  # nothing pending: no lock, no migrate
        ("migrate", "0001_initial", "no", [MIGRATE_LOCK, ["command", "migrate", {"interactive": False}]]),
        ("populatedb", "", "yes", [POPULATE_LOCK]),  # a catalogue exists: left alone
        ("populatedb", "", "no", [POPULATE_LOCK, ["command", "populatedb", {"withoutimages": True}]]),
    ],
)
def test_run_once_locks_and_runs_only_what_is_needed(tmp_path, task, pending, products, expected):
    fake_django(tmp_path / "site")
    record = tmp_path / "record.jsonl"
    completed = subprocess.run(
        [sys.executable, "-c", python_file("once.py")],
        cwd=tmp_path / "site",
        capture_output=True,
        text=True,
        env={**os.environ, "TASK": task, "PENDING": pending, "PRODUCTS": products, "RECORD": str(record)},
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    made = [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []
    assert made == expected


@pytest.mark.parametrize(("celery_runs", "connection_lost", "code"), [("0", "", 0), ("30", "yes", 1)])
def test_beat_runs_only_under_the_lock_and_stops_when_it_is_lost(
    tmp_path, celery_runs, connection_lost, code
):
    fake_django(tmp_path / "site")
    record = tmp_path / "record.jsonl"
    celery = tmp_path / "bin" / "celery"
    celery.parent.mkdir()
    celery.write_text(
        f"#!{sys.executable}\nimport json, os, sys, time\n"
        "open(os.environ['RECORD'], 'a').write(json.dumps(['celery', *sys.argv[1:]]) + '\\n')\n"
        f"time.sleep({celery_runs})\n"
    )
    celery.chmod(0o755)
    # As in the container: the file is mounted in /srv, the working directory is /app.
    script = tmp_path / "srv" / "saleor-beat.py"
    script.parent.mkdir()
    script.write_text(python_file("beat.py"))
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path / "site",
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "PATH": f"{celery.parent}:{os.environ['PATH']}",
            "RECORD": str(record),
            "CONNECTION_LOST": connection_lost,
            "BEAT_LOCK_CHECK_SECONDS": "1",
        },
        timeout=60,
    )
    assert completed.returncode == code, completed.stderr
    assert time.monotonic() - started < 20  # a lost lock stops beat at the next check
    made = [json.loads(line) for line in record.read_text().splitlines()]
    assert made[0] == ["sql", "SELECT pg_advisory_lock(%s)", [7155172]]  # the lock before beat
    assert made[1] == [
        "celery", "--app", "saleor.celeryconf:app", "beat", "--loglevel=info",
        "--scheduler", "saleor.schedulers.schedulers.DatabaseScheduler",
    ]  # fmt: skip


def test_compose_binary_is_verified_against_its_checksum(tmp_path, world):
    _, (completed, made) = boot(tmp_path, world, "tampered", user_data(), CHECKSUM_OF="another binary")
    assert completed.returncode != 0
    assert not (tmp_path / "tampered" / "plugins" / "docker-compose").exists()
    assert [c["argv"][c["argv"].index("--exit-code") + 1] for c in made if c["argv"][0] == "cfn-signal"] == [
        "1"
    ]
