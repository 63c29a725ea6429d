"""The CLI starts fast: ``--help`` and ``drop`` load no model, table or Dagster library.

Each check runs in a fresh interpreter (the test process has imported everything already)
and reads ``sys.modules`` afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

HEAVY = ("torch", "open_clip", "diffusers", "transformers", "polars", "dagster")

PROBE = textwrap.dedent(
    """
    import json, sys
    {body}
    heavy = {heavy!r}
    print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in heavy)))
    """
)


def loaded_heavy(body: str, env: dict[str, str] | None = None) -> list[str]:
    """The heavy modules a fresh interpreter holds after running ``body``."""
    code = PROBE.format(body=textwrap.dedent(body), heavy=HEAVY)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_importing_the_cli_loads_no_heavy_library() -> None:
    assert loaded_heavy("import style_pipeline.cli") == []


@pytest.mark.parametrize("args", [["--help"], ["drop", "--help"]])
def test_help_loads_no_heavy_library(args: list[str]) -> None:
    body = f"""
    from style_pipeline.cli import app
    try:
        app({args!r}, standalone_mode=True)
    except SystemExit as exit:
        assert exit.code == 0, exit.code
    """
    assert loaded_heavy(body) == []


def test_drop_loads_no_heavy_library(tmp_path) -> None:
    src = tmp_path / "a.jpg"
    src.write_bytes(b"not really a jpeg")
    env = {**os.environ, "STYLE_PIPELINE_DROP": str(tmp_path / "drop")}
    body = f"""
    from style_pipeline.cli import app
    try:
        app(["drop", {str(src)!r}, "--date", "2026-11-02"])
    except SystemExit as exit:
        assert exit.code == 0, exit.code
    """
    assert loaded_heavy(body, env) == []
    assert (tmp_path / "drop" / "2026-11-02" / "a.jpg").read_bytes() == src.read_bytes()
