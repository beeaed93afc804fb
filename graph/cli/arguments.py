"""The types of the command line's numeric options: each refusal is argparse's one line, naming the rule."""

import argparse

MAX_PORT = 65535


def port(text: str) -> int:
    """A TCP port to listen on: 0 would be a random one, nobody's to connect to."""
    number = whole_number(text)
    if not 1 <= number <= MAX_PORT:
        raise argparse.ArgumentTypeError(f"a port is a number from 1 to {MAX_PORT}, not {text}")
    return number


def positive(text: str) -> int:
    number = whole_number(text)
    if number < 1:
        raise argparse.ArgumentTypeError(f"at least 1, not {text}")
    return number


def whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a whole number, not {text!r}") from None
