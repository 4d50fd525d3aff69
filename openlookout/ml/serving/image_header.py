"""An image's format and size from its header, never its pixels (Pillow only: no numpy).

The one header reader: the API's image rules (services/image_checks.py) and the engine
(ml/serving/images.py `image_size`) both read headers here.
"""

from __future__ import annotations

import io
import os
import warnings
from typing import IO, NamedTuple

from PIL import Image, JpegImagePlugin, PngImagePlugin, UnidentifiedImageError

HeaderSource = str | os.PathLike[str] | bytes | bytearray | memoryview


class InvalidImageError(ValueError):
    """The bytes are not a decodable PNG/JPEG image (maps to L4V's ValidationException)."""


class ImageHeader(NamedTuple):
    format: str | None  # Pillow's name: "PNG", "JPEG", "GIF", ...
    width: int
    height: int


_PLUGINS = {b"\x89PNG\r\n\x1a\n": PngImagePlugin.PngImageFile, b"\xff\xd8\xff": JpegImagePlugin.JpegImageFile}
_UNREADABLE = (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def read_header(src: HeaderSource) -> ImageHeader:
    """Format and size of encoded image bytes or an image file; InvalidImageError when unreadable."""
    try:
        if isinstance(src, (bytes, bytearray, memoryview)):
            return _parse(io.BytesIO(bytes(src)))
        with open(src, "rb") as fp:
            return _parse(fp)
    except _UNREADABLE as error:
        raise InvalidImageError(f"cannot decode image: {error}") from error


def _parse(fp: IO[bytes]) -> ImageHeader:
    signature = fp.read(8)
    fp.seek(0)
    for start, plugin in _PLUGINS.items():
        if signature.startswith(start):
            # The plugin itself, not Image.open: Image.open refuses a decompression bomb before we
            # can say how large it claims to be; the caller's size rule refuses it anyway.
            with plugin(fp) as image:
                return ImageHeader(image.format, image.width, image.height)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(fp) as image:
            return ImageHeader(image.format, image.width, image.height)
