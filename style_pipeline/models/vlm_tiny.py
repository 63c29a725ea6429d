"""Tiny random-init VLMs for tests: Florence-2, Qwen2-VL and BLIP-2, built offline from a config.

Each builder writes what ``from_pretrained`` reads back (model, processor, tokenizer, chat
template, generation config), so the tiny model runs the production load path. The
tokenizer is a byte-level BPE trained here with the ``tokenizers`` library on the given
words (ontology terms and prompts: they become single tokens), wrapped in the class the
family's processor expects (Florence-2: ``BartTokenizer``, Qwen2-VL: ``Qwen2Tokenizer``,
BLIP-2: ``GPT2Tokenizer``). The saved generation config suppresses the byte tokens that
do not decode to printable ASCII, so a random model's captions are readable text.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from style_pipeline.contracts.captioning_vlm import FLORENCE2_TASKS, TinyVlmArch, VlmFamily
from style_pipeline.models.cache import building_dir

log = logging.getLogger(__name__)

WEIGHTS_NAME = "model.safetensors"
IMAGE_SIZE = {"florence2": 64, "qwen2_vl": 56, "blip2": 32}  # pixels; every image is resized
_SPECIALS: dict[VlmFamily, list[str]] = {
    "florence2": ["<s>", "<pad>", "</s>", "<unk>", "<mask>", "<image>"],
    "qwen2_vl": ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>",
                 "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"],
    "blip2": ["</s>", "<pad>", "<unk>", "<image>"],
}  # fmt: skip
# Qwen2-VL's chat template, reduced to the text and image parts a caption request uses.
QWEN2_VL_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}"
    "{% endif %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}"
    "<|im_start|>assistant\n{% endif %}"
)


def tiny_fingerprint(family: VlmFamily, arch: TinyVlmArch, words: list[str]) -> str:
    """Content key of a tiny VLM: family, architecture, seed, words and library versions."""
    import tokenizers
    import transformers

    payload = {
        "family": family, "arch": arch.model_dump(), "words": words,
        "transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
    }  # fmt: skip
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def train_bpe(
    words: Iterable[str], specials: list[str], vocab_size: int
) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Byte-level BPE (vocabulary, merges) trained on ``words``; special tokens first."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )  # fmt: skip
    bpe.train_from_iterator(list(words) or ["a"], trainer)
    merges = json.loads(bpe.to_str())["model"]["merges"]
    return bpe.get_vocab(), [tuple(m) for m in merges]


def _unprintable(tokenizer: Any, keep: set[int]) -> list[int]:
    """Ids whose bytes are not printable ASCII (and special tokens), except ``keep``."""
    from tokenizers import pre_tokenizers

    byte_of = {ch: i for i, ch in enumerate(_byte_order(pre_tokenizers.ByteLevel.alphabet()))}
    special = set(tokenizer.all_special_ids)
    bad = []
    for token, index in tokenizer.get_vocab().items():
        if index in keep:
            continue
        codes = [byte_of.get(ch) for ch in token]
        if index in special or any(c is None or not 32 <= c < 127 for c in codes):
            bad.append(index)
    return sorted(bad)


def _byte_order(alphabet: list[str]) -> list[str]:
    """GPT-2's byte -> unicode table as a list indexed by byte value."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]  # fmt: skip
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    assert set(table.values()) == set(alphabet)
    return [table[b] for b in range(256)]


def _token_id(tokenizer: Any, token: str) -> int:
    index = tokenizer.convert_tokens_to_ids(token)
    assert isinstance(index, int), token
    return index


