"""flow-k8s: run flow's tasks on Kubernetes.

* ``KubernetesExecutor`` (``[core] executor = "kubernetes"``): one pod per try of a task
  instance, running ``flow tasks run --workload ...`` (:mod:`flow_k8s.executor`).
* ``KubernetesPodOperator``: run any image as a task (:mod:`flow_k8s.operators`).
* ``flow k8s generate-pod`` and ``flow k8s cleanup`` (:mod:`flow_k8s.cli`).

Configuration is the ``[kubernetes]`` section of ``flow.toml`` (:mod:`flow_k8s.settings`).
Importing this package imports nothing heavy: the Kubernetes client is imported on first use.
"""

__version__ = "0.1.0"
