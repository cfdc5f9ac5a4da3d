"""Electrode sets (one TOML file per montage), installed as ``physioaffect._montages``."""
