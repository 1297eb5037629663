"""Reporting on finished runs: ``argen.compare``'s tables, the results page, the learning-curve
and trade-off figures, paper figures. Reads what ``argen.training`` wrote; trains nothing."""
