"""A tiny llama-architecture GGUF for llama.cpp's ``llama-server``: real inference in milliseconds.

The weights are random where randomness is harmless (which byte comes next) and set by hand where
the tests need a protocol fact to happen reliably:

- A tool call happens when the prompt offers tools and holds no tool result yet, so one model
  serves plain calls, a forced-free tool call, and a tool loop that must end in text. Attention has
  zero queries and keys, so every head averages the prompt uniformly; the values carry two flags,
  "a ``<tools>`` token was seen" and "a ``<tool_response>`` token was seen", and the output layer
  turns them into a large positive or negative logit for the ``<tool_call>`` token. (The Qwen 2.5
  chat template, which the server is given, writes ``<tools>`` twice into the system prompt when
  tools are offered, and ``<tool_response>`` around each tool result.) Two more flags, "the last
  token was ``<tool_call>``" and "... was ``</tool_call>``", make a newline and the end of the turn
  follow them, which is what the server's grammar needs to see one call, complete and alone.
- The end-of-turn token is never the first token after the prompt (whose last token is a newline),
  so a plain answer is never empty; afterwards it comes with a probability of about 1 in 10.
- Printable ASCII is favoured, but other bytes stay possible, so now and then (a few streams in
  a hundred) a stream starts with an incomplete UTF-8 character: the quirks that follow from that
  are part of what the tests meet. A lone byte comes back as U+FFFD, so text is still not empty.

The tokenizer is SentencePiece-style ("llama") with byte fallback and "add space prefix" off (with
it on, every request with tools fails with 400 "Failed to initialize samplers"). The chat and
tool-call markers are tokens of their own.

Run as a script to write one: ``python tests/integration/llama_model.py out.gguf``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import gguf
import numpy as np

N_EMBD = 64
N_HEAD = 2
N_FF = 64
N_CTX = 8192
# Residual dimensions with a meaning; the rest carry random "text" features.
BIAS, TOOLS, RESPONSE, NEWLINE, CALL_OPEN, CALL_CLOSE = range(6)
TEXT = slice(6, N_EMBD)

SPECIALS: list[tuple[str, int]] = [
    ("<unk>", gguf.TokenType.UNKNOWN),
    ("<s>", gguf.TokenType.CONTROL),
    ("</s>", gguf.TokenType.CONTROL),
    ("<|im_start|>", gguf.TokenType.CONTROL),
    ("<|im_end|>", gguf.TokenType.CONTROL),
    # User-defined, as in Qwen's own vocabulary: matched in any text and detokenized as text, so
    # the server's tool-call parser sees the markers the model writes.
    ("<tool_call>", gguf.TokenType.USER_DEFINED),
    ("</tool_call>", gguf.TokenType.USER_DEFINED),
    ("<tools>", gguf.TokenType.USER_DEFINED),
    ("<tool_response>", gguf.TokenType.USER_DEFINED),
]
EOS = "<|im_end|>"


def _vocab() -> tuple[list[str], list[int]]:
    tokens = [text for text, _ in SPECIALS]
    types = [int(kind) for _, kind in SPECIALS]
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [int(gguf.TokenType.BYTE)] * 256
    tokens.append("\u2581")  # SentencePiece's space: one token instead of three bytes
    types.append(int(gguf.TokenType.NORMAL))
    return tokens, types


def write_model(path: str | Path, seed: int = 0) -> Path:
    """Write the model to ``path`` (a few hundred kilobytes) and return the path."""
    path = Path(path)
    rng = np.random.default_rng(seed)
    tokens, types = _vocab()
    ids = {text: i for i, text in enumerate(tokens)}
    n_vocab = len(tokens)

    embd = np.zeros((n_vocab, N_EMBD), np.float32)
    embd[:, BIAS] = 1.0
    first_byte = len(SPECIALS)
    embd[first_byte:, TEXT] = rng.normal(0.0, 1.0, (n_vocab - first_byte, N_EMBD - 6))
    embd[ids["<tools>"], TOOLS] = 1.0
    embd[ids["<tool_response>"], RESPONSE] = 1.0
    embd[ids["<0x0A>"], NEWLINE] = 1.0
    embd[ids["<tool_call>"], CALL_OPEN] = 1.0
    embd[ids["</tool_call>"], CALL_CLOSE] = 1.0

    # Values and output projection copy the two flags; queries and keys are zero, so attention
    # is a uniform average over the prompt and the flags arrive scaled by 1/length.
    wv = np.zeros((N_EMBD, N_EMBD), np.float32)
    wo = np.zeros((N_EMBD, N_EMBD), np.float32)
    for dim in (TOOLS, RESPONSE):
        wv[dim, dim] = wo[dim, dim] = 1.0
    zeros = np.zeros((N_EMBD, N_EMBD), np.float32)

    out = np.zeros((n_vocab, N_EMBD), np.float32)
    out[:, BIAS] = -40.0  # control tokens are never written
    printable = [first_byte + b for b in range(0x20, 0x7F)] + [ids["\u2581"]]
    out[first_byte : first_byte + 256, BIAS] = 0.0
    out[printable, BIAS] = 3.0
    # Inside a tool call the server's grammar allows runs of whitespace between JSON tokens and
    # strings and numbers of any length: keep whitespace rare and closing quotes and braces
    # likely, so a call is done in a few dozen tokens.
    out[[first_byte + ord(c) for c in " \t\n"] + [ids["\u2581"]], BIAS] = -4.0
    out[[first_byte + ord(c) for c in '"}]'], BIAS] = 6.0
    out[first_byte:, TEXT] = rng.normal(0.0, 0.15, (n_vocab - first_byte, N_EMBD - 6))
    out[ids[EOS], BIAS] = 6.0
    out[ids[EOS], NEWLINE] = -40.0
    # A normalised flag is ~5.7 per token; two <tools> in a prompt of up to N_CTX tokens give at
    # least ~0.0014, times 40,000 outweighs the -20 base. One <tool_response> cancels it thrice.
    call = ids["<tool_call>"]
    out[call, BIAS] = -20.0
    out[call, TOOLS] = 40_000.0
    out[call, RESPONSE] = -120_000.0
    # The server's grammar lets "<tool_call>" stay content unless a newline follows it, and
    # lets any number of calls follow one another: so a newline after the opening marker, the
    # closing marker as soon as the grammar allows it, and the end of the turn after it.
    out[:, CALL_OPEN] = -1e6
    out[ids["<0x0A>"], CALL_OPEN] = 100.0
    close = ids["</tool_call>"]
    out[close, BIAS] = -20.0
    out[close, TOOLS] = 20_000.0
    out[close, RESPONSE] = -120_000.0
    out[:, CALL_CLOSE] = -1e6
    out[ids[EOS], CALL_CLOSE] = 100.0

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("llmplug-tiny")
    writer.add_context_length(N_CTX)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(1)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD)
    writer.add_rope_dimension_count(N_EMBD // N_HEAD)
    writer.add_rope_freq_base(10_000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores([0.0] * n_vocab)
    writer.add_token_types(types)
    writer.add_unk_token_id(ids["<unk>"])
    writer.add_bos_token_id(ids["<s>"])
    writer.add_eos_token_id(ids[EOS])
    writer.add_add_bos_token(False)
    writer.add_add_space_prefix(False)

    ones = np.ones(N_EMBD, np.float32)
    writer.add_tensor("token_embd.weight", embd)
    writer.add_tensor("output_norm.weight", ones)
    writer.add_tensor("output.weight", out)
    writer.add_tensor("blk.0.attn_norm.weight", ones)
    writer.add_tensor("blk.0.attn_q.weight", zeros)
    writer.add_tensor("blk.0.attn_k.weight", zeros)
    writer.add_tensor("blk.0.attn_v.weight", wv)
    writer.add_tensor("blk.0.attn_output.weight", wo)
    writer.add_tensor("blk.0.ffn_norm.weight", ones)
    writer.add_tensor("blk.0.ffn_gate.weight", np.zeros((N_FF, N_EMBD), np.float32))
    writer.add_tensor("blk.0.ffn_up.weight", np.zeros((N_FF, N_EMBD), np.float32))
    writer.add_tensor("blk.0.ffn_down.weight", np.zeros((N_EMBD, N_FF), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


if __name__ == "__main__":
    print(write_model(sys.argv[1] if len(sys.argv) > 1 else "tiny.gguf"))
