"""Errors that are the user's to fix. Each message says what was wrong and what to do.

The API turns a UserError into a 4xx JSON answer, the UI shows its message, the log prints it;
anything else is our bug (500) and is logged with its traceback.
"""


class UserError(Exception):
    status_code = 400

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message
        self.api_extra: dict = {}  # more fields for the API's JSON answer (e.g. the titles to choose from)


class InvalidRequestError(UserError):
    status_code = 422


class CheckpointError(UserError):
    """A checkpoint file that cannot be used: missing, corrupt, truncated, unsafe or of an unknown architecture."""


class NoCheckpointError(UserError):
    status_code = 409


class UnsupportedSamplerError(InvalidRequestError):
    pass


class NotFoundError(UserError):
    status_code = 404
