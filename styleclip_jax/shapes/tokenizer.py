"""Word-level vocabulary for the shapes-world CLIP, written as CLIP BPE files.

``write_tokenizer(out_dir)`` writes the files of ``styleclip_jax/assets/shapes_clip`` (byte for byte, without
transformers), which the package's ``models.clip_tokenizer.BPETokenizer`` and ``transformers.CLIPTokenizer``
(slow, from ``vocab.json`` + ``merges.txt``) and ``CLIPTokenizerFast`` (from ``tokenizer.json``) all load:

* every vocabulary word is exactly one token (the BPE merges chain each word's characters together);
* the vocabulary holds only whole words plus three special tokens, so an out-of-vocabulary word
  cannot be spelled out of known characters: it gives ``<|unk|>`` (a dedicated id, distinct from
  ``<|endoftext|>``);
* ids: words 0..W-1, then ``<|unk|>``, ``<|startoftext|>``, ``<|endoftext|>`` (the highest id: FlaxCLIP
  pools text features at the argmax of the input ids). Padding uses ``<|endoftext|>`` as in CLIP
  (argmax returns the first occurrence, i.e. the real end of text).
"""
from __future__ import annotations

import json
import os

from .render import BACKGROUNDS, COLOURS, SHAPES

UNK = "<|unk|>"
BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
EOW = "</w>"

# Every word of StyleCLIP's 79 ImageNet templates (global direction), lower-cased and split the
# way the CLIP tokenizer splits ("close-up" -> "close", "-", "up"; "shape." -> "shape", ".").
TEMPLATE_WORDS = (
    "a", "and", "art", "bad", "black", "blurry", "bright", "cartoon", "clean", "close", "cool",
    "corrupted", "cropped", "dark", "dirty", "doodle", "drawing", "embroidered", "game", "good",
    "graffiti", "hard", "in", "itap", "jpeg", "large", "low", "my", "nice", "of", "one", "origami",
    "painting", "photo", "pixelated", "plastic", "plushie", "rendering", "rendition", "resolution",
    "sculpture", "see", "sketch", "small", "tattoo", "the", "to", "toy", "up", "video", "weird",
    "white", "-", ".",
)
DOMAIN_WORDS = tuple(COLOURS) + tuple(SHAPES) + tuple(BACKGROUNDS) + (
    "shape", "shapes", "background", "on", "an", "with", "circles", "squares", "triangles", "rings",
    "grey", "colour", "color", "coloured", "colored", "object", "image", "picture", "this", "is",
    "big", "tiny", "pink", "brown", "cyan", "star", "round",
)
PUNCTUATION = (",", "!", "?", ":", ";", "'", '"', "(", ")", "/")
DIGITS = tuple("0123456789")


def vocabulary_words() -> list[str]:
    """All vocabulary words (sorted, unique); ids follow this order."""
    return sorted(set(TEMPLATE_WORDS + DOMAIN_WORDS + PUNCTUATION + DIGITS))


def _bpe(word: str, ranks: dict) -> list[str]:
    """CLIP's BPE on one pre-tokenised word (``BPETokenizer.bpe`` with a rank table still being built)."""
    symbols = list(word[:-1]) + [word[-1] + EOW]
    while len(symbols) > 1:
        pairs = [(ranks.get((a, b), float("inf")), i) for i, (a, b) in enumerate(zip(symbols, symbols[1:]))]
        rank, _ = min(pairs)
        if rank == float("inf"):
            break
        a, b = min(((a, b) for a, b in zip(symbols, symbols[1:]) if (a, b) in ranks), key=ranks.get)
        merged, i = [], 0
        while i < len(symbols):
            if i < len(symbols) - 1 and symbols[i] == a and symbols[i + 1] == b:
                merged.append(a + b)
                i += 2
            else:
                merged.append(symbols[i])
                i += 1
        symbols = merged
    return symbols


