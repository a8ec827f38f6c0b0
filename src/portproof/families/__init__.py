"""The model families portproof ships (each registers itself; see models.py): timm, and any Python callable."""
