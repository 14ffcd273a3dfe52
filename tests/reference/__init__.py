"""Independent references: scikit-learn from the same start, scipy densities, mclust values."""
