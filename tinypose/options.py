"""Strict parsing of command-line options shared by every entry point (infer.py, train.py, export.py, serve.py).

``bool("no")`` is ``True``: reading an option with ``bool(...)`` turns ``flip=no`` into a flip test.
:func:`parse_bool` accepts exactly the spellings YAML 1.1 and Hydra read as booleans and refuses
everything else with a one-line error naming the option; :func:`parse_int` and :func:`parse_float`
do the same for numbers with bounds. A leaf module: it imports nothing of tinypose.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["FALSE_WORDS", "TRUE_WORDS", "OptionError", "hydra_argv_error", "parse_bool", "parse_float", "parse_int"]

TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
"""Spellings read as true (any case)."""
FALSE_WORDS = frozenset({"false", "no", "off", "0"})
"""Spellings read as false (any case)."""


class OptionError(ValueError):
    """A command-line option has a value it cannot take; the message names the option and the value."""


def parse_bool(value: Any, option_name: str) -> bool:
    """``value`` as a boolean: a real bool, 0/1, or true/false, yes/no, on/off, 1/0 in any case.

    Anything else (``"maybe"``, ``2``, ``None``, ``""``) raises :class:`OptionError`:
    ``flip='maybe' is not a boolean; use true or false (also yes/no, on/off, 1/0)``.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):  # numpy/YAML integers 0 and 1, never 2 or -1
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    raise OptionError(f"{option_name}={value!r} is not a boolean; use true or false (also yes/no, on/off, 1/0)")


def parse_int(value: Any, option_name: str, minimum: int | None = None) -> int:
    """``value`` as an integer (an int, or a string of one), at least ``minimum``; else :class:`OptionError`."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise OptionError(f"{option_name}={value!r} is not an integer")
    try:
        number = int(value)
    except ValueError:
        raise OptionError(f"{option_name}={value!r} is not an integer") from None
    if minimum is not None and number < minimum:
        raise OptionError(f"{option_name}={number} is out of range; it must be at least {minimum}")
    return number


def parse_float(value: Any, option_name: str, minimum: float | None = None, inclusive: bool = True) -> float:
    """``value`` as a finite number, at least (``inclusive``) or above ``minimum``; else :class:`OptionError`."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise OptionError(f"{option_name}={value!r} is not a number")
    try:
        number = float(value)
    except ValueError:
        raise OptionError(f"{option_name}={value!r} is not a number") from None
    if not math.isfinite(number):
        raise OptionError(f"{option_name}={value!r} is not a finite number")
    if minimum is not None and (number < minimum or (not inclusive and number == minimum)):
        bound = "at least" if inclusive else "above"
        raise OptionError(f"{option_name}={number:g} is out of range; it must be {bound} {minimum:g}")
    return number


_HYDRA_FLAGS = frozenset({"--help", "-h", "--hydra-help", "--version", "--resolve", "--run", "-r", "--multirun", "-m"})
"""Hydra's command-line flags that take no value (the others, e.g. ``--cfg job``, take the next argument)."""


def hydra_argv_error(
    argv: Sequence[str], program: str, positional: str | None = None, config_dir: str | Path | None = None
) -> str | None:
    """A one-line message when an argument of a Hydra entry point is not an override it can read, else ``None``.

    Hydra answers ``python infer.py photo.jpg`` with its grammar's lexer error and a link; this names
    the argument and says what to write instead (``input=photo.jpg`` when ``positional`` is ``input``,
    quoting for values with spaces or brackets, ``[a,b]`` for lists). With ``config_dir``, a choice
    of a config group that does not exist (``model=foo``) lists the choices in one line instead of
    Hydra's search-path report. Run it before ``hydra.main``.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser  # Hydra only for its entry points

    parser = OverridesParser.create()
    multirun = any(arg in ("--multirun", "-m") for arg in argv)
    skip_next = False
    for arg in argv:
        if skip_next and "=" not in arg:
            skip_next = False
            continue
        skip_next = False
        if arg.startswith("-"):
            skip_next = arg not in _HYDRA_FLAGS
            continue
        key, equal, value = arg.partition("=")
        try:
            override = parser.parse_overrides([arg])[0]
        except Exception:  # noqa: BLE001 (Hydra's grammar errors come as several exception types)
            if not equal and not arg.startswith("~"):
                hint = f" (the {positional} is given as {positional}={arg})" if positional else ""
                return f"{arg!r} is not an option{hint}; options are key=value, see {program} --help"
            return (
                f"cannot read the option {arg!r}; put a value holding spaces, brackets or quotes "
                f"in quotes inside the argument: \"{key}='{value}'\""
            )
        group = Path(config_dir, override.key_or_group) if config_dir and "/" not in override.key_or_group else None
        choice = override.value() if override.is_delete() is False else None
        if (
            group is not None
            and group.is_dir()
            and isinstance(choice, str)
            and not (group / f"{choice}.yaml").is_file()
        ):
            choices = ", ".join(sorted(path.stem for path in group.glob("*.yaml")))
            return f"{override.key_or_group}={choice!r} is not a choice; choose one of {choices}"
        if override.is_sweep_override() and not multirun:
            return (
                f"{arg!r}: a comma makes Hydra sweep over several values; for a list write "
                f"{key}=[{value}], for one value holding a comma quote it: \"{key}='{value}'\""
            )
    return None
