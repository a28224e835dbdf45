"""Test support shared by tests/ and bench/: the exporter process, exposition parsing, /proc,
logind state files, mount namespaces and the golden fixture (tests/README.md lists them)."""
