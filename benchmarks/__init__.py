"""Speed and scale benchmarks: ``python -m benchmarks.<name> [--quick] [--json]``."""
