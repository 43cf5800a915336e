"""The control plane's certificates and kubeconfigs, written into a cluster's data directory.

One CA signs everything: the API server's serving certificate, one client certificate per component
(its user is the CN, its groups the O), and the real node's kubelet certificate. A second CA signs
the front-proxy client the API server uses towards aggregated APIs (metrics-server).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from xrouter_dev import certs
from xrouter_dev.cmdlines import ADMIN_USER, AUDIT_POLICY, Layout, kubeconfig_dict

# The component -> (user, groups) each client certificate carries.
IDENTITIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "admin": (ADMIN_USER, ("system:masters",)),
    "kube-controller-manager": ("system:kube-controller-manager", ()),
    "kube-scheduler": ("system:kube-scheduler", ()),
    "kwok": ("kwok-controller", ("system:masters",)),
}
# Where the API server is reachable from the real node's pods (the kubernetes Service's address);
# the serving certificate must name it.
SERVICE_API_IP = "10.96.0.1"


def write_kubeconfig(
    target: Path, server_url: str, ca: certs.KeyPair, user: str, groups: tuple[str, ...]
) -> certs.KeyPair:
    """Issue a client certificate for user/groups and write a self-contained kubeconfig (0600)."""
    pair = certs.issue(ca, user, organizations=groups, client=True)
    target.write_text(yaml.safe_dump(kubeconfig_dict(server_url, ca.cert_pem, pair, user)))
    target.chmod(0o600)
    return pair


def load_ca(layout: Layout) -> certs.KeyPair:
    return certs.KeyPair(layout.pem("ca.crt").read_bytes(), layout.pem("ca.key").read_bytes())


def write_control_plane(layout: Layout, server_url: str) -> None:
    """The CA, the API server's serving and front-proxy certificates, the service-account signing key,
    the admin and component kubeconfigs and the audit policy."""
    for d in (layout.root, layout.pki, layout.logs):
        d.mkdir(parents=True, exist_ok=True)
    layout.pki.chmod(0o700)
    ca = certs.make_ca()
    ca.write(layout.pki, "ca")
    certs.issue(
        ca,
        "kube-apiserver",
        dns_names=("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"),
        ip_addresses=("127.0.0.1", SERVICE_API_IP),
        server=True,
    ).write(layout.pki, "apiserver")
    certs.issue(ca, "kube-apiserver-kubelet-client", organizations=("system:masters",), client=True).write(
        layout.pki, "apiserver-kubelet-client"
    )
    front_ca = certs.make_ca("xrouter-front-proxy-ca")
    front_ca.write(layout.pki, "front-proxy-ca")
    certs.issue(front_ca, "front-proxy-client", client=True).write(layout.pki, "front-proxy-client")
    sa_key, sa_pub = certs.make_signing_key()
    layout.pem("sa.key").write_bytes(sa_key)
    layout.pem("sa.key").chmod(0o600)
    layout.pem("sa.pub").write_bytes(sa_pub)

    for component, (user, groups) in IDENTITIES.items():
        if component == "admin":
            write_kubeconfig(layout.kubeconfig, server_url, ca, user, groups).write(layout.pki, "admin")
        else:
            write_kubeconfig(layout.component_kubeconfig(component), server_url, ca, user, groups)
    layout.audit_policy.write_text(yaml.safe_dump(AUDIT_POLICY))
