"""The `kflow` command as a user types it (a package, so test module names stay unique)."""
