"""The pretrained models the configured pipeline uses: where each comes from, is it here, pull it.

Three entries, named as ``style-pipeline models list|pull`` and the fallback messages name
them: ``clip`` (``curation.clip``: an open_clip architecture + pretrained tag), ``blip``
(``captioning.caption.blip.model``: a hub id) and ``diffusion`` (the training preset's
``pretrained``: a hub id); with a VLM config, a fourth: the configured
``captioning.caption.vlm`` model, named ``florence2``, ``qwen2-vl`` or ``blip2`` for the
known ones (``VLM_CATALOG``), else ``vlm``; :func:`vlm_catalog` lists all three.
A pull writes where the offline resolver of each kind looks:

- hub ids: ``huggingface_hub.snapshot_download`` into the Hugging Face cache (the entry's
  ``hf_cache_dir``, else the library default), only the files a load needs (configs,
  tokenizers, and per folder ``.safetensors`` over ``.bin``, no fp16/EMA variants, no
  single-file checkpoints beside a diffusers pipeline). Resuming is huggingface_hub's: a
  dropped connection is retried within the pull, and a pull that stops keeps the files it
  finished, so the next one fetches only the rest (a file cut mid-way starts over).
- open_clip tags: the tag's ``hf_hub`` file (safetensors preferred, as open_clip's own
  ``download_pretrained_from_hf``) into the same cache, or its URL through open_clip's
  ``download_pretrained_from_url`` (``~/.cache/clip``).

The endpoint is ``HF_ENDPOINT`` read at call time. Every failure is a :class:`PullError`
whose message says what to do (offline, unreachable hub, unknown repository).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from style_pipeline.contracts.captioning_vlm import VLM_CATALOG, VlmCaptionConfig
from style_pipeline.contracts.models import BlipModelConfig, ModelConfig, ModelFamily
from style_pipeline.models.profiles import PretrainedUnavailable, hub_offline
from style_pipeline.paths import resolve_local

Kind = Literal["open_clip", "transformers", "diffusers"]
WEIGHT_SUFFIXES = (".safetensors", ".bin")
CONFIG_SUFFIXES = (".json", ".txt", ".model", ".jinja")  # .jinja: chat templates (VLMs)
_VARIANTS = ("fp16", "non_ema", "ema", "fp32", "bf16")


class PullError(RuntimeError):
    """A pull could not finish; the message is meant for the user as it is."""


@dataclass(frozen=True)
class ModelEntry:
    """One pretrained model of the configured pipeline."""

    name: str  # clip | blip | diffusion | florence2 | qwen2-vl | blip2 | vlm
    kind: Kind
    source: str  # hub id, or "<arch>/<tag>" for open_clip
    hf_cache_dir: str | None = None
    local_path: str | None = None  # set when the config names a local directory/file
    open_clip_arch: str | None = None
    open_clip_tag: str | None = None
    clip_cache_dir: str | None = None  # ModelConfig.cache_dir (its own checkpoint folders)

    @property
    def pullable(self) -> bool:
        return self.local_path is None


@dataclass(frozen=True)
class EntryStatus:
    entry: ModelEntry
    cached: bool
    path: str | None  # the folder or file the resolver would load
    size_bytes: int
    note: str = ""


def _looks_like_path(value: str) -> bool:
    """A local folder the resolvers would load instead of a hub id."""
    return value.startswith((".", "/", "~")) or resolve_local(value).is_dir()


def clip_entry(config: ModelConfig) -> ModelEntry:
    value = config.pretrained
    if "/" in value or value.endswith((".safetensors", ".bin", ".pt", ".pth")):
        return ModelEntry("clip", "open_clip", value, local_path=value)
    return ModelEntry(
        "clip", "open_clip", f"{config.model_name}/{value}", config.hf_cache_dir,
        open_clip_arch=config.model_name, open_clip_tag=value,
        clip_cache_dir=str(config.cache_path()),
    )  # fmt: skip


def blip_entry(config: BlipModelConfig) -> ModelEntry:
    local = config.pretrained if _looks_like_path(config.pretrained) else None
    return ModelEntry("blip", "transformers", config.pretrained, config.hf_cache_dir, local)


def itm_entry(config: BlipModelConfig) -> ModelEntry:
    """BLIP image-text matching, the caption check's second opinion (``check.itm_model``)."""
    local = config.pretrained if _looks_like_path(config.pretrained) else None
    return ModelEntry("blip-itm", "transformers", config.pretrained, config.hf_cache_dir, local)


