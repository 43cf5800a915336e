"""Developer tooling: the local Kubernetes control plane launcher and test helpers."""
