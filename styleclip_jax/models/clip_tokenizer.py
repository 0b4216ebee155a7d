"""CLIP's byte-level BPE tokenizer, fed from a model folder's vocab.json + merges.txt (or tokenizer.json).

It reproduces ``transformers.CLIPTokenizer`` as that class runs without ``ftfy`` installed (its
``BasicTokenizer`` clean-up), step by step:

1. the special tokens (``<|startoftext|>``, ``<|endoftext|>``, the unknown token, added tokens) are cut out
   of the text first and map to their ids;
2. clean-up: control characters (Unicode category C*, except tab/newline/CR), NUL and U+FFFD are dropped,
   whitespace becomes a space, CJK ideographs get spaces around them, NFC normalisation, lower-casing,
   runs of whitespace collapse to one space;
3. pre-tokenisation by CLIP's pattern ``<|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|
   [^\\s\\p{L}\\p{N}]+`` (written out here with ``unicodedata`` categories, so no ``regex`` package is needed);
4. each piece's UTF-8 bytes are mapped to printable characters (GPT-2's byte table), ``</w>`` is appended
   to its last character and BPE merges are applied lowest rank first (merges.txt lines 1..48894, the
   slice the slow tokenizer keeps);
5. ids from the vocabulary (the unknown token's id for a missing piece), ``<|startoftext|>`` + ids[:L-2] +
   ``<|endoftext|>``, right-padded with the pad token to ``L`` (77) with an attention mask.

``CLIPTokenizerFast`` differs from the slow class (and from this one) on CJK ideographs and on format
characters such as the emoji zero-width joiner, which its normaliser keeps.
"""
from __future__ import annotations

import functools
import json
import pathlib
import re
import unicodedata
from typing import Sequence

import numpy as np

from ..errors import CLIPLoadError

__all__ = ["BPETokenizer", "bytes_to_unicode", "clean_text", "pretokenize"]

EOW = "</w>"
MAX_MERGES = 49152 - 256 - 2  # the slow tokenizer keeps merges.txt lines 1..48894
_CONTRACTIONS = ("'s", "'t", "'re", "'ve", "'m", "'ll", "'d")
_LITERALS = ("<|startoftext|>", "<|endoftext|>")
_DEFAULT_SPECIALS = {"unk_token": "<|endoftext|>", "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
                     "pad_token": "<|endoftext|>"}


@functools.lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from the 256 byte values to printable characters."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


_CJK = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
        (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))  # transformers' BasicTokenizer ranges


def _is_cjk(cp: int) -> bool:
    return any(lo <= cp <= hi for lo, hi in _CJK)


def clean_text(text: str) -> str:
    """Step 2 of the module docstring (transformers' BasicTokenizer(strip_accents=False, do_split_on_punc=False))."""
    out = []
    for ch in text:
        cp = ord(ch)
        if ch in " \t\n\r" or unicodedata.category(ch) == "Zs":
            out.append(" ")
        elif cp == 0 or cp == 0xFFFD or unicodedata.category(ch).startswith("C"):
            continue
        elif _is_cjk(cp):
            out.append(f" {ch} ")
        else:
            out.append(ch)
    return " ".join(t.lower() for t in unicodedata.normalize("NFC", "".join(out)).split())


def _cls(ch: str) -> str:
    """'L' letter, 'N' number, ' ' whitespace, 'P' anything else (the pattern's three classes)."""
    if ch.isspace():
        return " "
    c = unicodedata.category(ch)[0]
    return c if c in "LN" else "P"


def pretokenize(text: str) -> list[str]:
    """Step 3: ``regex.findall`` of CLIP's pattern (module docstring) on cleaned text."""
    out, i, n = [], 0, len(text)
    while i < n:
        ch = text[i]
        lit = next((s for s in _LITERALS if text.startswith(s, i)), None) if ch == "<" else None
        if lit is None and ch == "'":
            lit = next((s for s in _CONTRACTIONS if text.startswith(s, i)), None)
        if lit is not None:
            out.append(lit)
            i += len(lit)
            continue
        kind = _cls(ch)
        j = i + 1
        if kind == " ":
            i = j
            continue
        if kind == "L":
            while j < n and _cls(text[j]) == "L":
                j += 1
        elif kind == "P":
            while j < n and _cls(text[j]) == "P":
                j += 1
        out.append(text[i:j])
        i = j
    return out