def named_entry(name: str, pretrained: str, hf_cache_dir: str | None = None) -> ModelEntry:
    """A transformers model of the speech and LLM side (whisper, sentence-encoder, causal-lm)
    by the name ``pull`` takes, its hub id or local directory."""
    local = pretrained if _looks_like_path(pretrained) else None
    return ModelEntry(name, "transformers", pretrained, hf_cache_dir, local)


def diffusion_entry(pretrained: str, family: ModelFamily = "sd") -> ModelEntry:
    del family  # the same rules pull SD and SDXL pipelines
    local = pretrained if _looks_like_path(pretrained) else None
    return ModelEntry("diffusion", "diffusers", pretrained, None, local)


def vlm_entry(config: VlmCaptionConfig) -> ModelEntry:
    """The configured VLM captioner (named by its catalog name, else ``vlm``)."""
    local = config.pretrained if _looks_like_path(config.pretrained) else None
    return ModelEntry(
        config.pull_name(), "transformers", config.pretrained, config.hf_cache_dir, local
    )


def vlm_catalog(hf_cache_dir: str | None = None) -> list[ModelEntry]:
    """The known VLM captioners (Florence-2-base, Qwen2-VL-2B-Instruct, BLIP-2 OPT-2.7b)."""
    return [ModelEntry(name, "transformers", hub_id, hf_cache_dir)
            for name, hub_id in VLM_CATALOG.items()]  # fmt: skip


def registry(
    clip: ModelConfig,
    blip: BlipModelConfig,
    diffusion_pretrained: str,
    family: ModelFamily = "sd",
    vlm: VlmCaptionConfig | None = None,
    itm: BlipModelConfig | None = None,
) -> list[ModelEntry]:
    """The entries of the configured pipeline, in pipeline order (the VLM and the caption
    check's ITM model when given)."""
    entries = [clip_entry(clip), blip_entry(blip)]
    if vlm is not None:
        entries.append(vlm_entry(vlm))
    if itm is not None:
        entries.append(itm_entry(itm))
    return [*entries, diffusion_entry(diffusion_pretrained, family)]


# --------------------------------------------------------------------------- local state


def _size(path: Path) -> int:
    """Bytes on disk under ``path`` (symlinks into the hub's blobs followed, once each)."""
    if path.is_file():
        return path.stat().st_size
    seen: set[str] = set()
    total = 0
    for item in path.rglob("*"):
        if ".cache" in item.parts or not item.is_file():
            continue
        real = os.path.realpath(item)
        if real not in seen:
            seen.add(real)
            total += os.path.getsize(real)
    return total


