"""The one exception type the CLI turns into a one-line message and a non-zero exit."""


class BnnflowError(Exception):
    """A user-facing error: the message names the problem and the fix, in one line."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))
