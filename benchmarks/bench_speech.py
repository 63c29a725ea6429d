"""Speech benchmark: audio extraction + analysis and Whisper transcription, seconds of audio
per second of work (realtime factor), and what batching windows buys.

    .venv/bin/python benchmarks/bench_speech.py [--seconds 120] [--chunk-s 10] [--batch 8]
        [--profile tiny|pretrained] [--max-new-tokens 48]

The clip: espeak-ng speech repeated with pauses to ``--seconds``, muxed with a small H.264
video into an MP4 (the shape of a dropped stream). Measured:

- ``audio``: ``extract_flac`` + ``analyse_flac`` (ffmpeg: 16 kHz mono FLAC, ebur128 +
  silencedetect in one pass);
- ``transcribe``: ``transcribe_batch`` on the FLAC's samples with ``batch_size`` 1 and
  ``--batch`` windows per ``generate`` call (same windows, same tokens: greedy decoding is
  batch-independent up to float rounding).

The tiny random-init Whisper (the default here: nothing downloads) decodes random tokens
up to ``--max-new-tokens`` per window, so its numbers measure the decoding machinery, not a
real model; ``--profile pretrained`` times the configured checkpoint when it is cached.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from style_pipeline.contracts.speech import (
    AudioSettings,
    TranscriptionSettings,
    WhisperModelConfig,
)
from style_pipeline.media.ffmpeg_bin import ffmpeg_exe
from style_pipeline.speech.audio import analyse_flac, extract_flac, read_samples
from style_pipeline.speech.transcribe import transcribe_batch

SENTENCE = "Good question. I think the answer is yes, we will stream again tomorrow at noon."


def make_clip(root: Path, seconds: float) -> Path:
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        sys.exit("espeak-ng is not installed (apt-get install espeak-ng)")
    wav = root / "speech.wav"
    subprocess.run([espeak, "-w", str(wav), SENTENCE], check=True, capture_output=True)
    video = root / "clip.mp4"
    subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", "color=c=blue:s=128x96:r=5",
         "-stream_loop", "-1", "-i", str(wav),
         "-filter_complex", "[1:a]apad=pad_dur=1.5[a]", "-map", "0:v", "-map", "[a]",
         "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
         "-c:a", "aac", str(video)],
        check=True,
    )  # fmt: skip
    return video


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--chunk-s", type=float, default=10.0)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--profile", choices=["tiny", "pretrained"], default="tiny")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch threads {args.threads}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        video = make_clip(root, args.seconds)
        settings = AudioSettings()
        started = time.perf_counter()
        flac = extract_flac(video, root / "a.flac", settings)
        analysis = analyse_flac(flac, settings)
        audio_s = time.perf_counter() - started
        seconds = analysis.duration_ms / 1000
        measured = f"LUFS {analysis.integrated_lufs}, silence {analysis.silence_ratio}"
        print(f"audio: {seconds:.1f} s of audio in {audio_s:.3f} s = "
              f"{seconds / audio_s:.0f}x realtime ({measured})")  # fmt: skip

        from style_pipeline.models.whisper import load_whisper

        started = time.perf_counter()
        model_cfg = WhisperModelConfig(profile=args.profile, cache_dir=str(root / "models"))
        loaded = load_whisper(model_cfg)
        print(f"model: {loaded.model_id} on {loaded.device} in "
              f"{time.perf_counter() - started:.1f} s")  # fmt: skip
        samples = read_samples(flac)
        windows = int(-(-seconds // args.chunk_s))
        results = {}
        for batch in (1, args.batch):
            cfg = TranscriptionSettings(
                chunk_s=args.chunk_s, batch_size=batch, language="en",
                max_new_tokens=args.max_new_tokens,
            )  # fmt: skip
            transcribe_batch(loaded, [samples[: 16000 * 2]], cfg)  # warm up
            started = time.perf_counter()
            (transcript,) = transcribe_batch(loaded, [samples], cfg)
            took = time.perf_counter() - started
            results[batch] = took
            print(f"transcribe batch {batch}: {windows} windows of {args.chunk_s:g} s, "
                  f"{len(transcript.segments)} segments, {took:.2f} s = "
                  f"{seconds / took:.1f}x realtime")  # fmt: skip
        print(f"batching {args.batch} windows: {results[1] / results[args.batch]:.2f}x faster")


if __name__ == "__main__":
    main()
