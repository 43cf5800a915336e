"""Which Redis the router talks to (one server, Sentinel, Cluster), and the rule a
Redis Cluster imposes: every key a script touches hashes to the slot of its first key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError
from redis.crc import key_slot
from xrouter_router.config import RedisConfig, RouterConfig
from xrouter_router.ledger import limitscripts, spillstream
from xrouter_router.redisconn import client, replica_acks, target
from xrouter_router.secrets import SecretError

# The key names a limit script is called with (limits.py) and the ones it derives
# from them inside Lua: base .. ':rpm:' .. minute and the like.
DERIVED = re.compile(r"(?:base|KEYS\[1\]) \.\. '([^']*)'( \.\. minute)?")
NAMES = ["alpha", "team.a_b-c", "a}b", "{a", "x{y}z", "ключ", "k" * 63]


def _limit_key(name: str) -> str:
    return f"xr:{{{name}}}"  # as limits.py builds it


@pytest.mark.parametrize("script", ["ACQUIRE", "LEASE", "SETTLE", "TOUCH"])
@pytest.mark.parametrize("name", NAMES)
def test_every_key_a_limit_script_touches_is_in_its_first_keys_slot(script: str, name: str) -> None:
    source: str = getattr(limitscripts, script)
    suffixes = [s + ("29000000" if minute else "") for s, minute in DERIVED.findall(source)]
    assert suffixes, f"{script}: no derived keys found; has the script changed shape?"
    base = _limit_key(name)
    slots = {key_slot(k.encode()) for k in [base, *(base + s for s in suffixes)]}
    assert len(slots) == 1, f"{script} for key {name!r} touches slots {slots}"


def test_a_key_name_that_would_split_its_counters_across_slots_is_refused_with_cluster() -> None:
    # "}x" makes the hash tag of xr:{}x} empty, so Redis hashes each whole key name and
    # the script's counters would land in different slots (CROSSSLOT on a cluster).
    base = _limit_key("}x")
    assert key_slot(base.encode()) != key_slot((base + ":conc").encode())
    config = {
        "providers": [{"name": "m", "type": "mock"}],
        "models": [{"name": "echo", "targets": [{"provider": "m", "model": "e"}]}],
        "keys": [{"name": "}x", "sha256": "0" * 64}],
        "redis": {"url": {"env": "REDIS_URL"}, "cluster": True},
    }
    with pytest.raises(ValidationError, match=r"keys\[}x\]\.name"):
        RouterConfig.model_validate(config)
    config["redis"] = {"url": {"env": "REDIS_URL"}}
    RouterConfig.model_validate(config)  # one server has no slots


def test_spill_stream_scripts_touch_one_key() -> None:
    # The lock's release is the spill's only script; the stream itself takes plain commands.
    assert set(re.findall(r"KEYS\[(\d+)\]", spillstream._UNLOCK)) == {"1"}


def test_sentinel_config_is_checked_field_by_field() -> None:
    with pytest.raises(ValidationError, match="either 'url' or 'sentinel'"):
        RedisConfig.model_validate(
            {"url": {"env": "X"}, "sentinel": {"masterName": "m", "addresses": ["h:26379"]}}
        )
    with pytest.raises(ValidationError, match=r"redis.sentinel.addresses: 'h' is not host:port"):
        RedisConfig.model_validate({"sentinel": {"masterName": "m", "addresses": ["h"]}})
    with pytest.raises(ValidationError, match="masterName"):
        RedisConfig.model_validate({"sentinel": {"addresses": ["h:1"]}})
    with pytest.raises(ValidationError, match="exclude each other"):
        RedisConfig.model_validate({"cluster": True, "sentinel": {"masterName": "m", "addresses": ["h:1"]}})


async def test_sentinel_target_reads_its_secrets_and_never_shows_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://ignored:1")  # overrides url only, not sentinel
    (tmp_path / "pw").write_text("s3cret-master\n")
    config = RedisConfig.model_validate(
        {
            "sentinel": {
                "masterName": "mymaster",
                "addresses": ["10.0.0.1:26379", "[::1]:26380"],
                "password": {"file": str(tmp_path / "pw")},
                "sentinelPassword": {"env": "SENTINEL_PW"},
            }
        }
    )
    with pytest.raises(SecretError, match=r"redis\.sentinel\.sentinelPassword: environment variable"):
        target(config)
    monkeypatch.setenv("SENTINEL_PW", "s3cret-sentinel")
    t = target(config)
    assert t is not None
    assert t.sentinels == (("10.0.0.1", 26379), ("::1", 26380))
    assert (t.password, t.sentinel_password) == ("s3cret-master", "s3cret-sentinel")
    assert "s3cret" not in repr(t)
    redis = client(t)
    assert redis is not None and replica_acks(redis) == 1  # spills wait for a replica
    await redis.aclose()


async def test_url_target_for_one_server_or_a_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert target(RedisConfig()) is None
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    one = client(target(RedisConfig()))
    cluster = client(target(RedisConfig(cluster=True)))
    assert one is not None and cluster is not None
    assert type(cluster).__name__ == "RedisCluster"
    assert replica_acks(one) == replica_acks(cluster) == 0
    await one.aclose()
    await cluster.aclose()
