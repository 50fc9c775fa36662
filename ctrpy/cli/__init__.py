"""The command line: click only, on top of ctrpy.Client."""
