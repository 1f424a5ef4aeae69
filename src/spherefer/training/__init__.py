"""Training (the only package that imports PyTorch): configs, networks, margin heads, the objective,
augmentation, the loop, the scale/margin grid, teacher targets and the PyTorch embedder."""
