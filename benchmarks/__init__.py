"""fleet against Ansible and pyinfra on the same real test hosts: see benchmarks/README.md."""
