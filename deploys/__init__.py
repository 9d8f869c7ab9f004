"""pyinfra-kubeadm: deploys that converge Ubuntu/Debian hosts into a kubeadm cluster."""
