"""The load test's modules import Locust, whose import gevent-patches the whole process
unless told not to: the tests need plain threads and sockets (moto, the stand-in server),
and run Locust itself in a subprocess, where the patch is restored (see locust_env)."""

from __future__ import annotations

import os

os.environ.setdefault("LOCUST_SKIP_MONKEY_PATCH", "1")


def locust_env(**overrides: str) -> dict[str, str]:
    """The environment for a Locust subprocess: this one's, gevent patching on again."""
    env = {key: value for key, value in os.environ.items() if key != "LOCUST_SKIP_MONKEY_PATCH"}
    env.update(overrides)
    return env
