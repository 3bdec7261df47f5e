"""The local Kubernetes sandbox: real etcd + kube-apiserver + kube-controller-manager built
from Go modules (``sandbox/build.sh``), started on loopback, with a pod-status simulator that
plays the kubelet. Used by the tests and the quick start; never part of the hub itself."""
