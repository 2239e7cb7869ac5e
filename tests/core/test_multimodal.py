"""Images over real HTTP: SimpleLLMFunc's Text, ImgUrl, ImgPath and UserChatMessage as inputs,
and tools that return images, on both wires."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from llmplug import (
    ImgPath,
    ImgUrl,
    LLMInterface,
    OpenAICompatible,
    OpenAIResponsesCompatible,
    Text,
    ToolResultEvent,
    UserChatMessage,
    llm_chat,
    llm_function,
    tool,
)
from llmplug.testing import LLMTestServer, RecordedRequest, Reply, ToolCallReply

from ._images import GIF, JPEG, PNG, WEBP, data_url, write

MakeLLM = Callable[..., LLMInterface]
WIRES = [OpenAICompatible, OpenAIResponsesCompatible]
CAT = "https://example.com/cat.jpg"


def user_content(req: RecordedRequest) -> list[dict[str, Any]]:
    """The last user message's parts, whatever the wire."""
    items = req.json.get("messages") or req.json["input"]
    content = [m for m in items if m.get("role") == "user"][-1]["content"]
    assert isinstance(content, list)
    return content


def texts(parts: list[dict[str, Any]]) -> list[str]:
    return [p["text"] for p in parts if p["type"] in ("text", "input_text")]


@pytest.mark.parametrize(
    ("data", "mime"),
    [(PNG, "image/png"), (JPEG, "image/jpeg"), (GIF, "image/gif"), (WEBP, "image/webp")],
)
async def test_a_local_image_goes_as_a_data_url_typed_by_its_bytes(
    server: LLMTestServer, make_llm: MakeLLM, tmp_path: Path, data: bytes, mime: str
) -> None:
    @llm_function(llm_interface=make_llm())
    async def describe(picture: ImgPath) -> str:
        """Describe the picture."""

    # The name says nothing true: the bytes decide.
    await describe(ImgPath(write(tmp_path, "picture.dat", data)))
    assert server.requests[0].images == [(data_url(mime, data), None)]


def test_a_missing_file_a_directory_or_a_non_image_is_refused_where_given(
    tmp_path: Path,
) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.png' does not exist"):
        ImgPath(tmp_path / "nope.png")
    with pytest.raises(FileNotFoundError, match="is not a file"):
        ImgPath(tmp_path)
    bmp = write(tmp_path, "old.bmp", b"BM\x1e\x00\x00\x00\x00\x00\x00\x00")
    with pytest.raises(ValueError, match=r"old\.bmp' is not a PNG, JPEG, GIF or WebP file"):
        ImgPath(bmp)
    with pytest.raises(ValueError, match="detail must be"):
        ImgPath(write(tmp_path, "a.png", PNG), detail="medium")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must start with http"):
        ImgUrl("ftp://example.com/cat.jpg")


async def test_a_file_that_stopped_being_an_image_fails_before_any_request(
    server: LLMTestServer, make_llm: MakeLLM, tmp_path: Path
) -> None:
    @llm_function(llm_interface=make_llm())
    async def describe(picture: ImgPath) -> str:
        """Describe the picture."""

    path = write(tmp_path, "a.png", PNG)
    picture = ImgPath(path)
    path.write_text("not an image any more")
    with pytest.raises(ValueError, match="is not a PNG"):
        await describe(picture)
    assert server.requests == []


@pytest.mark.parametrize("wire", WIRES)
async def test_image_parameters_become_image_parts_under_their_names(
    server: LLMTestServer, make_llm: MakeLLM, wire: type[LLMInterface], tmp_path: Path
) -> None:
    @llm_function(llm_interface=make_llm(interface=wire))
    async def compare(
        description: Text,
        web_image: ImgUrl,
        local_image: ImgPath,
        more: list[ImgUrl | ImgPath],
        count: int = 2,
    ) -> str:
        """Compare the images."""

    server.push(Reply(text="They differ."))
    local = write(tmp_path, "ref.png", PNG)
    result = await compare(
        description=Text("Describe the differences"),
        web_image=ImgUrl(CAT),
        local_image=ImgPath(local, detail="high"),
        more=[ImgUrl(CAT, detail="low"), ImgPath(local)],
    )
    assert result == "They differ."
    req = server.requests[0]
    png = data_url("image/png", PNG)
    assert req.images == [(CAT, None), (png, "high"), (CAT, "low"), (png, None)]
    parts = user_content(req)
    # The other arguments as text first, then each image argument under its name.
    assert texts(parts) == [
        "description: Describe the differences\ncount: 2",
        "web_image:",
        "local_image:",
        "more:",
    ]
    assert str(local) not in str(req.json)


async def test_without_images_the_user_message_stays_text(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    @llm_function(llm_interface=make_llm())
    async def echo(note: Text, links: list[str]) -> str:
        """Repeat."""

    await echo(Text("hello"), ["a", "b"])
    user = server.requests[0].json["messages"][1]
    assert user == {"role": "user", "content": 'note: hello\nlinks: ["a","b"]'}


@pytest.mark.parametrize("wire", WIRES)
async def test_user_chat_message_carries_text_and_images(
    server: LLMTestServer, make_llm: MakeLLM, wire: type[LLMInterface], tmp_path: Path
) -> None:
    @llm_chat(llm_interface=make_llm(interface=wire))
    async def vision_agent(message: UserChatMessage, history: Any = None) -> None:
        """Answer questions about the user's message."""

    local = write(tmp_path, "dog.jpg", JPEG)
    message = UserChatMessage.multimodal(
        "What is in these images?", ImgUrl(CAT, detail="high"), ImgPath(local)
    )
    pairs = [pair async for pair in vision_agent(message, history=[])]
    req = server.requests[0]
    assert req.images == [(CAT, "high"), (data_url("image/jpeg", JPEG), None)]
    assert texts(user_content(req)) == ["What is in these images?"]
    # The history given back keeps the images, so the next turn still has them.
    history = pairs[-1][1]
    assert history[-2]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": CAT, "detail": "high"},
    }


