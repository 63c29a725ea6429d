"""Whisper over 16 kHz samples: segments with word timings, language and confidence.

Transformers backend (:func:`transcribe_batch`): each audio is cut into windows of
``chunk_s`` seconds (Whisper hears 30 s; a shorter last window is padded by the feature
extractor), and windows of every audio are decoded together, ``batch_size`` at a time:

1. language: unless configured, one decoder step after ``<|startoftranscript|>`` on each
   audio's first window gives the language distribution (Whisper's own detection; the
   audio keeps that language for all its windows, as openai-whisper does);
2. the encoder runs once per batch; ``generate`` (timestamps on, per-window language)
   reuses its output and returns the tokens and, with ``word_timestamps``, a time per
   token from the cross-attention alignment heads (DTW);
3. one teacher-forced decoder pass over prompt + tokens gives each token's log-probability
   (``avg_logprob`` per segment, word probabilities) and, at the first position,
   P(``<|nospeech|>``) of the window (``no_speech_prob``).

Timestamp tokens split a window's tokens into segments; a word starts at a token whose
byte-level form starts with a space. Times are clamped into the window and the segment
and offset by the window start, so they are ordered, in milliseconds. Windows do not
overlap: a word cut by a window border is heard in two halves.

faster-whisper backend (:func:`transcribe_faster_whisper`): CTranslate2's Whisper with
its own long-form decoding, used when ``backend`` asks for it and the package is
installed (``BackendUnavailable`` otherwise).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from style_pipeline.contracts.speech import SAMPLE_RATE, TranscriptionSettings

if TYPE_CHECKING:
    from style_pipeline.models.whisper import LoadedWhisper

TIME_PRECISION_S = 0.02  # one timestamp token step
SPACE_MARK = "\u0120"  # byte-level BPE's visible space (GPT-2's "Ġ")


class BackendUnavailable(RuntimeError):
    """The configured transcription backend cannot run here; the message says what to do."""


@dataclass(frozen=True)
class Word:
    word: str
    start_s: float
    end_s: float
    probability: float


@dataclass
class Segment:
    """One segment on the audio's clock (seconds)."""

    start_s: float
    end_s: float
    text: str
    avg_logprob: float | None
    no_speech_prob: float | None
    words: list[Word] = field(default_factory=list)


@dataclass
class Transcript:
    """Segments of one audio, in time order, and its language."""

    language: str
    segments: list[Segment]


@dataclass(frozen=True)
class _Window:
    audio: int  # index into the batch's audios
    start_s: float
    samples: np.ndarray

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE


def windows(samples: np.ndarray, chunk_s: float) -> list[tuple[float, np.ndarray]]:
    """(start seconds, samples) of consecutive windows of ``chunk_s`` seconds; one empty
    window for an empty audio."""
    step = max(1, int(round(chunk_s * SAMPLE_RATE)))
    if len(samples) == 0:
        return [(0.0, samples)]
    return [(i / SAMPLE_RATE, samples[i : i + step]) for i in range(0, len(samples), step)]


