"""Ready-made systems: the harmonic chain (and, in later modules, molecules and digits)."""
