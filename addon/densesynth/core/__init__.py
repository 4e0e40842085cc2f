"""Neutral core types every stage shares (decode/, annotate/, passes/, appearance/, config/, and the
training package): they import nothing else of the package, so no two stages depend on each other
through them."""
