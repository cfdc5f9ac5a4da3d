"""The ``physioaffect`` command line: the only place that wires the stages together."""
