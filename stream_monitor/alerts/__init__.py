"""The alert contract (contract §4), check results, and the firing/resolved transitions."""
