"""Train the embedded model's own SAE offline: `python -m inspectors.sae.train --help`.

Corpus (corpus.py) -> residual activations (activations.py) -> sae-lens training (train.py) ->
held-out metrics and model card (evaluate.py) -> top activating contexts for search (contexts.py).
"""
