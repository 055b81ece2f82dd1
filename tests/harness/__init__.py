"""Test-support harness: fault injection and Jepsen-style history checking."""
