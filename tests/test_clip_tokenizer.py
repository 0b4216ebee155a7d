"""styleclip_jax.models.clip_tokenizer against transformers' CLIPTokenizer and CLIPTokenizerFast.

The vocabulary is a real byte-level BPE trained here (a plain most-frequent-pair trainer, written
independently of the package) on a corpus of the 79 ImageNet templates x test prompts, with CLIP's layout:
256 byte symbols, the same with ``</w>``, the merges, then ``<|startoftext|>`` and ``<|endoftext|>``. No
OpenAI/HF vocabulary is shipped; when the local Hugging Face cache holds openai/clip-vit-base-patch32,
its real files are compared too.
"""
import collections
import json
import shutil

import numpy as np
import pytest

from styleclip_jax.models import clip as C
from styleclip_jax.models import clip_tokenizer as T

transformers = pytest.importorskip("transformers")

LONG = ("a very long prompt about a person with curly red hair, green eyes, freckles, a wide smile, round glasses, "
        "a striped scarf and a woollen hat, standing in front of a brick wall on a rainy evening in 1999, painted "
        "in oil with thick brush strokes and warm colours, highly detailed, dramatic light, 4k, trending")
PROMPTS = [
    "a person's face", "don't", "a person's face, don't you think?", "I'M SHOUTING, they'RE here", "it's 42 or 7.5%",
    "a face with 3 eyes & 12 teeth!!!", "punctuation... (really) -- yes: no; \"quoted\" 'single'",
    "Café crème, naïve résumé — Ångström", "cafe\u0301 (combining accent)", "an emoji 🙂 face 🔥🔥", "😀",
    "  many    spaces\tand\nnewlines  ", "", "x", LONG, LONG + " " + LONG,
]
SLOW_ONLY = ["a 👩\u200d💻 coder", "中文字 and kana カタカナ", "zero\u200bwidth", "ctrl\x07char"]  # fast keeps Cf/CJK runs


