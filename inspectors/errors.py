"""Errors a user can act on. Each message says what was wrong and how to fix it."""

from __future__ import annotations


class InspectorError(Exception):
    """Base class: the message is meant to be shown to a user as is."""


class InvalidParameterError(InspectorError, ValueError):
    """A generation or view parameter is outside its allowed range."""

    def __init__(self, name: str, rule: str, value: object):
        self.name = name
        self.rule = rule
        self.value = value
        super().__init__(f"`{name}` {rule}, but is {value!r}")


class ConversationError(InspectorError, ValueError):
    """The messages cannot be rendered by the chat template (roles, content, length)."""


class ModelLoadError(InspectorError, RuntimeError):
    """A model or tokenizer could not be loaded; the message says what to do."""


class GenerationError(InspectorError, RuntimeError):
    """The model failed while generating a reply."""


class SavedFileError(InvalidParameterError):
    """A saved conversation cannot be opened (not JSON, another program's file, a newer version, damaged):
    the message names what is wrong, where in the file, and what to do."""

    def __init__(self, message: str):
        self.name, self.rule, self.value = "file", message, None
        Exception.__init__(self, message)
