"""Training, export and model-making tools; the only part of signver that imports torch."""
