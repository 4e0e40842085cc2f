"""Bodies: parametric models evaluated in NumPy, with their DensePose charts."""