def _special(value, default: str) -> str:
    if value is None:
        return default
    return value["content"] if isinstance(value, dict) else str(value)


class BPETokenizer:
    """CLIP BPE tokenizer with the subset of the Hugging Face tokenizer interface this package uses:
    ``tok(texts, padding="max_length", truncation=True, max_length=77, return_tensors="np")``,
    ``tok(text, add_special_tokens=False)["input_ids"]``, ``len(tok)``, ``get_vocab()``, ``*_token_id``."""

    def __init__(self, vocab: dict[str, int], merges: Sequence[tuple[str, str]], *, unk_token: str = "<|endoftext|>",
                 bos_token: str = "<|startoftext|>", eos_token: str = "<|endoftext|>", pad_token: str = "<|endoftext|>",
                 model_max_length: int = 77, added_tokens: dict[str, int] | None = None):
        self.encoder = dict(vocab)
        self.ranks = {tuple(m): i for i, m in enumerate(merges)}
        self.added = dict(added_tokens or {})
        self.unk_token, self.bos_token, self.eos_token, self.pad_token = unk_token, bos_token, eos_token, pad_token
        for tok in (unk_token, bos_token, eos_token, pad_token):  # as HF: a special token not in the vocab is added
            if tok not in self.encoder and tok not in self.added:
                self.added[tok] = len(self.encoder) + len(self.added)
        self.model_max_length = int(model_max_length)
        specials = sorted({*self.added, unk_token, bos_token, eos_token, pad_token}, key=len, reverse=True)
        self._split = re.compile("(" + "|".join(map(re.escape, specials)) + ")")
        self._byte = bytes_to_unicode()
        self._cache = {s: s for s in _LITERALS}

    # construction ---------------------------------------------------------------------------------
    @classmethod
    def from_folder(cls, folder) -> "BPETokenizer":
        """vocab.json + merges.txt (else tokenizer.json), special tokens and model_max_length from
        tokenizer_config.json / special_tokens_map.json when present. Raises CLIPLoadError naming the file."""
        folder = pathlib.Path(folder)
        conf = {}
        for name in ("tokenizer_config.json", "special_tokens_map.json"):  # the map overrides, as in transformers
            if (folder / name).is_file():
                conf.update(_read_json(folder / name))
        specials = {k: _special(conf.get(k), d) for k, d in _DEFAULT_SPECIALS.items()}
        added = {}
        for k, v in (conf.get("added_tokens_decoder") or {}).items():
            added[_special(v, "")] = int(k)
        max_len = conf.get("model_max_length", 77)
        max_len = 77 if not isinstance(max_len, int) or max_len > 10**6 else max_len
        if (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
            vocab = _read_json(folder / "vocab.json")
            lines = (folder / "merges.txt").read_text(encoding="utf-8").strip().split("\n")[1:MAX_MERGES + 1]
            merges = [tuple(line.split()) for line in lines]
            source = folder / "merges.txt"
        elif (folder / "tokenizer.json").is_file():
            vocab, merges = _from_tokenizer_json(folder / "tokenizer.json")
            source = folder / "tokenizer.json"
        else:
            raise CLIPLoadError(f"{folder}: no CLIP tokenizer files (vocab.json + merges.txt, or tokenizer.json)")
        bad = [m for m in merges if len(m) != 2]
        if bad:
            raise CLIPLoadError(f"{source}: merge rules must be two symbols each, got {' '.join(bad[0])!r}")
        added = {t: i for t, i in added.items() if t and t not in vocab}
        return cls(vocab, merges, model_max_length=max_len, added_tokens=added, **specials)

    # vocabulary -----------------------------------------------------------------------------------
    def get_vocab(self) -> dict[str, int]:
        return {**self.encoder, **self.added}

    def __len__(self) -> int:
        return len(self.encoder) + len(self.added)

    def _id(self, token: str) -> int | None:
        return self.added.get(token, self.encoder.get(token))

    def convert_tokens_to_ids(self, token: str) -> int:
        i = self._id(token)
        return self._id(self.unk_token) if i is None else i

    unk_token_id = property(lambda self: self.convert_tokens_to_ids(self.unk_token))
    bos_token_id = property(lambda self: self.convert_tokens_to_ids(self.bos_token))
    eos_token_id = property(lambda self: self.convert_tokens_to_ids(self.eos_token))
    pad_token_id = property(lambda self: self.convert_tokens_to_ids(self.pad_token))

    # encoding -------------------------------------------------------------------------------------
    def bpe(self, piece: str) -> list[str]:
        """BPE of one byte-encoded piece -> symbols (the last one ends with ``</w>``)."""
        if piece in self._cache:
            return self._cache[piece].split(" ")
        word = list(piece[:-1]) + [piece[-1] + EOW]
        inf = float("inf")
        while len(word) > 1:
            best = min(zip(word, word[1:]), key=lambda pair: self.ranks.get(pair, inf))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and word[i] == best[0] and word[i + 1] == best[1]:
                    merged.append(best[0] + best[1])
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        if len(self._cache) < 100_000:
            self._cache[piece] = " ".join(word)
        return word

    def tokenize(self, text: str) -> list[str]:
        """Text -> BPE symbols (special tokens kept whole)."""
        out = []
        for k, chunk in enumerate(self._split.split(text)):
            if k % 2:
                out.append(chunk)
                continue
            for piece in pretokenize(clean_text(chunk)):
                out.extend(self.bpe("".join(self._byte[b] for b in piece.encode("utf-8"))))
        return out

    def content_ids(self, text: str) -> list[int]:
        """Token ids of ``text`` without start/end tokens (unknown pieces -> ``unk_token_id``)."""
        return [self.convert_tokens_to_ids(t) for t in self.tokenize(text)]

    def __call__(self, text, add_special_tokens: bool = True, padding=False, truncation=False,
                 max_length: int | None = None, return_tensors: str | None = None) -> dict:
        """transformers-style encoding: a string -> {"input_ids": [...], "attention_mask": [...]}, a list of
        strings -> lists of those; ``return_tensors="np"`` -> int64 arrays (padding needed for a batch)."""
        single = isinstance(text, str)
        texts = [text] if single else list(text)
        if (padding == "max_length" or truncation) and max_length is None:
            max_length = self.model_max_length
        n_special = 2 if add_special_tokens else 0
        rows = []
        for t in texts:
            ids = self.content_ids(t)
            if truncation and max_length is not None:
                ids = ids[: max(max_length - n_special, 0)]
            rows.append([self.bos_token_id, *ids, self.eos_token_id] if add_special_tokens else ids)
        masks = [[1] * len(r) for r in rows]
        if padding:
            width = max_length if padding == "max_length" else max(map(len, rows))
            masks = [m + [0] * (width - len(r)) for r, m in zip(rows, masks)]
            rows = [r + [self.pad_token_id] * (width - len(r)) for r in rows]
        if return_tensors == "np":
            rows, masks = np.asarray(rows, np.int64), np.asarray(masks, np.int64)
        elif return_tensors is not None:
            raise ValueError(f"return_tensors must be None or 'np', got {return_tensors!r}")
        if single:
            rows, masks = rows[0], masks[0]
        return {"input_ids": rows, "attention_mask": masks}

    def __repr__(self):
        return f"BPETokenizer(vocab={len(self)}, merges={len(self.ranks)}, max_length={self.model_max_length})"


def _read_json(path: pathlib.Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CLIPLoadError(f"{path}: not a readable JSON file ({type(e).__name__}: {e})") from None


def _from_tokenizer_json(path: pathlib.Path):
    model = _read_json(path).get("model") or {}
    if model.get("type") != "BPE" or model.get("end_of_word_suffix") != EOW or model.get("ignore_merges"):
        raise CLIPLoadError(f"{path}: expected a CLIP byte-level BPE model (type BPE, end_of_word_suffix '{EOW}', "
                            f"merges applied); got type={model.get('type')!r}, end_of_word_suffix="
                            f"{model.get('end_of_word_suffix')!r}, ignore_merges={model.get('ignore_merges')!r}. "
                            "Put vocab.json + merges.txt next to it")
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model.get("merges", [])]
    return dict(model.get("vocab") or {}), merges
