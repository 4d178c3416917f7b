"""Small synthetic tokenizers in the file layouts of CLIP and T5, for running trainers offline.

Every id stays far below the real vocabulary sizes (CLIP-L 49408, T5 32128, umT5 256384), so the
synthetic text encoders of any size take them. The T5 tokenizer needs ``tokenizers`` and
``transformers``; the CLIP one is plain files.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

__all__ = ["QWEN_TEMPLATE", "write_clip_tokenizer", "write_qwen2_tokenizer",
           "write_t5_tokenizer"]

_SPECIAL_CLIP = ("<|startoftext|>", "<|endoftext|>")


def _bytes_to_unicode() -> dict[int, str]:
    # GPT-2 / CLIP byte-to-unicode table (transformers' models/clip/tokenization_clip.py).
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs), strict=True))


def write_clip_tokenizer(folder: Path) -> Path:
    """A byte-level BPE in CLIP's file layout: every byte alone and word-final (``</w>``),
    a few merges, and the two special tokens; ids stay far below CLIP-L's 49408."""
    folder.mkdir(parents=True, exist_ok=True)
    chars = list(_bytes_to_unicode().values())
    vocab_list = chars + [c + "</w>" for c in chars]
    merges = [("t", "h"), ("th", "e</w>"), ("a", "n"), ("an", "d</w>"), ("o", "f</w>")]
    vocab_list += ["".join(m) for m in merges]
    vocab_list += list(_SPECIAL_CLIP)
    vocab = {tok: i for i, tok in enumerate(vocab_list)}
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    merges_txt = "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges)
    (folder / "merges.txt").write_text(merges_txt, encoding="utf-8")
    special = {
        "bos_token": _SPECIAL_CLIP[0],
        "eos_token": _SPECIAL_CLIP[1],
        "unk_token": _SPECIAL_CLIP[1],
        "pad_token": _SPECIAL_CLIP[1],
    }
    (folder / "special_tokens_map.json").write_text(json.dumps(special), encoding="utf-8")
    config = {
        **special,
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": 77,
        "do_lower_case": True,
        "errors": "replace",
        "add_prefix_space": False,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


def write_t5_tokenizer(folder: Path, *, extra_pieces: tuple[str, ...] = (),
                       extra_ids: int = 100) -> Path:
    """A tiny Unigram tokenizer in T5's layout (``<pad>`` 0, ``</s>`` 1, ``<unk>`` 2, ``</s>``
    appended), built with ``tokenizers`` and saved through transformers' ``T5TokenizerFast``
    so that ``T5TokenizerFast.from_pretrained`` loads it. ``extra_pieces`` follow the built-in
    ones (letters, digits, punctuation, a few words); ``extra_ids`` sentinel tokens
    (``<extra_id_N>``, T5's 100) end the vocabulary. Needs tokenizers + transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import T5TokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    pieces = ["▁"] + [chr(c) for c in range(ord("a"), ord("z") + 1)]
    pieces += [chr(c) for c in range(ord("A"), ord("Z") + 1)]
    pieces += [*list("0123456789.,;:!?'\"-()"), "▁the", "▁a", "▁of", "▁photo", *extra_pieces]
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    vocab += [(p, -1.0 - 0.01 * i) for i, p in enumerate(pieces)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=2, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)]
    )
    raw = folder / "_tokenizer.json"
    tok.save(str(raw))
    fast = T5TokenizerFast(
        tokenizer_file=str(raw),
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        extra_ids=extra_ids,
        model_max_length=512,
    )
    fast.save_pretrained(str(folder))
    raw.unlink()
    return folder


#: The prompt template Qwen-Image's text encoding wraps a caption in (musubi-tuner
#: qwen_image/qwen_image_utils.py:339), whose first 34 tokens it drops (line 340).
QWEN_TEMPLATE = ("<|im_start|>system\nDescribe the image by detailing the color, shape, size, "
                 "texture, quantity, text, spatial relationships of the objects and background:"
                 "<|im_end|>\n<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n")
_SPECIAL_QWEN = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
#: Qwen2's pre-tokenizer (transformers' tokenization_qwen2.py) on ASCII text: letters and
#: digits read as ``\p{L}`` and ``\p{N}`` there.
_QWEN_SPLIT = (r"'s|'t|'re|'ve|'m|'ll|'d|[^\r\nA-Za-z0-9]?[A-Za-z]+|[0-9]"
               r"| ?[^\sA-Za-z0-9]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
#: Words besides the template's that become one token each (the example captions' words).
QWEN_WORDS = ("ohwx woman, a photo of glasses, hat, red, night, mountain, library, books, winter, "
              "window, train, trail, studio, street, station, reading, rain, portrait, painting, "
              "neon, evening, daylight, coffee, bench, sunset, snow, smiling, scarf, kitchen")


def _bpe_merges(words: dict[tuple[str, ...], int]) -> list[tuple[str, str]]:
    """Byte-pair merges learnt on ``words`` (symbol tuples with counts) until every word is one
    symbol: the most frequent adjacent pair first (ties: the smallest pair)."""
    merges = []
    words = dict(words)
    while True:
        counts: dict[tuple[str, str], int] = {}
        for word, n in words.items():
            for pair in itertools.pairwise(word):
                counts[pair] = counts.get(pair, 0) + n
        if not counts:
            return merges
        best = min(counts, key=lambda pair: (-counts[pair], pair))
        merges.append(best)
        merged = {}
        for word, n in words.items():
            out: list[str] = []
            i = 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] = merged.get(tuple(out), 0) + n
        words = merged


def write_qwen2_tokenizer(folder: Path, text: str = QWEN_WORDS) -> Path:
    """A byte-level BPE in Qwen2's file layout (``vocab.json``, ``merges.txt``,
    ``tokenizer_config.json`` with ``<|endoftext|>``, ``<|im_start|>`` and ``<|im_end|>`` as
    added tokens) that ``Qwen2Tokenizer.from_pretrained`` loads. Every byte is a token, and every
    word of :data:`QWEN_TEMPLATE` and ``text`` is one token, as in the real vocabulary: the
    template's prefix is 34 tokens, as musubi assumes. Ids stay below 1024 (the real vocabulary
    has 151,643 and the added tokens)."""
    import re

    folder.mkdir(parents=True, exist_ok=True)
    table = _bytes_to_unicode()
    corpus = QWEN_TEMPLATE.format(text)
    for special in _SPECIAL_QWEN:
        corpus = corpus.replace(special, "\n")
    words: dict[tuple[str, ...], int] = {}
    for piece in re.findall(_QWEN_SPLIT, corpus):
        word = tuple(table[b] for b in piece.encode("utf-8"))
        words[word] = words.get(word, 0) + 1
    merges = _bpe_merges(words)
    vocab_list = list(table.values()) + ["".join(m) for m in merges]
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(vocab_list))}
    if len(vocab) + len(_SPECIAL_QWEN) > 1024:
        raise ValueError(f"the synthetic Qwen2 vocabulary has {len(vocab)} tokens (max 1021)")
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    merges_txt = "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges)
    (folder / "merges.txt").write_text(merges_txt, encoding="utf-8")
    added = {str(len(vocab) + i): {"content": tok, "lstrip": False, "normalized": False,
                                   "rstrip": False, "single_word": False, "special": True}
             for i, tok in enumerate(_SPECIAL_QWEN)}
    config = {"added_tokens_decoder": added, "additional_special_tokens": list(_SPECIAL_QWEN[1:]),
              "bos_token": None, "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
              "unk_token": None, "errors": "replace", "model_max_length": 131072,
              "clean_up_tokenization_spaces": False, "split_special_tokens": False,
              "tokenizer_class": "Qwen2Tokenizer"}
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
    return folder
