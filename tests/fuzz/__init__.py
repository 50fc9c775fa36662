"""Fuzz targets (hypothesis): the tar reader, the archive reader, both importers, the layer
applier and the CLI, on hostile input from ``strategies.py``.  ``make test`` runs each with a
fixed seed and a bounded number of examples; ``make fuzz`` runs them much longer."""
