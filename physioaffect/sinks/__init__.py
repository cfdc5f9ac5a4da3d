"""Sinks consume chunks: LSL outlets here; the recorder, viewer and decoder in later stages."""

from physioaffect.sinks.lsl import LSLOutlet, OutletConsumer, publish

__all__ = ["LSLOutlet", "OutletConsumer", "publish"]
