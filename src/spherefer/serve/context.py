"""What every route of the service shares: the model, the banks' store, the settings and the work
slots (:class:`ServeContext`), the FastAPI dependencies that check the API key, the profile and the
detector, and the steps that turn uploads into embeddings and edits into bank versions."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import numpy as np
from fastapi import Depends, Header, Query, Request, UploadFile

from spherefer.bank.centers import CenterBank
from spherefer.core.labels import counted, shown
from spherefer.face import DEFAULT_DETECTOR, DETECTORS, check_detector
from spherefer.runtime.recognizer import Recognizer
from spherefer.serve.store import BankStore, check_profile
from spherefer.serve.streams import FollowedStreams
from spherefer.serve.uploads import ServeSettings, UserError, WorkSlots, decode_upload

__all__ = ["Context", "Detector", "Profile", "ServeContext", "Writer", "key_refusal", "write_access"]


@dataclass
class ServeContext:
    """The service's state: the network with its trained bank, the profiles' banks and the limits."""

    recognizer: Recognizer
    store: BankStore
    settings: ServeSettings
    model_name: str
    slots: WorkSlots
    streams: FollowedStreams = field(default_factory=FollowedStreams)

    def view(self, bank: CenterBank) -> Recognizer:
        """The shared network with one profile's bank (the network is never copied)."""
        return self.recognizer.with_bank(bank)

    def embeddings_of(self, files: list[UploadFile], aligned: bool, detector: str) -> np.ndarray:
        """One embedding per image: the whole crop (``aligned``) or the largest accepted face of a photo,
        one decoded image at a time."""
        if len(files) > self.settings.max_images:
            limit = self.settings.max_images
            raise UserError(413, f"{counted(len(files), 'image')}, more than the {limit} allowed per request")
        with self.slots.hold():
            return np.stack([self.embedding_of(upload, aligned, detector) for upload in files])

    def embedding_of(self, upload: UploadFile, aligned: bool, detector: str) -> np.ndarray:
        """The whole crop's embedding (``aligned``), or that of the photo's largest accepted face."""
        image = decode_upload(upload, self.settings)
        if aligned:
            crop: np.ndarray = self.recognizer.embed([image])[0]
            return crop
        accepted = [r for r in self.recognizer.analyze(image, detector=detector) if r.accepted]
        if not accepted:
            name = shown(upload.filename or "upload")
            raise UserError(422, f"{name}: no usable face found (none detected, or too small, blurred or sideways)")
        return accepted[0].embedding  # type: ignore[return-value]

    def changed(self, profile: str, action: str, edit: Callable[[CenterBank], None]) -> dict[str, Any]:
        """Apply ``edit`` as one new version; the answer is the bank that version holds."""

        def apply(bank: CenterBank) -> CenterBank:
            edit(bank)
            return bank

        version, bank = self.store.change(profile, action, apply)  # the bank's own refusals answer by their kind
        return class_list(profile, version, bank)


def class_list(profile: str, version: int, bank: CenterBank) -> dict[str, Any]:
    """The answer of every route that shows or changes a profile's classes."""
    return {
        "profile": profile,
        "version": version,
        "score": bank.score,
        "threshold": bank.threshold,
        "classes": bank.summary(),
    }


def require_class(bank: CenterBank, name: str) -> None:
    if name not in bank:
        raise UserError(404, f"no class {shown(name)}; classes are {bank.names}")


def context(request: Request) -> ServeContext:
    serving: ServeContext = request.app.state.context
    return serving


Context = Annotated[ServeContext, Depends(context)]


def key_refusal(
    settings: ServeSettings, key: str | None, why: str = "this endpoint changes a bank"
) -> tuple[int, str] | None:
    """(status, reason) when ``key`` is not the server's API key; None when it is."""
    if key is None:
        return 401, f"{why}: send the API key in the X-API-Key header"
    if not hmac.compare_digest(key.encode(), settings.api_key.encode()):
        return 403, "wrong API key"
    return None


def write_access(serving: Context, x_api_key: Annotated[str | None, Header()] = None) -> None:
    """Checked again here (the guard checked the header before the body was read); it also documents the header."""
    refusal = key_refusal(serving.settings, x_api_key)
    if refusal is not None:
        raise UserError(*refusal)


def profile_of(
    serving: Context,
    profile: Annotated[str, Query(description="whose bank: 1-64 letters, digits, _ or -")] = "default",
    x_api_key: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> str:
    """The profile asked for; on a server with private profiles (``spherefer serve --private``) only with the
    API key."""
    if serving.settings.private_profiles:
        refusal = key_refusal(serving.settings, x_api_key, "this server keeps its profiles private")
        if refusal is not None:
            raise UserError(*refusal)
    return check_profile(profile)


def detector_query(
    detector: Annotated[str, Query(description=f"face detector for photos: {', '.join(sorted(DETECTORS))}")] = (
        DEFAULT_DETECTOR
    ),
) -> str:
    return check_detector(detector)


Profile = Annotated[str, Depends(profile_of)]
Detector = Annotated[str, Depends(detector_query)]
Writer = Depends(write_access)
