"""Layer 3: model files (safetensors + JSON), training checkpoints, conversion between them,
the built-in models.
"""
