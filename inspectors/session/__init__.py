"""The session layer: one user's state and actions (`Session`), what all sessions share (`Shared`), and
the sessions of a running app (`SessionStore`). The UI and the API call only this."""

from inspectors.session.session import ChatUpdate, ModelSwitch, Session, sampling_params
from inspectors.session.shared import Shared
from inspectors.session.store import SessionStore

__all__ = ["ChatUpdate", "ModelSwitch", "Session", "SessionStore", "Shared", "sampling_params"]
