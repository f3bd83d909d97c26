"""The run's machinery: its context, the artifact cache, the core artifacts, RL curves and the writers."""
