"""Slow collective variables: extraction, reference torsions, scores and the report.

- :mod:`~nct_md.cv.extract`: stream CVs from files; write CSV, NPY or PLUMED COLVAR.
- :mod:`~nct_md.cv.reference`: Phi/Psi, Ramachandran basins, torsion features.
- :mod:`~nct_md.cv.scores`: kNN mutual information, VAMP-2 and TICA (deeptime), kNN accuracy.
- :mod:`~nct_md.cv.report`: the ``report.json`` content; :mod:`~nct_md.cv.plots` its figures.
"""
