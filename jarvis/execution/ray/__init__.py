"""Local models on Ray Serve (local.backend: ray): the deployment whose replicas run the runners and load
models by id (deployment.py), the executor that calls it (executor.py), starting or joining Ray
(cluster.py), and what travels between them (wire.py). Ray itself is imported on first use (lazy.py)."""
