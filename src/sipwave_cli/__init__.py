"""The sipwave command: runs the project's playbooks through ansible-runner."""
