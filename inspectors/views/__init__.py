"""Pure views: a TurnRecord (plus the user's choices) -> text, table, HTML or figure. No model, no Gradio."""
