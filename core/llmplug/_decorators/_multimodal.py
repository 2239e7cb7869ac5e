"""Images in and out of decorated functions: SimpleLLMFunc's ``Text``, ``ImgUrl``, ``ImgPath``
and ``UserChatMessage``, and how they become message parts.

Messages hold images as Chat-shaped ``image_url`` parts (a URL or a ``data:`` URL); each wire
plugin translates them. Local files are read when the message is built and sent as data URLs,
with the MIME type taken from the file's first bytes, never from its name."""

from __future__ import annotations

import base64
import inspect
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import msgspec

from llmplug._vocab._redact import redact_url
from llmplug._vocab._types import ContentPart, ImagePart, ImageURL, TextPart

from ._prompt import render_value

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "ImgPath",
    "ImgUrl",
    "MultimodalContent",
    "MultimodalList",
    "Text",
    "UserChatMessage",
    "image_arguments",
    "image_mime_type",
    "message_content",
    "tool_output",
    "with_images",
]

Detail: TypeAlias = Literal["low", "high", "auto"]
_DETAILS = ("low", "high", "auto")


def _check_detail(detail: str) -> None:
    if detail not in _DETAILS:
        raise ValueError(f"detail must be 'low', 'high' or 'auto', got {detail!r}")


def image_mime_type(head: bytes) -> str | None:
    """The MIME type of an image from its first 12 bytes: PNG, JPEG, GIF or WebP (what every
    vision API takes), else None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


class Text:
    """Text among images in a multimodal argument (a plain ``str`` works the same)."""

    __slots__ = ("content",)

    def __init__(self, content: str) -> None:
        self.content = content

    def __str__(self) -> str:
        return self.content

    def __repr__(self) -> str:
        return f"Text({self.content!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Text) and other.content == self.content

    def __hash__(self) -> int:
        return hash(self.content)


class ImgUrl:
    """An image at a URL (``http(s)://`` or ``data:``), sent as it is."""

    __slots__ = ("detail", "url")

    def __init__(self, url: str, detail: Detail = "auto") -> None:
        if not url.startswith(("http://", "https://", "data:")):
            raise ValueError(
                f"an image URL must start with http://, https:// or data:, got {url!r}"
            )
        _check_detail(detail)
        self.url = url
        self.detail: Detail = detail

    def __str__(self) -> str:
        return self.url

    def __repr__(self) -> str:
        # A presigned image URL (?X-Amz-Signature=, ?sig=) is a credential for a while.
        return f"ImgUrl({redact_url(self.url)!r}, detail={self.detail!r})"

    def to_part(self) -> ImagePart:
        """The image as a message's content part."""
        return _part(self.url, self.detail)


class ImgPath:
    """A local image file, sent as a ``data:`` URL. The file must exist and be a PNG, JPEG,
    GIF or WebP image (by its bytes): otherwise ``FileNotFoundError`` / ``ValueError`` here,
    where the path is given."""

    __slots__ = ("detail", "path")

    path: Path

    def __init__(self, path: str | os.PathLike[str], detail: Detail = "auto") -> None:
        # pathlib on first use, not at import: `import llmplug` stays light.
        from pathlib import Path

        self.path = Path(path)
        _check_detail(detail)
        self.detail: Detail = detail
        if not self.path.is_file():
            what = "is not a file" if self.path.exists() else "does not exist"
            raise FileNotFoundError(f"image {str(path)!r} {what}")
        with self.path.open("rb") as f:
            self._mime(f.read(12))

    def __str__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"ImgPath({str(self.path)!r}, detail={self.detail!r})"

    def _mime(self, head: bytes) -> str:
        mime = image_mime_type(head)
        if mime is None:
            raise ValueError(
                f"image {str(self.path)!r} is not a PNG, JPEG, GIF or WebP file "
                f"(it starts with {head[:8]!r})"
            )
        return mime

    def get_mime_type(self) -> str:
        """The image's type as its first bytes say (``image/png``, ...)."""
        with self.path.open("rb") as f:
            return self._mime(f.read(12))

    def to_base64(self) -> str:
        """The file's bytes, base64-encoded."""
        return base64.b64encode(self.path.read_bytes()).decode("ascii")

    def to_data_url(self) -> str:
        """The file as it is now (it is read again: a file changed since is sent as it is)."""
        data = self.path.read_bytes()
        return f"data:{self._mime(data[:12])};base64,{base64.b64encode(data).decode('ascii')}"

    def to_part(self) -> ImagePart:
        """The file as a message's content part, as a ``data:`` URL."""
        return _part(self.to_data_url(), self.detail)


def _part(url: str, detail: str) -> ImagePart:
    # "auto" is every API's default: left out, the request is the same as SimpleLLMFunc's.
    return ImagePart(ImageURL(url=url, detail=None if detail == "auto" else detail))


MultimodalContent: TypeAlias = Text | ImgUrl | ImgPath
"""A parameter type of a decorated function whose value becomes a part of the user message."""
MultimodalList: TypeAlias = list[MultimodalContent]
"""Several texts and images as one parameter, in order."""

UserChatContent: TypeAlias = str | list[dict[str, Any]]


class UserChatMessage(msgspec.Struct, frozen=True):
    """A user message of text and images for ``@llm_chat``: ``content`` is a str or a list of
    OpenAI Chat parts (``{"type": "text", ...}``, ``{"type": "image_url", ...}``)."""

    content: UserChatContent
    role: Literal["user"] = "user"

    @classmethod
    def text(cls, text: str) -> UserChatMessage:
        """A user message of text only."""
        return cls(content=str(text))

    @classmethod
    def multimodal(
        cls, *parts: str | Text | ImgUrl | ImgPath | Mapping[str, Any]
    ) -> UserChatMessage:
        """Text and images in order; an ``ImgPath`` is read now."""
        return cls(content=[_dict_part(p) for p in parts])

    def to_message(self) -> dict[str, Any]:
        """The message as an OpenAI-style dict."""
        return {"role": self.role, "content": self.content}


def _dict_part(p: Any) -> dict[str, Any]:
    if isinstance(p, (str, Text)):
        return {"type": "text", "text": str(p)}
    if isinstance(p, (ImgUrl, ImgPath)):
        image = p.to_part().image_url
        url: dict[str, Any] = {"url": image.url}
        if image.detail is not None:
            url["detail"] = image.detail
        return {"type": "image_url", "image_url": url}
    if isinstance(p, Mapping) and (
        (p.get("type") == "text" and isinstance(p.get("text"), str))
        or (p.get("type") == "image_url" and isinstance(p.get("image_url"), Mapping))
    ):
        return dict(p)
    raise ValueError(
        "a UserChatMessage part must be a str, Text, ImgUrl, ImgPath or an OpenAI text or "
        f"image_url part, got {p!r}"
    )


def _parts_of(content: UserChatContent) -> list[ContentPart]:
    if isinstance(content, str):
        return [TextPart(content)]
    out: list[ContentPart] = []
    for p in content:
        d = _dict_part(p)
        if d["type"] == "text":
            out.append(TextPart(d["text"]))
        else:
            image = d["image_url"]
            out.append(ImagePart(ImageURL(url=str(image["url"]), detail=image.get("detail"))))
    return out


def _is_image(value: Any) -> bool:
    return isinstance(value, (ImgUrl, ImgPath))


def _has_images(value: Any) -> bool:
    if isinstance(value, (ImgUrl, ImgPath)):
        return True
    if isinstance(value, UserChatMessage):
        return not isinstance(value.content, str)
    return isinstance(value, (list, tuple)) and any(_is_image(v) for v in value)


def _value_parts(value: Any) -> list[ContentPart]:
    if isinstance(value, UserChatMessage):
        return _parts_of(value.content)
    if not isinstance(value, (list, tuple)):
        value = [value]
    return [v.to_part() if _is_image(v) else TextPart(str(v)) for v in value]


def image_arguments(
    bound: inspect.BoundArguments, skip: frozenset[str] = frozenset()
) -> frozenset[str]:
    """The names of the arguments that hold images (they are left out of the text)."""
    return frozenset(
        name for name, value in bound.arguments.items() if name not in skip and _has_images(value)
    )


def with_images(
    content: str | list[ContentPart], bound: inspect.BoundArguments, names: frozenset[str]
) -> str | list[ContentPart]:
    """The user message: ``content`` (the other arguments), then each image argument under its
    name, in the signature's order; just ``content`` when no argument holds images."""
    if not names:
        return content
    parts: list[ContentPart] = (
        list(content) if isinstance(content, list) else [TextPart(content)] if content else []
    )
    for name, value in bound.arguments.items():
        if name in names:
            parts.append(TextPart(f"{name}:"))
            parts.extend(_value_parts(value))
    return parts


def message_content(value: Any, extra: str) -> str | list[ContentPart]:
    """``@llm_chat``'s user message from its message argument (a str, a UserChatMessage, an
    OpenAI user message dict, images) and the other arguments' text."""
    if isinstance(value, Mapping) and value.get("role") == "user" and "content" in value:
        value = UserChatMessage(content=value["content"])
    if not _has_images(value) and not isinstance(value, UserChatMessage):
        text = render_value(value if not isinstance(value, Text) else value.content)
        return f"{text}\n\n{extra}" if extra else text
    parts = _value_parts(value)
    if extra:
        parts.append(TextPart(extra))
    if all(isinstance(p, TextPart) for p in parts):
        return "\n\n".join(p.text for p in parts if isinstance(p, TextPart))
    return parts


def tool_output(result: Any) -> tuple[str, list[ImagePart]] | None:
    """A tool result with images, as SimpleLLMFunc's tools return them: an ``ImgPath`` or
    ``ImgUrl``, a list of them, or ``(text, image)`` / ``(text, [images])``. None for any
    other result (it is sent as text)."""
    text = ""
    images: Any = result
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], (str, Text)):
        text, images = str(result[0]), result[1]
    if _is_image(images):
        images = [images]
    if not (isinstance(images, list) and images and all(_is_image(i) for i in images)):
        return None
    return text, [i.to_part() for i in images]
