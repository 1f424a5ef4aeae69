"""Which class names a reader cannot tell apart: the key two confusable names share.

A floor module (it imports nothing from spherefer), used by the class-name rule of
:mod:`spherefer.core.labels`. :func:`confusable_key` folds a name to a skeleton in the manner of
Unicode TR39: compatibility forms and case folded (NFKC, casefold), marks dropped, and the
Cyrillic, Greek and other letters drawn like Latin ones replaced by those Latin letters; two
names with the same key look alike (``hаppy`` with a Cyrillic ``а`` and ``happy``; ``Happy``
and ``happy``; ``café`` written with a combining accent and ``cafe``).
"""

from __future__ import annotations

import unicodedata

__all__ = ["confusable_key"]

_LOOKALIKES = str.maketrans(
    {
        # Cyrillic
        "а": "a",
        "в": "b",
        "е": "e",
        "ё": "e",
        "һ": "h",
        "і": "i",
        "ї": "i",
        "ј": "j",
        "к": "k",
        "м": "m",
        "н": "h",
        "о": "o",
        "р": "p",
        "с": "c",
        "т": "t",
        "у": "y",
        "х": "x",
        "ѕ": "s",
        "ԁ": "d",
        "ԛ": "q",
        "ԝ": "w",
        "ь": "b",
        "ӏ": "l",
        "ɡ": "g",
        # Greek
        "α": "a",
        "β": "b",
        "γ": "y",
        "ε": "e",
        "η": "n",
        "ι": "i",
        "κ": "k",
        "ν": "v",
        "ο": "o",
        "ρ": "p",
        "τ": "t",
        "υ": "u",
        "χ": "x",
        "ω": "w",
        "ϲ": "c",
        "ϳ": "j",
        # Latin look-alikes and digits drawn like letters
        "ı": "i",
        "ł": "l",
        "ø": "o",
        "ß": "ss",
        "0": "o",
        "1": "l",
        "|": "l",
        # dashes and spaces
        "‐": "-",
        "‑": "-",
        "‒": "-",
        "–": "-",
        "—": "-",
        "−": "-",
        "_": "-",
        " ": "-",
    }
)


def confusable_key(name: str) -> str:
    """The skeleton of ``name``: equal for names a reader would take for one another."""
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", name).casefold())
    unmarked = "".join(c for c in folded if not unicodedata.combining(c))
    return unicodedata.normalize("NFKC", unmarked.translate(_LOOKALIKES))