def _train_bpe(texts, num_merges=400):
    import regex
    from transformers.models.clip.tokenization_clip import bytes_to_unicode

    byte_enc = bytes_to_unicode()
    pat = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""")
    words = collections.Counter()
    for t in texts:
        for w in pat.findall(" ".join(t.lower().split())):
            w = "".join(byte_enc[b] for b in w.encode("utf-8"))
            words[tuple(w[:-1]) + (w[-1] + "</w>",)] += 1
    symbols = list(byte_enc.values())
    vocab = symbols + [s + "</w>" for s in symbols]
    merges = []
    for _ in range(num_merges):
        pairs = collections.Counter()
        for w, c in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += c
        if not pairs:
            break
        (a, b), _ = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))
        merges.append((a, b))
        vocab.append(a + b)
        new = collections.Counter()
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i < len(w) - 1 and (w[i], w[i + 1]) == (a, b):
                    out.append(a + b)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new[tuple(out)] += c
        words = new
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    return {tok: i for i, tok in enumerate(dict.fromkeys(vocab))}, merges


@pytest.fixture(scope="module")
def bpe_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bpe")
    corpus = [t.format(p) for t in C.imagenet_templates() for p in ["a red shape", "a person's face", "a dog"]]
    vocab, merges = _train_bpe(corpus + PROMPTS)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")
    slow = transformers.CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    fast = transformers.CLIPTokenizerFast(str(folder / "vocab.json"), str(folder / "merges.txt"))
    slow.save_pretrained(folder)
    only_json = tmp_path_factory.mktemp("bpe_json")
    fast.save_pretrained(only_json)
    (only_json / "vocab.json").unlink(missing_ok=True)
    (only_json / "merges.txt").unlink(missing_ok=True)
    return folder, only_json, slow, fast


def _texts():
    return [t.format(p) for t in C.imagenet_templates() for p in PROMPTS] + PROMPTS


def _assert_same(ours, theirs, texts):
    a = ours(texts, padding="max_length", truncation=True, max_length=77, return_tensors="np")
    b = theirs(texts, padding="max_length", truncation=True, max_length=77, return_tensors="np")
    for key in ("input_ids", "attention_mask"):
        bad = np.flatnonzero((a[key] != b[key]).any(1))
        assert bad.size == 0, f"{key} differs for {[texts[i] for i in bad[:3]]}"


def test_matches_slow_and_fast(bpe_folder):
    folder, only_json, slow, fast = bpe_folder
    ours = T.BPETokenizer.from_folder(folder)
    texts = _texts()
    _assert_same(ours, slow, texts + SLOW_ONLY)
    _assert_same(ours, fast, texts)
    _assert_same(T.BPETokenizer.from_folder(only_json), fast, texts)  # fed from tokenizer.json alone
    for t in PROMPTS + SLOW_ONLY:  # un-padded content ids, pieces
        assert ours(t, add_special_tokens=False)["input_ids"] == slow(t, add_special_tokens=False)["input_ids"], t
        assert ours.tokenize(t) == slow.tokenize(t), t
    assert (len(ours), ours.get_vocab()) == (len(slow), slow.get_vocab())
    assert (ours.bos_token_id, ours.eos_token_id, ours.pad_token_id, ours.unk_token_id) == \
           (slow.bos_token_id, slow.eos_token_id, slow.pad_token_id, slow.unk_token_id)


def test_padding_truncation_and_specials(bpe_folder):
    ours = T.BPETokenizer.from_folder(bpe_folder[0])
    enc = ours(["a red shape", LONG * 2], padding="max_length", truncation=True, max_length=77, return_tensors="np")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    assert ids.shape == mask.shape == (2, 77)
    content = ours.content_ids("a red shape")
    n = len(content) + 2
    assert ids[0, :n].tolist() == [ours.bos_token_id, *content, ours.eos_token_id]
    assert (ids[0, n:] == ours.pad_token_id).all() and mask[0].tolist() == [1] * n + [0] * (77 - n)
    assert ids[1, 0] == ours.bos_token_id and ids[1, -1] == ours.eos_token_id and mask[1].all()  # truncated to 75 + 2
    assert ids[1, 1:-1].tolist() == ours.content_ids(LONG * 2)[:75]
    longest = ours(["a", "a red shape"], padding=True)
    assert [len(r) for r in longest["input_ids"]] == [n, n]
    # a special token written in the text maps to its id, as in transformers
    assert ours("a <|endoftext|> b", add_special_tokens=False)["input_ids"][1] == ours.eos_token_id


def test_shapes_tokenizer_same_interface():
    """The shipped shapes-world vocabulary: native == slow == fast, and unknown words give <|unk|>."""
    from styleclip_jax.shipped import SHAPES_CLIP

    ours = T.BPETokenizer.from_folder(SHAPES_CLIP)
    slow = transformers.CLIPTokenizer.from_pretrained(SHAPES_CLIP)
    texts = [t.format(p) for t in C.imagenet_templates() for p in ["a red shape", "a blue circle on a black background"]]
    _assert_same(ours, slow, texts + ["a zebra", "A RED SHAPE!"])
    assert ours.unk_token == "<|unk|>" and ours.content_ids("zebra")[:3] == [ours.unk_token_id] * 3  # z, e, b


def test_missing_files_error(tmp_path):
    with pytest.raises(C.CLIPLoadError, match="vocab.json"):
        T.BPETokenizer.from_folder(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(C.CLIPLoadError, match="tokenizer.json"):
        T.BPETokenizer.from_folder(tmp_path)


def test_real_openai_vocabulary_when_cached(tmp_path):
    from styleclip_jax.checkpoints import hf_clip

    snap = hf_clip.cached_snapshot("openai/clip-vit-base-patch32")
    if snap is None or not (snap / "vocab.json").is_file():
        pytest.skip("openai/clip-vit-base-patch32 is not in the local Hugging Face cache")
    for f in ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"):
        if (snap / f).is_file():
            shutil.copy(snap / f, tmp_path / f)
    ours = T.BPETokenizer.from_folder(tmp_path)
    _assert_same(ours, transformers.CLIPTokenizer.from_pretrained(tmp_path), _texts() + SLOW_ONLY)
    _assert_same(ours, transformers.CLIPTokenizerFast.from_pretrained(snap), _texts())


def test_shapes_tokenizer_files_rebuilt_without_transformers(tmp_path):
    """shapes.tokenizer.write_tokenizer (no transformers) reproduces the shipped files byte for byte."""
    from styleclip_jax.shapes import tokenizer as shapes_tokenizer
    from styleclip_jax.shipped import SHAPES_CLIP

    tok = shapes_tokenizer.write_tokenizer(tmp_path)
    assert isinstance(tok, T.BPETokenizer) and len(tok) == shapes_tokenizer.vocab_size()
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.json"):
        assert (tmp_path / name).read_bytes() == (SHAPES_CLIP / name).read_bytes(), name
