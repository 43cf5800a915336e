"""The spec -> the router's config (validated by the router's own model), plus how the
pods get the secrets that config names."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from xrouter_router import config as rc

from .models import XRouter
from .naming import ADMIN_KEY_FIELD, SPILL_DIR, admin_secret_name
from .parsing import RenderError, format_validation_error


def _env_name(prefix: str, name: str) -> str:
    return f"XR_{prefix}_{name.upper().replace('-', '_')}"


def _secret_env(env: str, ref_name: str, ref_key: str) -> dict[str, Any]:
    return {"name": env, "valueFrom": {"secretKeyRef": {"name": ref_name, "key": ref_key}}}


def router_config(xr: XRouter) -> tuple[rc.RouterConfig, list[dict[str, Any]]]:
    """The router's config, validated by the router's own model, and the env vars
    that carry the secrets it names."""
    spec = xr.spec
    env: list[dict[str, Any]] = [
        _secret_env("XR_ADMIN_KEY", admin_secret_name(xr.metadata.name), ADMIN_KEY_FIELD)
    ]
    providers = []
    for p in spec.providers:
        api_key = None
        if p.api_key_secret_ref is not None:
            var = _env_name("PROVIDER", p.name) + "_API_KEY"
            env.append(_secret_env(var, p.api_key_secret_ref.name, p.api_key_secret_ref.key))
            api_key = rc.SecretSource(env=var)
        providers.append(
            rc.Provider(
                name=p.name,
                type=rc.ProviderType(p.type.value),
                base_url=p.base_url,
                api_key=api_key,
                api_version=p.api_version,
                timeouts=rc.Timeouts(
                    connect=p.timeouts.connect, first_byte=p.timeouts.first_byte, total=p.timeouts.total
                ),
                max_retries=p.max_retries,
            )
        )
    keys = []
    for k in spec.keys:
        var = _env_name("KEY", k.name)
        env.append(_secret_env(var, k.secret_key_ref.name, k.secret_key_ref.key))
        keys.append(
            rc.Key(
                name=k.name,
                secret=rc.SecretSource(env=var),
                limits=rc.Limits.model_validate(k.limits.model_dump()) if k.limits else None,
            )
        )
    redis = rc.RedisConfig()
    if spec.redis is not None:
        env.append(_secret_env("XR_REDIS_URL", spec.redis.url_secret_ref.name, spec.redis.url_secret_ref.key))
        redis = rc.RedisConfig(url=rc.SecretSource(env="XR_REDIS_URL"), fail_mode=spec.redis.fail_mode)
    database = rc.DatabaseConfig(spill_dir=SPILL_DIR)
    if spec.database is not None:
        ref = spec.database.url_secret_ref
        env.append(_secret_env("XR_DATABASE_URL", ref.name, ref.key))
        database = rc.DatabaseConfig(url=rc.SecretSource(env="XR_DATABASE_URL"), spill_dir=SPILL_DIR)
    try:
        config = rc.RouterConfig(
            providers=providers,
            models=[
                rc.Route(
                    name=m.name,
                    strategy=rc.Strategy(m.strategy.value),
                    hash_key=m.hash_key,
                    targets=[
                        rc.Target(provider=t.provider, model=t.model, weight=t.weight) for t in m.targets
                    ],
                    fallbacks=list(m.fallbacks),
                )
                for m in spec.models
            ],
            keys=keys,
            default_limits=rc.Limits.model_validate(spec.default_limits.model_dump()),
            prices=dict(spec.prices),
            admin_key=rc.SecretSource(env="XR_ADMIN_KEY"),
            redis=redis,
            database=database,
        )
    except ValidationError as e:
        raise RenderError(f"spec: the router rejects the config: {format_validation_error(e)}") from None
    return config, env
