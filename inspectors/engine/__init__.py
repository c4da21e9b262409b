"""The only model code: loading, chat templating, sampling, capture of a turn (-> TurnRecord), forward
passes over a finished turn, attention, and the plain-data calls that run on a GPU.

Nothing is imported here, so `inspectors.engine.record` stays readable without torch.
"""
