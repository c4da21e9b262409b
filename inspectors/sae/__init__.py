"""Sparse autoencoders: loading (sae-lens), sparse activations of a turn, which SAE a model gets,
offline feature cards and search, the course's SAE experiments, and the recipe of the shipped SAEs.

Nothing is imported here, so `inspectors.sae.sparse` stays readable without torch.
"""
