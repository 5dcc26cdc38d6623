"""The ``baitiao`` command line: entrypoints that start workers, run jobs and inspect services."""
