"""Test support shared by tests/ and bench/: state-file writer and mount namespaces."""
