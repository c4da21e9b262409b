"""Labels and limits the labs and their views share. Kept torch-free so views can import them."""

from __future__ import annotations

TEMPLATE_COURSE_VARIANT = "course variant: templated string tokenized with special tokens on (two <bos>)"
ATTENTION_COURSE_VARIANT = "course variant: labels shifted by one token (the <bos> label missing)"
SAE_COURSE_READ = "course variant: the layer-L SAE reads hidden_states[L], the output of block L-1"
MULTITURN_MAX_ROUNDS = 8  # each round is a figure, and a full re-templated prompt in the report
MULTITURN_COURSE_VARIANT = "course variant: the templated history tokenized with special tokens on (two <bos>)"
