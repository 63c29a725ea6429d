"""``style-pipeline models``: which pretrained models the pipeline uses, and fetch them.

``list`` shows each model the configuration names (``curation.clip``, the BLIP captioner,
the training preset's base pipeline): where it comes from, whether it is on this machine
where the offline resolver looks, its size and path. ``pull NAME`` / ``pull --all``
downloads the missing ones from the Hugging Face Hub (``HF_ENDPOINT``) into the configured
caches (a stopped pull keeps its finished files: run it again), so the next run loads them
as ``pretrained`` with no network.
Model libraries are imported inside the commands, so ``style-pipeline --help`` stays light.
"""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

models_app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Pretrained models: list them (cached or not, size, path), pull them from the Hub.",
)
console = Console()


def _entries(catalog: bool = False):
    """The configured pipeline's models (the VLM captioner when backend is vlm, the caption
    check's ITM model, Whisper, the sentence encoder and the causal LM); with
    ``catalog``, every VLM captioner ``pull NAME`` may name (florence2, qwen2-vl, blip2, vlm)."""
    from style_pipeline.models.registry import named_entry, registry, vlm_catalog, vlm_entry
    from style_pipeline.settings import load_settings
    from style_pipeline.training.presets import load_preset

    settings = load_settings()
    preset = load_preset(settings.training.preset)
    caption = settings.captioning.caption
    entries = registry(
        settings.curation.clip,
        caption.blip.model,
        preset.pretrained,
        preset.model_family,
        caption.vlm if caption.backend == "vlm" else None,
        caption.check.itm_model if caption.check.use_itm != "off" else None,
    )
    if settings.speech.enabled:
        whisper = settings.speech.transcription.model
        entries.append(named_entry("whisper", whisper.pretrained, whisper.hf_cache_dir))
    encoder = settings.alignment.encoder
    entries.append(named_entry("sentence-encoder", encoder.pretrained, encoder.hf_cache_dir))
    entries.append(named_entry("causal-lm", settings.llm.pretrained, settings.llm.hf_cache_dir))
    if catalog:  # the configured VLM (named vlm when not a known one), then the known ones
        for entry in [vlm_entry(caption.vlm), *vlm_catalog(caption.vlm.hf_cache_dir)]:
            if entry.name not in {e.name for e in entries}:
                entries.append(entry)
    return entries


@models_app.command("list")
def list_models() -> None:
    """Each model of the configured pipeline: kind, source, cached?, size, path."""
    from style_pipeline.models.registry import human_size, status

    table = Table(title="models")
    for column in ("name", "kind", "source", "cached", "size", "path"):
        table.add_column(column, overflow="fold")
    for entry in _entries():
        found = status(entry)
        cached = "yes" if found.cached else "[red]no[/red]"
        size = human_size(found.size_bytes) if found.cached else "-"
        path = found.path or ("(local path missing)" if entry.local_path else "-")
        table.add_row(entry.name, entry.kind, entry.source, cached, size, path)
    console.print(table)


@models_app.command("pull")
def pull_models(
    name: str | None = typer.Argument(
        None,
        help="clip, blip, blip-itm, diffusion, whisper, sentence-encoder, causal-lm, or a VLM "
        "captioner: florence2, qwen2-vl, blip2",
    ),
    all_: bool = typer.Option(False, "--all", help="pull every model the pipeline uses"),
) -> None:
    """Download a model (or --all) into the configured cache; cached ones are left alone."""
    from style_pipeline.models.registry import PullError, pull

    entries = _entries(catalog=name is not None)
    if all_ == (name is not None):
        raise typer.BadParameter("give a model name or --all (not both)")
    if name is not None:
        chosen = [e for e in entries if e.name == name]
        if not chosen:
            names = ", ".join(e.name for e in entries)
            raise typer.BadParameter(f"unknown model {name!r}: {names}")
    else:
        chosen = [e for e in entries if e.pullable]
    failed = 0
    for entry in chosen:
        try:
            pull(entry, say=lambda line: console.print(line, markup=False, highlight=False))
        except PullError as err:
            failed += 1
            console.print(f"[red]{entry.name}: {err}[/red]", highlight=False)
    if failed:
        raise typer.Exit(1)
