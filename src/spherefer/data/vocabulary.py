"""The canonical expression vocabulary and the mapping from dataset spellings to it.

Every dataset in :mod:`spherefer.data` names its classes with these canonical names,
so "anger" (CK+), "Angry" (FER2013 folders) and label 6 of AffectNet all become
``"angry"``.
"""

from __future__ import annotations

from spherefer.core.errors import InvalidInput

__all__ = ["EXPRESSIONS", "COMPOUND_EXPRESSIONS", "canonical_name", "is_expression_name"]

EXPRESSIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral", "contempt")
"""Basic expressions; the first seven are in FER2013 label order 0..6."""

COMPOUND_EXPRESSIONS: tuple[str, ...] = (
    "happily_surprised",
    "happily_disgusted",
    "sadly_fearful",
    "sadly_angry",
    "sadly_surprised",
    "sadly_disgusted",
    "fearfully_angry",
    "fearfully_surprised",
    "angrily_surprised",
    "angrily_disgusted",
    "disgustedly_surprised",
)
"""RAF-DB compound expressions, in RAF-DB compound label order 1..11."""

_ALIASES: dict[str, str] = {
    "anger": "angry",
    "angry": "angry",
    "disgust": "disgust",
    "disgusted": "disgust",
    "fear": "fear",
    "fearful": "fear",
    "afraid": "fear",
    "scared": "fear",
    "happy": "happy",
    "happiness": "happy",
    "joy": "happy",
    "sad": "sad",
    "sadness": "sad",
    "surprise": "surprise",
    "surprised": "surprise",
    "neutral": "neutral",
    "neutrality": "neutral",
    "contempt": "contempt",
    "contemptuous": "contempt",
    **{name: name for name in COMPOUND_EXPRESSIONS},
}


def _normalise(name: str) -> str:
    """Lower-case ``name`` and turn spaces and hyphens into underscores."""
    return name.strip().lower().replace(" ", "_").replace("-", "_")


def is_expression_name(name: str) -> bool:
    """Whether :func:`canonical_name` knows ``name``."""
    return _normalise(name) in _ALIASES


def canonical_name(name: str) -> str:
    """Map a dataset's spelling of an expression ("Anger", "sadness", "Happily Surprised") to its canonical name."""
    try:
        return _ALIASES[_normalise(name)]
    except KeyError:
        raise InvalidInput(f"unknown expression name {name!r}; known names: {', '.join(sorted(_ALIASES))}") from None
