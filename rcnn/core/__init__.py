"""Training and testing machinery: data loaders, metrics, checkpoints, schedules."""