def _batches(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


class _Vocabulary:
    """The token ids decoding needs, read from the tokenizer and generation config."""

    def __init__(self, loaded: LoadedWhisper):
        tokenizer = loaded.processor.tokenizer
        # Any: Whisper's own fields (no_timestamps_token_id, ...) are not on the base class
        generation: Any = loaded.model.generation_config
        self.tokenizer = tokenizer
        self.sot = int(generation.decoder_start_token_id)
        self.eot = int(tokenizer.convert_tokens_to_ids("<|endoftext|>"))
        self.no_timestamps = int(generation.no_timestamps_token_id)
        self.timestamp_begin = self.no_timestamps + 1
        # English-only checkpoints (whisper-*.en) have no language or task tokens
        self.multilingual = bool(getattr(generation, "is_multilingual", True))
        self.task_ids: dict[str, int] = dict(getattr(generation, "task_to_id", None) or {})
        lang_to_id: dict[str, int] = getattr(generation, "lang_to_id", None) or {}
        self.languages = {int(i): t.strip("<|>") for t, i in lang_to_id.items()}
        self.multilingual = self.multilingual and bool(self.languages)
        self.no_speech: int | None = None
        for name in ("<|nospeech|>", "<|nocaptions|>"):  # v3's name, then older models'
            tid = tokenizer.convert_tokens_to_ids(name)
            if tid is not None and tid != tokenizer.unk_token_id:
                self.no_speech = int(tid)
                break

    def language_id(self, code: str) -> int:
        for tid, name in self.languages.items():
            if name == code:
                return tid
        raise ValueError(f"language {code!r} is not one of the model's languages")


def _features(loaded: LoadedWhisper, chunk: Sequence[_Window]) -> tuple[torch.Tensor, ...]:
    extracted = loaded.processor.feature_extractor(
        [w.samples if len(w.samples) else np.zeros(160, np.float32) for w in chunk],
        sampling_rate=SAMPLE_RATE, return_tensors="pt", return_attention_mask=True,
    )  # fmt: skip
    features = extracted.input_features.to(loaded.device, loaded.dtype)
    return features, extracted.attention_mask.to(loaded.device)


@torch.inference_mode()
def detect_languages(
    loaded: LoadedWhisper, first_windows: Sequence[_Window], batch_size: int
) -> list[str]:
    """The most probable language token after ``<|startoftranscript|>``, per window."""
    vocab = _Vocabulary(loaded)
    lang_ids = torch.tensor(sorted(vocab.languages), device=loaded.device)
    found: list[str] = []
    for chunk in _batches(first_windows, batch_size):
        features, _ = _features(loaded, chunk)
        encoded = loaded.model.get_encoder()(features)
        start = torch.full((len(chunk), 1), vocab.sot, device=loaded.device)
        logits = loaded.model(encoder_outputs=encoded, decoder_input_ids=start).logits[:, 0]
        best = lang_ids[logits[:, lang_ids].float().argmax(dim=-1)]
        found += [vocab.languages[int(t)] for t in best]
    return found


def transcribe_batch(
    loaded: LoadedWhisper, audios: Sequence[np.ndarray], settings: TranscriptionSettings
) -> list[Transcript]:
    """Transcripts of ``audios`` (16 kHz mono float32), in order; see the module docstring."""
    work = [
        _Window(i, start, chunk)
        for i, samples in enumerate(audios)
        for start, chunk in windows(samples, settings.chunk_s)
    ]
    if not _Vocabulary(loaded).multilingual:
        languages = ["en"] * len(audios)  # an English-only model
    elif settings.language:
        languages = [settings.language] * len(audios)
    else:
        firsts = {w.audio: w for w in reversed(work)}
        detected = detect_languages(loaded, [firsts[i] for i in range(len(audios))],
                                    settings.batch_size)  # fmt: skip
        languages = detected
    per_audio: list[list[Segment]] = [[] for _ in audios]
    for chunk in _batches(work, settings.batch_size):
        for window, segments in zip(
            chunk, _decode(loaded, chunk, [languages[w.audio] for w in chunk], settings),
            strict=True,
        ):  # fmt: skip
            per_audio[window.audio].extend(segments)
    return [Transcript(languages[i], segs) for i, segs in enumerate(per_audio)]


@torch.inference_mode()
def _decode(
    loaded: LoadedWhisper,
    chunk: Sequence[_Window],
    languages: list[str],
    settings: TranscriptionSettings,
) -> list[list[Segment]]:
    vocab = _Vocabulary(loaded)
    features, mask = _features(loaded, chunk)
    encoded = loaded.model.get_encoder()(features)
    prompted: dict[str, Any] = {}
    prompts = [[vocab.sot] for _ in languages]
    if vocab.multilingual:
        prompted = {"language": list(languages), "task": settings.task}
        prompts = [[vocab.sot, vocab.language_id(lang), vocab.task_ids[settings.task]]
                   for lang in languages]  # fmt: skip
    out = loaded.model.generate(
        features, attention_mask=mask, encoder_outputs=encoded, return_timestamps=True,
        return_token_timestamps=settings.word_timestamps, return_dict_in_generate=True,
        return_segments=False, num_beams=settings.num_beams,
        max_new_tokens=settings.max_new_tokens, **prompted,
    )  # fmt: skip
    sequences = out["sequences"].tolist()
    token_times = out.get("token_timestamps") if settings.word_timestamps else None
    tokens = [_generated(seq, vocab) for seq in sequences]
    logprobs, no_speech = _score(loaded, encoded, prompts, tokens, vocab)
    results = []
    for row, window in enumerate(chunk):
        times = None
        if token_times is not None:
            offset = len(sequences[row]) - token_times.shape[1]
            times = [float(t) for t in token_times[row].tolist()][max(0, -offset) :]
        results.append(_segments(tokens[row], logprobs[row], times, no_speech[row], window, vocab))
    return results


def _generated(sequence: list[int], vocab: _Vocabulary) -> list[int]:
    """The generated tokens of one row: prompt tokens dropped, cut at ``<|endoftext|>``."""
    prompt = {vocab.sot, vocab.no_timestamps, *vocab.languages, *vocab.task_ids.values()}
    start = 0
    while start < len(sequence) and sequence[start] in prompt:
        start += 1
    tokens = []
    for token in sequence[start:]:
        if token == vocab.eot:
            break
        tokens.append(token)
    return tokens


def _score(
    loaded: LoadedWhisper,
    encoded: Any,
    prompts: list[list[int]],
    tokens: list[list[int]],
    vocab: _Vocabulary,
) -> tuple[list[list[float]], list[float | None]]:
    """Per row: the log-probability of each generated token (teacher forcing) and
    P(<|nospeech|>) right after <|startoftranscript|>."""
    rows = [p + t for p, t in zip(prompts, tokens, strict=True)]
    width = max(len(r) for r in rows)
    padded = torch.tensor([r + [vocab.eot] * (width - len(r)) for r in rows],
                          device=loaded.device)  # fmt: skip
    logits = loaded.model(encoder_outputs=encoded, decoder_input_ids=padded).logits.float()
    logp = torch.log_softmax(logits, dim=-1)
    scores: list[list[float]] = []
    for i, (prompt, toks) in enumerate(zip(prompts, tokens, strict=True)):
        positions = torch.arange(len(prompt) - 1, len(prompt) - 1 + len(toks))
        if not toks:
            scores.append([])
            continue
        chosen = logp[i, positions, torch.tensor(toks, dtype=torch.long)]
        scores.append([float(x) for x in chosen])
    no_speech: list[float | None] = [None] * len(rows)
    if vocab.no_speech is not None:
        first = torch.softmax(logits[:, 0], dim=-1)[:, vocab.no_speech]
        no_speech = [round(float(p), 6) for p in first]
    return scores, no_speech


def _segments(
    tokens: list[int],
    logprobs: list[float],
    times: list[float] | None,
    no_speech: float | None,
    window: _Window,
    vocab: _Vocabulary,
) -> list[Segment]:
    """Split one window's tokens at timestamp tokens into segments on the audio's clock."""
    limit = window.duration_s
    spans: list[tuple[float, float, list[int]]] = []  # (start, end, token positions)
    start: float | None = None
    text: list[int] = []
    for pos, token in enumerate(tokens):
        if token >= vocab.timestamp_begin:
            stamp = min((token - vocab.timestamp_begin) * TIME_PRECISION_S, limit)
            if text:
                spans.append((start or 0.0, stamp, text))
                start, text = None, []
            else:
                start = stamp
        elif token < vocab.eot:  # a text token (specials never count as text)
            if start is None:
                start = spans[-1][1] if spans else 0.0
            text.append(pos)
    if text:
        spans.append((start or 0.0, limit, text))
    segments = []
    floor = 0.0
    for seg_start, seg_end, positions in spans:
        seg_start = min(max(seg_start, floor), limit)
        seg_end = min(max(seg_end, seg_start), limit)
        floor = seg_end
        words = _words(tokens, positions, logprobs, times, seg_start, seg_end, vocab)
        phrase = vocab.tokenizer.decode([tokens[p] for p in positions],
                                        skip_special_tokens=True)  # fmt: skip
        if not phrase.strip():
            continue
        avg = sum(logprobs[p] for p in positions) / len(positions)
        segments.append(
            Segment(
                start_s=window.start_s + seg_start, end_s=window.start_s + seg_end,
                text=phrase.strip(), avg_logprob=round(avg, 6) if math.isfinite(avg) else None,
                no_speech_prob=no_speech,
                words=[Word(w.word, w.start_s + window.start_s, w.end_s + window.start_s,
                            w.probability) for w in words],
            )
        )  # fmt: skip
    return segments


def _words(
    tokens: list[int],
    positions: list[int],
    logprobs: list[float],
    times: list[float] | None,
    seg_start: float,
    seg_end: float,
    vocab: _Vocabulary,
) -> list[Word]:
    """Group a segment's text tokens into words (a token starting with a space starts one);
    a word runs from its first token's time to the time of the token after its last."""
    if times is None:
        return []
    pieces = vocab.tokenizer.convert_ids_to_tokens([tokens[p] for p in positions])
    groups: list[list[int]] = []
    for pos, piece in zip(positions, pieces, strict=True):
        if not groups or str(piece).startswith(SPACE_MARK):
            groups.append([pos])
        else:
            groups[-1].append(pos)
    words = []
    floor = seg_start
    for group in groups:
        text = vocab.tokenizer.decode([tokens[p] for p in group], skip_special_tokens=True)
        if not text.strip():
            continue
        first, after = group[0], group[-1] + 1
        start = times[first] if first < len(times) else seg_start
        end = times[after] if after < len(times) else seg_end
        start = min(max(start, floor), seg_end)
        end = min(max(end, start), seg_end)
        floor = start
        probability = float(np.mean([math.exp(logprobs[p]) for p in group]))
        words.append(Word(text, start, end, round(probability, 6)))
    return words


def faster_whisper_available() -> bool:
    """Whether the optional faster-whisper package is importable."""
    try:
        import faster_whisper  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        return False
    return True


def transcribe_faster_whisper(
    audios: Sequence[np.ndarray], settings: TranscriptionSettings, device: str = "auto"
) -> tuple[str, list[Transcript]]:
    """(model name, transcripts) through faster-whisper; ``BackendUnavailable`` when the
    package is not installed. Its model comes from ``faster_whisper_model`` (a size such as
    ``small``, a CTranslate2 model id or folder; faster-whisper's own cache)."""
    try:
        from faster_whisper import WhisperModel  # type: ignore[import-not-found]
    except ImportError as exc:
        raise BackendUnavailable(
            "speech.transcription.backend is faster_whisper but the faster-whisper package is "
            "not installed: `pip install faster-whisper`, or set the backend to transformers"
        ) from exc
    model = WhisperModel(settings.faster_whisper_model, device=device,
                         compute_type=settings.faster_whisper_compute_type)  # fmt: skip
    results = []
    for samples in audios:
        pieces, info = model.transcribe(
            samples, language=settings.language, task=settings.task,
            beam_size=settings.num_beams, word_timestamps=settings.word_timestamps,
        )  # fmt: skip
        segments = [
            Segment(
                start_s=s.start, end_s=max(s.end, s.start), text=s.text.strip(),
                avg_logprob=s.avg_logprob, no_speech_prob=s.no_speech_prob,
                words=[Word(w.word, w.start, max(w.end, w.start), w.probability)
                       for w in (s.words or [])],
            )
            for s in pieces
            if s.text.strip()
        ]  # fmt: skip
        results.append(Transcript(info.language, segments))
    return f"faster-whisper:{settings.faster_whisper_model}", results
