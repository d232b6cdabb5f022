"""The code archive kflow packages a project into (a package, so test module names stay unique)."""