def hub_snapshot(repo_id: str, marker: str, cache_dir: str | None) -> Path | None:
    """The cached snapshot folder of ``repo_id`` holding ``marker`` (None: not cached)."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, marker, cache_dir=cache_dir)
    return Path(found).parent if isinstance(found, str) and os.path.isfile(found) else None


def _resolve_local(entry: ModelEntry) -> Path:
    """Where the resolver would load ``entry`` from; raises PretrainedUnavailable."""
    if entry.local_path is not None:
        path = Path(entry.local_path).expanduser()
        if not path.exists():
            raise PretrainedUnavailable(f"local path not found: {path}")
        return path
    if entry.kind == "open_clip":
        from style_pipeline.models.clip_files import find_cached_checkpoint

        assert entry.open_clip_arch and entry.open_clip_tag and entry.clip_cache_dir
        found, _ = find_cached_checkpoint(
            entry.open_clip_arch, entry.open_clip_tag, Path(entry.clip_cache_dir),
            entry.hf_cache_dir,
        )  # fmt: skip
        return found
    marker = "model_index.json" if entry.kind == "diffusers" else "config.json"
    folder = hub_snapshot(entry.source, marker, entry.hf_cache_dir)
    if folder is None:
        raise PretrainedUnavailable(f"{entry.source} is not in the Hugging Face cache")
    return folder


def status(entry: ModelEntry) -> EntryStatus:
    """Is ``entry`` on this machine where its resolver looks, where, and how big."""
    try:
        path = _resolve_local(entry)
    except PretrainedUnavailable as err:
        return EntryStatus(entry, False, None, 0, str(err))
    return EntryStatus(entry, True, str(path), _size(path))


# --------------------------------------------------------------------------- pulling


def _variant(name: str) -> bool:
    stem = PurePosixPath(name).name
    for suffix in WEIGHT_SUFFIXES:
        stem = stem.removesuffix(suffix)
    return any(stem.endswith(f".{v}") or stem.endswith(f"_{v}") for v in _VARIANTS)


def select_files(files: list[str], kind: Kind) -> list[str]:
    """The files a load needs: configs and tokenizers, and per folder safetensors over bin."""
    diffusers_repo = kind == "diffusers" and "model_index.json" in files
    keep = [f for f in files if f.endswith(CONFIG_SUFFIXES) and not f.startswith(".")]
    by_folder: dict[str, list[str]] = {}
    for name in files:
        if not name.endswith(WEIGHT_SUFFIXES) or _variant(name):
            continue
        folder = str(PurePosixPath(name).parent)
        if diffusers_repo and folder == ".":
            continue  # single-file checkpoints beside the pipeline's folders
        by_folder.setdefault(folder, []).append(name)
    for names in by_folder.values():
        safe = [n for n in names if n.endswith(".safetensors")]
        keep += safe or names
    return sorted(set(keep))


def _endpoint() -> str | None:
    return os.environ.get("HF_ENDPOINT") or None


def _network_errors() -> tuple[type[Exception], ...]:
    import httpx
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    errors: list[type[Exception]] = [
        httpx.TransportError, OfflineModeIsEnabled, LocalEntryNotFoundError, ConnectionError,
    ]  # fmt: skip
    try:
        import httpx2  # type: ignore[import-not-found]  # huggingface_hub >= 2 ships it

        errors.append(httpx2.TransportError)
    except ImportError:  # pragma: no cover - older huggingface_hub
        pass
    return tuple(errors)


def _explain(entry: ModelEntry, err: Exception) -> PullError:
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = _endpoint() or "https://huggingface.co"
    if isinstance(err, GatedRepoError):
        text = f"{entry.source} is gated on {where}: accept its licence there, then `hf auth login`"
    elif isinstance(err, RepositoryNotFoundError | RevisionNotFoundError):
        text = f"{entry.source} was not found on {where} (check the id in the config)"
    elif isinstance(err, _network_errors()):
        text = (
            f"cannot reach {where} to pull {entry.name} ({entry.source}): no internet or the hub "
            f"is down ({type(err).__name__}: {str(err).splitlines()[0][:200]}). Connect and run "
            f"`style-pipeline models pull {entry.name}` again; finished files are kept"
        )
    elif isinstance(err, HfHubHTTPError):
        text = f"{where} refused {entry.source}: {str(err).splitlines()[0][:300]}"
    else:
        text = f"pulling {entry.name} ({entry.source}) failed: {type(err).__name__}: {err}"
    return PullError(text)


Progress = Callable[[str], None]


def pull(entry: ModelEntry, say: Progress | None = None, tqdm_class=None) -> EntryStatus:
    """Download ``entry`` where its resolver finds it offline; a cached entry is a no-op.

    ``say`` gets one line per step (what, how many files, how many bytes); ``tqdm_class``
    draws the byte progress (huggingface_hub's own bars when None).
    """
    say = say or (lambda _line: None)
    if not entry.pullable:
        raise PullError(
            f"{entry.name} is configured as a local path ({entry.local_path}): nothing to pull"
        )
    before = status(entry)
    if before.cached:
        say(f"{entry.name}: already cached at {before.path} ({human_size(before.size_bytes)})")
        return before
    if hub_offline():
        raise PullError(
            f"cannot pull {entry.name}: offline mode is on (HF_HUB_OFFLINE or "
            "TRANSFORMERS_OFFLINE is set); unset it and run again"
        )
    try:
        if entry.kind == "open_clip":
            _pull_open_clip(entry, say, tqdm_class)
        else:
            _pull_snapshot(entry, say, tqdm_class)
    except PullError:
        raise
    except Exception as err:  # noqa: BLE001 - every hub/network error becomes one clear line
        raise _explain(entry, err) from err
    after = status(entry)
    if not after.cached:
        raise PullError(f"pulled {entry.name} but its resolver still cannot find it: {after.note}")
    say(f"{entry.name}: ready at {after.path} ({human_size(after.size_bytes)})")
    return after


def _pull_snapshot(entry: ModelEntry, say: Progress, tqdm_class) -> None:
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.hf_api import RepoFile

    api = HfApi(endpoint=_endpoint())
    info = api.repo_info(entry.source)
    tree = [
        f for f in api.list_repo_tree(entry.source, recursive=True, revision=info.sha)
        if isinstance(f, RepoFile)
    ]  # fmt: skip
    sizes = {f.path: int(f.size or 0) for f in tree}
    files = select_files(list(sizes), entry.kind)
    if not any(f.endswith(WEIGHT_SUFFIXES) for f in files):
        raise PullError(f"{entry.source} has no .safetensors or .bin weights to pull")
    total = sum(sizes[f] for f in files)
    say(f"{entry.name}: pulling {len(files)} files, {human_size(total)} from {entry.source}")
    snapshot_download(
        entry.source, revision=info.sha, cache_dir=entry.hf_cache_dir, allow_patterns=files,
        endpoint=_endpoint(), tqdm_class=tqdm_class,
    )  # fmt: skip
    # the resolver reads refs/main: snapshot_download wrote refs/<sha> only (a commit was asked)
    _write_ref(entry, info.sha)


def _write_ref(entry: ModelEntry, sha: str | None) -> None:
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    if not sha:
        return
    cache = Path(entry.hf_cache_dir or constants.HF_HUB_CACHE).expanduser()
    ref = cache / repo_folder_name(repo_id=entry.source, repo_type="model") / "refs" / "main"
    ref.parent.mkdir(parents=True, exist_ok=True)
    if not ref.is_file() or ref.read_text() != sha:
        tmp = ref.with_suffix(".tmp")
        tmp.write_text(sha)
        os.replace(tmp, ref)


def _pull_open_clip(entry: ModelEntry, say: Progress, tqdm_class) -> None:
    from open_clip.pretrained import download_pretrained_from_url, get_pretrained_cfg

    assert entry.open_clip_arch and entry.open_clip_tag
    cfg = get_pretrained_cfg(entry.open_clip_arch, entry.open_clip_tag)
    if not cfg:
        raise PullError(f"open_clip knows no pretrained tag {entry.source}")
    if cfg.get("hf_hub"):
        _pull_open_clip_hf(entry, cfg["hf_hub"], say, tqdm_class)
    elif cfg.get("url"):
        say(f"{entry.name}: downloading {cfg['url']} with open_clip")
        download_pretrained_from_url(cfg["url"])
    else:
        raise PullError(f"open_clip has no download for {entry.source}")


def _pull_open_clip_hf(entry: ModelEntry, hf_hub: str, say: Progress, tqdm_class) -> None:
    """open_clip's ``download_pretrained_from_hf`` order (safetensors first), with sizes."""
    from huggingface_hub import HfApi, hf_hub_download
    from open_clip.constants import HF_WEIGHTS_NAME
    from open_clip.pretrained import _get_safe_alternatives

    repo_id, filename = os.path.split(hf_hub)
    filename = filename or HF_WEIGHTS_NAME
    candidates = [*_get_safe_alternatives(filename), filename]
    api = HfApi(endpoint=_endpoint())
    info = api.model_info(repo_id, files_metadata=True)
    sizes = {s.rfilename: int(s.size or 0) for s in info.siblings or []}
    chosen = next((c for c in candidates if c in sizes), None)
    if chosen is None:
        raise PullError(f"{repo_id} holds none of {candidates}")
    say(f"{entry.name}: pulling {chosen}, {human_size(sizes[chosen])} from {repo_id}")
    hf_hub_download(
        repo_id, chosen, revision=info.sha, cache_dir=entry.hf_cache_dir, endpoint=_endpoint(),
        tqdm_class=tqdm_class,
    )  # fmt: skip
    _write_ref(ModelEntry(entry.name, "transformers", repo_id, entry.hf_cache_dir), info.sha)


def human_size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"  # pragma: no cover
