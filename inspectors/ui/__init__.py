"""Gradio builders and event handlers. No model code: handlers call the library and format results."""
