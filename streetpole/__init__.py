"""The `streetpole` command line (streetpole/cli.py), the installed package's one entry point."""