async def test_text_only_chat_messages_stay_strings(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    @llm_chat(llm_interface=make_llm())
    async def agent(message: UserChatMessage) -> None:
        """Be brief."""

    [_ async for _ in agent(UserChatMessage.text("hi"))]
    [_ async for _ in agent({"role": "user", "content": "hello"})]
    assert [r.json["messages"][-1]["content"] for r in server.requests] == ["hi", "hello"]


# -- tools that return images -------------------------------------------------------------------


@pytest.mark.parametrize("wire", WIRES)
async def test_a_tool_returning_images_shows_them_to_the_model(
    server: LLMTestServer, make_llm: MakeLLM, wire: type[LLMInterface], tmp_path: Path
) -> None:
    chart = write(tmp_path, "chart.png", PNG)

    @tool(name="generate_chart", description="Generate a chart from data")
    async def generate_chart(data: str) -> tuple[str, list[ImgPath | ImgUrl]]:
        """Args:
        data: CSV data
        """
        return "bar chart of the data", [ImgPath(chart), ImgUrl(CAT, detail="low")]

    @llm_chat(llm_interface=make_llm(interface=wire), toolkit=[generate_chart])
    async def agent(message: str, history: Any = None) -> None:
        """Analyst."""

    server.push(
        Reply(tool_calls=[ToolCallReply(name="generate_chart", arguments={"data": "a,1"})]),
        Reply(text="The chart shows one bar."),
    )
    events = [e async for e in agent.events("chart this")]
    (result,) = [e.result for e in events if isinstance(e, ToolResultEvent)]
    assert result.content == "bar chart of the data" and not result.is_error
    png = data_url("image/png", PNG)
    second = server.requests[1]
    assert second.images == [(png, None), (CAT, "low")]
    if wire is OpenAIResponsesCompatible:
        output = second.json["input"][-1]
        assert output["type"] == "function_call_output"
        assert [p["type"] for p in output["output"]] == ["input_text", "input_image", "input_image"]
    else:
        sent = second.json["messages"]
        assert [m["role"] for m in sent[-3:]] == ["assistant", "tool", "user"]
        assert sent[-2]["content"].startswith("bar chart of the data")
        assert texts(sent[-1]["content"]) == ["The image(s) returned by generate_chart (call_0):"]


@pytest.mark.parametrize("wire", WIRES)
async def test_a_tool_returning_one_image_path(
    server: LLMTestServer, make_llm: MakeLLM, wire: type[LLMInterface], tmp_path: Path
) -> None:
    chart = write(tmp_path, "chart.gif", GIF)

    @tool(name="draw", description="Draw")
    def draw() -> ImgPath:
        return ImgPath(chart)

    @llm_function(llm_interface=make_llm(interface=wire), toolkit=[draw])
    async def illustrate(topic: str) -> str:
        """Draw, then describe the drawing."""

    server.push(Reply(tool_calls=[ToolCallReply(name="draw")]), Reply(text="A dot."))
    assert await illustrate("a dot") == "A dot."
    assert server.requests[1].images == [(data_url("image/gif", GIF), None)]


async def test_a_tool_returning_a_missing_image_is_a_tool_error(
    server: LLMTestServer, make_llm: MakeLLM, tmp_path: Path
) -> None:
    @tool
    async def snapshot() -> ImgPath:
        """Take a snapshot."""
        return ImgPath(tmp_path / "never-written.png")

    @llm_chat(llm_interface=make_llm(), toolkit=[snapshot])
    async def agent(message: str) -> None:
        """Camera."""

    server.push(Reply(tool_calls=[ToolCallReply(name="snapshot")]), Reply(text="No picture."))
    events = [e async for e in agent.events("snap")]
    (result,) = [e.result for e in events if isinstance(e, ToolResultEvent)]
    assert result.is_error and "FileNotFoundError" in result.content
    assert server.requests[1].images == []


async def test_an_image_counts_as_an_image_not_as_its_bytes(
    server: LLMTestServer, make_llm: MakeLLM, tmp_path: Path
) -> None:
    # 2 MB as a data URL would be ~700k tokens by its bytes; a model counts ~1k.
    photo = write(tmp_path, "photo.png", PNG + bytes(2_000_000))
    llm = make_llm(tokens_per_minute=20_000, context_window=16_000)

    @llm_chat(llm_interface=llm)
    async def agent(message: UserChatMessage, history: Any = None) -> None:
        """Describe photos."""

    usage = {"prompt_tokens": 1_100, "completion_tokens": 3, "total_tokens": 1_103}
    server.default = Reply(text="A photo.", usage=usage)
    history: list[dict[str, Any]] = []
    for question in ("What is this?", "And this one?"):
        message = UserChatMessage.multimodal(question, ImgPath(photo))
        async with asyncio.timeout(10):
            history = [pair async for pair in agent(message, history)][-1][1]
    # Within the token budget and the context window: sent at once, nothing compacted.
    assert len(server.requests) == 2
    assert len(server.requests[1].images) == 2
    assert llm.get_rate_limit_status()["tokens_per_minute"]["available"] > 15_000
