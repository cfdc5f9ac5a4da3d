"""Feature extraction: EEG band features, peripheral physiology (NeuroKit2), windowed tables."""
