"""Tools for a practitioner's own training: the monitor, log readers and the TRL adapter."""
