"""nct-md: neural canonical transformations for molecular dynamics."""

__version__ = "0.1.0"
