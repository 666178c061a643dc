"""Thin experiment CLIs; the shared logic lives in experiments._cli."""