def _florence2(arch: TinyVlmArch, vocab, merges):
    from transformers import (
        BartTokenizer,
        CLIPImageProcessor,
        Florence2Config,
        Florence2ForConditionalGeneration,
        Florence2Processor,
    )

    tok = BartTokenizer(vocab=vocab, merges=merges, extra_special_tokens={"image_token": "<image>"})
    size, strides = IMAGE_SIZE["florence2"], (4, 2, 2)
    grid = size // (strides[0] * strides[1] * strides[2])
    image_processor = CLIPImageProcessor(
        size={"height": size, "width": size}, crop_size={"height": size, "width": size},
        do_center_crop=False, image_seq_length=grid * grid + 1,  # + the temporal token
    )  # fmt: skip
    processor = Florence2Processor(image_processor=image_processor, tokenizer=tok)
    h = arch.hidden
    vision = dict(
        depths=[arch.layers] * 3, patch_size=[7, 3, 3], patch_stride=list(strides),
        patch_padding=[3, 1, 1], patch_prenorm=[False, True, True], embed_dim=[h // 2, h, h],
        num_heads=[arch.heads] * 3, num_groups=[arch.heads] * 3, window_size=2,
        projection_dim=h, max_position_embeddings=grid, max_temporal_embeddings=4,
        drop_path_rate=0.0,
    )  # fmt: skip
    eos = tok.eos_token_id
    text = dict(
        vocab_size=len(tok), d_model=h, encoder_layers=arch.layers, decoder_layers=arch.layers,
        encoder_attention_heads=arch.heads, decoder_attention_heads=arch.heads,
        encoder_ffn_dim=2 * h, decoder_ffn_dim=2 * h, max_position_embeddings=512,
        bos_token_id=tok.bos_token_id, eos_token_id=eos, pad_token_id=tok.pad_token_id,
        decoder_start_token_id=eos, forced_eos_token_id=eos,
    )  # fmt: skip
    config = Florence2Config(
        vision_config=vision, text_config=text, image_token_id=tok.image_token_id
    )
    return Florence2ForConditionalGeneration, config, processor, tok, {eos}


def _qwen2_vl(arch: TinyVlmArch, vocab, merges):
    from transformers import (
        Qwen2Tokenizer,
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    specials = _SPECIALS["qwen2_vl"]
    tok = Qwen2Tokenizer(vocab=vocab, merges=merges, padding_side="left")
    tok.add_special_tokens({"additional_special_tokens": specials[1:]})
    ids = {name: _token_id(tok, name) for name in specials}
    pixels = IMAGE_SIZE["qwen2_vl"] ** 2
    grid: dict[str, Any] = {
        "size": {"shortest_edge": pixels, "longest_edge": pixels}, "patch_size": 14,
        "merge_size": 2, "temporal_patch_size": 2,
    }  # fmt: skip
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(**grid), tokenizer=tok,
        video_processor=Qwen2VLVideoProcessor(**grid), chat_template=QWEN2_VL_TEMPLATE,
    )  # fmt: skip
    h, head_half = arch.hidden, arch.hidden // arch.heads // 2
    section = [head_half - 2 * (head_half // 3), head_half // 3, head_half // 3]
    vision = dict(
        depth=arch.layers, embed_dim=h, hidden_size=h, num_heads=arch.heads, patch_size=14,
        spatial_merge_size=2, temporal_patch_size=2, mlp_ratio=2,
    )  # fmt: skip
    eos = ids["<|im_end|>"]
    text = dict(
        vocab_size=len(tok), hidden_size=h, intermediate_size=2 * h,
        num_hidden_layers=arch.layers, num_attention_heads=arch.heads, num_key_value_heads=1,
        max_position_embeddings=2048, bos_token_id=ids["<|endoftext|>"], eos_token_id=eos,
        pad_token_id=ids["<|endoftext|>"],
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": section},
    )  # fmt: skip
    config = Qwen2VLConfig(
        vision_config=vision, text_config=text, image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )  # fmt: skip
    return Qwen2VLForConditionalGeneration, config, processor, tok, {eos}


def _blip2(arch: TinyVlmArch, vocab, merges):
    from transformers import (
        Blip2Config,
        Blip2ForConditionalGeneration,
        Blip2Processor,
        BlipImageProcessor,
        GPT2Tokenizer,
    )

    tok = GPT2Tokenizer(
        vocab=vocab, merges=merges, bos_token="</s>", eos_token="</s>", unk_token="<unk>",
        pad_token="<pad>", padding_side="left", add_bos_token=True,
    )  # fmt: skip
    size, queries, h = IMAGE_SIZE["blip2"], 4, arch.hidden
    image_processor = BlipImageProcessor(size={"height": size, "width": size})
    # the processor adds "<image>" itself (as an AddedToken, which it needs)
    processor = Blip2Processor(image_processor=image_processor, tokenizer=tok,
                               num_query_tokens=queries)  # fmt: skip
    vision = dict(hidden_size=h, intermediate_size=2 * h, num_hidden_layers=arch.layers,
                  num_attention_heads=arch.heads, image_size=size, patch_size=8)  # fmt: skip
    qformer = dict(vocab_size=len(tok), hidden_size=h, num_hidden_layers=arch.layers,
                   num_attention_heads=arch.heads, intermediate_size=2 * h,
                   encoder_hidden_size=h, max_position_embeddings=64)  # fmt: skip
    eos = tok.eos_token_id
    text = dict(
        model_type="opt", vocab_size=len(tok), hidden_size=h, num_hidden_layers=arch.layers,
        ffn_dim=2 * h, num_attention_heads=arch.heads, max_position_embeddings=512,
        word_embed_proj_dim=h, bos_token_id=tok.bos_token_id, eos_token_id=eos,
        pad_token_id=tok.pad_token_id,
    )  # fmt: skip
    config = Blip2Config(
        vision_config=vision, qformer_config=qformer, text_config=text, num_query_tokens=queries,
        image_token_index=_token_id(tok, "<image>"),
    )  # fmt: skip
    return Blip2ForConditionalGeneration, config, processor, tok, {eos}


_BUILDERS = {"florence2": _florence2, "qwen2_vl": _qwen2_vl, "blip2": _blip2}


def build_tiny_vlm(
    out_dir: Path, family: VlmFamily, arch: TinyVlmArch, words: Iterable[str]
) -> Path:
    """Build the random-init ``family`` model + processor; save atomically (reused after)."""
    from transformers import GenerationConfig

    if (out_dir / WEIGHTS_NAME).is_file():
        return out_dir
    texts = [*words, *_PROMPT_WORDS]
    vocab, merges = train_bpe(texts, _SPECIALS[family], arch.vocab_size)
    model_class, config, processor, tok, keep = _BUILDERS[family](arch, vocab, merges)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(arch.seed)
        model = model_class(config)
    text_config = config.get_text_config()
    model.generation_config = GenerationConfig(
        bos_token_id=text_config.bos_token_id, eos_token_id=text_config.eos_token_id,
        pad_token_id=text_config.pad_token_id,
        decoder_start_token_id=getattr(text_config, "decoder_start_token_id", None),
        suppress_tokens=_unprintable(tok, keep),
    )  # fmt: skip
    with building_dir(out_dir, WEIGHTS_NAME) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        processor.save_pretrained(tmp)
    log.info("saved tiny %s VLM to %s", family, out_dir)
    return out_dir


# Prompt words the tiny tokenizer learns besides the ontology's: captions and prompts
# become a few tokens each instead of one per byte.
_PROMPT_WORDS = (
    "Write one short training caption describing this image. Use only these words where "
    "possible. Describe in detail what is shown in the image. Describe with a paragraph "
    "what is shown in the image. What does the image describe? a photo in the style of",
    *FLORENCE2_TASKS,
)
