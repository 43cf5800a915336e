"""XRouter operator: reconciles XRouter custom resources into the router's Kubernetes objects."""
