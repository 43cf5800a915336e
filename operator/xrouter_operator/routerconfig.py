"""The spec -> the router's config (validated by the router's own model), plus how the
pods get the secrets that config names.

Every secret reaches the router as a file in one projected volume (``SECRETS_DIR``),
never as an environment variable: the kubelet updates the files when a Secret changes
(the router re-reads them), they do not show in ``kubectl describe pod`` or in a crash
dump of the environment, and checkov's CKV_K8S_35 holds. The config names each file
with ``{file: ...}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from xrouter_router import config as rc

from .models import SecretKeyRef, XRouter
from .naming import ADMIN_KEY_FIELD, SECRETS_DIR, SECRETS_STORE_DIR, SPILL_DIR, admin_secret_name
from .parsing import RenderError, format_validation_error

# Read-only for the owner and the pod's fsGroup (the router's group), nobody else.
SECRET_FILE_MODE = 0o440


@dataclass(frozen=True)
class SecretFile:
    """One key of one Secret, projected to ``path`` (relative to the volume's mount); with
    ``store``, an object of spec.secretProviderClass, which its CSI volume mounts as ``key``."""

    secret: str
    key: str
    path: str
    store: bool = False

    def source(self, mount: str = SECRETS_DIR) -> rc.SecretSource:
        if self.store:
            return rc.SecretSource(file=f"{SECRETS_STORE_DIR}/{self.key}")
        return rc.SecretSource(file=f"{mount}/{self.path}")


def _file(ref: SecretKeyRef, path: str, store: str | None = None) -> SecretFile:
    return SecretFile(ref.name, ref.key, path, store=ref.name == store)


def projected_volume(name: str, files: list[SecretFile]) -> dict[str, Any]:
    """A projected volume carrying exactly these Secret keys and no others (one source
    per Secret, in order of first use)."""
    items: dict[str, list[dict[str, str]]] = {}
    for f in files:
        if f.store:  # in the CSI volume instead
            continue
        items.setdefault(f.secret, []).append({"key": f.key, "path": f.path})
    return {
        "name": name,
        "projected": {
            "defaultMode": SECRET_FILE_MODE,
            "sources": [{"secret": {"name": secret, "items": its}} for secret, its in items.items()],
        },
    }


def router_config(xr: XRouter) -> tuple[rc.RouterConfig, list[SecretFile]]:
    """The router's config, validated by the router's own model, and the Secret keys the
    pods must see as files for the ``{file: ...}`` sources it names."""
    spec = xr.spec
    store = spec.secret_provider_class.name if spec.secret_provider_class else None
    admin = SecretFile(admin_secret_name(xr.metadata.name), ADMIN_KEY_FIELD, "admin-key")
    files = [admin]
    providers = []
    for p in spec.providers:
        api_key = None
        if p.api_key_secret_ref is not None:
            f = _file(p.api_key_secret_ref, f"providers/{p.name}/api-key", store)
            files.append(f)
            api_key = f.source()
        aws = None
        if p.aws_access_key_id_secret_ref is not None and p.aws_secret_access_key_secret_ref is not None:
            key_id = _file(p.aws_access_key_id_secret_ref, f"providers/{p.name}/aws-access-key-id")
            secret = _file(p.aws_secret_access_key_secret_ref, f"providers/{p.name}/aws-secret-access-key")
            files += [key_id, secret]
            aws = rc.AwsAuth(access_key_id=key_id.source(), secret_access_key=secret.source())
        google = None
        if p.google_credentials_secret_ref is not None:
            f = _file(p.google_credentials_secret_ref, f"providers/{p.name}/google-credentials")
            files.append(f)
            google = f.source()
        providers.append(
            rc.Provider(
                name=p.name,
                type=p.type,
                base_url=p.base_url,
                api_key=api_key,
                api_version=p.api_version,
                region=p.region,
                aws=aws,
                project=p.project,
                google_credentials=google,
                timeouts=p.timeouts,
                max_retries=p.max_retries,
            )
        )
    keys = []
    for k in spec.keys:
        f = _file(k.secret_key_ref, f"keys/{k.name}", store)
        files.append(f)
        keys.append(
            rc.Key(
                name=k.name,
                secret=f.source(),
                limits=rc.Limits.model_validate(k.limits.model_dump()) if k.limits else None,
            )
        )
    redis = _redis(xr, files, store)
    database = rc.DatabaseConfig(spill_dir=SPILL_DIR)
    if spec.database is not None:
        f = _file(spec.database.secret_ref(), "database-url", store)
        files.append(f)
        database = rc.DatabaseConfig(url=f.source(), spill_dir=SPILL_DIR)
    try:
        config = rc.RouterConfig(
            providers=providers,
            models=[
                rc.Route(
                    name=m.name,
                    strategy=m.strategy,
                    hash_key=m.hash_key,
                    targets=[
                        rc.Target(provider=t.provider, model=t.model, weight=t.weight) for t in m.targets
                    ],
                    fallbacks=list(m.fallbacks),
                    context_window_fallbacks=list(m.context_window_fallbacks),
                    cache=m.cache,
                )
                for m in spec.models
            ],
            keys=keys,
            default_limits=rc.Limits.model_validate(spec.default_limits.model_dump()),
            prices=dict(spec.prices),
            admin_key=admin.source(),
            redis=redis,
            database=database,
            telemetry=rc.TelemetryConfig(
                capture_content=spec.telemetry is not None and spec.telemetry.capture_content
            ),
        )
    except ValidationError as e:
        raise RenderError(f"spec: the router rejects the config: {format_validation_error(e)}") from None
    return config, files


def _redis(xr: XRouter, files: list[SecretFile], store: str | None) -> rc.RedisConfig:
    """spec.redis as the router's ``redis``, adding the Secret keys it reads to ``files``."""
    r = xr.spec.redis
    if r is None:
        return rc.RedisConfig()
    # One namespace per XRouter (its uid): routers sharing a Redis share no key.
    namespace = f"xr:{xr.metadata.uid}" if xr.metadata.uid else "xr"
    if r.sentinel is None:
        assert r.url_secret_ref is not None
        f = _file(r.url_secret_ref, "redis-url", store)
        files.append(f)
        return rc.RedisConfig(url=f.source(), fail_mode=r.fail_mode, cluster=r.cluster, namespace=namespace)
    s = r.sentinel
    sources: dict[str, rc.SecretSource | None] = {}
    for field, ref, path in (
        ("password", s.password_secret_ref, "redis-password"),
        ("sentinel_password", s.sentinel_password_secret_ref, "redis-sentinel-password"),
    ):
        sources[field] = None
        if ref is not None:
            f = _file(ref, path, store)
            files.append(f)
            sources[field] = f.source()
    sentinel = rc.RedisSentinel(
        master_name=s.master_name,
        addresses=list(s.addresses),
        username=s.username,
        password=sources["password"],
        db=s.db,
        sentinel_username=s.sentinel_username,
        sentinel_password=sources["sentinel_password"],
    )
    return rc.RedisConfig(sentinel=sentinel, fail_mode=r.fail_mode, namespace=namespace)
