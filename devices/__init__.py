"""Device profiles (one TOML file per board), installed as ``physioaffect._devices``."""
