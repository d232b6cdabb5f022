"""The local backend through the public Python API (a package, so test module names stay unique)."""