def build_merges(words) -> list[tuple[str, str]]:
    """Merges so that every word BPE-encodes to the single symbol ``word + '</w>'``."""
    merges: list[tuple[str, str]] = []
    ranks: dict = {}

    def add(pair):
        if pair not in ranks:
            ranks[pair] = len(merges)
            merges.append(pair)

    for w in words:  # left-to-right chain for each word
        syms = list(w[:-1]) + [w[-1] + EOW]
        acc = syms[0]
        for s in syms[1:]:
            add((acc, s))
            acc = acc + s
    for _ in range(100):  # resolve interactions between chains (a later merge can pre-empt one)
        stuck = [(w, _bpe(w, ranks)) for w in words]
        stuck = [(w, p) for w, p in stuck if len(p) > 1]
        if not stuck:
            return merges
        for _, pieces in stuck:
            add((pieces[0], pieces[1]))
    raise RuntimeError("could not build single-token merges")


def vocab_dict() -> dict[str, int]:
    words = vocabulary_words()
    vocab = {w + EOW: i for i, w in enumerate(words)}
    vocab[UNK] = len(words)
    vocab[BOS] = len(words) + 1
    vocab[EOS] = len(words) + 2
    return vocab


def _fast_tokenizer_json(vocab: dict) -> str:
    """tokenizer.json for CLIPTokenizerFast: CLIP's normaliser/pre-tokeniser/post-processor with a BPE
    model that looks whole words up directly (``ignore_merges``) and has no character tokens, so OOV
    words come out as ``<|unk|>``."""
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import BPE

    fast_vocab = {(k[: -len(EOW)] if k.endswith(EOW) else k): v for k, v in vocab.items()}
    tok = Tokenizer(BPE(vocab=fast_vocab, merges=[], dropout=None, continuing_subword_prefix="",
                        end_of_word_suffix=EOW, fuse_unk=True, unk_token=UNK, ignore_merges=True))
    tok.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""),
                             behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.RobertaProcessing(sep=(EOS, vocab[EOS]), cls=(BOS, vocab[BOS]),
                                                      add_prefix_space=False, trim_offsets=False)
    return tok.to_str()


def _json(path: str, obj) -> None:
    """JSON as transformers' ``save_pretrained`` writes it (2-space indent, sorted keys, UTF-8, final newline)."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def write_tokenizer(out_dir: str, model_max_length: int = 77):
    """Write vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json and (when the optional
    ``tokenizers`` package is installed) tokenizer.json into ``out_dir``; returns the package's
    ``BPETokenizer`` over them."""
    from ..models.clip_tokenizer import BPETokenizer

    os.makedirs(out_dir, exist_ok=True)
    vocab = vocab_dict()
    merges = build_merges(vocabulary_words())
    _json(os.path.join(out_dir, "vocab.json"), vocab)
    with open(os.path.join(out_dir, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    token = {"lstrip": False, "normalized": True, "rstrip": False, "single_word": False}
    _json(os.path.join(out_dir, "tokenizer_config.json"), {
        "added_tokens_decoder": {str(vocab[t]): {"content": t, **token, "special": True} for t in (UNK, BOS, EOS)},
        "bos_token": BOS, "clean_up_tokenization_spaces": False, "eos_token": EOS, "errors": "replace",
        "extra_special_tokens": {}, "model_max_length": model_max_length, "pad_token": EOS,
        "tokenizer_class": "CLIPTokenizer", "unk_token": UNK})
    _json(os.path.join(out_dir, "special_tokens_map.json"), {
        "bos_token": {"content": BOS, **token}, "eos_token": {"content": EOS, **token}, "pad_token": EOS,
        "unk_token": {"content": UNK, **token}})
    try:
        fast = _fast_tokenizer_json(vocab)
    except ImportError:
        fast = None  # CLIPTokenizerFast then converts from vocab.json + merges.txt itself
    if fast is not None:
        with open(os.path.join(out_dir, "tokenizer.json"), "w", encoding="utf-8") as f:
            f.write(fast)
    return BPETokenizer.from_folder(out_dir)


def vocab_size() -> int:
    return len(vocabulary_words()) + 3
