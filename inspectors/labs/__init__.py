"""The course's transformer experiments ("labs"), each a pure function of a loaded model and its inputs.

Every lab returns a result object with `to_json()` (every number, sentence and setting, no timings), so
the app's Labs tabs and `python -m inspectors.report` share one implementation. Presets live as data
in `prompts/labs/`.
"""
