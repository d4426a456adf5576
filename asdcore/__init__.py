"""Shared core of the anomalous sound detection reference implementations: data in, numbers out."""
